"""The paper's figures (1-6) and the phase diagram (7), as matplotlib Figures.

Every function returns a `matplotlib.figure.Figure` (no pyplot state, so it works headless
and in notebooks) whose title is its suptitle, and saves it as PNG when given a `path`.
History figures draw one line per trial from the long history table of
`analysis.loading`, labelled by `trial_labels` (the study's varied params, e.g. β, τ,
normalization and lr; β and normalization by default). Every line has its own colour and
legend entry (up to `MAX_LEGEND_ENTRIES`, beside the axes past `LEGEND_INSIDE_MAX`); a trial
without a finite value is not drawn, and the panel says so.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps, rcParams
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from analysis.boundary import DEFAULT_BY, PhaseBoundary
from hcl_study.geometry import REGIME_CODES

REGIME_COLORS: dict[str, str] = {
    "NC": "tab:green",
    "partial": "tab:orange",
    "DC": "tab:red",
    "diverged": "black",
}
NO_REGIME_LABEL = "no final regime"
BOUNDARY_COLOR = "tab:blue"
BAND_LABEL = "5–95 % band"
"""Legend of a 1-D P(NC) band; an order parameter's band is μ ± 1.96σ (`LEVEL_BAND_LABEL`)."""
LEVEL_BAND_LABEL = "μ ± 1.96σ band"
LEGEND_INSIDE_MAX = 10
MAX_LEGEND_ENTRIES = 60
LEGEND_ROWS = 25
LEGEND_COLUMN_INCHES = 2.4
DEFAULT_COLORS = rcParams["axes.prop_cycle"].by_key()["color"]
DPI = 120
DEFAULT_LABEL_KEYS = ("loss.beta", "normalization")
SHORT_NAMES: dict[str, str] = {"loss.beta": "β", "loss.tau": "τ", "optimizer.lr": "lr"}


def _finish(figure: Figure, path: Path | str | None) -> Figure:
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=DPI)
    return figure


