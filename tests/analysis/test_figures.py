"""Figures from small synthetic tables: lines, points and saved PNGs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.colors import to_rgba
from matplotlib.contour import ContourSet
from matplotlib.figure import Figure

from analysis.boundary import estimate_phase_boundary
from analysis.figures import (
    BAND_LABEL,
    LEGEND_INSIDE_MAX,
    MAX_LEGEND_ENTRIES,
    NO_REGIME_LABEL,
    plot_equal_inner_product,
    plot_ncm_accuracy,
    plot_phase_diagram,
    plot_singular_values,
    plot_unit_norm,
    plot_within_class,
    plot_zero_sum,
    trial_labels,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HISTORY_METRICS = ("unit_norm", "zero_sum", "equal_inner_mean", "within_class", "ncm_accuracy_test")


@pytest.fixture
def history() -> pd.DataFrame:
    """Three trials: two of 4 epochs, one that failed after 1."""
    rows = [
        (trial_id, epoch, metric, 1.0 / (epoch + 1) + offset)
        for trial_id, epochs, offset in (("a", 4, 0.0), ("b", 4, 0.1), ("c", 1, 0.2))
        for metric in HISTORY_METRICS
        for epoch in range(epochs)
    ]
    return pd.DataFrame(rows, columns=["trial_id", "epoch", "metric", "value"])


def _scatter_points(figure: Figure) -> list[int]:
    """Points per panel over its scatter collections."""
    return [
        sum(len(c.get_offsets()) for c in axes.collections if isinstance(c, PathCollection))
        for axes in figure.axes
    ]


def _is_png(path: Path) -> bool:
    return path.read_bytes()[:8] == PNG_SIGNATURE


def test_trial_labels_name_beta_normalization_and_unfinished_status() -> None:
    trials = pd.DataFrame(
        {
            "trial_id": ["a", "b"],
            "status": ["finished", "failed"],
            "loss.beta": [0.5, 16.4644],
            "normalization": ["sphere", "ball"],
        }
    )
    assert trial_labels(trials) == {"a": "β=0.5, sphere", "b": "β=16.5, ball (failed)"}
    diverged = trials.assign(status=["diverged", "finished"])
    assert trial_labels(diverged) == {"a": "β=0.5, sphere (diverged)", "b": "β=16.5, ball"}
    assert trial_labels(trials[["trial_id", "status"]]) == {"a": "a", "b": "b (failed)"}


@pytest.mark.parametrize(
    ("plot", "title"),
    [
        (plot_unit_norm, "Unit-norm condition"),
        (plot_zero_sum, "Zero-sum condition"),
        (plot_equal_inner_product, "Equal-inner-product condition"),
        (plot_within_class, "Within-class variation"),
        (plot_ncm_accuracy, "Nearest-class-mean test accuracy"),
    ],
)
def test_history_figures_draw_one_line_per_trial(
    plot: Callable[..., Figure], title: str, history: pd.DataFrame, tmp_path: Path
) -> None:
    path = tmp_path / "figure.png"
    figure = plot(history, {"a": "β=0", "c": "β=30 (failed)", "b": "β=10"}, path)
    (axes,) = figure.axes
    assert figure.get_suptitle() == title
    assert [line.get_label() for line in axes.lines] == ["β=0", "β=30 (failed)", "β=10"]
    assert [len(line.get_xdata()) for line in axes.lines] == [4, 1, 4]
    assert _is_png(path)
    assert len(plot(history).axes[0].lines) == 3, "every trial when no labels are given"


def test_singular_values_figure_draws_positive_values_on_a_log_axis(tmp_path: Path) -> None:
    values = {"a": np.array([1.0, 0.5, 0.1]), "b": np.array([1.0, 1e-4, 0.0, np.nan])}
    path = tmp_path / "sv.png"
    figure = plot_singular_values(values, labels={"a": "β=0"}, epoch_label="epoch 3", path=path)
    (axes,) = figure.axes
    assert axes.get_yscale() == "log"
    assert [line.get_label() for line in axes.lines] == ["β=0", "b"]
    assert [list(line.get_ydata()) for line in axes.lines] == [[1.0, 0.5, 0.1], [1.0, 1e-4]]
    assert figure.get_suptitle() == "Class-mean singular values (epoch 3)"
    assert _is_png(path)


@pytest.fixture
def phase_trials() -> pd.DataFrame:
    """A β × τ grid per normalization: NC above β = 8 (sphere), never NC (none); one failure."""
    betas, taus = np.meshgrid([0.0, 2.0, 5.0, 10.0, 20.0, 40.0], [0.2, 0.5, 1.0])
    rows = []
    for normalization in ("none", "sphere"):
        for beta, tau in zip(betas.ravel(), taus.ravel(), strict=True):
            nc = normalization == "sphere" and beta > 8
            rows.append((normalization, beta, tau, "NC" if nc else "DC", "finished"))
    rows.append(("sphere", 3.0, 0.5, None, "failed"))
    columns = ["normalization", "loss.beta", "loss.tau", "regime", "status"]
    trials = pd.DataFrame(rows, columns=columns)
    trials["trial_id"] = [f"t{index}" for index in range(len(trials))]
    return trials


def test_phase_diagram_shows_points_boundary_and_reasons(
    phase_trials: pd.DataFrame, tmp_path: Path
) -> None:
    boundaries = estimate_phase_boundary(phase_trials, n_bootstrap=5, resolution=25)
    assert [b.category for b in boundaries] == [
        {"normalization": "none"},
        {"normalization": "sphere"},
    ]
    none, sphere = boundaries
    assert not none.ok and sphere.ok
    path = tmp_path / "phase.png"
    figure = plot_phase_diagram(phase_trials, boundaries, path=path)
    assert figure.get_suptitle() == "Phase diagram"
    assert _scatter_points(figure) == [18, 19]
    none_axes, sphere_axes = figure.axes
    assert none_axes.get_title() == f"normalization=none\n{none.reason}", "not over the points"
    assert not none_axes.lines and not none_axes.texts
    assert sphere_axes.get_title() == "normalization=sphere"
    assert sphere_axes.lines, "the boundary is drawn"
    labels = sphere_axes.get_legend_handles_labels()[1]
    assert {"NC", "DC", NO_REGIME_LABEL} <= set(labels)
    assert _is_png(path)


def test_phase_diagram_without_boundaries_has_a_panel_per_normalization(
    phase_trials: pd.DataFrame,
) -> None:
    figure = plot_phase_diagram(phase_trials, [])
    assert [axes.get_title() for axes in figure.axes] == [
        "normalization=none",
        "normalization=sphere",
    ]
    assert _scatter_points(figure) == [18, 19]
    assert not any(axes.lines for axes in figure.axes)


def test_phase_diagram_draws_the_boundary_searchers_estimate(phase_trials: pd.DataFrame) -> None:
    """A boundary-search study's own level set goes, dashed, on its category's panel only."""
    line = [[1.0, 0.2], [10.0, 0.6], [30.0, 0.9]]
    estimates = [
        {
            "category": {"normalization": "sphere"},
            "level_set": {"axes": ["loss.beta", "loss.tau"], "contour": [line]},
        },
        {  # another pair of axes: not drawn
            "category": {"normalization": "none"},
            "level_set": {"axes": ["optimizer.lr", "loss.tau"], "contour": [line]},
        },
    ]
    figure = plot_phase_diagram(phase_trials, [], search_estimates=estimates)
    none_axes, sphere_axes = figure.axes
    assert not none_axes.lines
    (drawn,) = sphere_axes.lines
    assert drawn.get_linestyle() == "--"
    assert drawn.get_xdata().tolist() == [1.0, 10.0, 30.0]
    assert "boundary search" in sphere_axes.get_legend_handles_labels()[1]


def test_phase_diagram_draws_a_search_estimate_listed_as_tau_then_beta(
    phase_trials: pd.DataFrame,
) -> None:
    """A spec that lists loss.tau before loss.beta: its (τ, β) polyline is drawn as (β, τ)."""
    estimates = [
        {
            "category": {"normalization": "sphere"},
            "level_set": {
                "axes": ["loss.tau", "loss.beta"],
                "contour": [[[0.2, 1.0], [0.6, 10.0]]],
            },
        }
    ]
    figure = plot_phase_diagram(phase_trials, [], search_estimates=estimates)
    (drawn,) = figure.axes[1].lines
    assert drawn.get_xdata().tolist() == [1.0, 10.0]
    assert drawn.get_ydata().tolist() == [0.2, 0.6]


def test_rows_share_a_panel_and_label_the_y_ticks(phase_trials: pd.DataFrame) -> None:
    codes = {"none": 0.0, "sphere": 1.0}
    trials = phase_trials.assign(
        **{"loss.name": "scl", "code": phase_trials["normalization"].map(codes)}
    )
    figure = plot_phase_diagram(trials, [], y="code", rows="normalization")
    (axes,) = figure.axes
    assert axes.get_title() == "loss.name=scl" and axes.get_ylabel() == "normalization"
    assert [label.get_text() for label in axes.get_yticklabels()] == ["none", "sphere"]
    assert _scatter_points(figure) == [37]
    titles = [axes.get_title() for axes in plot_phase_diagram(trials, []).axes]
    assert titles == ["normalization=none, loss.name=scl", "normalization=sphere, loss.name=scl"]


def test_a_1d_boundary_is_drawn_only_on_the_one_row_of_its_category(
    phase_trials: pd.DataFrame,
) -> None:
    boundaries = estimate_phase_boundary(phase_trials, y=None, n_bootstrap=5, resolution=25)
    with pytest.raises(ValueError, match="normalization=none take 3 values of loss.tau"):
        plot_phase_diagram(phase_trials, boundaries)


@pytest.mark.parametrize("lines", [LEGEND_INSIDE_MAX, LEGEND_INSIDE_MAX + 1, 15, 24, 60, 75])
def test_every_line_gets_its_own_colour_and_legend_entry(lines: int) -> None:
    """`quick.yaml` has 24 trials: they used to share 20 colours and get no legend."""
    values = {f"t{i}": np.geomspace(1.0, 1e-3 * (i + 1), 5) for i in range(lines)}
    labels = {trial_id: f"label {trial_id}" for trial_id in values}

    figure = plot_singular_values(values, labels=labels)

    colors = [tuple(to_rgba(line.get_color())) for line in figure.axes[0].get_lines()]
    assert len(colors) == lines and len(set(colors)) == lines
    legends = [figure.axes[0].get_legend(), *figure.legends]
    entries = [text.get_text() for legend in legends if legend for text in legend.get_texts()]
    if lines <= MAX_LEGEND_ENTRIES:
        assert entries == list(labels.values())
        inside = figure.axes[0].get_legend() is not None
        assert inside == (lines <= LEGEND_INSIDE_MAX), "a few entries inside, more beside"
    else:
        assert not entries and f"{lines} lines" in figure.axes[0].texts[0].get_text()


def test_labels_name_every_varied_param_and_stay_unique() -> None:
    trials = pd.DataFrame(
        {
            "trial_id": ["a", "b", "c", "d"],
            "status": ["finished"] * 4,
            "loss.beta": [2.0, 2.0, 2.0, 2.0],
            "loss.tau": [0.2, 0.5, 0.5, 0.5],
            "normalization": ["sphere"] * 4,
            "optimizer.lr": [0.01, 0.01, 0.001, 0.001],
        }
    )
    assert len(set(trial_labels(trials).values())) == 1 + 3, "β, normalization: one + ids"
    assert trial_labels(trials, ["loss.beta", "loss.tau", "normalization", "optimizer.lr"]) == {
        "a": "β=2, τ=0.2, sphere, lr=0.01",
        "b": "β=2, τ=0.5, sphere, lr=0.01",
        "c": "β=2, τ=0.5, sphere, lr=0.001 [c]",
        "d": "β=2, τ=0.5, sphere, lr=0.001 [d]",
    }


def test_trials_without_finite_values_are_not_drawn_and_the_figure_says_so(
    history: pd.DataFrame,
) -> None:
    diverged = pd.DataFrame(
        {"trial_id": "nan", "epoch": [0, 1], "metric": "unit_norm", "value": [np.nan, np.inf]}
    )
    labels = {"a": "β=0", "nan": "β=30, none (diverged)"}
    figure = plot_unit_norm(pd.concat([history, diverged]), labels)
    (axes,) = figure.axes
    assert [line.get_label() for line in axes.lines] == ["β=0"]
    assert axes.get_title() == "not drawn (no finite values): β=30, none (diverged)"
    assert not axes.texts, "a panel that draws a line does not say it has none"
    many = pd.concat([diverged.assign(trial_id=f"nan{i}") for i in range(4)])
    title = plot_unit_norm(many, {f"nan{i}": f"β={i}" for i in range(4)}).axes[0].get_title()
    assert title == "not drawn (no finite values): β=0, β=1, β=2 and 1 more"

    only_nan = plot_unit_norm(diverged, {"nan": "β=30, none (diverged)"}).axes[0]
    assert not only_nan.lines and only_nan.texts[0].get_text() == "no finite values to draw"
    singular = plot_singular_values({"nan": np.full(4, np.nan)}, labels={"nan": "β=30"})
    assert not singular.axes[0].lines
    assert singular.axes[0].get_title() == "not drawn (no finite values): β=30"


def test_singular_values_are_drawn_against_their_rank_from_one() -> None:
    figure = plot_singular_values({"a": np.array([0.1, 1.0, 0.5])})
    (axes,) = figure.axes
    (line,) = axes.lines
    assert line.get_xdata().tolist() == [1, 2, 3] and line.get_ydata().tolist() == [1.0, 0.5, 0.1]
    assert (axes.get_xlabel(), axes.get_ylabel()) == ("index i (sorted)", "σ_i / σ_1")
    nothing = plot_singular_values({"nan": np.full(3, np.nan)}).axes[0]
    assert nothing.get_yscale() == "linear", "no empty log axis"


@pytest.mark.parametrize(
    ("plot", "metric"),
    [
        (plot_unit_norm, "unit_norm"),
        (plot_zero_sum, "zero_sum"),
        (plot_equal_inner_product, "equal_inner_mean"),
        (plot_within_class, "within_class"),
        (plot_ncm_accuracy, "ncm_accuracy_test"),
    ],
)
def test_history_figures_draw_their_own_metric_against_the_epoch(
    plot: Callable[..., Figure], metric: str
) -> None:
    """Each metric has its own values (10 × its index + the epoch), logged latest first."""
    rows = [
        ("a", epoch, name, 10.0 * index + epoch)
        for index, name in enumerate(HISTORY_METRICS)
        for epoch in (2, 0, 1)
    ]
    history = pd.DataFrame(rows, columns=["trial_id", "epoch", "metric", "value"])
    (line,) = plot(history, {"a": "β=0"}).axes[0].lines
    first = 10.0 * HISTORY_METRICS.index(metric)
    assert np.asarray(line.get_xdata()).tolist() == [0, 1, 2]
    assert np.asarray(line.get_ydata()).tolist() == [first, first + 1, first + 2]


def test_phase_diagram_colours_each_regime_and_leaves_out_unplaced_trials() -> None:
    trials = pd.DataFrame(
        {
            "loss.beta": [1.0, 2.0, 3.0, 4.0, 5.0, np.nan],
            "loss.tau": [0.5] * 6,
            "regime": ["NC", "partial", "DC", "diverged", None, "NC"],
        }
    )
    (axes,) = plot_phase_diagram(trials, []).axes
    drawn = {
        c.get_label(): (to_rgba(c.get_facecolor()[0]), c.get_offsets().tolist())
        for c in axes.collections
        if isinstance(c, PathCollection) and c.get_label() != NO_REGIME_LABEL
    }
    assert drawn == {
        "NC": (to_rgba("tab:green"), [[1.0, 0.5]]),
        "partial": (to_rgba("tab:orange"), [[2.0, 0.5]]),
        "DC": (to_rgba("tab:red"), [[3.0, 0.5]]),
        "diverged": (to_rgba("black"), [[4.0, 0.5]]),
    }
    assert _scatter_points(axes.get_figure()) == [5], "the trial without a β is not placed"
    legend = axes.get_legend()
    assert legend is not None
    assert [t.get_text() for t in legend.get_texts()] == [*drawn, NO_REGIME_LABEL]


def _uniform_nodes(band: np.ndarray, value: bool) -> tuple[int, int]:
    """An interior grid node (row, column) whose value and 4 neighbours' all equal `value`."""
    for row in range(1, band.shape[0] - 1):
        for column in range(1, band.shape[1] - 1):
            around = band[row - 1 : row + 2, column - 1 : column + 2]
            if (around == value).all():
                return row, column
    raise AssertionError(f"no interior node with {value} around it")


