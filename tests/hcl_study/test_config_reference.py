"""docs/config.md is current, and what it says of each field is what validation does."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from hcl_study.config import flatten, parse_train_config
from hcl_study.config_reference import config_reference

PAGE = Path(__file__).resolve().parents[2] / "docs" / "config.md"
ROW = re.compile(r"^\| `(?P<field>[a-z0-9_.]+)` \| (?P<allowed>.*?) \| (?P<default>.*?) \| .*\|$")
DATA_SETS: dict[str, dict[str, Any]] = {  # a section's title -> a valid `data` of it
    "latent_class": {"name": "latent_class"},
    "digits": {"name": "digits"},
    "cifar10": {"name": "cifar10", "root": "x"},
    "image_folder": {"name": "image_folder", "root": "x", "num_classes": 3},
}


def test_the_page_is_current() -> None:
    assert PAGE.read_text() == config_reference(), (
        "docs/config.md is stale: python -m hcl_study.config_reference docs/config.md"
    )


def sections() -> dict[str, dict[str, tuple[str, str]]]:
    """The page's tables: section title -> field -> (allowed, default)."""
    tables: dict[str, dict[str, tuple[str, str]]] = {}
    for line in config_reference().splitlines():
        if line.startswith("## "):
            title = line.removeprefix("## ")
            tables[title] = {}
        elif match := ROW.match(line):
            tables[title][match["field"]] = (match["allowed"], match["default"])
    return tables


def test_rows_render_types_bounds_literals_and_defaults() -> None:
    tables = sections()
    run, model = tables["Run"], tables["`model`"]
    cifar = tables["`data` with `name: cifar10` or `cifar100`"]
    assert run["seed"] == ("int ≥ 0, < 2^32", "`0`")
    assert run["cpu_threads"] == ("int ≥ 1, ≤ 1024", "`1`")
    assert run["normalization"] == ("`none` \\| `ball` \\| `sphere`", "`ball`")
    assert run["bf16"] == ("bool", "`false`")
    assert tables["`loss`"]["loss.tau"] == ("float > 0", "`1`")
    assert tables["`optimizer`"]["optimizer.momentum"] == ("float ≥ 0, < 1", "`0.9`")
    assert model["model.feature_dim"] == ("int ≥ 1, or null", "`num_classes − 1`")
    assert cifar["data.subset"] == ("int ≥ 2, or null", "null")
    assert cifar["data.root"] == ("str", "required")


def as_written(value: Any) -> str:
    """A default as the page writes it: YAML's booleans, floats to 6 significant digits."""
    if isinstance(value, bool):
        return str(value).lower()
    return f"{value:g}" if isinstance(value, float) else str(value)


@pytest.mark.parametrize("data_set", DATA_SETS)
def test_every_default_on_the_page_is_the_one_validation_fills_in(data_set: str) -> None:
    config = flatten(parse_train_config({"data": DATA_SETS[data_set]}).model_dump(mode="json"))
    rows = {
        field: default
        for title, table in sections().items()
        if not title.startswith("`data`") or f"`name: {data_set}`" in title
        for field, (_, default) in table.items()
    }
    assert set(rows) == set(config), "a row for every field, and no other"
    for field, default in rows.items():
        if default == "required":
            assert field in flatten({"data": DATA_SETS[data_set]}), field
        elif field == "model.feature_dim":
            assert config[field] is None and default == "`num_classes − 1`"
        elif default == "null":
            assert config[field] is None, field
        else:
            assert default == f"`{as_written(config[field])}`", field
