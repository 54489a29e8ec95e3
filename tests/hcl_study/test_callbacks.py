"""The driver's progress lines, checked on hand-built trials (Tune's `Trial` attributes)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from hcl_study.study.callbacks import (
    ERROR_LINE_CHARS,
    TrialProgress,
    format_params,
    last_error,
    trial_status,
)

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
    diverging = trial("c", **final(epoch=2, diverged=True, regime="diverged", erank_means=1.0))
    failing = trial("d", error_file=str(error_file), **final(epoch=1, regime="DC"))
    progress = TrialProgress("erank_means", total=5)
    trials = [ended, errored, diverging, failing]
    progress.on_trial_complete(0, trials, diverging)
    diverging.status = "TERMINATED"
    progress.on_trial_error(0, trials, failing)
    progress.on_trial_recover(0, trials, failing)
    params = "loss.beta=16.46, batch_size=256, normalization=ball"
    assert capsys.readouterr().out.splitlines() == [
        f"[3/5] c · diverged · diverged · erank_means 1 · {params}",
        f"[4/5] d · failed · {params} · ValueError: second failure",
        "d · retry 1 of 2 from its last checkpoint · ValueError: second failure",
    ]


def test_a_long_error_is_shortened_on_the_progress_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    error_file = tmp_path / "error.txt"
    died = "ray.exceptions.ActorDiedError: The actor died unexpectedly. " + "x" * 600
    error_file.write_text(f"Failure # 1 (occurred at 2026-11-29_14-00-00)\n{died}\n")
    failing = trial("d", error_file=str(error_file), **final(epoch=1))
    TrialProgress("erank_means", total=1).on_trial_error(0, [failing], failing)
    line = capsys.readouterr().out.strip()
    error = line.split(" · ")[-1]
    assert len(error) == ERROR_LINE_CHARS and error == died[: ERROR_LINE_CHARS - 1] + "…"
