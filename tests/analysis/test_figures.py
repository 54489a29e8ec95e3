"""Figures from small synthetic tables: lines, points and saved PNGs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure

from analysis.boundary import estimate_phase_boundary
from analysis.figures import (
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
    assert none_axes.get_title() == "normalization=none"
    assert not none_axes.lines and none.reason in [text.get_text() for text in none_axes.texts]
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


def test_up_to_twenty_lines_get_distinct_colors() -> None:
    values = {f"t{i}": np.geomspace(1.0, 1e-3 * (i + 1), 5) for i in range(15)}

    figure = plot_singular_values(values)

    colors = [line.get_color() for line in figure.axes[0].get_lines()]
    assert len(colors) == 15
    assert len(set(colors)) == 15
