"""`hcl-study analyze`: the HTML report of the smoke study, written and logged to MLflow."""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from smoke_study import SmokeStudy

from analysis.boundary import PhaseBoundary, _checked
from analysis.claims import CLAIMS_FILE
from analysis.claims import REPORT_FILE as CLAIMS_REPORT_FILE
from analysis.loading import load_study_data
from analysis.order_parameters import add_order_parameters
from analysis.report import (
    ARTIFACT_PATH,
    BOUNDARY_FILE,
    REPORT_FILE,
    TRIALS_FILE,
    Report,
    _boundary_json,
    boundary_table,
    estimate_boundaries,
    phase_axes,
    phase_boundaries,
    read_boundary_estimates,
    render_html,
    study_figures,
    summary_lines,
    write_report,
)
from hcl_study.errors import EXIT_USER_ERROR
from hcl_study.levelset import Axis, level_set
from hcl_study.tracking import (
    BOUNDARY_SEARCH_ARTIFACT,
    RunEndStatus,
    StudyRun,
    TrialRun,
    load_study,
)

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

    from analysis.report import CATEGORY_AXES, write_report

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
    coded_column = CATEGORY_AXES["normalization"][0]  # the phase diagram's rows, not a param
    assert coded_column not in pd.read_csv(tmp_path / "report" / TRIALS_FILE).columns


# ----------------------------------------------------------------- a written report, in detail

REPORTED_BETAS = (30.0, 0.0, 5.0, 2.0, 10.0, 1.0)
"""Out of order on purpose: the figures order their lines by β, not by trial."""
FIGURE_FILES = (
    "fig1_singular_values.png",
    "fig2_unit_norm.png",
    "fig3_zero_sum.png",
    "fig4_equal_inner_product.png",
    "fig5_within_class.png",
    "fig6_ncm_accuracy.png",
    "fig7_phase_diagram.png",
)
SEARCH_ESTIMATES = [
    {
        "category": {"normalization": "sphere", "loss.name": "scl"},
        "level_set": {"axes": ["loss.beta"], "contour": [[[3.5]]], "expected_error": 0.1},
    }
]


@dataclass(frozen=True)
class ReportedStudy:
    """A hand-built study and the report `write_report` wrote and logged for it."""

    uri: str
    name: str
    out: Path
    report: Report


@pytest.fixture(scope="module")
def reported_study(tmp_path_factory: pytest.TempPathFactory) -> ReportedStudy:
    """β × normalization at τ = 0.5 with lr alternating (12 ended trials) and one failed
    trial; the parent run holds a boundary search's estimates, the report folder a stranger."""
    root = tmp_path_factory.mktemp("reported")
    uri, name = f"sqlite:///{root / 'mlflow.db'}", "grid <b>&</b>"
    study = StudyRun.start_or_resume(
        uri, name, {"name": name}, artifact_location=(root / "art").as_uri()
    )
    trials = [
        (normalization, beta, lr)
        for normalization in ("none", "sphere")
        for beta, lr in zip(REPORTED_BETAS, [1e-3, 1e-2] * 3, strict=True)
    ]
    for normalization, beta, lr in trials:
        nc = normalization == "sphere" and beta >= 5.0
        params = {
            "loss": {"beta": beta, "tau": 0.5, "name": "scl"},
            "normalization": normalization,
            "optimizer": {"lr": lr},
        }
        trial = TrialRun.open(
            uri, study.experiment_id, study.run_id, f"{normalization}-{beta:g}", params, name
        )
        for epoch in range(2):
            metrics = {"erank_means": 2.0 if nc else 1.0, "rank_bound": 2.0, "loss": 1.0 - epoch}
            trial.log_epoch(epoch, {**metrics, "unit_norm": 0.5 - 0.1 * epoch})
        trial.log_final_artifacts(np.eye(3, 2)[None], np.array([[1.0, 0.5 if nc else 0.01]]))
        trial.finish("finished", "NC" if nc else "DC")
    params = {
        "loss": {"beta": 3.0, "tau": 0.5, "name": "scl"},
        "normalization": "sphere",
        "optimizer": {"lr": 1e-3},
    }
    failed = TrialRun.open(uri, study.experiment_id, study.run_id, "failed", params, name)
    failed.log_epoch(0, {"erank_means": 1.0, "rank_bound": 2.0, "loss": 1.0, "unit_norm": 0.5})
    failed.finish("failed")
    study.log_dict({"estimates": SEARCH_ESTIMATES}, BOUNDARY_SEARCH_ARTIFACT)
    study.finish("FINISHED")
    out = root / "report"
    out.mkdir()
    (out / "notes.txt").write_text("not part of the report")
    return ReportedStudy(uri, name, out, write_report(uri, name, out))


