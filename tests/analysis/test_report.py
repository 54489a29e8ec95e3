"""`hcl-study analyze`: the HTML report of the smoke study, written and logged to MLflow."""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient
from smoke_study import SmokeStudy

from analysis.claims import CLAIMS_FILE
from analysis.claims import REPORT_FILE as CLAIMS_REPORT_FILE
from analysis.report import (
    ARTIFACT_PATH,
    BOUNDARY_FILE,
    REPORT_FILE,
    TRIALS_FILE,
    _boundary_json,
    boundary_table,
    estimate_boundaries,
    summary_lines,
)
from hcl_study.errors import EXIT_USER_ERROR
from hcl_study.tracking import RunEndStatus, StudyRun, TrialRun, load_study

CLI = str(Path(sys.executable).with_name("hcl-study"))
FIGURE_TITLES = (
    "Class-mean singular values (final epoch)",
    "Unit-norm condition",
    "Zero-sum condition",
    "Equal-inner-product condition",
    "Within-class variation",
    "Nearest-class-mean test accuracy",
    "Phase diagram",
)


def _analyze(*arguments: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, "analyze", *arguments], cwd=cwd, capture_output=True, text=True, timeout=600
    )


def test_analyze_writes_the_report_and_logs_it(smoke_study: SmokeStudy, tmp_path: Path) -> None:
    out = tmp_path / "report"
    completed = _analyze(
        smoke_study.name, "--tracking-uri", smoke_study.tracking_uri, "--out", str(out),
        cwd=tmp_path,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert f"Report: {(out / REPORT_FILE).resolve()}" in completed.stdout
    finished = smoke_study.num_trials - 1
    assert f"{smoke_study.num_trials} trials: failed 1, finished {finished};" in completed.stdout
    assert ": no boundary: too few trials" in completed.stdout

    page = (out / REPORT_FILE).read_text(encoding="utf-8")
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,[A-Za-z0-9+/=]+">', page)
    assert images == list(FIGURE_TITLES), "every figure, embedded"
    assert "too few trials" in page, "the boundary's status and reason"
    assert len(list(out.glob("fig*.png"))) == len(FIGURE_TITLES)
    trials = pd.read_csv(out / TRIALS_FILE)
    assert len(trials) == smoke_study.num_trials
    assert sorted(trials["status"]) == ["failed"] + ["finished"] * (smoke_study.num_trials - 1)
    boundary = json.loads((out / BOUNDARY_FILE).read_text())
    assert {b["status"] for b in boundary["boundaries"]} == {"too_few_trials"}

    parent = load_study(smoke_study.tracking_uri, smoke_study.name).run_id
    logged = MlflowClient(smoke_study.tracking_uri).list_artifacts(parent, ARTIFACT_PATH)
    expected = {REPORT_FILE, TRIALS_FILE, BOUNDARY_FILE, *(p.name for p in out.glob("fig*.png"))}
    assert {Path(artifact.path).name for artifact in logged} == expected


def test_boundary_table_and_json_name_what_each_boundary_pools_over() -> None:
    """8 trials per normalization; lr varies for sphere only, τ (the y axis) for both."""
    trials = pd.DataFrame(
        {
            "normalization": ["ball"] * 8 + ["sphere"] * 8,
            "loss.beta": [0.0, 2.0, 5.0, 30.0] * 4,
            "loss.tau": [0.5] * 4 + [1.0] * 4 + [0.5] * 4 + [1.0] * 4,
            "optimizer.lr": [1e-3] * 8 + [1e-3, 1e-2] * 4,
            "regime": ["DC"] * 16,
        }
    )
    params = ("loss.beta", "loss.tau", "normalization", "optimizer.lr")
    boundaries, error = estimate_boundaries(trials, params=params)
    rows = boundary_table(boundaries)
    assert rows["pooled over"].tolist() == ["nothing", "optimizer.lr"]
    assert rows["status"].tolist() == ["single_regime"] * 2
    saved = _boundary_json(boundaries, error)["boundaries"]
    assert [entry["pooled"] for entry in saved] == [[], ["optimizer.lr"]]
    assert [entry["axes"] for entry in saved] == [["loss.beta", "loss.tau"]] * 2
    unchecked, _ = estimate_boundaries(trials)
    assert boundary_table(unchecked)["pooled over"].tolist() == ["not checked"] * 2


def test_summary_lines_count_the_trials_and_describe_each_boundary() -> None:
    """ball: NC from β = 5 on over a 4 × 4 grid (a boundary); sphere: 3 ended trials (none)."""
    betas, taus = [0.0, 2.0, 5.0, 30.0], [0.2, 0.4, 0.6, 1.0]
    ball = [(beta, tau) for beta in betas for tau in taus]
    trials = pd.DataFrame(
        {
            "normalization": ["ball"] * 16 + ["sphere"] * 4,
            "loss.beta": [beta for beta, _ in ball] + betas,
            "loss.tau": [tau for _, tau in ball] + [0.5] * 4,
            "optimizer.lr": [1e-3, 1e-2] * 8 + [1e-3] * 4,
            "status": ["finished"] * 19 + ["failed"],
            "regime": ["NC" if beta >= 5 else "DC" for beta, _ in ball] + ["DC"] * 3 + [None],
        }
    )
    params = ("loss.beta", "loss.tau", "normalization", "optimizer.lr")
    boundaries, error = estimate_boundaries(trials, params=params)
    lines = summary_lines(trials, boundaries, error)
    assert lines[0] == "20 trials: failed 1, finished 19; final regime DC 11, NC 8"
    placed = boundaries[0].level_set
    assert placed is not None
    band, expected = float(placed.band.mean()), placed.expected_error
    assert lines[1] == (
        f"boundary P(NC) = 0.5, normalization=ball: placed from 16 trials; uncertainty band "
        f"{band:.0%} of the domain, expected error {expected:.1%}, pooled over optimizer.lr"
    )
    assert lines[2] == (
        f"boundary P(NC) = 0.5, normalization=sphere: no boundary: {boundaries[1].reason}"
    )
    assert boundaries[1].status == "too_few_trials"
    assert len(lines) == 3
    no_axis = trials.assign(**{"loss.tau": 0.5})
    assert summary_lines(no_axis, *estimate_boundaries(no_axis))[1:] == (
        estimate_boundaries(no_axis)[1],
    )


def test_analyze_of_an_unknown_local_study_exits_2(smoke_study: SmokeStudy) -> None:
    """Without --tracking-uri, a study with no folder under studies/ names the default store."""
    completed = _analyze("no-such-study", cwd=smoke_study.root)
    assert completed.returncode == EXIT_USER_ERROR
    assert "'no-such-study'" in completed.stderr and "sqlite:///" in completed.stderr
    assert not (smoke_study.root / "studies" / "no-such-study").exists()


def test_analyze_of_an_unknown_study_exits_2(smoke_study: SmokeStudy, tmp_path: Path) -> None:
    completed = _analyze(
        "no-such-study", "--tracking-uri", smoke_study.tracking_uri, "--out", str(tmp_path),
        cwd=tmp_path,
    )  # fmt: skip
    assert completed.returncode == EXIT_USER_ERROR
    assert "'no-such-study'" in completed.stderr and smoke_study.tracking_uri in completed.stderr
    assert not list(tmp_path.iterdir()), "nothing is written"


def hand_built_study(
    tmp_path: Path,
    name: str,
    betas_and_taus: list[tuple[float, float]],
    end: RunEndStatus | None = "FINISHED",
) -> str:
    """A study whose trials all failed before their first epoch (no metric logged); its URI.

    `end` is the parent run's end status; None leaves it RUNNING.
    """
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    study = StudyRun.start_or_resume(
        uri, name, {"name": name}, artifact_location=(tmp_path / "art").as_uri()
    )
    for index, (beta, tau) in enumerate(betas_and_taus):
        params = {"loss": {"beta": beta, "tau": tau, "name": "scl"}, "normalization": "sphere"}
        trial = TrialRun.open(uri, study.experiment_id, study.run_id, f"t{index}", params, name)
        trial.finish("failed")
    if end is not None:
        study.finish(end)
    return uri


def test_reports_of_a_study_whose_trials_logged_nothing(tmp_path: Path) -> None:
    """Every trial failed before its first epoch: both reports say so instead of crashing."""
    uri = hand_built_study(tmp_path, "nothing", [(0.0, 0.2), (5.0, 0.8)])
    completed = _analyze("nothing", "--tracking-uri", uri, "--out", "report", cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr[-3000:]
    trials = pd.read_csv(tmp_path / "report" / TRIALS_FILE)
    assert trials["status"].tolist() == ["failed", "failed"]
    assert trials["regime"].isna().all() and trials["erank_ratio"].isna().all()
    boundary = json.loads((tmp_path / "report" / BOUNDARY_FILE).read_text())
    assert [b["status"] for b in boundary["boundaries"]] == ["too_few_trials"]
    assert boundary["study_status"] == "FINISHED"
    assert "not complete" not in (tmp_path / "report" / REPORT_FILE).read_text()
    assert "not complete" not in completed.stdout + completed.stderr

    completed = subprocess.run(
        [CLI, "reproduce", "nothing", "--tracking-uri", uri, "--out", "claims"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    claims = json.loads((tmp_path / "claims" / "claims.json").read_text())["claims"]
    assert {claim["verdict"] for claim in claims} == {"not tested"}


@pytest.mark.parametrize(
    ("end", "reason"),
    [("KILLED", "was interrupted"), ("FAILED", "stopped on an error"), (None, "still running")],
)
def test_reports_of_an_unfinished_study_say_so(
    end: RunEndStatus | None, reason: str, tmp_path: Path
) -> None:
    uri = hand_built_study(tmp_path, "halfway", [(0.0, 0.2), (5.0, 0.8)], end=end)
    status = end or "RUNNING"
    for command, out, page_file, json_file in (
        ("analyze", "report", REPORT_FILE, BOUNDARY_FILE),
        ("reproduce", "claims", CLAIMS_REPORT_FILE, CLAIMS_FILE),
    ):
        completed = subprocess.run(
            [CLI, command, "halfway", "--tracking-uri", uri, "--out", out],
            cwd=tmp_path, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert completed.returncode == 0, completed.stderr[-3000:]
        printed = " ".join((completed.stdout + completed.stderr).split())
        page = html.unescape((tmp_path / out / page_file).read_text())
        for text in (printed, page):
            assert "Study 'halfway' is not complete" in text and reason in text
            assert f"parent run {status}" in text and "0 of its 2 trial runs" in text
        assert json.loads((tmp_path / out / json_file).read_text())["study_status"] == status


def test_analyze_of_a_study_without_trial_runs_exits_2(tmp_path: Path) -> None:
    """Interrupted before its first trial: nothing to analyse yet, and the message says why."""
    uri = hand_built_study(tmp_path, "empty", [])
    completed = _analyze("empty", "--tracking-uri", uri, "--out", "report", cwd=tmp_path)
    assert completed.returncode == EXIT_USER_ERROR
    assert "no trial runs yet" in completed.stderr and "hcl-study resume empty" in completed.stderr
    assert not (tmp_path / "report").exists()


def test_out_that_cannot_be_a_folder_exits_2_before_any_work(tmp_path: Path) -> None:
    uri = hand_built_study(tmp_path, "out-file", [(0.0, 0.2)])
    (tmp_path / "taken").write_text("keep me")
    for command in ("analyze", "reproduce"):
        for out in ("taken", "taken/report"):
            completed = subprocess.run(
                [CLI, command, "out-file", "--tracking-uri", uri, "--out", out],
                cwd=tmp_path, capture_output=True, text=True, timeout=600,
            )  # fmt: skip
            assert completed.returncode == EXIT_USER_ERROR, (command, out, completed.stderr)
            assert completed.stderr.count("--out:") == 1, completed.stderr
    assert (tmp_path / "taken").read_text() == "keep me"


def test_reproduce_of_a_missing_spec_file_names_the_file(tmp_path: Path) -> None:
    completed = subprocess.run(
        [CLI, "reproduce", "specs/claims.yaml"], cwd=tmp_path, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert completed.returncode == EXIT_USER_ERROR
    assert "no spec file at specs/claims.yaml" in completed.stderr
    assert not (tmp_path / "studies").exists()


def test_a_study_whose_tau_does_not_vary_gets_a_boundary_in_beta_per_normalization(
    tmp_path: Path,
) -> None:
    """β × normalization at one τ (as the claims grids): `analyze` places 1-D boundaries in
    β on the normalization rows, as `reproduce` does, instead of refusing a single τ."""
    import numpy as np

    from analysis.report import write_report

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    study = StudyRun.start_or_resume(
        uri, "one-tau", {"name": "one-tau"}, artifact_location=(tmp_path / "art").as_uri()
    )
    betas = [0.0, 1.0, 2.0, 5.0, 10.0, 30.0]
    for normalization in ("none", "sphere"):
        for beta in betas:
            nc = normalization == "sphere" and beta >= 5.0
            params = {
                "loss": {"beta": beta, "tau": 0.5, "name": "scl"},
                "normalization": normalization,
            }
            trial = TrialRun.open(
                uri, study.experiment_id, study.run_id, f"{normalization}-{beta:g}", params,
                "one-tau",
            )  # fmt: skip
            trial.log_epoch(0, {"erank_means": 2.0 if nc else 1.0, "rank_bound": 2.0})
            trial.log_final_artifacts(np.eye(3, 2)[None], np.ones((1, 2)))
            trial.finish("finished", "NC" if nc else "DC")
    study.finish("FINISHED")

    report = write_report(uri, "one-tau", tmp_path / "report", log_to_mlflow=False)
    boundaries = json.loads((tmp_path / "report" / BOUNDARY_FILE).read_text())
    assert boundaries["error"] == ""
    found = {b["category"]["normalization"]: b for b in boundaries["boundaries"]}
    assert {b["axes"][0] for b in found.values()} == {"loss.beta"}
    assert all(len(b["axes"]) == 1 for b in found.values())
    assert found["none"]["status"] == "single_regime"
    assert found["sphere"]["status"] == "ok"
    [crossing] = found["sphere"]["level_set"]["contour"]
    assert 2.0 < crossing[0][0] < 5.0
    assert "normalization=sphere, loss.name=scl: placed from 6 trials" in " ".join(report.summary)
    assert "normalization (0 none" not in pd.read_csv(tmp_path / "report" / TRIALS_FILE)