def test_a_2d_boundary_is_its_contour_over_its_band(phase_trials: pd.DataFrame) -> None:
    _, sphere = estimate_phase_boundary(phase_trials, n_bootstrap=5, resolution=25)
    assert sphere.ok and sphere.level_set is not None
    axes = plot_phase_diagram(phase_trials, [sphere]).axes[0]
    [line] = axes.lines
    [contour] = sphere.contour
    assert np.asarray(line.get_xdata()).tolist() == contour[:, 0].tolist()
    assert np.asarray(line.get_ydata()).tolist() == contour[:, 1].tolist()
    [shading] = [c for c in axes.collections if isinstance(c, ContourSet)]
    ticks, band = sphere.level_set.ticks, sphere.level_set.band
    for value in (True, False):
        row, column = _uniform_nodes(band, value)
        node = (ticks[0][column], ticks[1][row])
        shaded = any(path.contains_point(node) for path in shading.get_paths())
        assert shaded == value, ("a node inside the band" if value else "outside it", node)
    legend = axes.get_legend()
    assert legend is not None and "P(NC) = 0.5" in [t.get_text() for t in legend.get_texts()]


def test_a_1d_band_spans_its_runs_of_ticks_and_rows_share_one_legend() -> None:
    """3 sphere trials per β, NC above β = 3: a band of several runs (5 bootstraps)."""
    betas = [0.0, 2.0, 5.0, 10.0, 20.0, 40.0]
    trials = pd.DataFrame(
        {
            "normalization": "sphere",
            "loss.beta": [beta for beta in betas for _ in range(3)],
            "code": 1.0,
            "regime": ["NC" if beta > 3 else "DC" for beta in betas for _ in range(3)],
        }
    )
    [boundary] = estimate_phase_boundary(trials, y=None, n_bootstrap=5, resolution=25)
    assert boundary.level_set is not None
    ticks, band = boundary.level_set.ticks[0], boundary.level_set.band
    runs = [
        (ticks[i], ticks[j])
        for i in range(band.size)
        for j in range(i, band.size)
        if band[i : j + 1].all()
        and (i == 0 or not band[i - 1])
        and (j == band.size - 1 or not band[j + 1])
    ]
    assert any(j < ticks[-1] for _, j in runs), "a run that ends inside the domain"

    figure = plot_phase_diagram(trials, [boundary], y="code", rows="normalization")
    (axes,) = figure.axes
    segments = [
        segment.tolist()
        for c in axes.collections
        if isinstance(c, LineCollection)
        for segment in c.get_segments()
    ]
    assert segments == [[[left, 1.0], [right, 1.0]] for left, right in runs]
    (legend,) = figure.legends
    assert [t.get_text() for t in legend.get_texts()] == ["NC", "DC", BAND_LABEL, "P(NC) = 0.5"]