def _html_tables(page: str) -> list[list[list[str]]]:
    """The page's tables as rows of cell texts (header cells included)."""
    return [
        [
            re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)
            for row in re.findall(r"<tr[^>]*>(.*?)</tr>", table, re.S)
        ]
        for table in re.findall(r"<table.*?</table>", page, re.S)
    ]


def test_the_report_page_counts_regimes_and_tables_the_varied_params(
    reported_study: ReportedStudy,
) -> None:
    page = (reported_study.out / REPORT_FILE).read_text(encoding="utf-8")
    assert f"<title>Study {html.escape(reported_study.name)}</title>" in page
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,[A-Za-z0-9+/=]+">', page)
    assert images == list(FIGURE_TITLES)
    regimes, _, trials = _html_tables(page)
    assert regimes == [
        ["regime", "DC", "NC", "no final regime"],
        ["status", "", "", ""],
        ["failed", "0", "0", "1"],
        ["finished", "9", "3", "0"],
    ]
    header, *rows = trials
    assert len(rows) == 13
    assert {"loss.beta", "normalization", "optimizer.lr", "loss"} <= set(header)
    assert not {"loss.tau", "loss.name"} & set(header), "only the params that vary"
    by_trial = {row[0]: dict(zip(header, row, strict=True)) for row in rows}
    assert by_trial["sphere-10"]["loss"] == "0" and by_trial["failed"]["loss"] == "1"
    loaded = add_order_parameters(load_study_data(reported_study.uri, reported_study.name).trials)
    saved = pd.read_csv(reported_study.out / TRIALS_FILE)
    assert list(saved.columns) == list(loaded.columns), "the trial table, without coded axes"
    assert saved["trial_id"].tolist() == loaded["trial_id"].tolist()


def test_the_report_is_logged_without_other_files_of_its_folder(
    reported_study: ReportedStudy,
) -> None:
    report = reported_study.report
    record = load_study(reported_study.uri, reported_study.name)
    assert report.parent_run_id == record.run_id and report.unfinished == ""
    logged = MlflowClient(reported_study.uri).list_artifacts(record.run_id, ARTIFACT_PATH)
    files = {REPORT_FILE, TRIALS_FILE, BOUNDARY_FILE, *FIGURE_FILES}
    assert {path.name for path in report.files} == files
    assert sorted(Path(a.path).name for a in logged) == sorted(files), "not notes.txt"
    assert (reported_study.out / "notes.txt").exists()


def test_study_figures_order_lines_by_beta_label_varied_params_and_code_rows(
    reported_study: ReportedStudy,
) -> None:
    data = load_study_data(reported_study.uri, reported_study.name)
    assert read_boundary_estimates(data) == SEARCH_ESTIMATES
    table, y, rows = phase_axes(add_order_parameters(data.trials))
    boundaries, _ = phase_boundaries(table, y, rows, data.param_columns)
    figures = study_figures(data, table, boundaries, y=y, rows=rows)
    titles = {name: figure.get_suptitle() for name, figure in figures.items()}
    assert titles == dict(zip(FIGURE_FILES, FIGURE_TITLES, strict=True))
    assert len(figures["fig1_singular_values.png"].axes[0].lines) == 12, "ended trials only"

    labels = [line.get_label() for line in figures["fig2_unit_norm.png"].axes[0].lines]
    lrs = dict(zip(REPORTED_BETAS, ["lr=0.001", "lr=0.01"] * 3, strict=True))
    expected = {
        f"β={beta:g}, {normalization}, {lrs[beta]}"
        for normalization in ("none", "sphere")
        for beta in REPORTED_BETAS
    }
    assert set(labels) == expected | {"β=3, sphere, lr=0.001 (failed)"}
    betas = [float(label.split(",")[0].removeprefix("β=")) for label in labels]
    assert betas == sorted(betas), "lines in the order of β"
    (phase,) = figures["fig7_phase_diagram.png"].axes
    assert phase.get_ylabel() == "normalization"
    assert [label.get_text() for label in phase.get_yticklabels()] == ["none", "sphere"]


