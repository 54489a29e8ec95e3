"""Phase boundaries from trial tables: where P(NC) crosses 1/2, and level sets of order parameters.

Input is a DataFrame with one row per trial: typed parameter columns (e.g. `loss.beta`,
`loss.tau`, `normalization`, `loss.name`), a `regime` column (NC / partial / DC / diverged)
and order-parameter columns (e.g. `erank_ratio`). Each value of the remaining categorical
columns gets its own boundary. The models are those of `hcl_study.levelset`, the same the
boundary searcher uses; all distances and areas there are in unit coordinates.

When the data cannot place a boundary, the result says so in `status` and `reason`
("too few trials (5 < 8)", "single regime (all NC)", ...) instead of drawing one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import pandas as pd

from hcl_study.levelset import (
    Axis,
    LevelSet,
    fit_gp_regression,
    fit_probability,
    gp_level_set,
    level_set,
    to_unit,
    unit_grid,
)

DEFAULT_BY = ("normalization", "loss.name")
NC = "NC"
Status = Literal["ok", "too_few_trials", "single_regime", "no_crossing"]


@dataclass(frozen=True)
class PhaseBoundary:
    """The boundary estimate of one category (e.g. one normalization).

    Attributes:
        category: Values of the `by` columns, e.g. {"normalization": "sphere"}.
        quantity: What crosses the level: "P(NC)" or the order parameter's column name.
        level: 0.5 for P(NC), the threshold for an order parameter.
        status: "ok", or why there is no boundary: "too_few_trials", "single_regime",
            "no_crossing" (the field does not reach the level inside the domain).
        reason: A readable explanation when status is not "ok" (else "").
        points: The trials used: x, y, regime, `nc`, and `value` for an order parameter.
        level_set: Field, band and contours on the grid; None without a fitted model.
    """

    category: dict[str, Any]
    quantity: str
    level: float
    status: Status
    reason: str
    points: pd.DataFrame
    level_set: LevelSet | None

    @property
    def ok(self) -> bool:
        """True when a boundary was placed."""
        return self.status == "ok"

    @property
    def contour(self) -> list[np.ndarray]:
        """The estimated boundary: polylines (m, 2) in natural (x, y) coordinates."""
        return self.level_set.contour if self.level_set is not None else []


def _axis(
    trials: pd.DataFrame,
    column: str,
    log: bool,
    offset: float,
    bounds: tuple[float, float] | None,
) -> Axis:
    low, high = bounds if bounds is not None else (trials[column].min(), trials[column].max())
    if not low < high:
        raise ValueError(f"{column} takes a single value ({low}); a boundary needs a range")
    return Axis(column, float(low), float(high), log=log, offset=offset)


def _groups(
    trials: pd.DataFrame, by: Sequence[str] | None
) -> list[tuple[dict[str, Any], pd.DataFrame]]:
    if by is None:
        by = [column for column in DEFAULT_BY if column in trials.columns]
    missing = [column for column in by if column not in trials.columns]
    if missing:
        raise KeyError(f"columns {missing} are not in the trial table")
    if not by:
        return [({}, trials)]
    return [
        (dict(zip(by, key, strict=True)), group)
        for key, group in trials.groupby(list(by), dropna=False, sort=True)
    ]


def _regime_counts(regimes: pd.Series) -> str:
    counts = regimes.value_counts()
    return ", ".join(f"{count} {regime}" for regime, count in counts.items())


def estimate_phase_boundary(
    trials: pd.DataFrame,
    x: str = "loss.beta",
    y: str = "loss.tau",
    *,
    x_log: bool = True,
    y_log: bool = False,
    x_offset: float = 1.0,
    y_offset: float = 0.0,
    x_range: tuple[float, float] | None = None,
    y_range: tuple[float, float] | None = None,
    by: Sequence[str] | None = None,
    min_trials: int = 8,
    n_bootstrap: int = 100,
    n_restarts: int = 2,
    resolution: int = 60,
    seed: int = 0,
) -> list[PhaseBoundary]:
    """The NC boundary, P(NC | x, y) = 0.5, per category, with a bootstrap band.

    P(NC) is a GP classifier (logistic fallback) on unit coordinates. Diverged trials are
    kept and count as not NC; rows without a regime are dropped. The band is where the
    5-95 % interval of P contains 0.5 (`level_set.lower` / `.upper`): from the GP's Laplace
    posterior, or from stratified bootstrap refits of the logistic fallback.

    Args:
        trials: One row per trial.
        x: Column of the horizontal axis.
        y: Column of the vertical axis.
        x_log: Model x as log(x + x_offset).
        y_log: Model y as log(y + y_offset).
        x_offset: Offset of the x log (1 suits β ∈ [0, 50]).
        y_offset: Offset of the y log.
        x_range: Domain of x; default the range of the whole table (shared by categories).
        y_range: Domain of y; the same.
        by: Categorical columns to split on; default those of ("normalization",
            "loss.name") present in the table.
        min_trials: Fewer trials than this in a category give status "too_few_trials".
        n_bootstrap: Bootstrap refits for the band of the logistic fallback.
        n_restarts: Extra random starts of the GP hyperparameter optimizer.
        resolution: Grid points per axis.
        seed: Seeds the GP restarts and the bootstrap.

    Returns:
        One `PhaseBoundary` per category.
    """
    axes = (
        _axis(trials, x, x_log, x_offset, x_range),
        _axis(trials, y, y_log, y_offset, y_range),
    )
    results = []
    for category, group in _groups(trials, by):
        points = group.loc[group["regime"].notna(), [x, y, "regime"]].copy()
        points["nc"] = points["regime"] == NC
        base = PhaseBoundary(category, "P(NC)", 0.5, "ok", "", points, None)
        nc = points["nc"].to_numpy()  # (n,)
        if len(points) < min_trials:
            reason = f"too few trials ({len(points)} < {min_trials})"
            results.append(replace(base, status="too_few_trials", reason=reason))
            continue
        if nc.all() or not nc.any():
            shown = "all NC" if nc.all() else f"no NC: {_regime_counts(points['regime'])}"
            results.append(replace(base, status="single_regime", reason=f"single regime ({shown})"))
            continue
        unit = to_unit(axes, points[[x, y]].to_numpy())  # (n, 2)
        _, grid = unit_grid(2, resolution)  # (k*k, 2)
        model = fit_probability(unit, nc, seed=seed, n_restarts=n_restarts)
        lower, upper, wrong_side = model.uncertainty(grid, n_bootstrap=n_bootstrap, seed=seed)
        shape = (resolution, resolution)
        estimate = level_set(
            axes,
            model.predict_proba(grid).reshape(shape),
            lower.reshape(shape),
            upper.reshape(shape),
            0.5,
            wrong_side.reshape(shape),
        )
        results.append(_checked(replace(base, level_set=estimate)))
    return results


def estimate_level_set(
    trials: pd.DataFrame,
    order_parameter: str = "erank_ratio",
    threshold: float = 0.9,
    x: str = "loss.beta",
    y: str = "loss.tau",
    *,
    x_log: bool = True,
    y_log: bool = False,
    x_offset: float = 1.0,
    y_offset: float = 0.0,
    x_range: tuple[float, float] | None = None,
    y_range: tuple[float, float] | None = None,
    by: Sequence[str] | None = None,
    min_trials: int = 8,
    n_restarts: int = 2,
    resolution: int = 60,
    seed: int = 0,
) -> list[PhaseBoundary]:
    """The level set {order parameter = threshold} per category, with its μ ± 1.96σ band.

    The surrogate is the GP regression of `hcl_study.levelset` (learned noise, latent σ).
    Trials with a non-finite value (diverged) are kept in `points` but left out of the GP.
    Arguments as in `estimate_phase_boundary`; `min_trials` counts finite values.

    Returns:
        One `PhaseBoundary` per category; `level_set.lower` / `.upper` are μ ∓ 1.96σ.
    """
    axes = (
        _axis(trials, x, x_log, x_offset, x_range),
        _axis(trials, y, y_log, y_offset, y_range),
    )
    results = []
    for category, group in _groups(trials, by):
        points = group[[x, y, *(["regime"] if "regime" in group else [])]].copy()
        points["value"] = pd.to_numeric(group[order_parameter], errors="coerce")
        base = PhaseBoundary(category, order_parameter, threshold, "ok", "", points, None)
        values = points["value"].to_numpy(dtype=float)  # (n,)
        finite = np.isfinite(values)  # (n,)
        if finite.sum() < min_trials:
            reason = f"too few finite {order_parameter} values ({finite.sum()} < {min_trials})"
            results.append(replace(base, status="too_few_trials", reason=reason))
            continue
        above = values[finite] > threshold  # (n_finite,)
        if above.all() or not above.any():
            side = ">" if above.all() else "<="
            reason = f"single regime (all {order_parameter} {side} {threshold:g})"
            results.append(replace(base, status="single_regime", reason=reason))
            continue
        unit = to_unit(axes, points.loc[finite, [x, y]].to_numpy())  # (n_finite, 2)
        gp = fit_gp_regression(unit, values[finite], seed=seed, n_restarts=n_restarts)
        results.append(
            _checked(replace(base, level_set=gp_level_set(gp, axes, threshold, resolution)))
        )
    return results


def _checked(boundary: PhaseBoundary) -> PhaseBoundary:
    """Turn a fitted estimate whose field never crosses its level into "no_crossing"."""
    if boundary.contour:
        return boundary
    reason = f"{boundary.quantity} does not cross {boundary.level:g} inside the domain"
    return replace(boundary, status="no_crossing", reason=reason)