def test_a_search_estimate_fits_a_panel_without_its_other_keys(
    phase_trials: pd.DataFrame,
) -> None:
    """The panels are by normalization only (no loss.name column): an estimate for sphere
    and SCL belongs on the sphere panel, once in its legend for its two polylines."""
    lines = [[[1.0, 0.2], [10.0, 0.6]], [[20.0, 0.3], [30.0, 0.9]]]
    estimates = [
        {
            "category": {"normalization": "sphere", "loss.name": "scl"},
            "level_set": {"axes": ["loss.beta", "loss.tau"], "contour": lines},
        }
    ]
    none_axes, sphere_axes = plot_phase_diagram(phase_trials, [], search_estimates=estimates).axes
    assert not none_axes.lines
    assert [line.get_xdata().tolist() for line in sphere_axes.lines] == [[1.0, 10.0], [20.0, 30.0]]
    assert sphere_axes.get_legend_handles_labels()[1].count("boundary search") == 1


def test_panels_are_in_sorted_order_and_a_missing_category_value_has_its_own(
    phase_trials: pd.DataFrame,
) -> None:
    backwards = plot_phase_diagram(phase_trials.iloc[::-1], [])
    assert [a.get_title() for a in backwards.axes] == ["normalization=none", "normalization=sphere"]
    unnamed = plot_phase_diagram(phase_trials.assign(**{"loss.name": np.nan}), [])
    assert [a.get_title() for a in unnamed.axes] == [
        "normalization=none, loss.name=nan",
        "normalization=sphere, loss.name=nan",
    ]
    assert _scatter_points(unnamed) == [18, 19]


