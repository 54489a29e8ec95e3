"""Printed commands name `hcl-study` and `mlflow` so that they run as printed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hcl_study.commands import command

SCRIPTS = Path(sys.executable).parent  # this environment's bin folder


def test_a_script_the_shell_finds_is_named_bare(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", f"{SCRIPTS}{os.pathsep}/usr/bin{os.pathsep}/bin")
    assert command("hcl-study") == "hcl-study"
    assert command("mlflow") == "mlflow"


def test_a_script_the_shell_does_not_find_is_named_by_a_path_that_runs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", f"/usr/bin{os.pathsep}/bin")
    monkeypatch.chdir(tmp_path)
    assert command("hcl-study") == str(SCRIPTS / "hcl-study")
    monkeypatch.chdir(SCRIPTS.parents[1])  # the folder that holds the environment
    printed = command("hcl-study")
    assert printed == str((SCRIPTS / "hcl-study").relative_to(SCRIPTS.parents[1]))
    assert not Path(printed).is_absolute()
    completed = subprocess.run(
        f"{printed} --help", shell=True, capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0 and "Usage" in completed.stdout, completed.stderr


def test_another_environments_script_first_on_path_is_not_the_one_printed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    other = tmp_path / "bin"
    other.mkdir()
    (other / "hcl-study").write_text("#!/bin/sh\nexit 1\n")
    (other / "hcl-study").chmod(0o755)
    monkeypatch.setenv("PATH", f"{other}{os.pathsep}{SCRIPTS}")
    monkeypatch.chdir(tmp_path)
    assert command("hcl-study") == str(SCRIPTS / "hcl-study")
