"""Typed, validated training configuration (the YAML format of `hcl-study train`).

Every model forbids unknown keys, so a typo is an error that names the field instead of a
silently ignored setting. The same models are embedded in study specs (`base:`), so one
definition validates both.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from hcl_study.errors import UserError, describe_validation_error, describe_yaml_error

Normalization = Literal["none", "ball", "sphere"]


def _not_a_boolean(value: Any) -> Any:
    # pydantic's lax mode reads `epochs: true` as 1; its strict mode would also refuse the
    # numpy integers that Ray Tune samples, so only booleans are refused here.
    if isinstance(value, bool):
        raise ValueError("expected a number, not a boolean")
    return value


Integer = Annotated[int, BeforeValidator(_not_a_boolean)]
Number = Annotated[float, BeforeValidator(_not_a_boolean)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


def _seed(meaning: str) -> Any:
    """A seed field: 0 <= seed < 2**32, numpy's seed range."""
    return Field(0, ge=0, lt=2**32, description=meaning)


class LatentClassData(_Strict):
    """The paper's latent-class model: Gaussian classes around seeded random means."""

    name: Literal["latent_class"] = "latent_class"
    num_classes: Integer = Field(50, ge=2, description="C, the number of classes")
    input_dim: Integer = Field(32, ge=1, description="dimension of the inputs")
    num_train: Integer = Field(5000, ge=2, description="training samples")
    num_test: Integer = Field(1000, ge=1, description="test samples")
    class_spread: Number = Field(1.0, gt=0, description="sigma_mu, the scale of the class means")
    noise: Number = Field(1.0, ge=0, description="sigma, the within-class noise")
    seed: Integer = _seed("of the class means and the samples")


class DigitsData(_Strict):
    """scikit-learn's bundled 8x8 digits (1,797 images, 10 classes), standardized."""

    name: Literal["digits"] = "digits"
    test_fraction: Number = Field(
        0.25, ge=0.01, le=0.99, description="each of the 10 classes needs test and training images"
    )
    seed: Integer = _seed("of the test split")

    @property
    def num_classes(self) -> int:
        return 10


class CifarData(_Strict):
    """A local, already extracted copy of the official CIFAR "python version" archive."""

    name: Literal["cifar10", "cifar100"]
    root: str = Field(
        description="the extracted archive: data_batch_1-5 and test_batch, or train and test"
    )
    augment: bool = Field(False, description="SimCLR's augmentation of the training images")
    subset: Integer | None = Field(
        None, ge=2, description="use only the first N training images (a batch needs 2)"
    )

    @property
    def num_classes(self) -> int:
        return 10 if self.name == "cifar10" else 100


class ImageFolderData(_Strict):
    """A torchvision ImageFolder tree (`root/<class>/<image>`), e.g. Tiny-ImageNet."""

    name: Literal["image_folder"] = "image_folder"
    root: str = Field(description="the tree of class folders")
    num_classes: Integer = Field(
        ge=2, description="number of class folders (e.g. 200 for Tiny-ImageNet); checked on load"
    )
    test_root: str | None = Field(None, description="a tree of the same classes for the test set")
    image_size: Integer = Field(32, ge=8, description="images are resized to this square size")
    augment: bool = Field(False, description="SimCLR's augmentation of the training images")
    test_fraction: Number = Field(0.2, gt=0, lt=1, description="split used when test_root is unset")
    seed: Integer = _seed("of the test_fraction split")


DataConfig = Annotated[
    LatentClassData | DigitsData | CifarData | ImageFolderData, Field(discriminator="name")
]
DATA_NAMES: frozenset[str] = frozenset(
    name
    for variant in (LatentClassData, DigitsData, CifarData, ImageFolderData)
    for name in get_args(variant.model_fields["name"].annotation)
)


