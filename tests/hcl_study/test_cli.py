"""How the CLI turns errors into exit codes and one-paragraph messages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer
from mlflow_server import free_port
from smoke_study import SmokeStudy
from typer.testing import CliRunner

from hcl_study.cli import _print_study_summary, app, user_errors_exit_2
from hcl_study.errors import EXIT_USER_ERROR, TrackingError, UserError
from hcl_study.study.runner import StudySummary


@pytest.mark.parametrize(
    ("error", "code", "printed"),
    [
        (UserError("epochs: [1, 2] is not a number"), EXIT_USER_ERROR, "error: epochs: [1, 2] is"),
        (
            TrackingError("MLflow said:\n  500 Internal Server Error\n  retry later"),
            1,
            "tracking error: MLflow said: 500 Internal Server Error retry later",
        ),
    ],
)
def test_errors_print_one_paragraph_and_exit_with_their_code(
    error: Exception, code: int, printed: str, capsys: pytest.CaptureFixture[str]
) -> None:
    @user_errors_exit_2
    def command() -> None:
        raise error

    with pytest.raises(typer.Exit) as exited:
        command()
    assert exited.value.exit_code == code
    output = capsys.readouterr()
    assert output.out == "" and output.err.startswith(printed)
    assert len(output.err.strip().splitlines()) == 1


def test_help_shows_flags_without_a_value() -> None:
    """A flag takes no value, so `--help` shows none after it (typer's default `<bool>` reads
    as if `--resume true` were the usage)."""
    from typer.main import get_command

    group = get_command(app)  # typer's own click: its classes are not `click`'s
    flags_seen = 0
    for name, command in group.commands.items():
        output = CliRunner().invoke(app, [name, "--help"], env={"COLUMNS": "200"}).output
        for param in command.params:
            if getattr(param, "is_flag", False) and "--help" not in param.opts:
                (line,) = [line for line in output.splitlines() if f" {param.opts[0]} " in line]
                assert "<bool>" not in line, line
                flags_seen += 1
    assert flags_seen == 6  # train --resume/--overwrite, resume --retry-failed, 3 × --verbose


@pytest.mark.parametrize(("failed", "line"), [(1, "1 trial failed ("), (2, "2 trials failed (")])
def test_study_summary_shows_regimes_best_trial_and_how_to_retry_failed_ones(
    failed: int, line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    best = {
        "metric": "erank_means",
        "value": 8.123456,
        "regime": "NC",
        "params": {"loss.beta": 12.3456789, "normalization": "ball"},
        "mlflow_run_id": "run-7",
    }
    summary = StudySummary(
        name="demo",
        tracking_uri="sqlite:///demo.db",
        experiment_id="3",
        parent_run_id="parent-1",
        regimes={"NC": 3, "failed": failed},
        best=best,
        num_trials=3 + failed,
    )

    _print_study_summary(summary)

    printed = capsys.readouterr().out
    assert f"Study demo: {3 + failed} trials" in printed
    assert re.search(r"\bNC\W+3\b", printed) and re.search(rf"\bfailed\W+{failed}\b", printed)
    assert (
        "Best trial for erank_means: 8.123 (NC) with loss.beta=12.35, normalization=ball; "
        "MLflow run run-7"
    ) in printed
    assert "experiment 3 · parent run parent-1" in printed
    assert line in printed
    again = "runs them again" if failed > 1 else "runs it again"
    assert f"resume demo --retry-failed {again}" in printed


def test_resume_retry_failed_runs_the_failed_trial_of_a_complete_study(
    smoke_study: SmokeStudy,
) -> None:
    """The smoke study is complete with one failed trial: plain `resume` only reports it
    again, but `--retry-failed` runs that trial, so it joins Ray first: at an address where
    no Ray head answers, it is refused there, before the study is touched."""
    study_dir = smoke_study.root / "studies" / smoke_study.name
    address = f"127.0.0.1:{free_port()}"
    saved = (study_dir / "study.json").read_bytes()

    result = CliRunner().invoke(
        app, ["resume", str(study_dir), "--retry-failed", "--address", address]
    )

    assert result.exit_code == EXIT_USER_ERROR, result.output
    message = " ".join(result.output.split())
    assert f"--address / RAY_ADDRESS: no Ray head answers at {address}" in message
    assert (study_dir / "study.json").read_bytes() == saved


def test_reproduce_of_a_study_name_refuses_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["reproduce", "done", "--set", "base.epochs=1"])
    assert result.exit_code == EXIT_USER_ERROR, result.output
    message = " ".join(result.output.split())
    assert "error: --set: overrides apply to a study spec (STUDY ending in .yaml)" in message
    assert "'done' names a study that exists already" in message
    assert not (tmp_path / "studies").exists()


def test_reproduce_of_a_missing_yml_spec_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A `.yml` STUDY is a spec file, as a `.yaml` one: not the name of a study."""
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["reproduce", "specs/claims.yml"])
    assert result.exit_code == EXIT_USER_ERROR, result.output
    assert "error: STUDY: no spec file at specs/claims.yml" in " ".join(result.output.split())
    assert not (tmp_path / "studies").exists()
