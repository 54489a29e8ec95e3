"""Error messages, exactly: one line per problem, named as in the YAML, with a hint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from hcl_study.config import parse_train_config
from hcl_study.errors import UserError, describe_validation_error, describe_yaml_error
from hcl_study.study.spec import parse_study_spec

SMOKE = Path(__file__).resolve().parents[2] / "search_spaces" / "smoke.yaml"


def yaml_problem(text: str) -> str:
    with pytest.raises(yaml.YAMLError) as raised:
        yaml.safe_load(text)
    return describe_yaml_error(raised.value)


def test_a_yaml_error_is_one_line_with_its_context_and_place() -> None:
    assert yaml_problem("data: {a: 1") == (
        "while parsing a flow mapping: expected ',' or '}', but got '<stream end>' "
        "(line 1, column 12)"
    )
    assert yaml_problem("a: b: c") == "mapping values are not allowed here (line 1, column 5)"
    assert describe_yaml_error(yaml.YAMLError("no place\n   known")) == "no place known"


def config_error(raw: dict[str, Any]) -> str:
    with pytest.raises(UserError) as raised:
        parse_train_config(raw)
    return str(raised.value)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (  # two close siblings
            {"loss": {"self_negativ": True}},
            "loss.self_negativ: unknown key; did you mean loss.self_negative or "
            "loss.self_positive? (allowed here: name, beta, tau, estimator, negative_scale, "
            "num_negatives, self_positive, self_negative) (got True)",
        ),
        (  # a key of other data sets, and of the run: where it belongs, no misleading guess
            {"data": {"name": "cifar10", "root": "x", "seed": 1}},
            "data.seed: unknown key; data.seed belongs to data.name latent_class or digits or "
            "image_folder (allowed here: name, root, augment, subset) (got 1)",
        ),
        ({"data": {"name": "image_folder", "num_classes": 3}}, "data.root: Field required"),
        ({"epochs": {"a": 1}}, "epochs: Input should be a valid integer"),  # no dict echoed
        ({"loss": 5}, "loss: Input should be a valid dictionary or instance of LossConfig (got 5)"),
    ],
    ids=["close-siblings", "other-data-set", "missing", "dict-given", "scalar-given"],
)
def test_config_errors_name_the_field_what_is_allowed_and_what_was_given(
    raw: dict[str, Any], message: str
) -> None:
    assert config_error(raw) == f"Invalid config: {message}."


@pytest.mark.parametrize(
    ("space", "message"),
    [
        (  # a position in a tuple is not part of the field's name
            {"loss.beta": {"uniform": [0.0, float("inf")]}},
            "space.loss.beta.uniform: Input should be a finite number (got inf)",
        ),
        (  # a range of one value
            {"loss.beta": {"uniform": [0.0]}},
            "space.loss.beta.uniform: too few values (got [0.0])",
        ),
        (  # a validator's own words, without pydantic's "Value error, "
            {"loss.beta": {"loguniform": [0.0, 30.0]}},
            "space.loss.beta: loguniform needs low + offset > 0 (use offset for a range from 0)",
        ),
    ],
    ids=["tuple-position", "short-range", "validator-words"],
)
def test_spec_errors_name_the_field_as_written(space: dict[str, Any], message: str) -> None:
    with pytest.raises(UserError) as raised:
        parse_study_spec(yaml.safe_load(SMOKE.read_text()) | {"space": space})
    assert str(raised.value) == f"Invalid study spec: {message}."


def test_an_unknown_key_of_a_model_not_given_asks_to_check_its_spelling() -> None:
    class Point(BaseModel):
        model_config = ConfigDict(extra="forbid")
        x: int = 0

    with pytest.raises(ValidationError) as raised:
        Point.model_validate({"y": 1, "x": "a"})
    assert describe_validation_error(raised.value, source="point", prefix="p.") == (
        "Invalid point: p.x: Input should be a valid integer, unable to parse string as an "
        "integer (got 'a'); p.y: unknown key (check the spelling; see the documented fields) "
        "(got 1)."
    )
