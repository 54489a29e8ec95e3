"""Representation geometry: streaming NC/DC metrics, NCM accuracy and regime classification."""

from hcl_study.geometry.accumulator import GeometryAccumulator, compute_geometry
from hcl_study.geometry.metrics import METRIC_KEYS
from hcl_study.geometry.ncm import ncm_accuracy
from hcl_study.geometry.regime import (
    DIVERGED,
    REGIME_CODES,
    REGIME_INPUTS,
    Regime,
    classify_regime,
)

__all__ = [
    "DIVERGED",
    "METRIC_KEYS",
    "REGIME_CODES",
    "REGIME_INPUTS",
    "GeometryAccumulator",
    "Regime",
    "classify_regime",
    "compute_geometry",
    "ncm_accuracy",
]
