"""User-facing errors: bad specs, missing data, unreachable servers; interrupted studies.

Anything raised as `UserError` reaches the CLI as one paragraph and exit code 2, before
any Ray job or MLflow run is started. A `StudyInterrupted` study exits with code 130.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from pydantic import ValidationError

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT: what a shell reports for a command ended by Ctrl-C


class UserError(Exception):
    """An error in what the user asked for, with a message fit to print as is."""


class StudyInterrupted(Exception):
    """A study stopped (Ctrl-C, SIGINT, SIGUSR1) before every trial ended; it can be resumed.

    The message, fit to print as is, says how to continue it.
    """


class DataError(UserError):
    """A data set that cannot be loaded (missing or incomplete local copy)."""


def _field_path(location: tuple[Any, ...], variant_tags: Collection[str]) -> str:
    # pydantic puts the discriminator tag of a union member (e.g. 'latent_class') into the
    # location; it names the variant, not a field. Integers are positions in a tuple.
    parts = [str(part) for part in location if not isinstance(part, int)]
    return ".".join(part for part in parts if part not in variant_tags) or "(top level)"


def describe_validation_error(
    error: ValidationError,
    *,
    source: str = "config",
    prefix: str = "",
    variant_tags: Collection[str] = (),
) -> str:
    """One paragraph naming each bad field, what was given and what is allowed.

    `prefix` is prepended to field paths, e.g. `base.` for a study's training config;
    `variant_tags` are the discriminator values of tagged unions, left out of the paths.
    """
    problems = []
    for item in error.errors():
        path = prefix + _field_path(item["loc"], variant_tags)
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown key (check the spelling; see the documented fields)"
        elif item["type"] == "value_error":  # our validators' words, without "Value error, "
            message = str(item["ctx"]["error"])
        given = item.get("input")
        shown = "" if item["type"] == "missing" or isinstance(given, dict) else f" (got {given!r})"
        problems.append(f"{path}: {message}{shown}")
    return f"Invalid {source}: " + "; ".join(problems) + "."