class ModelConfig(_Strict):
    """Encoder plus projection head. `feature_dim` defaults to num_classes - 1 (the paper)."""

    name: Literal["mlp", "resnet18", "resnet50"] = Field(
        "mlp", description="the encoder: an MLP, or a ResNet with the CIFAR stem (image data)"
    )
    width: Integer = Field(256, ge=1, description="MLP hidden width")
    depth: Integer = Field(2, ge=1, description="number of MLP hidden layers")
    head_hidden: Integer = Field(512, ge=1, description="hidden width of the projection head")
    feature_dim: Integer | None = Field(
        None, ge=1, description="d, the dimension of the features the loss and metrics see"
    )


class LossConfig(_Strict):
    """SCL/UCL with hardness beta (beta = 0 is the plain loss)."""

    name: Literal["scl", "ucl"] = Field(
        "scl", description="negatives: the other classes (scl), or the whole batch (ucl)"
    )
    beta: Number = Field(0.0, ge=0, description="hardness β: weights w ∝ exp(β s) on negatives")
    tau: Number = Field(1.0, gt=0, description="temperature τ")
    estimator: Literal["reweight", "sample"] = Field(
        "reweight",
        description="the exact expectation under w, or num_negatives draws from w per pair",
    )
    negative_scale: Number = Field(1.0, gt=0, description="Q, the weight of the negatives' term")
    num_negatives: Integer = Field(256, ge=1, description="K, negatives drawn per pair (sample)")
    self_positive: bool = Field(True, description="the anchor is among its own positives")
    self_negative: bool = Field(
        True, description="UCL: the anchor is among its own negatives, as in the reference code"
    )


class OptimizerConfig(_Strict):
    """The optimizer of the encoder and projection head."""

    name: Literal["adam", "sgd"] = "adam"
    lr: Number = Field(1e-3, gt=0, description="learning rate")
    weight_decay: Number = Field(0.0, ge=0, description="the optimizer's weight_decay (L2)")
    momentum: Number = Field(0.9, ge=0, lt=1, description="SGD only")


class TrainConfig(_Strict):
    """One training run."""

    data: DataConfig = Field(default_factory=LatentClassData)
    model: ModelConfig = Field(default_factory=ModelConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    normalization: Normalization = Field(
        "ball", description="of the features: none, onto the unit ball, or onto the sphere"
    )
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    batch_size: Integer = Field(512, ge=2, description="training batch")
    eval_batch_size: Integer = Field(
        2048, ge=1, description="samples per forward pass when measuring the geometry"
    )
    epochs: Integer = Field(60, ge=1, description="the geometry is measured after each")
    seed: Integer = _seed("of the model's initialization, the shuffling and the loss's draws")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="auto: CUDA when there is a GPU (in a study: one reserved)"
    )
    bf16: bool = Field(False, description="bf16 autocast; used on CUDA only")
    num_workers: Integer = Field(0, ge=0, description="DataLoader workers for image data")
    cpu_threads: Integer = Field(
        1,
        ge=1,
        le=1024,
        description="torch CPU threads; float sums depend on it, so it is part of the seed",
    )

    @property
    def num_classes(self) -> int:
        return self.data.num_classes

    @property
    def feature_dim(self) -> int:
        return self.model.feature_dim or self.num_classes - 1

    @model_validator(mode="before")
    @classmethod
    def _data_name_defaults_to_latent_class(cls, raw: Any) -> Any:
        """A `data` section without `name` is of the default data set, as a missing key."""
        data = raw.get("data") if isinstance(raw, dict) else None
        if isinstance(data, dict) and "name" not in data:
            return {**raw, "data": {"name": "latent_class", **data}}
        return raw

    @model_validator(mode="after")
    def _feature_dim_fits(self) -> TrainConfig:
        if self.model.feature_dim is None and self.num_classes - 1 < 1:
            raise ValueError("model.feature_dim must be given when num_classes < 2")
        return self


