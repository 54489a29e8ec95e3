"""Order parameters of the NC/DC transition and regimes, derived from logged metrics.

The trainable logs `erank_ratio`, `log_etf_distance` and `dc_fraction` every epoch; the
functions here recompute them (and `erank_simplex_ratio`) from the raw geometry columns, so
runs logged before those metrics existed can be analysed the same way. Regimes come from
`hcl_study.geometry.classify_regime`, the one definition of the thresholds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hcl_study.geometry import REGIME_INPUTS, classify_regime
from hcl_study.geometry.metrics import ETF_DISTANCE_FLOOR

ORDER_PARAMETERS: dict[str, str] = {
    "erank_ratio": "erank_means / r, r = rank_bound = min(d, C - 1): 1 at full rank, small in DC",
    "erank_simplex_ratio": "erank_means / (C - 1): 1 for a simplex ETF of the C class means",
    "log_etf_distance": "log10 of etf_distance (clipped at 1e-12): very negative in NC",
    "dc_fraction": "dc_count / r: the fraction of collapsed class-mean directions",
}
"""Name -> definition of each continuous order parameter `add_order_parameters` writes."""


def _floats(table: pd.DataFrame, column: str) -> pd.Series:
    """A column as floats; all NaN when no trial logged it (e.g. every trial failed first)."""
    if column not in table:
        return pd.Series(np.nan, index=table.index, dtype=float)
    return table[column].astype(float)


def _classes_minus_one(table: pd.DataFrame) -> pd.Series:
    """C - 1 per row: from `data.num_classes` where logged, else `num_classes_present`."""
    present = _floats(table, "num_classes_present")
    return _floats(table, "data.num_classes").fillna(present) - 1.0


def add_order_parameters(table: pd.DataFrame) -> pd.DataFrame:
    """A copy of `table` with the columns of `ORDER_PARAMETERS` (re)computed.

    Works on any wide table of final or per-epoch metrics: the trial table, or a history
    pivoted to one column per metric. Reads `erank_means`, `rank_bound`, `etf_distance`,
    `dc_count` and `num_classes_present` (`data.num_classes` where present); a missing
    column counts as NaN.
    """
    result = table.copy()
    rank_bound = _floats(table, "rank_bound")
    erank_means = _floats(table, "erank_means")
    result["erank_ratio"] = erank_means / rank_bound
    result["erank_simplex_ratio"] = erank_means / _classes_minus_one(table)
    etf_distance = _floats(table, "etf_distance").clip(lower=ETF_DISTANCE_FLOOR)
    result["log_etf_distance"] = np.log10(etf_distance)
    result["dc_fraction"] = _floats(table, "dc_count") / rank_bound
    return result


def classify_regimes(table: pd.DataFrame) -> pd.Series:
    """`classify_regime` of every row; None for rows without any of `REGIME_INPUTS`.

    A row with some but not all of them missing (NaN, as diverged trials log) is "diverged",
    as `classify_regime` decides.
    """
    inputs = pd.DataFrame({column: _floats(table, column) for column in REGIME_INPUTS})
    regimes = [
        None if row.isna().all() else classify_regime(row.to_dict()) for _, row in inputs.iterrows()
    ]
    return pd.Series(regimes, index=table.index, dtype=object)


def singular_values_from_spectrum(spectrum: np.ndarray) -> np.ndarray:
    """Normalized singular values sigma_i / sigma_1 from one `spectrum` row.

    The spectrum holds eigenvalues of the class-mean covariance divided by the largest, i.e.
    (sigma_i / sigma_1)^2; the square root gives the singular values. Zero padding (absent
    classes) is kept, non-finite entries are dropped.
    """
    values = np.asarray(spectrum, dtype=float).ravel()  # (r,)
    values = values[np.isfinite(values)]
    return np.sqrt(np.sort(np.clip(values, 0.0, None))[::-1])


def singular_values_from_class_means(class_means: np.ndarray) -> np.ndarray:
    """Normalized singular values sigma_i / sigma_1 (min(d, C - 1) of them) of centred means.

    Args:
        class_means: One epoch of `class_means.npy`, (C, d); rows with non-finite entries
            (absent classes) are left out.

    Returns:
        Descending values, the first 1 (all NaN when every mean is the same point; none
        when fewer than two means are finite, as in a diverged epoch).
    """
    means = np.asarray(class_means, dtype=float)  # (C, d)
    means = means[np.isfinite(means).all(axis=1)]  # (C_eff, d)
    count = max(0, min(means.shape[1], len(means) - 1))
    if count == 0:
        return np.empty(0)
    centred = means - means.mean(axis=0)  # (C_eff, d)
    singular_values = np.linalg.svd(centred, compute_uv=False)  # (min(C_eff, d),)
    with np.errstate(invalid="ignore"):  # all means equal: NaN
        return singular_values[:count] / singular_values[0]
