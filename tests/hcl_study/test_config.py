"""Every number field of a training config allows its bounds and refuses what lies beyond
them, and every number field of a config or a study spec refuses a boolean.

pydantic's lax mode would read `true` as 1 (`resources.gpu: true` would reserve a GPU); the
fields are found by walking valid configs, so a new field is covered without a new case,
and a new field without a case in `BOUNDS` fails `test_every_number_field_has_its_bounds`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from hcl_study.config import (
    LatentClassData,
    flatten,
    load_yaml,
    parse_assignment,
    parse_train_config,
    with_assignments,
    with_overrides,
)
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


# (data set, field, the value at its bound, the nearest value beyond it). Fields outside
# `data` are the same for every data set and are checked with the first one.
BOUNDS: list[tuple[str, str, float, float]] = [
    ("latent_class", "data.num_classes", 2, 1),
    ("latent_class", "data.input_dim", 1, 0),
    ("latent_class", "data.num_train", 2, 1),
    ("latent_class", "data.num_test", 1, 0),
    ("latent_class", "data.class_spread", 1e-9, 0.0),
    ("latent_class", "data.noise", 0.0, -1e-9),
    ("latent_class", "data.seed", 0, -1),
    ("latent_class", "data.seed", 2**32 - 1, 2**32),
    ("digits", "data.test_fraction", 0.01, 0.0099),
    ("digits", "data.test_fraction", 0.99, 0.9901),
    ("digits", "data.seed", 2**32 - 1, 2**32),
    ("cifar10", "data.subset", 2, 1),
    ("image_folder", "data.num_classes", 2, 1),
    ("image_folder", "data.image_size", 8, 7),
    ("image_folder", "data.test_fraction", 1e-9, 0.0),
    ("image_folder", "data.test_fraction", 1 - 1e-9, 1.0),
    ("image_folder", "data.seed", 0, -1),
    ("latent_class", "model.width", 1, 0),
    ("latent_class", "model.depth", 1, 0),
    ("latent_class", "model.head_hidden", 1, 0),
    ("latent_class", "model.feature_dim", 1, 0),
    ("latent_class", "loss.beta", 0.0, -1e-9),
    ("latent_class", "loss.tau", 1e-9, 0.0),
    ("latent_class", "loss.negative_scale", 1e-9, 0.0),
    ("latent_class", "loss.num_negatives", 1, 0),
    ("latent_class", "optimizer.lr", 1e-12, 0.0),
    ("latent_class", "optimizer.weight_decay", 0.0, -1e-9),
    ("latent_class", "optimizer.momentum", 0.0, -1e-9),
    ("latent_class", "optimizer.momentum", 0.999, 1.0),
    ("latent_class", "batch_size", 2, 1),
    ("latent_class", "eval_batch_size", 1, 0),
    ("latent_class", "epochs", 1, 0),
    ("latent_class", "seed", 0, -1),
    ("latent_class", "seed", 2**32 - 1, 2**32),
    ("latent_class", "num_workers", 0, -1),
    ("latent_class", "cpu_threads", 1, 0),
    ("latent_class", "cpu_threads", 1024, 1025),
]


def test_every_number_field_has_its_bounds() -> None:
    checked = {(data, field) if field.startswith("data.") else field for data, field, *_ in BOUNDS}
    for name in (case[0] for case in TRAIN_CASES):
        data, _, field = name.partition(":")
        assert ((data, field) if field.startswith("data.") else field) in checked, name
    assert "model.feature_dim" in checked, "an optional number field (None by default)"


@pytest.mark.parametrize(
    ("data_set", "field", "allowed", "refused"),
    BOUNDS,
    ids=[f"{data}:{field}={allowed}" for data, field, allowed, _ in BOUNDS],
)
def test_number_fields_allow_their_bound_and_refuse_what_lies_beyond(
    data_set: str, field: str, allowed: float, refused: float
) -> None:
    data = next(data for data in DATA_SETS if data["name"] == data_set)
    config = parse_train_config(with_overrides({"data": data}, {field: allowed}))
    assert flatten(config.model_dump())[field] == allowed
    with pytest.raises(UserError, match=rf"(^|: ){re.escape(field)}\b"):
        parse_train_config(with_overrides({"data": data}, {field: refused}))


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


def test_an_assignment_splits_at_its_first_equals_sign_and_its_path_is_trimmed() -> None:
    assert parse_assignment(" data.root =/data/a=b") == ("data.root", "/data/a=b")
    assert parse_assignment("loss.beta=[1, 2]") == ("loss.beta", [1, 2])
    for text in ("loss..beta=1", ".beta=1", "loss.=1"):
        with pytest.raises(ValueError, match="non-empty key path"):
            parse_assignment(text)
    merged = with_assignments({"loss": {"beta": 0}}, ["loss.beta=5", "loss.tau=0.5"])
    assert merged == {"loss": {"beta": 5, "tau": 0.5}}


def test_a_yaml_merge_key_may_be_overridden_but_no_other_key_repeated(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("defaults: &d {beta: 1, tau: 0.5}\nloss:\n  <<: *d\n  beta: 30\n")
    assert load_yaml(path)["loss"] == {"beta": 30, "tau": 0.5}
    path.write_text("loss: {beta: 1, beta: 30}\n")
    with pytest.raises(yaml.constructor.ConstructorError, match="found duplicate key 'beta'"):
        load_yaml(path)


def test_a_data_section_without_name_is_of_the_default_data_set() -> None:
    """As for any missing key: `--set data.num_classes=4` changes the default data set."""
    assert parse_train_config({"data": {"num_classes": 4}}).data == LatentClassData(num_classes=4)
    with pytest.raises(
        UserError, match=r"data\.root: unknown key; data\.root belongs to data\.name cifar10"
    ):
        parse_train_config({"data": {"root": "/data/cifar-100-python"}})
