"""Every number field of a training config and a study spec refuses a boolean.

pydantic's lax mode would read `true` as 1 (`resources.gpu: true` would reserve a GPU); the
fields are found by walking valid configs, so a new field is covered without a new case.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from hcl_study.config import parse_train_config
from hcl_study.errors import UserError
from hcl_study.study.spec import parse_study_spec

SEARCH_SPACES = Path(__file__).resolve().parents[2] / "search_spaces"
DATA_SETS = (
    {"name": "latent_class"},
    {"name": "digits"},
    {"name": "cifar10", "root": "x", "subset": 100},
    {"name": "image_folder", "root": "x", "num_classes": 3},
)


def number_paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Paths of the int and float leaves of a nested dict / list (not of booleans)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from number_paths(value, (*prefix, key))
    elif isinstance(node, list | tuple):
        for index, value in enumerate(node):
            yield from number_paths(value, (*prefix, index))
    elif isinstance(node, int | float) and not isinstance(node, bool):
        yield prefix


def with_true_at(raw: dict[str, Any], path: tuple[Any, ...]) -> dict[str, Any]:
    changed = yaml.safe_load(yaml.safe_dump(raw))  # a deep copy, tuples as lists
    node = changed
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = True
    return changed


def train_configs() -> Iterator[tuple[str, dict[str, Any], tuple[Any, ...]]]:
    for data in DATA_SETS:
        raw = parse_train_config({"data": data}).model_dump(mode="json")
        for path in number_paths(raw):
            yield f"{data['name']}:{'.'.join(map(str, path))}", raw, path


def study_specs() -> Iterator[tuple[str, dict[str, Any], tuple[Any, ...]]]:
    """The number fields of two shipped specs, with every optional number field given."""
    boundary = yaml.safe_load((SEARCH_SPACES / "boundary_c50.yaml").read_text())
    boundary["search"]["target_error"] = 0.02
    asha = yaml.safe_load((SEARCH_SPACES / "smoke.yaml").read_text())
    asha["space"]["batch_size"] = {"int": [128, 512]}
    asha["scheduler"] = {
        "name": "asha",
        "metric": "etf_distance",
        "mode": "min",
        "grace_period": 1,
        "reduction_factor": 3,
    }
    for kind, raw in (("boundary", boundary), ("asha", asha)):
        raw |= {"resources": {"cpu": 1, "gpu": 0}, "checkpoint_every": 1, "max_failures": 2}
        parse_study_spec(raw)  # valid as it is
        for path in number_paths(raw):
            yield f"{kind}:{'.'.join(map(str, path))}", raw, path


TRAIN_CASES = list(train_configs())
SPEC_CASES = list(study_specs())


def test_the_walk_finds_the_fields_that_matter() -> None:
    train_fields = {name.partition(":")[2] for name, _, _ in TRAIN_CASES}
    assert {"optimizer.lr", "seed", "epochs", "data.subset", "cpu_threads"} <= train_fields
    spec_fields = {name.partition(":")[2] for name, _, _ in SPEC_CASES}
    assert {"resources.gpu", "resources.cpu", "search.threshold", "max_failures"} <= spec_fields
    assert {"scheduler.grace_period", "scheduler.reduction_factor"} <= spec_fields
    assert {"space.batch_size.int.0", "space.loss.tau.uniform.1"} <= spec_fields


@pytest.mark.parametrize(("name", "raw", "path"), TRAIN_CASES, ids=[c[0] for c in TRAIN_CASES])
def test_train_config_number_fields_refuse_booleans(
    name: str, raw: dict[str, Any], path: tuple[Any, ...]
) -> None:
    with pytest.raises(UserError, match="expected a number, not a boolean"):
        parse_train_config(with_true_at(raw, path))


@pytest.mark.parametrize(("name", "raw", "path"), SPEC_CASES, ids=[c[0] for c in SPEC_CASES])
def test_study_spec_number_fields_refuse_booleans(
    name: str, raw: dict[str, Any], path: tuple[Any, ...]
) -> None:
    with pytest.raises(UserError, match="expected a number, not a boolean"):
        parse_study_spec(with_true_at(raw, path))