def _shown(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _label_part(key: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    return f"{SHORT_NAMES.get(key, key)}={_shown(value)}"


def trial_labels(trials: pd.DataFrame, keys: Sequence[str] = DEFAULT_LABEL_KEYS) -> dict[str, str]:
    """Trial id -> a legend label such as "β=16.5, ball" from the trial table's `keys`
    (e.g. `analysis.loading.varied_params` of the study).

    Trials that did not finish get their status appended, e.g. "β=16.5, ball (failed)";
    trials that the keys do not tell apart get their trial id appended, so every label is
    unique (a trial without any of the keys is labelled by its id).
    """
    present = [key for key in keys if key in trials]
    labels = {
        row["trial_id"]: (
            ", ".join(_label_part(key, row[key]) for key in present) or str(row["trial_id"])
        )
        + ("" if row["status"] == "finished" else f" ({row['status']})")
        for _, row in trials.iterrows()
    }
    counts = Counter(labels.values())
    return {
        trial_id: label if counts[label] == 1 else f"{label} [{trial_id}]"
        for trial_id, label in labels.items()
    }


def _distinct_colors(axes: Axes, lines: int) -> None:
    """A colour per line: matplotlib's default cycle repeats after 10, tab20 after 20."""
    if lines <= len(DEFAULT_COLORS):
        return
    qualitative = [
        color for name in ("tab20", "tab20b", "tab20c") for color in colormaps[name].colors
    ]
    if lines <= 20:
        colors = qualitative[:20]
    elif lines <= len(qualitative):
        colors = qualitative
    else:
        colors = list(colormaps["turbo"](np.linspace(0.0, 1.0, lines)))
    axes.set_prop_cycle(color=colors)


def _legend(axes: Axes) -> None:
    """Inside the axes for a few entries, beside them for more, none past the maximum."""
    entries = len(axes.get_legend_handles_labels()[0])
    if entries == 0:
        return
    if entries <= LEGEND_INSIDE_MAX:
        axes.legend(fontsize="small")
    elif entries <= MAX_LEGEND_ENTRIES:
        columns = -(-entries // LEGEND_ROWS)
        figure = axes.get_figure()
        width, height = figure.get_size_inches()
        figure.set_size_inches(width + LEGEND_COLUMN_INCHES * columns, height)
        figure.legend(loc="outside right upper", fontsize="x-small", ncol=columns)
    else:
        axes.text(
            0.99, 0.99, f"{entries} lines (too many to label; see the trial table)",
            transform=axes.transAxes, ha="right", va="top", fontsize="x-small",
        )  # fmt: skip


def _note_undrawn(axes: Axes, labels: Sequence[str], drawn: int) -> None:
    """Say which trials had no finite value to draw (e.g. diverged), or that none had."""
    if not labels:
        return
    if drawn == 0:
        axes.text(
            0.5, 0.5, "no finite values to draw", transform=axes.transAxes, ha="center",
            va="center", color="tab:gray",
        )  # fmt: skip
    shown = ", ".join(labels[:3]) + (f" and {len(labels) - 3} more" if len(labels) > 3 else "")
    axes.set_title(f"not drawn (no finite values): {shown}", fontsize="x-small", wrap=True)


def plot_singular_values(
    values: Mapping[str, np.ndarray],
    *,
    labels: Mapping[str, str] | None = None,
    epoch_label: str = "final epoch",
    path: Path | str | None = None,
) -> Figure:
    """Figure 1: sorted normalized class-mean singular values, log scale, one line per trial.

    Args:
        values: Trial id -> singular values σ_i / σ_1 (`analysis.loading.load_singular_values`);
            zero and non-finite entries cannot be drawn on the log axis and are left out.
        labels: Trial id -> legend label; the trial id when missing.
        epoch_label: Which epoch the values are from, for the title.
        path: Where to save the PNG.
    """
    figure = Figure(figsize=(6, 4), layout="constrained")
    axes = figure.add_subplot()
    shown_values = {}
    for trial_id, singular_values in values.items():
        ordered = np.sort(np.asarray(singular_values, dtype=float))[::-1]  # (r,)
        shown_values[trial_id] = ordered[np.isfinite(ordered) & (ordered > 0)]
    drawn = {trial_id: shown for trial_id, shown in shown_values.items() if shown.size}
    _distinct_colors(axes, len(drawn))
    for trial_id, shown in drawn.items():
        label = (labels or {}).get(trial_id, trial_id)
        axes.semilogy(np.arange(1, shown.size + 1), shown, marker="o", markersize=3, label=label)
    undrawn = [(labels or {}).get(t, t) for t in shown_values if t not in drawn]
    _note_undrawn(axes, undrawn, len(drawn))
    if not drawn:
        axes.set_yscale("linear")
    axes.set_xlabel("index i (sorted)")
    axes.set_ylabel("σ_i / σ_1")
    figure.suptitle(f"Class-mean singular values ({epoch_label})")
    _legend(axes)
    return _finish(figure, path)


def plot_metric_history(
    history: pd.DataFrame,
    metric: str,
    *,
    title: str,
    ylabel: str,
    labels: Mapping[str, str] | None = None,
    path: Path | str | None = None,
) -> Figure:
    """One metric against the epoch, one line per trial.

    Args:
        history: Long history table (`trial_id, epoch, metric, value`).
        metric: The metric to draw.
        title: The figure's title.
        ylabel: The y-axis label.
        labels: Trial id -> legend label; only these trials are drawn, in this order. All
            trials that logged `metric`, labelled by id, when None.
        path: Where to save the PNG.
    """
    rows = history[history["metric"] == metric]
    series = {trial_id: group for trial_id, group in rows.groupby("trial_id", sort=False)}
    chosen = dict(labels) if labels is not None else {trial_id: trial_id for trial_id in series}
    figure = Figure(figsize=(6, 4), layout="constrained")
    axes = figure.add_subplot()
    finite = {}
    for trial_id, group in series.items():
        ordered = group.sort_values("epoch")
        finite[trial_id] = ordered[np.isfinite(ordered["value"].astype(float))]
    drawn = [t for t in chosen if t in finite and len(finite[t])]
    _distinct_colors(axes, len(drawn))
    for trial_id in drawn:
        group = finite[trial_id]
        axes.plot(group["epoch"], group["value"], marker="o", markersize=3, label=chosen[trial_id])
    undrawn = [label for t, label in chosen.items() if t in series and t not in drawn]
    _note_undrawn(axes, undrawn, len(drawn))
    axes.set_xlabel("epoch")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel(ylabel)
    figure.suptitle(title)
    _legend(axes)
    return _finish(figure, path)


def plot_unit_norm(
    history: pd.DataFrame,
    labels: Mapping[str, str] | None = None,
    path: Path | str | None = None,
) -> Figure:
    """Figure 2: the unit-norm condition mean_c | ‖μ_c‖ − 1 | against the epoch."""
    return plot_metric_history(
        history, "unit_norm", title="Unit-norm condition", ylabel="mean_c | ‖μ_c‖ − 1 |",
        labels=labels, path=path,
    )  # fmt: skip


def plot_zero_sum(
    history: pd.DataFrame,
    labels: Mapping[str, str] | None = None,
    path: Path | str | None = None,
) -> Figure:
    """Figure 3: the zero-sum condition ‖mean_c μ_c‖ against the epoch."""
    return plot_metric_history(
        history, "zero_sum", title="Zero-sum condition", ylabel="‖mean_c μ_c‖",
        labels=labels, path=path,
    )  # fmt: skip


def plot_equal_inner_product(
    history: pd.DataFrame,
    labels: Mapping[str, str] | None = None,
    path: Path | str | None = None,
) -> Figure:
    """Figure 4: the equal-inner-product condition, mean |cos(μ_c, μ_c′) + 1/(C−1)|."""
    return plot_metric_history(
        history, "equal_inner_mean", title="Equal-inner-product condition",
        ylabel="mean_{c≠c′} |cos(μ_c, μ_c′) + 1/(C−1)|", labels=labels, path=path,
    )  # fmt: skip


def plot_within_class(
    history: pd.DataFrame,
    labels: Mapping[str, str] | None = None,
    path: Path | str | None = None,
) -> Figure:
    """Figure 5: the within-class variation mean_c mean_i ‖z_i − μ_c‖ against the epoch."""
    return plot_metric_history(
        history, "within_class", title="Within-class variation",
        ylabel="mean_c mean_i ‖z_i − μ_c‖", labels=labels, path=path,
    )  # fmt: skip


def plot_ncm_accuracy(
    history: pd.DataFrame,
    labels: Mapping[str, str] | None = None,
    path: Path | str | None = None,
) -> Figure:
    """Figure 6: nearest-class-mean accuracy on the test set against the epoch."""
    return plot_metric_history(
        history, "ncm_accuracy_test", title="Nearest-class-mean test accuracy",
        ylabel="NCM accuracy (test)", labels=labels, path=path,
    )  # fmt: skip


def _members(trials: pd.DataFrame, category: Mapping[str, Any]) -> pd.DataFrame:
    """The trials of one category (a missing category value matches missing cells)."""
    mask = pd.Series(True, index=trials.index)
    for column, value in category.items():
        mask &= trials[column].eq(value) | (trials[column].isna() & pd.isna(value))
    return trials[mask]


def _category_title(category: Mapping[str, Any]) -> str:
    return ", ".join(f"{key}={value}" for key, value in category.items()) or "all trials"


def _draw_points(axes: Axes, trials: pd.DataFrame, x: str, y: str) -> None:
    """Trials as points coloured by regime; those without a final regime as grey crosses."""
    placed = trials[np.isfinite(trials[x].astype(float)) & np.isfinite(trials[y].astype(float))]
    for regime in sorted(REGIME_COLORS, key=REGIME_CODES.__getitem__):
        members = placed[placed["regime"] == regime]
        if len(members):
            axes.scatter(
                members[x], members[y], color=REGIME_COLORS[regime], label=regime,
                edgecolor="white", zorder=3,
            )  # fmt: skip
    unplaced = placed[placed["regime"].isna()]
    if len(unplaced):
        axes.scatter(
            unplaced[x], unplaced[y], color="tab:gray", marker="x", label=NO_REGIME_LABEL,
            zorder=3,
        )  # fmt: skip


def _new_label(axes: Axes, label: str) -> str | None:
    """`label`, or None when the panel's legend already has it."""
    return None if label in axes.get_legend_handles_labels()[1] else label


def _draw_boundary(axes: Axes, boundary: PhaseBoundary) -> None:
    """The estimated boundary, its band, and the reason when there is none."""
    estimate = boundary.level_set
    if estimate is not None and estimate.band.any():
        axes.contourf(
            estimate.ticks[0], estimate.ticks[1], estimate.band.astype(float),
            levels=[0.5, 1.5], colors=[BOUNDARY_COLOR], alpha=0.2,
        )  # fmt: skip
    for number, line in enumerate(boundary.contour):
        label = f"{boundary.quantity} = {boundary.level:g}" if number == 0 else None
        axes.plot(line[:, 0], line[:, 1], color=BOUNDARY_COLOR, linewidth=2, label=label)


def _band_segments(ticks: np.ndarray, band: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Left and right ends, in natural x, of each run of True in a 1-D band (k,)."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], band.astype(int), [0]])))  # (2r,)
    return ticks[edges[::2]], ticks[edges[1::2] - 1]


def _row(trials: pd.DataFrame, category: Mapping[str, Any], y: str) -> float:
    """The one y value of a category's trials: the row its 1-D boundary is drawn on."""
    values = _members(trials, category)[y].dropna().unique()
    if len(values) != 1:
        raise ValueError(
            f"the trials of {_category_title(category)} take {len(values)} values of {y}; "
            "a 1-D boundary is drawn on the one row of its category"
        )
    return float(values[0])


def _draw_crossings(axes: Axes, boundary: PhaseBoundary, row: float) -> None:
    """A 1-D boundary on its row only: the crossings as short vertical marks, the band as
    horizontal segments, and the reason when there is no boundary."""
    estimate = boundary.level_set
    if estimate is not None and estimate.band.any():
        left, right = _band_segments(estimate.ticks[0], estimate.band)
        label = BAND_LABEL if boundary.quantity == "P(NC)" else LEVEL_BAND_LABEL
        axes.hlines(
            np.full(left.size, row), left, right, color=BOUNDARY_COLOR, alpha=0.25,
            linewidth=10, label=_new_label(axes, label),
        )  # fmt: skip
    crossings = [line[0, 0] for line in boundary.contour]
    if crossings:
        label = _new_label(axes, f"{boundary.quantity} = {boundary.level:g}")
        axes.plot(
            crossings, np.full(len(crossings), row), linestyle="none", marker="|",
            markersize=22, markeredgewidth=2.5, color=BOUNDARY_COLOR, label=label,
        )  # fmt: skip
    if not boundary.ok:
        axes.annotate(
            boundary.reason, (0.5, row), xycoords=axes.get_yaxis_transform(), xytext=(0, 8),
            textcoords="offset points", ha="center", va="bottom", fontsize="small",
        )  # fmt: skip


def _draw_search_estimates(
    axes: Axes,
    estimates: Sequence[dict[str, Any]],
    trials: pd.DataFrame,
    category: dict[str, Any],
    x: str,
    y: str,
) -> None:
    """The boundary searcher's level sets whose category fits the panel, in black: a 2-D one
    (its axes listed as [x, y] or [y, x]) as dashed contours, a 1-D one (on x) as long
    thin marks at its crossings on its category's row."""
    label = "boundary search"
    columns = {(x, y): [0, 1], (y, x): [1, 0]}
    for estimate in estimates:
        level_set = estimate.get("level_set")
        fits = all(category.get(key, value) == value for key, value in estimate["category"].items())
        if not fits or level_set is None:
            continue
        if list(level_set["axes"]) == [x]:
            crossings = [line[0][0] for line in level_set["contour"]]  # each line is (1, 1)
            if not crossings:
                continue
            row = _row(trials, {**category, **estimate["category"]}, y)
            axes.plot(
                crossings, np.full(len(crossings), row), linestyle="none", marker="|",
                markersize=34, markeredgewidth=1.2, color="black", label=label,
            )  # fmt: skip
            label = None
            continue
        order = columns.get(tuple(level_set["axes"]))
        if order is None:
            continue
        for line in level_set["contour"]:
            points = np.asarray(line)[:, order]  # (n, 2) as (x, y)
            axes.plot(points[:, 0], points[:, 1], "--", color="black", linewidth=1.5, label=label)
            label = None


def _panels(
    trials: pd.DataFrame, boundaries: Sequence[PhaseBoundary], rows: str | None
) -> list[tuple[dict[str, Any], list[PhaseBoundary]]]:
    """The panels' categories (less the `rows` column) and the boundaries of each.

    Without boundaries, one panel per combination of the `DEFAULT_BY` columns present.
    """
    if not boundaries:
        columns = [column for column in DEFAULT_BY if column in trials and column != rows]
        if not columns:
            return [({}, [])]
        values = trials[columns].drop_duplicates().sort_values(columns)
        return [
            (dict(zip(columns, value, strict=True)), []) for value in values.itertuples(index=False)
        ]
    panels: dict[str, tuple[dict[str, Any], list[PhaseBoundary]]] = {}
    for boundary in boundaries:
        category = {key: value for key, value in boundary.category.items() if key != rows}
        panels.setdefault(_category_title(category), (category, []))[1].append(boundary)
    return list(panels.values())


def plot_phase_diagram(
    trials: pd.DataFrame,
    boundaries: Sequence[PhaseBoundary],
    *,
    x: str = "loss.beta",
    y: str = "loss.tau",
    rows: str | None = None,
    search_estimates: Sequence[dict[str, Any]] = (),
    path: Path | str | None = None,
) -> Figure:
    """Figure 7: trials coloured by regime with the estimated boundary and band.

    One panel per boundary category (e.g. per normalization), less the `rows` column. A 2-D
    boundary (on x and y) is drawn as contour lines over a shaded band. A 1-D boundary (on x
    alone) is drawn on its category's row only (the one y value of its trials): each
    crossing as a short vertical mark, the 5-95 % band as a horizontal segment, so nothing is
    drawn between rows. Without boundaries (none could be estimated), one panel per
    combination of the normalization and loss.name values (less `rows`), points only. A
    boundary-search study's own final level set (the `estimates` of its
    `boundary_search.json`) is drawn in black on the panels of its category: dashed contours
    in 2-D, long thin marks at its crossings on its category's row in 1-D.

    Args:
        trials: The trial table (needs `x`, `y`, `regime` and the category columns).
        boundaries: Output of `analysis.boundary.estimate_phase_boundary` (or
            `estimate_level_set`) on the same x (and y, for 2-D boundaries).
        x: Column of the horizontal axis.
        y: Column of the vertical axis.
        rows: The categorical column that `y` codes (e.g. "normalization" coded 0, 1, 2):
            its values share a panel, one row each, and label the y ticks.
        search_estimates: The boundary searcher's estimates.
        path: Where to save the PNG.
    """
    panels = _panels(trials, boundaries, rows)
    figure = Figure(figsize=(4.2 * len(panels) + 0.5, 4.2), layout="constrained")
    for axes, (category, drawn) in zip(
        figure.subplots(1, len(panels), squeeze=False)[0], panels, strict=True
    ):
        _draw_points(axes, _members(trials, category), x, y)
        for boundary in drawn:
            if len(boundary.axes) == 1:
                _draw_crossings(axes, boundary, _row(trials, boundary.category, y))
            else:
                _draw_boundary(axes, boundary)
        _draw_search_estimates(axes, search_estimates, trials, category, x, y)
        reasons = [b.reason for b in drawn if len(b.axes) == 2 and not b.ok]
        axes.set_title(  # the reason here rather than over the points
            "\n".join([_category_title(category), *reasons]), fontsize="medium", wrap=True
        )
        axes.set_xlabel(x)
        axes.set_ylabel(y if rows is None else rows)
        if rows is None:
            _legend(axes)
        else:
            coded = trials[[rows, y]].dropna().drop_duplicates().sort_values(y)
            axes.set_yticks(coded[y].tolist(), coded[rows].astype(str).tolist())
    if rows is not None:  # one legend below the panels, off the rows' points
        entries = {
            label: handle
            for axes in figure.axes
            for handle, label in zip(*axes.get_legend_handles_labels(), strict=True)
        }
        figure.legend(
            entries.values(), entries.keys(), loc="outside lower center", ncol=len(entries)
        )
    figure.suptitle("Phase diagram")
    return _finish(figure, path)
