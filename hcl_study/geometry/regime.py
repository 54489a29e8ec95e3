"""Classification of a geometry into Neural Collapse, Dimensional Collapse, partial or diverged."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

Regime = Literal["NC", "partial", "DC", "diverged"]
REGIME_CODES: dict[str, int] = {"NC": 0, "partial": 1, "DC": 2, "diverged": 3}
DIVERGED = "diverged"  # the regime of non-finite losses or geometry

REGIME_INPUTS: tuple[str, ...] = (
    "rank_bound",
    "dc_count",
    "erank_means",
    "etf_distance",
    "within_rel",
    "equal_inner_max",
)
"""The metrics `classify_regime` reads (besides the optional `spectrum`)."""


def classify_regime(
    metrics: Mapping[str, Any],
    *,
    dc_count_fraction: float = 0.1,
    erank_fraction: float = 0.8,
    etf_threshold: float = 0.15,
    within_rel_threshold: float = 0.15,
    equal_inner_threshold: float = 0.2,
) -> Regime:
    """The regime of a metrics dict from `compute_geometry` / `GeometryAccumulator.compute`.

    Rules, in order, with r = metrics["rank_bound"]:
        "diverged": any of rank_bound, dc_count, erank_means, etf_distance, within_rel,
            equal_inner_max, or any `spectrum` entry (when the key is present), is not finite.
        "DC": dc_count >= max(1, dc_count_fraction * r) or erank_means < erank_fraction * r.
        "NC": etf_distance < etf_threshold and within_rel < within_rel_threshold and
            equal_inner_max < equal_inner_threshold.
        "partial": otherwise.

    Args:
        metrics: Must hold the keys above; `spectrum` is optional.
        dc_count_fraction: Fraction of r that collapsed dimensions must reach (default 0.1).
        erank_fraction: erank_means below this fraction of r means DC (default 0.8).
        etf_threshold: etf_distance below this is needed for NC (default 0.15).
        within_rel_threshold: within_rel below this is needed for NC (default 0.15).
        equal_inner_threshold: equal_inner_max below this is needed for NC (default 0.2).

    Returns:
        One of "NC", "partial", "DC", "diverged"; `REGIME_CODES` maps it to 0..3.
    """
    values = {key: float(metrics[key]) for key in REGIME_INPUTS}
    spectrum = np.asarray(metrics.get("spectrum", ()), dtype=np.float64)
    if not (all(np.isfinite(list(values.values()))) and np.isfinite(spectrum).all()):
        return DIVERGED
    rank_bound = values["rank_bound"]
    if (
        values["dc_count"] >= max(1.0, dc_count_fraction * rank_bound)
        or values["erank_means"] < erank_fraction * rank_bound
    ):
        return "DC"
    if (
        values["etf_distance"] < etf_threshold
        and values["within_rel"] < within_rel_threshold
        and values["equal_inner_max"] < equal_inner_threshold
    ):
        return "NC"
    return "partial"
