"""The training configuration's reference page (docs/config.md), generated from its models.

Every field with its type or allowed values, default, bounds and meaning, read from the
pydantic models in `hcl_study.config`, so that the page cannot drift from what validation
accepts. Write it with `python -m hcl_study.config_reference docs/config.md`.
"""

from __future__ import annotations

import sys
import types
import typing
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from hcl_study.config import (
    CifarData,
    DigitsData,
    ImageFolderData,
    LatentClassData,
    LossConfig,
    ModelConfig,
    OptimizerConfig,
    TrainConfig,
)

HEADER = """\
# Training configuration reference

Generated from `hcl_study/config.py` by `python -m hcl_study.config_reference docs/config.md`;
a test fails when this page and the models differ. `hcl-study train --config` reads these
fields, a study spec's `base:` takes the same ones, and its `space:` any of them by dotted
path (`loss.beta`). Unknown keys, booleans in number fields and non-finite numbers are
refused, naming the field. A missing key takes its default (a `data` section without
`name` is of `latent_class`); `hcl-study config --config FILE --set KEY=VALUE` prints the
whole config that `train` would run.
"""

# The attributes of pydantic's constraints (annotated_types.Ge, Gt, Le, Lt, MinLen, MaxLen,
# and the pattern of a string), and how the page writes them.
_LIMITS: tuple[tuple[str, str], ...] = (
    ("ge", "≥ {}"),
    ("gt", "> {}"),
    ("le", "≤ {}"),
    ("lt", "< {}"),
    ("min_length", "of length ≥ {}"),
    ("max_length", "of length ≤ {}"),
    ("pattern", "matching `{}`"),
)


def _number(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 2**16:
        exponent = value.bit_length() - 1
        if value == 2**exponent:
            return f"2^{exponent}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _type_name(annotation: Any) -> str:
    """`int`, `float`, `str`, `bool`, `mapping`, `list` or `[float, float]`."""
    origin = get_origin(annotation)
    if origin is typing.Annotated:
        return _type_name(get_args(annotation)[0])
    if origin is dict:
        return "mapping"
    if origin is list:
        return "list"
    if origin is tuple:
        return "[" + ", ".join(_type_name(arg) for arg in get_args(annotation)) + "]"
    return getattr(annotation, "__name__", str(annotation))


def _allowed(annotation: Any, metadata: list[Any]) -> str:
    """The values a field takes: its literals, or its type with its bounds."""
    optional = get_origin(annotation) in (typing.Union, types.UnionType)
    if optional:
        annotation = next(arg for arg in get_args(annotation) if arg is not type(None))
    if get_origin(annotation) is Literal:
        text = " \\| ".join(f"`{value}`" for value in get_args(annotation))
    else:
        limits = [
            template.format(_number(getattr(item, attribute)))
            for item in metadata
            for attribute, template in _LIMITS
            if getattr(item, attribute, None) is not None
        ]
        text = " ".join([_type_name(annotation), ", ".join(limits)]).strip()
    return f"{text}, or null" if optional else text


def _default(info: FieldInfo) -> str:
    if info.default_factory is not None:
        return f"`{info.default_factory()}`"
    if info.default is PydanticUndefined:
        return "required"
    if info.default is None:
        return "null"
    if isinstance(info.default, bool):
        return f"`{str(info.default).lower()}`"
    return f"`{_number(info.default)}`"


def model_table(
    model: type[BaseModel], prefix: str, overrides: dict[str, str] | None = None
) -> str:
    """A Markdown table of `model`'s fields (nested sections left out), named from `prefix`."""
    rows = ["| field | allowed | default | meaning |", "| --- | --- | --- | --- |"]
    for name, info in model.model_fields.items():
        factory = info.default_factory
        if isinstance(factory, type) and issubclass(factory, BaseModel):  # its own table
            continue
        default = (overrides or {}).get(name) or _default(info)
        allowed = _allowed(info.annotation, info.metadata)
        meaning = (info.description or "").replace("|", "\\|")
        rows.append(f"| `{prefix}{info.alias or name}` | {allowed} | {default} | {meaning} |")
    return "\n".join(rows)


def _model_summary(model: type[BaseModel]) -> str:
    """The first line of the model's docstring."""
    return (model.__doc__ or "").strip().splitlines()[0]


Section = tuple[str, type[BaseModel], str]  # title, model, prefix of its fields' names


def reference_page(
    header: str, sections: list[Section], defaults: dict[str, str] | None = None
) -> str:
    """A Markdown page: `header`, then per section its model's summary and fields' table.

    `defaults` replaces the default shown for a field named by its full path.
    """
    parts = [header]
    for title, model, prefix in sections:
        shown = {
            path.removeprefix(prefix): text
            for path, text in (defaults or {}).items()
            if path.startswith(prefix)
        }
        table = model_table(model, prefix, shown)
        parts.append(f"## {title}\n\n{_model_summary(model)}\n\n{table}\n")
    return "\n".join(parts)


def write_page(page: str, argv: list[str]) -> None:
    """Write `page` to the path in `argv` (standard output without one)."""
    if argv:
        Path(argv[0]).write_text(page)
    else:
        sys.stdout.write(page)


def config_reference() -> str:
    """The page: a table of the run's own fields, then one per section."""
    sections: list[Section] = [
        ("Run", TrainConfig, ""),
        ("`model`", ModelConfig, "model."),
        ("`loss`", LossConfig, "loss."),
        ("`optimizer`", OptimizerConfig, "optimizer."),
        ("`data` with `name: latent_class` (the default)", LatentClassData, "data."),
        ("`data` with `name: digits`", DigitsData, "data."),
        ("`data` with `name: cifar10` or `cifar100`", CifarData, "data."),
        ("`data` with `name: image_folder`", ImageFolderData, "data."),
    ]
    return reference_page(HEADER, sections, {"model.feature_dim": "`num_classes − 1`"})


if __name__ == "__main__":
    write_page(config_reference(), sys.argv[1:])
