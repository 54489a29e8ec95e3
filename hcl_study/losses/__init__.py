"""Contrastive losses (SCL, UCL and their hard-negative versions) and feature normalization."""

from hcl_study.losses.contrastive import (
    ESTIMATORS,
    LOSS_NAMES,
    Estimator,
    LossName,
    contrastive_loss,
    contrastive_loss_views,
    contrastive_pair_losses,
    hardness_weights,
)
from hcl_study.losses.normalization import (
    NORMALIZATION_MODES,
    FeatureNormalization,
    NormalizationMode,
    normalize_features,
)

__all__ = [
    "ESTIMATORS",
    "LOSS_NAMES",
    "NORMALIZATION_MODES",
    "Estimator",
    "FeatureNormalization",
    "LossName",
    "NormalizationMode",
    "contrastive_loss",
    "contrastive_loss_views",
    "contrastive_pair_losses",
    "hardness_weights",
    "normalize_features",
]