def test_a_trial_that_logged_no_value_of_the_metric_is_not_named_as_undrawn(
    history: pd.DataFrame,
) -> None:
    """Failed before its first epoch: no value at all, so no "no finite values" note."""
    axes = plot_unit_norm(history, {"a": "β=0", "early": "β=5 (failed)"}).axes[0]
    assert [line.get_label() for line in axes.lines] == ["β=0"]
    assert axes.get_title() == "" and not axes.texts


def test_a_1d_search_estimate_is_marked_at_its_crossings_on_its_row() -> None:
    """A boundary search over β alone logs crossings (contours of shape (1, 1)); they are
    drawn on the row of their category, and a category without a crossing adds nothing."""
    trials = pd.DataFrame(
        {
            "normalization": ["none"] * 3 + ["sphere"] * 3 + ["ball"] * 3,
            "loss.beta": [0.0, 5.0, 30.0] * 3,
            "code": [0.0] * 3 + [2.0] * 3 + [1.0] * 3,
            "regime": ["DC"] * 4 + ["NC"] * 5,
        }
    )
    estimates = [
        {
            "category": {"normalization": "sphere"},
            "level_set": {"axes": ["loss.beta"], "contour": [[[3.5]], [[12.0]]]},
        },
        {
            "category": {"normalization": "none"},
            "level_set": {"axes": ["loss.beta"], "contour": []},
        },
        {"category": {"normalization": "ball"}, "level_set": None},
    ]

    figure = plot_phase_diagram(
        trials, [], y="code", rows="normalization", search_estimates=estimates
    )

    (axes,) = figure.axes
    drawn = [line for line in axes.lines if line.get_label() == "boundary search"]
    assert len(drawn) == 1 and drawn[0].get_marker() == "|"
    assert drawn[0].get_xdata().tolist() == [3.5, 12.0]
    assert drawn[0].get_ydata().tolist() == [2.0, 2.0]
    assert [line for line in axes.lines if line is not drawn[0]] == []
