"""Phase boundaries from trial tables: where P(NC) crosses 1/2, and level sets of order parameters.

Input is a DataFrame with one row per trial: typed parameter columns (e.g. `loss.beta`,
`loss.tau`, `normalization`, `loss.name`), a `regime` column (NC / partial / DC / diverged)
and order-parameter columns (e.g. `erank_ratio`). A boundary lives on one continuous axis x
(a 1-D boundary: the x values where the level is crossed) or on two, x and y (a 2-D boundary:
contour lines). Each combination of the `by` columns (default: normalization and loss.name)
gets its own boundary; every other column is pooled, i.e. the trials of one category are
modelled together whatever else they vary (e.g. optimizer.lr or the seed), and `pooled`
names the varied ones among the `params` the caller passes (e.g. the study's param columns).
The models are those of `hcl_study.levelset`, the same the boundary searcher uses; all
distances and areas there are in unit coordinates.

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
MIN_TRIALS_PER_AXIS = 4
"""Default `min_trials`: 4 per continuous axis, so 8 in 2-D and 4 in 1-D (a claims grid has
5 β values per category)."""
Status = Literal["ok", "too_few_trials", "single_regime", "no_crossing"]


@dataclass(frozen=True)
class PhaseBoundary:
    """The boundary estimate of one category (e.g. one normalization).

    Attributes:
        category: Values of the `by` columns, e.g. {"normalization": "sphere"}.
        axes: The columns of the boundary's axes, x first: (x,) in 1-D, (x, y) in 2-D.
        quantity: What crosses the level: "P(NC)" or the order parameter's column name.
        level: 0.5 for P(NC), the threshold for an order parameter.
        status: "ok", or why there is no boundary: "too_few_trials", "single_regime",
            "no_crossing" (the field does not reach the level inside the domain).
        reason: A readable explanation when status is not "ok" (else "").
        points: The trials used: the axes, regime, `nc`, and `value` for an order parameter.
        level_set: Field, band and contours on the grid; None without a fitted model.
        pooled: The columns among the caller's `params` that vary among the category's
            trials it uses but are neither an axis nor a `by` column: the boundary pools
            trials over them. None when no `params` were given (not checked).
    """

    category: dict[str, Any]
    axes: tuple[str, ...]
    quantity: str
    level: float
    status: Status
    reason: str
    points: pd.DataFrame
    level_set: LevelSet | None
    pooled: tuple[str, ...] | None

    @property
    def ok(self) -> bool:
        """True when a boundary was placed."""
        return self.status == "ok"

    @property
    def category_label(self) -> str:
        """The category as text, e.g. "normalization=ball" ("all" without `by` columns)."""
        return ", ".join(f"{key}={value}" for key, value in self.category.items()) or "all"

    @property
    def contour(self) -> list[np.ndarray]:
        """The estimated boundary in natural coordinates: polylines (m, 2) in 2-D, one (1, 1)
        array per crossing in 1-D."""
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


def _axes(
    trials: pd.DataFrame,
    x: str,
    y: str | None,
    min_trials: int | None,
    *,
    x_log: bool,
    y_log: bool,
    x_offset: float,
    y_offset: float,
    x_range: tuple[float, float] | None,
    y_range: tuple[float, float] | None,
) -> tuple[tuple[Axis, ...], list[str], int]:
    """The boundary's axes ((x,) when y is None, else (x, y)), their columns, `min_trials`."""
    axes = [_axis(trials, x, x_log, x_offset, x_range)]
    if y is not None:
        axes.append(_axis(trials, y, y_log, y_offset, y_range))
    minimum = MIN_TRIALS_PER_AXIS * len(axes) if min_trials is None else min_trials
    return tuple(axes), [axis.name for axis in axes], minimum


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


def _pooled(
    group: pd.DataFrame, params: Sequence[str] | None, used: Sequence[str]
) -> tuple[str, ...] | None:
    """The `params` that vary within `group` and are not `used` (an axis or a `by` column)."""
    if params is None:
        return None
    return tuple(
        column
        for column in params
        if column in group
        and column not in used
        and group[column].astype(str).nunique(dropna=False) > 1
    )


def _usable(group: pd.DataFrame, columns: Sequence[str]) -> pd.Series:
    """Rows of trials that ran to their end (a regime; a table without a `regime` column
    counts every row) at a finite point of the axes: a failed, killed, stopped or running
    trial's last values are not final, and a trial without an axis value has no place."""
    final = group["regime"].notna() if "regime" in group else pd.Series(True, group.index)
    axes = group[list(columns)].apply(pd.to_numeric, errors="coerce").astype(float)
    return final & np.isfinite(axes).all(axis=1)


def _regime_counts(regimes: pd.Series) -> str:
    counts = regimes.value_counts()
    return ", ".join(f"{count} {regime}" for regime, count in counts.items())


