"""docs/spec.md is current, and what it says of each field is what validation does."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from hcl_study.config import flatten
from hcl_study.study.spec import (
    ObjectiveConfig,
    ResourcesConfig,
    SchedulerConfig,
    SearchConfig,
    SpaceEntry,
)
from hcl_study.study.spec_reference import spec_reference

PAGE = Path(__file__).resolve().parents[2] / "docs" / "spec.md"
ROW = re.compile(
    r"^\| `(?P<field>[A-Za-z0-9_.]+)` \| (?P<allowed>.*?) \| (?P<default>.*?) \| .*\|$"
)


def rows() -> dict[str, tuple[str, str]]:
    """Every row of the page: field -> (allowed, default)."""
    return {
        match["field"]: (match["allowed"], match["default"])
        for line in spec_reference().splitlines()
        if (match := ROW.match(line))
    }


def test_the_page_is_current() -> None:
    assert PAGE.read_text() == spec_reference(), (
        "docs/spec.md is stale: python -m hcl_study.study.spec_reference docs/spec.md"
    )


def test_rows_render_patterns_lengths_aliases_tuples_and_factories() -> None:
    page = rows()
    assert page["name"] == (
        "str of length ≤ 100, matching `^[A-Za-z0-9][A-Za-z0-9_.-]*$`",
        "required",
    )
    assert page["base"] == ("mapping", "`{}`")
    assert page["space.PATH.int"] == ("[int, int], or null", "null"), "the alias, as written"
    assert page["space.PATH.choice"] == ("list of length ≥ 1, or null", "null")
    assert page["search.target_error"] == ("float > 0, < 0.5, or null", "null")
    assert page["scheduler.mode"] == ("`min` \\| `max`, or null", "null")


@pytest.mark.parametrize(
    ("model", "prefix"),
    [
        (SpaceEntry, "space.PATH."),
        (SearchConfig, "search."),
        (SchedulerConfig, "scheduler."),
        (ObjectiveConfig, "objective."),
        (ResourcesConfig, "resources."),
    ],
)
def test_every_default_on_the_page_is_the_models(model: type[BaseModel], prefix: str) -> None:
    defaults = (SpaceEntry.model_construct() if model is SpaceEntry else model()).model_dump(
        by_alias=True
    )
    page = {field: default for field, (_, default) in rows().items() if field.startswith(prefix)}
    assert set(page) == {prefix + key for key in flatten(defaults)}
    for key, value in flatten(defaults).items():
        shown = (
            "null"
            if value is None
            else f"`{value:g}`"
            if isinstance(value, float)
            else f"`{value}`"
        )
        assert page[prefix + key] == shown, key
