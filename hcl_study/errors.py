"""User-facing errors: bad specs, missing data, unreachable servers; interrupted studies.

Anything raised as `UserError` reaches the CLI as one paragraph and exit code 2, before
any Ray job or MLflow run is started. `Interrupted` work exits with code 130.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Collection
from typing import Any

from pydantic import BaseModel, ValidationError

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT: what a shell reports for a command ended by Ctrl-C


class UserError(Exception):
    """An error in what the user asked for, with a message fit to print as is."""


class TrackingError(RuntimeError):
    """MLflow could not record something (server down past the deadline, or a refused call)."""


class Interrupted(Exception):
    """Work stopped by Ctrl-C (or a signal) that can be continued; the message, fit to print
    as is, says how."""


class StudyInterrupted(Interrupted):
    """A study stopped (Ctrl-C, SIGINT, SIGUSR1) before every trial ended; it can be resumed."""


class TrainingInterrupted(Interrupted):
    """`hcl-study train` stopped by Ctrl-C; `--resume` continues from its last checkpoint."""


class DataError(UserError):
    """A data set that cannot be loaded (missing or incomplete local copy)."""


def describe_yaml_error(error: Exception) -> str:
    """A YAML error on one line: what is wrong and where (PyYAML's own text spans lines)."""
    problem, mark = getattr(error, "problem", None), getattr(error, "problem_mark", None)
    if problem and mark is not None:
        context = getattr(error, "context", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}"
        return f"{context + ': ' if context else ''}{problem} ({where})"
    return " ".join(str(error).split())


def _field_path(location: tuple[Any, ...], variant_tags: Collection[str]) -> str:
    # pydantic puts the discriminator tag of a union member (e.g. 'latent_class') into the
    # location; it names the variant, not a field. Integers are positions in a tuple.
    parts = [str(part) for part in location if not isinstance(part, int)]
    return ".".join(part for part in parts if part not in variant_tags) or "(top level)"


def _nested_models(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models inside an annotation (`Model`, `A | B`, `Annotated[A | B, ...]`)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, typing.Annotated):
        return [model for arg in typing.get_args(annotation) for model in _nested_models(arg)]
    return []


def field_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every field path of `model` as pydantic locates errors: nested models joined by
    dots, the members of a tagged union under their tag (`data.latent_class.seed`)."""
    paths = []
    for name, info in model.model_fields.items():
        path = prefix + name
        paths.append(path)
        members = _nested_models(info.annotation)
        for member in members:
            if len(members) == 1:
                paths += field_paths(member, f"{path}.")
                continue
            for tag in typing.get_args(member.model_fields["name"].annotation):  # Literal
                paths += field_paths(member, f"{path}.{tag}.")
    return paths


def _parent_name(path: str) -> str:
    """The last part of a dotted path's parent: "cifar100" of "data.cifar100.root", "" of
    a top-level "seed"."""
    return path.rpartition(".")[0].rpartition(".")[2]


def _unknown_key_message(
    location: tuple[Any, ...],
    model: type[BaseModel] | None,
    variant_tags: Collection[str],
    prefix: str = "",
) -> str:
    """ "unknown key", with the keys allowed there and close or same-named fields elsewhere
    (their paths with `prefix`, as the message names the key)."""
    if model is None:
        return "unknown key (check the spelling; see the documented fields)"
    parts = [str(part) for part in location if not isinstance(part, int)]
    parent, leaf = ".".join(parts[:-1]), parts[-1]
    known = field_paths(model)
    siblings = [path.rpartition(".")[2] for path in known if path.rpartition(".")[0] == parent]
    shown = _field_path(tuple(parts), variant_tags)
    same_named = [path for path in known if path.rpartition(".")[2] == leaf]
    other_variants = [  # the field of another member of a tagged union, e.g. data.root
        _parent_name(path)
        for path in same_named
        if _field_path(tuple(path.split(".")), variant_tags) == shown
    ]
    elsewhere = [
        prefix + _field_path(tuple(path.split(".")), variant_tags)
        for path in same_named
        if _parent_name(path) not in other_variants
    ]
    parent_shown = _field_path(tuple(parts[:-1]), variant_tags)
    close = difflib.get_close_matches(leaf, siblings, n=2, cutoff=0.6)
    guesses = [
        *(f"{prefix}{parent_shown}.{name}" if parts[:-1] else prefix + name for name in close),
        # A key of another data set is not misplaced: where it belongs is said below.
        *(elsewhere if not other_variants else []),
    ]
    hints = [f"did you mean {' or '.join(dict.fromkeys(guesses))}?"] if guesses else []
    if other_variants:
        hints.append(
            f"{prefix}{shown} belongs to {prefix}{parent_shown}.name " + " or ".join(other_variants)
        )
    hint = "".join(f"; {text}" for text in hints)
    return f"unknown key{hint} (allowed here: {', '.join(siblings)})"


def describe_validation_error(
    error: ValidationError,
    *,
    source: str = "config",
    prefix: str = "",
    variant_tags: Collection[str] = (),
    model: type[BaseModel] | None = None,
) -> str:
    """One paragraph naming each bad field, what was given and what is allowed.

    `prefix` is prepended to field paths, e.g. `base.` for a study's training config;
    `variant_tags` are the discriminator values of tagged unions, left out of the paths;
    `model`, the validated model, lets an unknown key name the keys allowed there.
    """
    problems = []
    for item in error.errors():
        path = prefix + _field_path(item["loc"], variant_tags)
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = _unknown_key_message(item["loc"], model, variant_tags, prefix)
        elif item["type"] == "value_error":  # our validators' words, without "Value error, "
            message = str(item["ctx"]["error"])
        given = item.get("input")
        if item["type"] == "missing" and isinstance(given, list | tuple):  # e.g. `uniform: [0]`
            message = "too few values"
        shown = "" if isinstance(given, dict) else f" (got {given!r})"  # not the whole section
        problems.append(f"{path}: {message}{shown}")
    return f"Invalid {source}: " + "; ".join(problems) + "."
