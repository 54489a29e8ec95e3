"""How the CLI turns errors into exit codes and one-paragraph messages."""

from __future__ import annotations

import pytest
import typer

from hcl_study.cli import user_errors_exit_2
from hcl_study.errors import EXIT_USER_ERROR, TrackingError, UserError


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
    from typer.testing import CliRunner

    from hcl_study.cli import app

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