def set_by_path(tree: dict[str, Any], path: str, value: Any) -> None:
    """Set `tree["a"]["b"] = value` for `path = "a.b"`, creating missing levels."""
    *parents, leaf = path.split(".")
    node = tree
    for key in parents:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ValueError(f"{path}: '{key}' is a value, not a section")
        node = child
    node[leaf] = value


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"a": {"b": 1}} -> {"a.b": 1}`."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{path}."))
        else:
            flat[path] = value
    return flat


def with_overrides(raw: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of `raw` with dotted-path overrides applied."""
    merged = copy.deepcopy(raw)
    for path, value in overrides.items():
        set_by_path(merged, path, value)
    return merged


def with_assignments(raw: dict[str, Any], assignments: Sequence[str]) -> dict[str, Any]:
    """A deep copy of `raw` with `--set key.path=value` assignments applied in order.

    Raises:
        UserError: An assignment is malformed, its value is not YAML, or its path runs
            through a value (`--set epochs.max=3`); the message quotes it as given.
    """
    merged = copy.deepcopy(raw)
    for text in assignments:
        try:
            set_by_path(merged, *parse_assignment(text))
        except ValueError as error:
            raise UserError(f"--set {text}: {error}") from None
    return merged


def parse_assignment(text: str) -> tuple[str, Any]:
    """`"loss.beta=5"` -> `("loss.beta", 5)`; the value is parsed as YAML."""
    if "=" not in text:
        raise ValueError(f"--set expects key.path=value, got {text!r}")
    path, value = text.split("=", 1)
    path = path.strip()
    if not all(path.split(".")):
        raise ValueError(f"--set expects key.path=value with a non-empty key path, got {text!r}")
    try:
        return path, yaml.safe_load(value)
    except yaml.YAMLError as error:
        problem = describe_yaml_error(error)
        raise ValueError(f"the value {value!r} is not valid YAML: {problem}") from None


class _StrictLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that refuses a key given twice in one mapping (YAML says keys are
    unique; PyYAML would silently keep the last value)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor` may be overridden
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # unhashable key: SafeLoader reports it
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    f"found duplicate key {key!r}", key_node.start_mark,
                )  # fmt: skip
        return super().construct_mapping(node, deep=deep)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Safe-load a YAML mapping (Python object tags and duplicate keys are refused)."""
    with open(path, encoding="utf-8") as handle:
        loaded = yaml.load(handle, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ValueError(
            f"{path}: expected a mapping at the top level, got {type(loaded).__name__}"
        )
    return loaded


def describe_train_config_error(error: ValidationError, *, source: str, prefix: str) -> str:
    """`describe_validation_error` for a `TrainConfig`, with fields named as in its YAML."""
    return describe_validation_error(
        error, source=source, prefix=prefix, variant_tags=DATA_NAMES, model=TrainConfig
    )


def parse_train_config(
    raw: dict[str, Any], *, source: str = "config", prefix: str = ""
) -> TrainConfig:
    """Validate a raw mapping; a bad field is a `UserError` naming it (after `prefix`)."""
    try:
        return TrainConfig.model_validate(raw)
    except ValidationError as error:
        raise UserError(describe_train_config_error(error, source=source, prefix=prefix)) from None


def read_yaml_file(path: str | Path) -> dict[str, Any]:
    """`load_yaml` with every failure turned into a `UserError` naming the file."""
    try:
        return load_yaml(path)
    except FileNotFoundError:
        raise UserError(f"File not found: {path}. Give the path of a YAML file.") from None
    except UnicodeDecodeError as error:
        raise UserError(f"{path} is not a UTF-8 text file ({error}); give a YAML file.") from None
    except OSError as error:  # a folder, no permission, ...
        raise UserError(
            f"Cannot read {path}: {error.strerror}. Give a readable YAML file."
        ) from None
    except yaml.YAMLError as error:
        raise UserError(
            f"{path} is not valid YAML (only plain YAML is accepted; Python object tags "
            f"are refused): {describe_yaml_error(error)}"
        ) from None
    except ValueError as error:
        raise UserError(str(error)) from None
