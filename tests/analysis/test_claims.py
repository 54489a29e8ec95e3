"""The paper's claims: verdict logic on synthetic tables, and `hcl-study reproduce` end to end.

The end-to-end test runs a shortened claims study (4 trials: SCL, β ∈ {0, 30},
normalization ∈ {none, sphere}, C = 10, 5 epochs) through `hcl-study reproduce SPEC`,
checks the report (every figure, a verdict for every claim), and checks claim 1 on every
logged epoch straight from MLflow.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from matplotlib.collections import LineCollection
from mlflow import MlflowClient

from analysis.claims import (
    _LIMITS_FIXED,
    ARTIFACT_PATH,
    CLAIMS_FILE,
    DOES_NOT_HOLD,
    HOLDS,
    NOT_TESTED,
    PARTLY,
    REPORT_FILE,
    check_dc_without_hard_negatives,
    check_loss_bound,
    check_nc_with_hard_negatives,
    check_no_nc_without_normalization,
    claims_table,
    evaluate_claims,
    limits,
    loss_pairs,
    mean_cosine,
)
from analysis.figures import BAND_LABEL, plot_phase_diagram
from analysis.report import _boundary_json, phase_axes, phase_boundaries
from hcl_study.study.spec import load_study_spec
from hcl_study.tracking import load_study

ROOT = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).with_name("hcl-study"))
GPU_CHECK = ROOT / "benchmarks" / "gpu_check.py"
VERDICTS = {HOLDS, PARTLY, DOES_NOT_HOLD}

# ----------------------------------------------------------------- synthetic tables


def _trial(
    trial_id: str, loss: str, beta: float, normalization: str, regime: str | None, **metrics: Any
) -> dict[str, Any]:
    row = {
        "trial_id": trial_id,
        "run_id": f"run-{trial_id}",
        "status": "finished" if regime else "failed",
        "regime": regime,
        "loss.name": loss,
        "loss.beta": beta,
        "normalization": normalization,
        "seed": 0,
        "data.num_classes": 10,
        "epochs_logged": 5,
        "etf_distance": 0.05 if regime == "NC" else 0.8,
        "erank_means": 9.0 if regime in ("NC", "partial") else 3.0,
        "rank_bound": 9.0,
        "dc_count": 0.0 if regime in ("NC", "partial") else 4.0,
        "unit_norm": 0.1,
    }
    row.update(metrics)
    return row


def _table(*rows: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame(list(rows))


def _history(pairs: dict[str, list[tuple[float, float]]]) -> pd.DataFrame:
    """trial id -> [(loss_hard, loss_plain) per epoch] as the long history table."""
    rows = []
    for trial_id, values in pairs.items():
        for epoch, (hard, plain) in enumerate(values):
            rows += [(trial_id, epoch, "loss_hard", hard), (trial_id, epoch, "loss_plain", plain)]
    return pd.DataFrame(rows, columns=["trial_id", "epoch", "metric", "value"])


BOUND_TRIALS = _table(
    _trial("a", "scl", 30.0, "ball", "NC"),
    _trial("b", "ucl", 5.0, "sphere", "NC"),
    _trial("c", "scl", 0.0, "ball", "DC"),
)


def test_claim_1_holds_with_the_counts_and_the_minimum_gap() -> None:
    history = _history(
        {"a": [(5.0, 4.0), (4.5, 4.4)], "b": [(3.0, 3.0 - 1e-7)], "c": [(2.0, 2.0), (1.9, 1.9)]}
    )
    result = check_loss_bound(BOUND_TRIALS, history)
    assert result.verdict == HOLDS
    assert result.figures["pairs_checked"] == 5 and result.figures["runs_checked"] == 3
    assert result.figures["pairs_beta_positive"] == 3 and result.figures["pairs_beta_zero"] == 2
    assert result.figures["min_gap_beta_positive"] == pytest.approx(1e-7, rel=1e-3)
    assert "all 5 (run, epoch) pairs of 3 runs" in result.reason


def test_claim_1_partly_holds_when_one_run_breaks_the_bound() -> None:
    history = _history({"a": [(5.0, 4.0), (4.0, 4.5)], "b": [(3.0, 2.0)], "c": [(2.0, 2.0)]})
    result = check_loss_bound(BOUND_TRIALS, history)
    assert result.verdict == PARTLY
    assert "1 of 4 (run, epoch) pairs violate it, in 1 of 3 runs (a)" in result.reason
    assert result.figures["min_gap_beta_positive"] == pytest.approx(-0.5)
    assert result.figures["min_gap_at"] == {"trial_id": "a", "epoch": 1}


def test_claim_1_does_not_hold_when_every_run_breaks_it() -> None:
    """A β = 0 run must have equal losses; a β > 0 run must not fall below the plain one."""
    history = _history({"a": [(3.0, 4.0)], "b": [(1.0, 2.0)], "c": [(2.0, 2.1)]})
    result = check_loss_bound(BOUND_TRIALS, history)
    assert result.verdict == DOES_NOT_HOLD
    assert "3 of 3 (run, epoch) pairs violate it, in 3 of 3 runs" in result.reason


def test_claim_1_skips_non_finite_epochs_and_needs_the_pair() -> None:
    history = _history({"a": [(5.0, 4.0), (float("nan"), float("nan"))]})
    result = check_loss_bound(BOUND_TRIALS, history)
    assert result.verdict == HOLDS and result.figures["skipped_non_finite"] == 1
    assert "1 non-finite (diverged) epoch(s) skipped" in result.reason
    empty = check_loss_bound(BOUND_TRIALS, _history({}))
    assert empty.verdict == NOT_TESTED


@pytest.mark.parametrize(
    ("beta", "plain", "gap", "holds"),
    [
        (5.0, 1.0, -5e-7, True),  # tolerance 1e-6 · max(1, 1)
        (5.0, 1.0, -2e-6, False),
        (5.0, 100.0, -5e-5, True),  # tolerance 1e-6 · 100 = 1e-4
        (5.0, 100.0, -2e-4, False),
        (5.0, 0.1, -5e-7, True),  # |plain| < 1: the tolerance stays 1e-6, not 1e-6 · 0.1
        (0.0, 0.1, 5e-7, True),
        (5.0, 1.0, 2e-6, True),  # β > 0: the hard loss may exceed the plain one by any amount
        (0.0, 1.0, 5e-7, True),  # β = 0: |gap| ≤ the same tolerance
        (0.0, 1.0, -5e-7, True),
        (0.0, 100.0, -5e-5, True),
        (0.0, 1.0, 2e-6, False),
        (0.0, 1.0, -2e-6, False),
    ],
)
def test_claim_1_tolerance_at_its_edge(beta: float, plain: float, gap: float, holds: bool) -> None:
    trials = _table(_trial("a", "scl", beta, "ball", "NC"))
    result = check_loss_bound(trials, _history({"a": [(plain + gap, plain)]}))
    assert result.verdict == (HOLDS if holds else DOES_NOT_HOLD)
    assert result.figures["violations"] == (0 if holds else 1)


def test_claim_1_leaves_out_runs_without_beta_and_counts_incomplete_pairs() -> None:
    trials = _table(
        _trial("a", "scl", 30.0, "ball", "NC"),
        _trial("d", "scl", float("nan"), "ball", "NC"),  # no β: held to no rule
    )
    # d's gap would break the β = 0 rule; a's epoch 1 diverged
    history = _history({"a": [(5.0, 4.0), (float("inf"), 4.0)], "d": [(3.0, 2.0)]})
    one_loss = pd.DataFrame(
        [("a", 2, "loss_hard", 1.0), ("a", 3, "loss_plain", 9.0)], columns=history.columns
    )
    history = pd.concat([history, one_loss], ignore_index=True)
    pairs = loss_pairs(history)
    assert pairs.loc[pairs["trial_id"] == "a", "complete"].tolist() == [True, True, False, False]
    result = check_loss_bound(trials, history)
    assert result.verdict == HOLDS and result.trial_ids == ("a",)
    assert result.figures["pairs_checked"] == 1
    assert result.figures["skipped_non_finite"] == 1
    assert result.figures["incomplete_pairs"] == 2
    assert result.figures["runs_without_beta"] == 1
    assert result.reason == (
        "all 1 (run, epoch) pairs of 1 runs satisfy the bound (tolerance 1e-06 relative); "
        "1 non-finite (diverged) epoch(s) skipped; "
        "2 epoch(s) with only one of the two losses logged skipped; "
        "1 run(s) without loss.beta left out"
    )


def test_claim_1_takes_the_last_of_duplicate_history_rows() -> None:
    """A re-logged (trial, epoch, metric) row replaces the earlier one (a resumed epoch)."""
    history = _history({"a": [(3.0, 4.0)]})
    rewritten = pd.DataFrame([("a", 0, "loss_hard", 5.0)], columns=history.columns)
    history = pd.concat([history, rewritten], ignore_index=True)
    assert loss_pairs(history)[["hard", "plain"]].values.tolist() == [[5.0, 4.0]]
    assert check_loss_bound(BOUND_TRIALS, history).verdict == HOLDS


def test_claim_2_verdicts_per_loss_with_counts_and_median_etf_distance() -> None:
    holds = _table(
        _trial("a", "scl", 30.0, "ball", "NC"),
        _trial("b", "ucl", 5.0, "sphere", "NC"),
        _trial("c", "scl", 30.0, "none", "DC"),  # not normalized: not tested by claim 2
        _trial("d", "scl", 0.0, "ball", "DC"),  # β = 0: not tested by claim 2
    )
    result = check_nc_with_hard_negatives(holds)
    assert result.verdict == HOLDS and set(result.trial_ids) == {"a", "b"}
    assert "2 of 2 runs end NC" in result.reason and "SCL: 1/1 end NC" in result.reason
    assert result.figures["scl"]["median_erank_ratio"] == pytest.approx(1.0)  # 9 / 9

    partly = _table(
        _trial("a", "scl", 30.0, "ball", "NC"),
        _trial("b", "ucl", 30.0, "ball", "DC"),
        _trial("c", "ucl", 10.0, "sphere", "partial", etf_distance=0.3),
        _trial("e", "ucl", 10.0, "sphere", None),  # failed: left out, and said so
    )
    result = check_nc_with_hard_negatives(partly)
    assert result.verdict == PARTLY
    assert "1 of 3 runs end NC" in result.reason
    assert "UCL: 0/2 end NC (others: 1 DC, 1 partial), median etf_distance 0.55" in result.reason
    assert "1 run(s) without a final regime" in result.reason
    assert (
        result.figures["scl"]["verdict"] == HOLDS
        and result.figures["ucl"]["verdict"] == DOES_NOT_HOLD
    )

    none = _table(
        _trial("a", "scl", 2.0, "ball", "partial"), _trial("b", "scl", 5.0, "sphere", "DC")
    )
    result = check_nc_with_hard_negatives(none)
    assert result.verdict == DOES_NOT_HOLD and "0 of 2 runs end NC" in result.reason
    assert (
        check_nc_with_hard_negatives(_table(_trial("a", "scl", 0.0, "ball", "DC"))).verdict
        == NOT_TESTED
    )


def test_claim_3_verdicts_from_the_beta_zero_runs() -> None:
    holds = _table(
        _trial("a", "scl", 0.0, "ball", "DC"),
        # classified partial, but one collapsed direction: still DC evidence
        _trial("b", "ucl", 0.0, "sphere", "partial", dc_count=1.0),
        _trial("c", "scl", 30.0, "ball", "NC"),
    )
    result = check_dc_without_hard_negatives(holds)
    assert result.verdict == HOLDS
    assert "2 of 2 β = 0 runs show DC (final regime DC: 1, dc_count > 0: 2" in result.reason

    partly = _table(
        _trial("a", "scl", 0.0, "ball", "DC"),
        _trial("b", "scl", 0.0, "sphere", "NC"),
        _trial("c", "scl", 0.0, "none", "partial", erank_means=6.0),  # 6/9 < 0.8
    )
    result = check_dc_without_hard_negatives(partly)
    assert result.verdict == PARTLY
    assert "2 of 3 β = 0 runs show DC" in result.reason and "erank ratio < 0.8: 2" in result.reason
    assert "without DC: 1 NC" in result.reason

    result = check_dc_without_hard_negatives(_table(_trial("a", "scl", 0.0, "ball", "NC")))
    assert result.verdict == DOES_NOT_HOLD and "0 of 1 β = 0 runs show DC" in result.reason

    # Only β = 0 exactly: a little hardness is hard negatives. An erank ratio of exactly
    # 0.8 is not low rank.
    edge = _table(
        _trial("a", "scl", 0.0, "ball", "DC"),
        _trial("b", "scl", 0.5, "ball", "NC"),
        _trial("c", "scl", 0.0, "sphere", "partial", erank_means=7.2),  # 7.2 / 9 = 0.8
    )
    result = check_dc_without_hard_negatives(edge)
    assert result.figures["runs"] == 2 and set(result.trial_ids) == {"a", "c"}
    assert result.verdict == PARTLY and "erank ratio < 0.8: 1" in result.reason


def test_claim_4_verdicts_from_the_runs_without_normalization() -> None:
    holds = _table(
        _trial("a", "scl", 0.0, "none", "DC"),
        _trial("b", "scl", 30.0, "none", "partial"),
        _trial("c", "scl", 30.0, "ball", "NC"),
    )
    result = check_no_nc_without_normalization(holds)
    assert result.verdict == HOLDS and "0 of 2 runs without normalization end NC" in result.reason

    partly = _table(_trial("a", "scl", 30.0, "none", "NC"), _trial("b", "scl", 0.0, "none", "DC"))
    result = check_no_nc_without_normalization(partly)
    assert (
        result.verdict == PARTLY and "1 of 2 runs without normalization end NC (a)" in result.reason
    )

    result = check_no_nc_without_normalization(_table(_trial("a", "ucl", 30.0, "none", "NC")))
    assert result.verdict == DOES_NOT_HOLD and "1 of 1 runs" in result.reason


def test_untested_claims_say_whether_such_runs_are_missing_or_unfinished() -> None:
    normalized = _table(
        _trial("a", "scl", 3.5, "ball", "NC"), _trial("b", "scl", 16.0, "sphere", None)
    )
    for check, reason in (
        (check_dc_without_hard_negatives, "the study has no run with β = 0"),
        (check_no_nc_without_normalization, "the study has no run with normalization 'none'"),
    ):
        result = check(normalized)
        assert result.verdict == NOT_TESTED and result.reason == reason
    unfinished = _table(
        _trial("a", "scl", 0.0, "none", None), _trial("b", "scl", 0.0, "ball", None)
    )
    result = check_dc_without_hard_negatives(unfinished)
    assert result.verdict == NOT_TESTED
    assert result.reason.startswith(
        "none of its 2 runs with β = 0 has a final regime other than diverged; 2 run(s) "
        "without a final regime (failed, killed or unfinished) left out"
    )
    result = check_nc_with_hard_negatives(unfinished)
    assert result.reason == "the study has no run with β > 0 and ball or sphere normalization"


def test_evaluate_claims_table_and_limits_name_the_ucl_cone() -> None:
    trials = _table(
        _trial("a", "scl", 30.0, "ball", "NC", mean_cos_means=-0.11),
        _trial("b", "ucl", 30.0, "ball", "DC", mean_cos_means=0.8, erank_means=2.0),
        _trial("c", "scl", 0.0, "ball", "DC", mean_cos_means=0.2),
        _trial("d", "scl", 30.0, "none", "partial", mean_cos_means=0.0),
    )
    history = _history({"a": [(2.0, 1.0)], "b": [(2.0, 1.5)], "c": [(1.0, 1.0)]})
    table = claims_table(evaluate_claims(trials, history))
    assert list(table["claim"]) == [1, 2, 3, 4]
    assert list(table["verdict"]) == [HOLDS, PARTLY, HOLDS, HOLDS]
    paragraphs = limits(trials)
    assert "1 of them merge classes into a cone" in paragraphs[0]
    assert "median cos(μ_c, μ_c′) 0.8 (an ETF has −1/(C−1) = -0.111)" in paragraphs[0]
    assert any("1 of 4 runs end 'partial' after 5 epochs" in text for text in paragraphs)
    assert "one seed" in " ".join(paragraphs)


ONE_SEED = "Every setting was run with one seed: no run-to-run spread is measured."


def test_limits_say_one_seed_only_when_the_seed_never_varies() -> None:
    trials = _table(_trial("a", "scl", 30.0, "ball", "NC"), _trial("b", "scl", 0.0, "ball", "DC"))
    assert ONE_SEED in limits(trials)
    assert ONE_SEED not in limits(trials.assign(seed=[0, 1]))


def test_limits_take_normalized_ucl_runs_from_the_large_beta_on() -> None:
    """β = 10 itself is large; a UCL run without normalization is left out of the check."""
    trials = _table(
        _trial("b", "ucl", 10.0, "sphere", "DC", mean_cos_means=-0.1),
        _trial("n", "ucl", 30.0, "none", "DC", mean_cos_means=0.9),
        _trial("s", "ucl", 5.0, "ball", "DC", mean_cos_means=0.9),
    )
    assert limits(trials)[0] == (
        "HUCL at large β (β ≥ 10, ball or sphere): 1 runs, 1 DC; median erank ratio 0.333, "
        "median cos(μ_c, μ_c′) -0.1 (an ETF has −1/(C−1) = -0.111). 1 of them do not end NC, "
        "but none shows a cone here."
    )


def test_limits_count_a_mean_cosine_above_0_1_as_a_cone() -> None:
    trials = _table(_trial("b", "ucl", 30.0, "ball", "DC", mean_cos_means=0.3))
    assert "1 of them merge classes into a cone" in limits(trials)[0]
    assert "(β=30, ball: DC, cos 0.3, erank ratio 0.333)" in limits(trials)[0]
    at_the_edge = _table(_trial("b", "ucl", 30.0, "ball", "DC", mean_cos_means=0.1))
    assert "merge classes into a cone" not in limits(at_the_edge)[0]


def test_limits_without_the_cosine_column_say_it_was_not_measured() -> None:
    trials = _table(_trial("b", "ucl", 30.0, "ball", "DC"))
    assert "mean_cos_means" not in trials
    paragraphs = limits(trials)
    assert paragraphs[0] == (
        "HUCL at large β (β ≥ 10, ball or sphere): 1 runs, 1 DC; median erank ratio 0.333, "
        "cos(μ_c, μ_c′) not measured. 1 of them do not end NC; whether they form a cone is "
        "unknown."
    )


def test_mean_cosine_of_a_simplex_and_of_a_cone() -> None:
    simplex = np.eye(4) - 0.25  # centred basis: a simplex ETF of 4 points
    assert mean_cosine(simplex) == pytest.approx(-1 / 3)
    cone = np.array([[1.0, 0.1], [1.0, -0.1], [np.nan, 0.0]])
    assert mean_cosine(cone) == pytest.approx((1 - 0.01) / 1.01)
    zero_row = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])  # a zero mean has no direction
    assert mean_cosine(zero_row) == pytest.approx(1 / np.sqrt(2))


def test_phase_axes_code_the_category_as_rows_unless_tau_varies() -> None:
    grid = _table(_trial("a", "scl", 0.0, "none", "DC"), _trial("b", "ucl", 30.0, "sphere", "NC"))
    table, y, rows = phase_axes(grid)
    assert y.startswith("normalization") and rows == "normalization"
    assert list(table[y]) == [0.0, 2.0]
    cifar = _table(_trial("a", "scl", 0.0, "ball", "DC"), _trial("b", "ucl", 30.0, "ball", "NC"))
    table, y, rows = phase_axes(cifar)
    assert y.startswith("loss") and rows == "loss.name" and list(table[y]) == [0.0, 1.0]
    table, y, rows = phase_axes(cifar[cifar["loss.name"] == "scl"])
    assert rows == "normalization" and list(table[y]) == [1.0]
    # τ varies too: a 2-D boundary in (β, τ) per normalization and loss, nothing coded
    table, y, rows = phase_axes(grid.assign(**{"loss.tau": [0.5, 1.0]}))
    assert (y, rows) == ("loss.tau", None) and list(table.columns) == [*grid.columns, "loss.tau"]


CLAIMS_BETAS = (0.0, 2.0, 5.0, 10.0, 30.0)
NORMALIZATIONS = ("none", "ball", "sphere")
PARAMS = ("loss.name", "loss.beta", "normalization", "seed")


@pytest.fixture
def normalization_grid() -> pd.DataFrame:
    """15 SCL runs, β × normalization: NC iff β > 0 and the features are normalized."""
    return _table(
        *(
            _trial(
                f"{norm}-{beta:g}", "scl", beta, norm, "NC" if beta > 0 and norm != "none" else "DC"
            )
            for norm in NORMALIZATIONS
            for beta in CLAIMS_BETAS
        )
    )


def test_categorical_normalization_gets_a_1d_boundary_in_beta_per_value(
    normalization_grid: pd.DataFrame,
) -> None:
    table, y, rows = phase_axes(normalization_grid)
    boundaries, error = phase_boundaries(table, y, rows, PARAMS)
    assert error == ""
    by_norm = {b.category["normalization"]: b for b in boundaries}
    assert set(by_norm) == set(NORMALIZATIONS) and len(boundaries) == 3
    assert all(b.category["loss.name"] == "scl" and b.axes == ("loss.beta",) for b in boundaries)
    assert by_norm["none"].status == "single_regime"
    assert by_norm["none"].reason == "single regime (no NC: 5 DC)"
    for norm in ("ball", "sphere"):
        boundary = by_norm[norm]
        assert boundary.ok and boundary.pooled == ()
        [crossing] = boundary.contour
        assert crossing.shape == (1, 1) and 0.0 < crossing[0, 0] < 2.0
        assert boundary.level_set.field.shape == (60,)
        assert 0.0 < boundary.level_set.expected_error < 0.5
    for boundary in boundaries:  # fitted on its own category's 5 trials, on β alone
        own = boundary.category["normalization"]
        assert set(table.loc[boundary.points.index, "normalization"]) == {own}
        assert list(boundary.points.columns) == ["loss.beta", "regime", "nc"]
    saved = _boundary_json(boundaries, error)
    assert y not in json.dumps(saved), "the coded normalization is no boundary axis"
    for entry in saved["boundaries"]:
        dumped = json.dumps(entry)
        named = [norm for norm in NORMALIZATIONS if f'"{norm}"' in dumped]
        assert named == [entry["category"]["normalization"]] and entry["axes"] == ["loss.beta"]


def test_claims_boundaries_name_the_params_they_pool_over(
    normalization_grid: pd.DataFrame,
) -> None:
    grid = normalization_grid.assign(**{"optimizer.lr": [1e-3, 1e-2] * 7 + [1e-3]})
    boundaries, _ = phase_boundaries(*phase_axes(grid), (*PARAMS, "optimizer.lr"))
    assert [b.pooled for b in boundaries] == [("optimizer.lr",)] * 3


def test_claims_phase_diagram_draws_each_boundary_on_its_row_only(
    normalization_grid: pd.DataFrame,
) -> None:
    table, y, rows = phase_axes(normalization_grid)
    boundaries, _ = phase_boundaries(table, y, rows, PARAMS)
    figure = plot_phase_diagram(table, boundaries, x="loss.beta", y=y, rows=rows)
    (axes,) = figure.axes
    assert axes.get_title() == "loss.name=scl" and axes.get_ylabel() == "normalization"
    assert [label.get_text() for label in axes.get_yticklabels()] == list(NORMALIZATIONS)
    marks = [line for line in axes.lines if line.get_marker() == "|"]
    assert sorted(line.get_ydata().tolist() for line in marks) == [[1.0], [2.0]]
    assert all(0.0 < line.get_xdata()[0] < 2.0 for line in marks)
    segments = [
        segment
        for collection in axes.collections
        if isinstance(collection, LineCollection)
        for segment in collection.get_segments()
    ]
    assert segments and {float(value) for s in segments for value in s[:, 1]} <= {1.0, 2.0}
    assert [(text.get_text(), text.xy[1]) for text in axes.texts] == [
        ("single regime (no NC: 5 DC)", 0.0)
    ]
    labels = axes.get_legend_handles_labels()[1]
    assert labels.count("P(NC) = 0.5") == 1 and labels.count(BAND_LABEL) == 1


# ----------------------------------------------------------------- edges of the figures

NAN = float("nan")


def test_claim_1_tolerance_edge_is_inclusive() -> None:
    """With loss_plain = 0 the slack is exactly 1e-6: a gap of −1e-6 (β > 0) or ±1e-6
    (β = 0) is within it."""
    for beta, hard in ((5.0, -1e-6), (0.0, 1e-6), (0.0, -1e-6)):
        trials = _table(_trial("a", "scl", beta, "ball", "NC"))
        result = check_loss_bound(trials, _history({"a": [(hard, 0.0)]}))
        assert result.verdict == HOLDS, (beta, hard)


def test_claim_1_counts_runs_and_skips_what_it_cannot_test() -> None:
    trials = _table(_trial("a", "scl", 5.0, "ball", "NC"), _trial("d", "scl", NAN, "ball", "NC"))
    history = _history(
        {"a": [(2.0, 1.0), (5.0, NAN)], "d": [(3.0, 2.0), (3.0, 2.0)], "zz": [(2.0, 1.0)]}
    )

    result = check_loss_bound(trials, history)

    assert result.verdict == HOLDS  # a NaN loss_plain is skipped, not a violation
    assert result.figures["skipped_non_finite"] == 1
    assert result.figures["runs_without_beta"] == 1  # a run, not its 2 epochs
    assert result.figures["runs_checked"] == 1  # "zz" is no trial of the table


def test_claim_1_verdict_is_per_run_and_names_at_most_five() -> None:
    one_run = check_loss_bound(BOUND_TRIALS, _history({"a": [(5.0, 4.0), (3.0, 4.0)]}))
    assert one_run.verdict == DOES_NOT_HOLD  # its one run violates it at one epoch

    ids = [f"r{i}" for i in range(7)]
    trials = _table(*(_trial(i, "scl", 5.0, "ball", "NC") for i in ids))
    result = check_loss_bound(trials, _history({i: [(1.0, 2.0)] for i in ids}))
    assert "(r0, r1, r2, r3, r4, …)" in result.reason


def test_claim_1_beta_zero_figures() -> None:
    result = check_loss_bound(BOUND_TRIALS, _history({"c": [(1.0, 1.0 + 5e-7), (2.0, 2.0)]}))

    assert result.figures["max_abs_gap_beta_zero"] == pytest.approx(5e-7, rel=1e-3)
    assert result.figures["runs_beta_zero"] == 1
    assert result.figures["pairs_beta_zero"] == 2


def test_claim_1_with_only_non_finite_epochs_says_so() -> None:
    trials = _table(_trial("a", "scl", 5.0, "ball", "diverged"))
    result = check_loss_bound(trials, _history({"a": [(NAN, NAN), (math.inf, 1.0)]}))

    assert result.verdict == NOT_TESTED
    assert result.reason.startswith("every logged loss_hard / loss_plain pair is non-finite")


def test_claim_2_medians_leave_out_non_finite_values_and_use_each_rank_bound() -> None:
    trials = _table(
        _trial("a", "scl", 5.0, "ball", "NC", etf_distance=0.05, erank_means=4.0, rank_bound=4.0),
        _trial("b", "scl", 5.0, "ball", "NC", etf_distance=0.06, erank_means=4.0, rank_bound=4.0),
        _trial("c", "scl", 5.0, "ball", "partial", etf_distance=math.inf),
    )
    figures = check_nc_with_hard_negatives(trials).figures["scl"]
    assert figures["median_etf_distance"] == pytest.approx(0.055)  # inf left out
    assert figures["median_erank_ratio"] == pytest.approx(1.0)

    finite = trials.assign(etf_distance=[0.05, 0.06, 0.8])
    median = check_nc_with_hard_negatives(finite).figures["scl"]["median_etf_distance"]
    assert median == pytest.approx(0.06)  # the median, not the mean 0.303


def test_claim_2_with_only_unfinished_runs_is_not_tested() -> None:
    trials = _table(_trial("a", "scl", 5.0, "ball", None), _trial("b", "ucl", 5.0, "ball", None))

    result = check_nc_with_hard_negatives(trials)

    assert result.verdict == NOT_TESTED
    assert result.measured == "no such run"
    assert result.figures == {}


def test_claim_3_figures_and_selection() -> None:
    trials = _table(
        _trial("a", "scl", 0.0, "ball", "DC", dc_count=2.0),
        _trial("u", "scl", 0.0, "ball", None, dc_count=7.0),  # unfinished: left out
        _trial("n", "scl", NAN, "ball", "NC"),  # no β: tests nothing
        _trial("h", "scl", 5.0, "ball", "NC", erank_means=8.0),
    )

    result = check_dc_without_hard_negatives(trials)

    assert result.trial_ids == ("a",)  # the runs with a final regime
    assert result.verdict == HOLDS
    assert result.figures["median_dc_count"] == 2.0
    assert result.figures["median_erank_ratio_beta_positive"] == pytest.approx(8 / 9)


def test_claim_3_uses_the_erank_ratio_column_when_present() -> None:
    trials = _table(_trial("a", "scl", 0.0, "ball", "partial", erank_ratio=0.5))

    result = check_dc_without_hard_negatives(trials)

    assert result.verdict == HOLDS
    assert result.figures["median_erank_ratio"] == pytest.approx(0.5)


def test_claim_4_figures_cover_finished_runs_and_name_five() -> None:
    ids = [f"n{i}" for i in range(7)]
    trials = _table(
        *(_trial(i, "scl", 5.0, "none", "NC", unit_norm=float(k)) for k, i in enumerate(ids)),
        *(_trial(f"u{i}", "scl", 5.0, "none", None, etf_distance=9.0) for i in range(3)),
    )

    result = check_no_nc_without_normalization(trials)

    assert "(n0, n1, n2, n3, n4)" in result.reason
    assert result.figures["median_unit_norm"] == pytest.approx(3.0)
    assert result.figures["median_etf_distance"] == pytest.approx(0.05)  # not the unfinished 9


def test_diverged_runs_test_no_geometric_claim() -> None:
    """Non-finite features show neither NC nor DC: claims 2–4 leave diverged runs out and
    say so, instead of counting them against claim 3 or for claim 4."""
    lost = {"etf_distance": NAN, "erank_means": NAN, "dc_count": NAN}
    trials = _table(
        _trial("a", "scl", 0.0, "ball", "DC"),
        _trial("b", "scl", 0.0, "ball", "diverged", **lost),
        _trial("c", "scl", 5.0, "none", "diverged", **lost),
        _trial("d", "scl", 5.0, "sphere", "NC"),
        _trial("e", "scl", 5.0, "sphere", "diverged", **lost),
    )

    claim_2 = check_nc_with_hard_negatives(trials)
    claim_3 = check_dc_without_hard_negatives(trials)
    claim_4 = check_no_nc_without_normalization(trials)

    assert (claim_2.verdict, claim_2.figures["scl"]["runs"]) == (HOLDS, 1)
    assert claim_2.reason.endswith("; 1 diverged run(s) left out")
    assert claim_3.verdict == HOLDS
    assert claim_3.reason.endswith("; 1 diverged run(s) left out")
    assert claim_4.verdict == NOT_TESTED
    assert claim_4.reason == (
        "none of its 1 runs with normalization 'none' has a final regime other than "
        "diverged; 1 diverged run(s) left out"
    )


def test_limits_figures_of_the_large_beta_ucl_runs() -> None:
    trials = _table(
        _trial("a", "ucl", 30.0, "ball", "DC", mean_cos_means=0.3, erank_means=3.0),
        _trial("b", "ucl", 30.0, "sphere", "DC", mean_cos_means=0.4, erank_means=6.0),
        _trial("c", "ucl", 10.0, "ball", "DC", mean_cos_means=0.9, erank_means=6.0),
        _trial("u", "ucl", 30.0, "ball", None, mean_cos_means=0.9),  # unfinished: left out
    )

    text = limits(trials)[0]

    assert text.startswith("HUCL at large β (β ≥ 10, ball or sphere): 3 runs, 3 DC")
    assert "median cos(μ_c, μ_c′) 0.4 " in text
    assert "β=30, ball: DC, cos 0.3, erank ratio 0.333" in text
    assert limits(trials)[-1] == _LIMITS_FIXED


@pytest.mark.parametrize(
    ("cosines", "says"),
    [
        ((-0.1, NAN), "median cos(μ_c, μ_c′) -0.1"),
        ((-0.1, NAN), "2 of them do not end NC, but none shows a cone here (1 of them not"),
        ((NAN, NAN), "2 of them do not end NC; whether they form a cone is unknown."),
    ],
)
def test_limits_say_which_cosines_were_measured(cosines: tuple[float, float], says: str) -> None:
    trials = _table(
        *(
            _trial(f"r{i}", "ucl", 30.0, "ball", "DC", mean_cos_means=cosine)
            for i, cosine in enumerate(cosines)
        )
    )
    assert says in limits(trials)[0]


def test_limits_partial_paragraph_counts_finished_runs_and_median_epochs() -> None:
    trials = _table(
        _trial("a", "scl", 5.0, "ball", "partial", epochs_logged=5),
        _trial("b", "scl", 5.0, "ball", "NC", epochs_logged=5),
        _trial("c", "scl", 5.0, "ball", "NC", epochs_logged=400),
        _trial("u", "scl", 5.0, "ball", None, epochs_logged=2),
    )
    assert any("1 of 3 runs end 'partial' after 5 epochs" in text for text in limits(trials))


# ----------------------------------------------------------------- specs


@pytest.mark.parametrize("name", ["paper_claims_cpu", "paper_claims_digits"])
def test_claims_specs_are_the_30_trial_grid(name: str) -> None:
    spec = load_study_spec(ROOT / "search_spaces" / f"{name}.yaml")
    assert spec.search.algorithm == "grid" and spec.num_trials == 30
    assert spec.space["loss.name"].grid == ["scl", "ucl"]
    assert spec.space["loss.beta"].grid == [0, 2, 5, 10, 30]
    assert spec.space["normalization"].grid == ["none", "ball", "sphere"]
    base = spec.base_config
    assert (base.optimizer.name, base.optimizer.lr, base.batch_size, base.loss.tau) == (
        "adam",
        1e-3,
        512,
        1.0,
    )


# ----------------------------------------------------------------- end to end


def _short_spec(path: Path) -> Path:
    """paper_claims_cpu.yaml shortened: SCL, β ∈ {0, 30}, none/sphere, C = 10, 5 epochs."""
    spec = yaml.safe_load((ROOT / "search_spaces" / "paper_claims_cpu.yaml").read_text())
    spec["name"] = "claims-short"
    spec["base"]["data"].update(num_classes=10, input_dim=16, num_train=1000, num_test=200)
    spec["base"]["model"].update(width=64, feature_dim=9)
    spec["base"].update(epochs=5, batch_size=256)
    spec["space"] = {
        "loss.name": {"grid": ["scl"]},
        "loss.beta": {"grid": [0, 30]},
        "normalization": {"grid": ["none", "sphere"]},
    }
    spec["checkpoint_every"] = 5
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_reproduce_runs_the_study_and_reports_every_claim(
    mlflow_server: Any, tmp_path: Path
) -> None:
    spec = _short_spec(tmp_path / "claims-short.yaml")
    out = tmp_path / "claims"
    completed = subprocess.run(
        [CLI, "reproduce", str(spec), "--tracking-uri", mlflow_server.uri, "--out", str(out)],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert f"Report: {(out / REPORT_FILE).resolve()}" in completed.stdout

    page = (out / REPORT_FILE).read_text(encoding="utf-8")
    titles = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,[A-Za-z0-9+/=]+">', page)
    for title in (
        "Class-mean singular values (final epoch)", "Unit-norm condition", "Zero-sum condition",
        "Equal-inner-product condition", "Within-class variation",
        "Nearest-class-mean test accuracy",
    ):  # fmt: skip
        assert f"{title} — SCL" in titles
    assert titles[-1] == "Phase diagram" and len(titles) == 7
    verdicts = re.findall(r'<td class="verdict"[^>]*><b>([^<]+)</b></td>', page)
    assert len(verdicts) == 4 and set(verdicts) <= VERDICTS, verdicts
    assert "<h2>Limits</h2>" in page
    claims = json.loads((out / CLAIMS_FILE).read_text())["claims"]
    assert [claim["number"] for claim in claims] == [1, 2, 3, 4]
    assert claims[0]["verdict"] == HOLDS, claims[0]["reason"]
    assert claims[0]["figures"]["pairs_checked"] == 4 * 5

    # Claim 1 on every logged epoch, read straight from MLflow.
    client = MlflowClient(mlflow_server.uri)
    record = load_study(mlflow_server.uri, "claims-short")
    assert len(record.trials) == 4
    for trial in record.trials:
        beta = float(trial.params["loss.beta"])
        hard = {m.step: m.value for m in client.get_metric_history(trial.run_id, "loss_hard")}
        plain = {m.step: m.value for m in client.get_metric_history(trial.run_id, "loss_plain")}
        assert sorted(hard) == sorted(plain) == list(range(5))
        for epoch in hard:
            if beta > 0:
                assert hard[epoch] >= plain[epoch] - 1e-6 * max(1.0, abs(plain[epoch])), (
                    trial.trial_id,
                    epoch,
                )
            else:
                assert hard[epoch] == pytest.approx(plain[epoch], rel=1e-6, abs=1e-6)

    logged = client.list_artifacts(record.run_id, ARTIFACT_PATH)
    assert {Path(artifact.path).name for artifact in logged} == {
        path.name for path in out.iterdir()
    }


# ----------------------------------------------------------------- GPU check script


def test_gpu_check_cpu_smoke_writes_its_json(tmp_path: Path) -> None:
    """benchmarks/gpu_check.py --cpu-smoke: 3 ResNet-50 steps at batch 8, the JSON it writes."""
    out = tmp_path / "gpu_check.json"
    completed = subprocess.run(
        [sys.executable, str(GPU_CHECK), "--cpu-smoke", "--output", str(out)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**os.environ, "OUT": ""},
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["mode"] == "cpu-smoke" and result["setting"]["timed_steps"] == 3
    assert result["setting"]["batch"] == 8
    assert set(result["split_ms"]) == {"backbone", "loss", "optimizer", "loss_pair"}
    assert result["samples_per_s"] > 0 and result["metrics_pass"]["images"] == 16
    assert result["min_loss_hard_minus_plain"] >= 0, "HSCL >= SCL on every timed batch"
    assert result["estimate"]["steps_per_epoch"] == 50_000 // 8