def estimate_phase_boundary(
    trials: pd.DataFrame,
    x: str = "loss.beta",
    y: str | None = "loss.tau",
    *,
    x_log: bool = True,
    y_log: bool = False,
    x_offset: float = 1.0,
    y_offset: float = 0.0,
    x_range: tuple[float, float] | None = None,
    y_range: tuple[float, float] | None = None,
    by: Sequence[str] | None = None,
    params: Sequence[str] | None = None,
    min_trials: int | None = None,
    n_bootstrap: int = 100,
    n_restarts: int = 2,
    resolution: int = 60,
    seed: int = 0,
) -> list[PhaseBoundary]:
    """The NC boundary, P(NC | x, y) = 0.5 (or P(NC | x) = 0.5), per category, with a band.

    P(NC) is a GP classifier (logistic fallback) on unit coordinates. Diverged trials are
    kept and count as not NC; rows without a regime (trials that did not run to their end)
    or without a finite axis value are dropped. The band is where the
    5-95 % interval of P contains 0.5 (`level_set.lower` / `.upper`): from the GP's Laplace
    posterior, or from stratified bootstrap refits of the logistic fallback.

    Args:
        trials: One row per trial.
        x: Column of the horizontal axis.
        y: Column of the vertical axis; None for a 1-D boundary in x (the contour is then
            the x values where P(NC) crosses 0.5). A categorical column belongs in `by`,
            never here: y is modelled as continuous.
        x_log: Model x as log(x + x_offset).
        y_log: Model y as log(y + y_offset).
        x_offset: Offset of the x log (1 suits β ∈ [0, 50]).
        y_offset: Offset of the y log.
        x_range: Domain of x; default the range of the whole table (shared by categories).
        y_range: Domain of y; the same.
        by: Categorical columns to split on; default those of ("normalization",
            "loss.name") present in the table.
        params: Columns to check for pooling (e.g. the study's param columns); see
            `PhaseBoundary.pooled`.
        min_trials: Fewer trials than this in a category give status "too_few_trials";
            default 4 per axis (`MIN_TRIALS_PER_AXIS`): 8 in 2-D, 4 in 1-D.
        n_bootstrap: Bootstrap refits for the band of the logistic fallback.
        n_restarts: Extra random starts of the GP hyperparameter optimizer.
        resolution: Grid points per axis.
        seed: Seeds the GP restarts and the bootstrap.

    Returns:
        One `PhaseBoundary` per category.
    """
    axes, columns, min_trials = _axes(
        trials, x, y, min_trials, x_log=x_log, y_log=y_log, x_offset=x_offset,
        y_offset=y_offset, x_range=x_range, y_range=y_range,
    )  # fmt: skip
    results = []
    for category, group in _groups(trials, by):
        usable = group.loc[_usable(group, columns)]
        points = usable[[*columns, "regime"]].copy()
        points["nc"] = points["regime"] == NC
        pooled = _pooled(usable, params, [*columns, *category])
        base = PhaseBoundary(category, tuple(columns), "P(NC)", 0.5, "ok", "", points, None, pooled)
        nc = points["nc"].to_numpy()  # (n,)
        if len(points) < min_trials:
            reason = f"too few trials ({len(points)} < {min_trials})"
            results.append(replace(base, status="too_few_trials", reason=reason))
            continue
        if nc.all() or not nc.any():
            shown = "all NC" if nc.all() else f"no NC: {_regime_counts(points['regime'])}"
            results.append(replace(base, status="single_regime", reason=f"single regime ({shown})"))
            continue
        unit = to_unit(axes, points[columns].to_numpy())  # (n, d)
        _, grid = unit_grid(len(axes), resolution)  # (k**d, d)
        model = fit_probability(unit, nc, seed=seed, n_restarts=n_restarts)
        lower, upper, wrong_side = model.uncertainty(grid, n_bootstrap=n_bootstrap, seed=seed)
        shape = (resolution,) * len(axes)  # (k,) or (k, k)
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
    y: str | None = "loss.tau",
    *,
    x_log: bool = True,
    y_log: bool = False,
    x_offset: float = 1.0,
    y_offset: float = 0.0,
    x_range: tuple[float, float] | None = None,
    y_range: tuple[float, float] | None = None,
    by: Sequence[str] | None = None,
    params: Sequence[str] | None = None,
    min_trials: int | None = None,
    n_restarts: int = 2,
    resolution: int = 60,
    seed: int = 0,
) -> list[PhaseBoundary]:
    """The level set {order parameter = threshold} per category, with its μ ± 1.96σ band.

    The surrogate is the GP regression of `hcl_study.levelset` (learned noise, latent σ).
    As in `estimate_phase_boundary`, only trials that ran to their end (those with a regime,
    when the table has that column) at a finite point of the axes are used: the last value
    of a failed, killed, stopped or running trial is not its order parameter. Trials with a
    non-finite value (diverged) are kept in `points` but left out of the GP.
    Arguments as in `estimate_phase_boundary` (y None: 1-D in x); `min_trials` counts
    finite values.

    Returns:
        One `PhaseBoundary` per category; `level_set.lower` / `.upper` are μ ∓ 1.96σ.
    """
    axes, columns, min_trials = _axes(
        trials, x, y, min_trials, x_log=x_log, y_log=y_log, x_offset=x_offset,
        y_offset=y_offset, x_range=x_range, y_range=y_range,
    )  # fmt: skip
    results = []
    for category, group in _groups(trials, by):
        usable = group.loc[_usable(group, columns)]
        points = usable[[*columns, *(["regime"] if "regime" in group else [])]].copy()
        points["value"] = pd.to_numeric(usable[order_parameter], errors="coerce")
        pooled = _pooled(usable, params, [*columns, *category])
        base = PhaseBoundary(
            category, tuple(columns), order_parameter, threshold, "ok", "", points, None, pooled
        )
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
        unit = to_unit(axes, points.loc[finite, columns].to_numpy())  # (n_finite, d)
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