def test_the_report_page_escapes_what_it_quotes_and_redacts_the_password(
    reported_study: ReportedStudy,
) -> None:
    data = load_study_data(reported_study.uri, reported_study.name)
    shown = replace(data, tracking_uri="http://alice:s3cret@mlflow.example:5000")
    title, error = 'Phase "β" <7>', "no boundary estimated: '<b>'"
    page = render_html(shown, add_order_parameters(data.trials), {"f.png": (title, b"")}, [], error)
    assert "s3cret" not in page and "http://alice:***@mlflow.example:5000" in page
    assert f'<img alt="{html.escape(title)}"' in page
    assert f'<p class="reason">{html.escape(error)}</p>' in page
    assert "<b>&</b>" not in page and "<b>'" not in page and '"β" <7>' not in page


def test_boundary_rows_and_json_carry_each_estimate_s_own_numbers() -> None:
    """ball: NC from β = 5 on over a 4 × 4 grid (a boundary); sphere: a single regime."""
    betas, taus = [0.0, 2.0, 5.0, 30.0], [0.2, 0.4, 0.6, 1.0]
    ball = [(beta, tau) for beta in betas for tau in taus]
    trials = pd.DataFrame(
        {
            "normalization": ["ball"] * 16 + ["sphere"] * 16,
            "loss.beta": [beta for beta, _ in ball] * 2,
            "loss.tau": [tau for _, tau in ball] * 2,
            "regime": ["NC" if beta >= 5 else "DC" for beta, _ in ball] + ["DC"] * 16,
        }
    )
    boundaries, error = estimate_boundaries(trials)
    placed, single = boundaries
    assert placed.ok and placed.level_set is not None and single.status == "single_regime"
    rows = boundary_table(boundaries)
    assert rows["trials"].tolist() == [16, 16]
    assert rows["band area"][0] == pytest.approx(float(np.mean(placed.level_set.band)))
    assert rows["expected error"][0] == pytest.approx(placed.level_set.expected_error)
    assert rows["reason"].tolist() == ["", single.reason]
    saved = _boundary_json(boundaries, error)
    assert [entry["reason"] for entry in saved["boundaries"]] == ["", single.reason]
    assert [entry["pooled"] for entry in saved["boundaries"]] == [None, None], "not checked"
    assert saved["boundaries"][0]["level_set"] == placed.level_set.to_dict()


def test_summary_lines_say_no_boundary_where_the_fit_never_crosses_its_level() -> None:
    """A fitted P(NC) below 0.5 everywhere: a level set, but no boundary to describe."""
    field = np.linspace(0.2, 0.45, 11)
    below = level_set(
        [Axis("loss.beta", 0.0, 30.0)], field, field - 0.1, field + 0.1, 0.5, np.zeros(11)
    )
    points = pd.DataFrame({"loss.beta": [0.0, 30.0], "regime": ["DC", "NC"], "nc": [0.0, 1.0]})
    boundary = _checked(
        PhaseBoundary(
            {"normalization": "none"}, ("loss.beta",), "P(NC)", 0.5, "ok", "", points, below, ()
        )
    )
    assert boundary.status == "no_crossing" and boundary.level_set is not None
    trials = pd.DataFrame({"status": ["finished", "finished"], "regime": ["DC", "NC"]})
    assert summary_lines(trials, [boundary], "")[1] == (
        f"boundary P(NC) = 0.5, normalization=none: no boundary: {boundary.reason}"
    )
