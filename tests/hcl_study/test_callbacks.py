"""The driver's progress lines, checked on hand-built trials (Tune's `Trial` attributes)."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from mlflow import MlflowClient

from hcl_study.study.callbacks import (
    ERROR_LINE_CHARS,
    TrialProgress,
    TrialRunCloser,
    format_params,
    last_error,
    trial_status,
)
from hcl_study.tracking import ERROR_TAG, StudyRun, TrialRun

PARAMS = {"loss.beta": 16.46444, "batch_size": 256, "normalization": "ball"}
ERROR_FILE = (
    "Failure # 1 (occurred at 2026-11-29_14-00-00)\n"
    "Traceback (most recent call last):\n  File 'x.py'\nRuntimeError: first failure\n\n"
    "Failure # 2 (occurred at 2026-11-29_14-00-09)\n"
    "Traceback (most recent call last):\n  File 'x.py'\nValueError: second failure\n"
)


def trial(
    trial_id: str, status: str = "RUNNING", error_file: str | None = None, **result: Any
) -> SimpleNamespace:
    return SimpleNamespace(
        trial_id=trial_id,
        status=status,
        last_result=result,
        config=PARAMS,
        error_file=error_file,
        num_failures=1,
        max_failures=2,
    )


def final(**changes: Any) -> dict[str, Any]:
    return {"epoch": 4, "total_epochs": 5, "regime": "NC", "erank_means": 9.0, **changes}


def test_params_are_formatted_to_four_significant_digits() -> None:
    assert format_params(PARAMS) == "loss.beta=16.46, batch_size=256, normalization=ball"


@pytest.mark.parametrize(
    ("result", "failed", "expected"),
    [
        (final(), False, "finished"),
        (final(), True, "finished"),  # an error after the final report
        (final(epoch=2, diverged=True, regime="diverged"), False, "diverged"),
        (final(epoch=2), False, "stopped"),
        (final(epoch=2), True, "failed"),
        ({}, True, "failed"),
    ],
)
def test_trial_status(result: dict[str, Any], failed: bool, expected: str) -> None:
    assert trial_status(trial("t", **result), failed) == expected


def test_the_last_error_is_the_last_failure_without_tunes_header(tmp_path: Path) -> None:
    error_file = tmp_path / "error.txt"
    error_file.write_text(ERROR_FILE)
    assert last_error(trial("t", error_file=str(error_file))) == (
        "Traceback (most recent call last):\n  File 'x.py'\nValueError: second failure"
    )
    assert last_error(trial("t", error_file=str(tmp_path / "none.txt"))) == ""
    assert last_error(trial("t")) == ""


def test_progress_lines_count_ended_trials_and_name_status_regime_and_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    error_file = tmp_path / "error.txt"
    error_file.write_text(ERROR_FILE)
    ended = trial("a", status="TERMINATED", **final())
    errored = trial("b", status="ERROR", **final(epoch=1))
    diverging = trial("c", **final(epoch=2, diverged=True, regime="diverged", erank_means=1.23456))
    failing = trial("d", error_file=str(error_file), **final(epoch=1, regime="DC"))
    progress = TrialProgress("erank_means", total=5)
    trials = [ended, errored, diverging, failing]
    progress.on_trial_complete(0, trials, diverging)
    diverging.status = "TERMINATED"
    progress.on_trial_error(0, trials, failing)
    progress.on_trial_recover(0, trials, failing)
    params = "loss.beta=16.46, batch_size=256, normalization=ball"
    assert capsys.readouterr().out.splitlines() == [
        f"[3/5] c · diverged · diverged · erank_means 1.235 · {params}",
        f"[4/5] d · failed · {params} · ValueError: second failure",
        "d · retry 1 of 2 from its last checkpoint · ValueError: second failure",
    ]


@pytest.mark.parametrize("length", [ERROR_LINE_CHARS, ERROR_LINE_CHARS + 1, 660])
def test_a_long_error_is_shortened_on_the_progress_line(
    length: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    error_file = tmp_path / "error.txt"
    died = "ray.exceptions.ActorDiedError: The actor died unexpectedly. "
    died += "x" * (length - len(died))
    error_file.write_text(f"Failure # 1 (occurred at 2026-11-29_14-00-00)\n{died}\n")
    failing = trial("d", error_file=str(error_file), **final(epoch=1))
    TrialProgress("erank_means", total=1).on_trial_error(0, [failing], failing)
    line = capsys.readouterr().out.strip()
    error = line.split(" · ")[-1]
    if length <= ERROR_LINE_CHARS:
        assert error == died
    else:
        assert len(error) == ERROR_LINE_CHARS and error == died[: ERROR_LINE_CHARS - 1] + "…"


def test_the_closer_ends_torn_down_trial_runs_with_their_status_regime_and_error(
    tmp_path: Path,
) -> None:
    """A run Tune tore down is still RUNNING: the closer ends it as the trial ended, with a
    final regime only for a trial that ran to its end, and a failed trial's traceback."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    study_run = StudyRun.start_or_resume(
        uri, "s", {"name": "s"}, artifact_location=(tmp_path / "artifacts").as_uri()
    )
    ids = (study_run.experiment_id, study_run.run_id)
    closer = TrialRunCloser(uri, "s", *ids)
    error_file = tmp_path / "error.txt"
    error_file.write_text(ERROR_FILE)
    endings = {  # trial id -> (its last result, whether Tune failed it)
        "diverged": (final(epoch=2, diverged=True, regime="diverged"), False),
        "stopped": (final(epoch=2, regime="DC"), False),
        "failed": (final(epoch=2, regime="DC"), True),
    }
    for trial_id, (result, failed) in endings.items():
        run = TrialRun.open(uri, *ids, trial_id, PARAMS, "s")
        ended = trial(trial_id, error_file=str(error_file), mlflow_run_id=run.run_id, **result)
        (closer.on_trial_error if failed else closer.on_trial_complete)(0, [ended], ended)

    client = MlflowClient(uri)
    runs = {
        run.data.tags["hcl.trial_id"]: run
        for run in client.search_runs([study_run.experiment_id], "tags.`hcl.role` = 'trial'")
    }
    assert {key: (run.info.status, run.data.tags["hcl.status"]) for key, run in runs.items()} == {
        "diverged": ("FINISHED", "diverged"),
        "stopped": ("FINISHED", "stopped"),  # ASHA stopped it, as designed
        "failed": ("FAILED", "failed"),
    }
    assert {key: run.data.tags.get("hcl.regime") for key, run in runs.items()} == {
        "diverged": "diverged",
        "stopped": None,
        "failed": None,
    }
    assert runs["failed"].data.tags[ERROR_TAG] == last_error(trial("f", error_file=str(error_file)))
    assert ERROR_TAG not in runs["stopped"].data.tags


def test_a_run_the_closer_cannot_close_is_logged_and_the_study_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """MLflow refuses the call (the trial's run is gone): the callback must not raise, or
    Tune would end the whole study; the study's end sweeps the runs left RUNNING."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    study_run = StudyRun.start_or_resume(
        uri, "s", {"name": "s"}, artifact_location=(tmp_path / "artifacts").as_uri()
    )
    closer = TrialRunCloser(uri, "s", study_run.experiment_id, study_run.run_id)
    gone = trial("t1", **final(epoch=1, mlflow_run_id="0" * 32))
    with caplog.at_level(logging.ERROR, logger="hcl_study.study.callbacks"):
        closer.on_trial_error(0, [gone], gone)
    assert "could not close the MLflow run of trial t1" in caplog.text
    assert "MLflow refused to read a run" in caplog.text
