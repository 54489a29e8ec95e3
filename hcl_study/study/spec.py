"""Study specs (`search_spaces/*.yaml`): validated in full before anything starts."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from hcl_study.config import (
    Integer,
    Number,
    TrainConfig,
    describe_train_config_error,
    flatten,
    parse_train_config,
    read_yaml_file,
    with_overrides,
)
from hcl_study.errors import UserError, describe_validation_error
from hcl_study.geometry import METRIC_KEYS

TRAINING_METRICS = (
    "loss",
    "loss_hard",
    "loss_plain",
    "ncm_accuracy_test",
    "regime_code",
    "epoch_seconds",
)
REPORTED_METRICS: tuple[str, ...] = tuple(dict.fromkeys((*TRAINING_METRICS, *METRIC_KEYS)))
DISTRIBUTIONS = ("uniform", "loguniform", "int", "choice", "grid")
BOUNDARY_SEARCH_FIELDS = ("order_parameter", "threshold", "initial_design", "target_error")
ASHA_FIELDS = ("metric", "mode", "grace_period", "reduction_factor")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class SpaceEntry(BaseModel):
    """One searchable parameter: exactly one of the distributions.

    `offset` (with `loguniform`, boundary search only) makes the axis log(x + offset),
    so that it may start at 0 (e.g. hardness β ∈ [0, 50]).
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)

    uniform: tuple[Number, Number] | None = Field(None, description="[low, high], uniform")
    loguniform: tuple[Number, Number] | None = Field(
        None, description="[low, high], uniform in log(x + offset)"
    )
    integer: tuple[Integer, Integer] | None = Field(
        None, alias="int", description="[low, high], integers, both ends included"
    )
    choice: list[Any] | None = Field(None, min_length=1, description="values drawn from")
    grid: list[Any] | None = Field(
        None, min_length=1, description="values each run once (grid search)"
    )
    offset: Number = Field(0.0, ge=0, description="loguniform, boundary search only")

    @model_validator(mode="after")
    def _exactly_one(self) -> SpaceEntry:
        given = [name for name in DISTRIBUTIONS if self.values_of(name) is not None]
        if len(given) != 1:
            raise ValueError(
                f"give exactly one distribution out of {', '.join(DISTRIBUTIONS)} "
                f"(got {given or 'none'})"
            )
        bounds = self.uniform or self.loguniform or self.integer
        if bounds is not None and not bounds[0] < bounds[1]:
            raise ValueError(f"bounds must be [low, high] with low < high (got {list(bounds)})")
        if self.loguniform is not None and self.loguniform[0] + self.offset <= 0:
            raise ValueError("loguniform needs low + offset > 0 (use offset for a range from 0)")
        if self.offset and self.loguniform is None:
            raise ValueError("offset applies to loguniform only")
        return self

    def values_of(self, distribution: str) -> Any:
        return getattr(self, "integer" if distribution == "int" else distribution)

    @property
    def kind(self) -> str:
        return next(name for name in DISTRIBUTIONS if self.values_of(name) is not None)

    def values_to_check(self) -> list[Any]:
        """Bounds and an inner point of a range, or the listed values.

        If these are valid, every sampled value is: the inner point of a `uniform` or
        `loguniform` range is not an integer, so an integer field refuses it.
        """
        values = list(self.values_of(self.kind))
        if self.kind in ("uniform", "loguniform"):
            low, high = values
            values.append(low + (high - low) / math.pi)
        return values


class SearchConfig(_Strict):
    """How the trials' configs are chosen."""

    algorithm: Literal["optuna", "random", "grid", "boundary"] = Field(
        "optuna", description="TPE, random draws, the grid, or the NC/DC boundary's level set"
    )
    num_samples: Integer | None = Field(
        None, ge=1, description="trials (required); for grid, the grid size or left out"
    )
    max_concurrent: Integer = Field(2, ge=1, description="trials running at once")
    seed: Integer = Field(0, description="of the search's own draws")
    order_parameter: str | None = Field(None, description="boundary search: metric to threshold")
    threshold: Number | None = Field(None, description="boundary search: level of the boundary")
    initial_design: Integer = Field(8, ge=2, description="boundary search: space-filling points")
    target_error: Number | None = Field(
        None,
        gt=0,
        lt=0.5,
        description="boundary search: stop once every boundary's expected error is below this",
    )


class SchedulerConfig(_Strict):
    """Whether trials run to their end (fifo) or are stopped early (ASHA)."""

    name: Literal["fifo", "asha"] = Field("fifo", description="boundary search needs fifo")
    metric: str | None = Field(
        None, description="asha: the metric it compares (the objective's by default)"
    )
    mode: Literal["min", "max"] | None = Field(None, description="asha: the objective's by default")
    grace_period: Integer = Field(1, ge=1, description="asha: epochs before a trial may stop")
    reduction_factor: Number = Field(3.0, gt=1, description="asha: 1 in this many goes on")


class ObjectiveConfig(_Strict):
    """What the search optimizes, and how the best trial is chosen."""

    metric: str = Field("erank_means", description="a reported metric, at the trial's end")
    mode: Literal["min", "max"] = "max"


class ResourcesConfig(_Strict):
    """What each trial reserves on the Ray cluster."""

    cpu: Number = Field(1.0, gt=0, description="CPUs (fractions allowed)")
    gpu: Number = Field(0.0, ge=0, description="GPUs (fractions share one)")


class StudySpec(_Strict):
    """A hyperparameter study: a base training config, a space and how to search it."""

    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        max_length=100,
        description="the MLflow experiment, and the folder studies/NAME",
    )
    base: dict[str, Any] = Field(
        default_factory=dict, description="the training config every trial starts from (config.md)"
    )
    space: dict[str, SpaceEntry] = Field(
        description="dotted path of a base field (loss.beta) -> one entry below"
    )
    search: SearchConfig = Field(default_factory=SearchConfig)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    objective: ObjectiveConfig = Field(default_factory=ObjectiveConfig)
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    checkpoint_every: Integer = Field(5, ge=1, description="epochs between trial checkpoints")
    max_failures: Integer = Field(2, ge=0, description="retries of a crashed trial")
    tracking_uri: str | None = Field(
        None, description="MLflow; else MLFLOW_TRACKING_URI, else studies/NAME/mlflow.db"
    )
    storage_path: str | None = Field(
        None, description="Tune's state and checkpoints; else studies/NAME/ray"
    )

    @field_validator("space", mode="before")
    @classmethod
    def _keys_are_dotted_paths(cls, space: Any) -> Any:
        for key, entry in space.items() if isinstance(space, dict) else ():
            if not isinstance(key, str):
                raise ValueError(
                    f"space keys are dotted paths of training-config fields such as "
                    f"'loss.beta'; got {key!r} (a YAML {type(key).__name__}); quote it if "
                    f"it is a name"
                )
            nested = (
                isinstance(entry, dict) and entry and not set(entry) & {*DISTRIBUTIONS, "offset"}
            )
            if nested and all(isinstance(value, dict) for value in entry.values()):
                inner = next(iter(entry))
                raise ValueError(
                    f"space keys are dotted paths of training-config fields: write "
                    f"'{key}.{inner}: {{uniform: ...}}', not '{key}: {{{inner}: ...}}'"
                )
        return space

    @property
    def base_config(self) -> TrainConfig:
        return TrainConfig.model_validate(self.base)

    def trial_config(self, params: dict[str, Any]) -> TrainConfig:
        """The training config of one trial: base with dotted-key params applied."""
        return TrainConfig.model_validate(with_overrides(self.base, params))

    def grid_size(self) -> int:
        return math.prod(len(entry.grid or entry.choice or []) for entry in self.space.values())

    @property
    def num_trials(self) -> int:
        if self.search.algorithm == "grid":
            return self.grid_size()
        return self.search.num_samples or 1

    @property
    def max_epochs(self) -> int:
        """The longest trial: the largest `epochs` of the space, else the base's."""
        return self.largest("epochs")

    def largest(self, field: str) -> Any:
        """The largest value of a top-level training field over the space, else the base's."""
        if field in self.space:
            return max(self.space[field].values_of(self.space[field].kind))
        return getattr(self.base_config, field)

    def num_categories(self) -> int:
        """Combinations of the `choice` axes (each gets its own boundary)."""
        return math.prod(len(e.choice or []) for e in self.space.values() if e.kind == "choice")


def _check_metric(field: str, metric: str | None) -> None:
    if metric is not None and metric not in REPORTED_METRICS:
        raise UserError(
            f"Invalid study spec: {field}: unknown metric {metric!r}; "
            f"allowed: {', '.join(REPORTED_METRICS)}."
        )


def _check_rules(spec: StudySpec, source: str) -> None:
    """Rules that need more than one field at a time."""
    if not spec.space:
        raise UserError(
            f"Invalid {source}: space: the search space is empty; give at least one parameter, "
            "e.g. loss.beta: {uniform: [0, 30]}."
        )
    algorithm = spec.search.algorithm
    kinds = {path: entry.kind for path, entry in spec.space.items()}
    if algorithm == "grid":
        enumerable = [p for p, k in kinds.items() if k not in ("grid", "choice")]
        if enumerable:
            raise UserError(
                f"Invalid {source}: space.{enumerable[0]}: search.algorithm 'grid' needs grid or "
                f"choice values for every parameter (got {kinds[enumerable[0]]})."
            )
        size = spec.grid_size()
        if spec.search.num_samples not in (None, size):
            raise UserError(
                f"Invalid {source}: search.num_samples: a grid study runs each of its {size} grid "
                f"points once; leave num_samples out or set it to {size} "
                f"(got {spec.search.num_samples})."
            )
    else:
        grids = [p for p, k in kinds.items() if k == "grid"]
        if grids:
            raise UserError(
                f"Invalid {source}: space.{grids[0]}: 'grid' values need search.algorithm: grid; "
                f"use 'choice' with {algorithm}."
            )
    _check_fields_apply(spec, source)
    offsets = [p for p, e in spec.space.items() if e.offset]
    if offsets and algorithm != "boundary":
        raise UserError(
            f"Invalid {source}: space.{offsets[0]}.offset: log axes with an offset are for "
            "search.algorithm: boundary; use loguniform with low > 0 otherwise."
        )
    if algorithm == "boundary":
        if spec.scheduler.name != "fifo":
            raise UserError(
                f"Invalid {source}: scheduler.name: boundary search needs full-length trials "
                "(its order parameter is read at the last epoch), so only 'fifo' is allowed."
            )
        if spec.search.order_parameter is None or spec.search.threshold is None:
            raise UserError(
                f"Invalid {source}: search.order_parameter and search.threshold are required "
                "with search.algorithm: boundary (e.g. erank_ratio and 0.9)."
            )
        _check_metric("search.order_parameter", spec.search.order_parameter)
        continuous = [p for p, k in kinds.items() if k in ("uniform", "loguniform")]
        if not continuous:
            raise UserError(
                f"Invalid {source}: space: boundary search needs at least one uniform or "
                "loguniform axis."
            )
        if [p for p, k in kinds.items() if k == "int"]:
            raise UserError(
                f"Invalid {source}: space: boundary search takes uniform, loguniform "
                "and choice axes."
            )
        if spec.search.target_error is not None and len(continuous) > 2:
            raise UserError(
                f"Invalid {source}: search.target_error: the expected error is measured on a "
                f"grid of 1 or 2 continuous axes, and this space has {len(continuous)}; leave "
                "target_error out and set num_samples."
            )
        _check_boundary_budget(spec, source)
    _check_metric("objective.metric", spec.objective.metric)
    if spec.scheduler.name == "asha":
        _check_metric("scheduler.metric", spec.scheduler.metric or spec.objective.metric)


def _check_fields_apply(spec: StudySpec, source: str) -> None:
    """Refuse settings that the chosen algorithm or scheduler would silently ignore."""
    algorithm = spec.search.algorithm
    if algorithm != "grid" and spec.search.num_samples is None:
        raise UserError(
            f"Invalid {source}: search.num_samples: give the number of trials of a "
            f"{algorithm!r} search (e.g. 24); only a grid study knows its own size."
        )
    if algorithm != "boundary":
        ignored = [f for f in BOUNDARY_SEARCH_FIELDS if f in spec.search.model_fields_set]
        if ignored:
            raise UserError(
                f"Invalid {source}: search.{ignored[0]}: applies to search.algorithm: boundary "
                f"only (got {algorithm!r}); remove it, or use the boundary search."
            )
    if spec.scheduler.name != "asha":
        ignored = [f for f in ASHA_FIELDS if f in spec.scheduler.model_fields_set]
        if ignored:
            raise UserError(
                f"Invalid {source}: scheduler.{ignored[0]}: applies to scheduler.name: asha "
                f"only (got {spec.scheduler.name!r}); remove it, or use asha."
            )


def _check_boundary_budget(spec: StudySpec, source: str) -> None:
    """The trials must at least complete every initial design (twice, for target_error)."""
    search = spec.search
    combinations = spec.num_categories()
    design_trials = search.initial_design * combinations
    per_boundary = f"{search.initial_design} design points x {combinations} boundaries"
    num_samples = search.num_samples or 0  # given: see _check_fields_apply
    if num_samples < design_trials:
        raise UserError(
            f"Invalid {source}: search.num_samples: {search.num_samples} trials do not complete "
            f"the initial designs ({per_boundary} = {design_trials}), so no boundary would "
            f"ever be fitted; allowed: at least {design_trials}."
        )
    needed = 2 * design_trials
    if search.target_error is not None and num_samples < needed:
        raise UserError(
            f"Invalid {source}: search.num_samples: target_error is checked once every "
            f"boundary has twice its initial design ({needed} trials), so num_samples (the "
            f"cap) must be at least {needed} (got {search.num_samples})."
        )


def _check_trial_configs(spec: StudySpec, source: str) -> None:
    """The base config and every value the space can draw must be valid training configs."""
    base_keys = set(flatten(spec.base_config.model_dump()))
    base_keys |= {"model.feature_dim"}
    for path in spec.space:
        if path not in base_keys:
            raise UserError(
                f"Invalid {source}: space.{path}: not a training-config field; searchable "
                f"fields are {', '.join(sorted(base_keys))}."
            )
    for path, entry in spec.space.items():
        for value in entry.values_to_check():
            try:
                spec.trial_config({path: value})
            except ValidationError as error:
                detail = describe_train_config_error(error, source="trial config", prefix="base.")
                hint = ""
                if value not in entry.values_of(entry.kind):  # the inner point of a range
                    hint = " (for an integer field use int: [low, high])"
                raise UserError(
                    f"Invalid {source}: space.{path} allows {value!r}{hint}. {detail}"
                ) from None


def parse_study_spec(raw: dict[str, Any], *, source: str = "study spec") -> StudySpec:
    """Validate a raw mapping into a `StudySpec`; any problem is a `UserError`."""
    try:
        spec = StudySpec.model_validate(raw)
    except ValidationError as error:
        raise UserError(describe_validation_error(error, source=source, model=StudySpec)) from None
    parse_train_config(spec.base, source=source, prefix="base.")
    _check_rules(spec, source)
    _check_trial_configs(spec, source)
    if spec.scheduler.name == "asha" and spec.scheduler.grace_period > spec.max_epochs:
        raise UserError(
            f"Invalid {source}: scheduler.grace_period: ASHA's first rung "
            f"({spec.scheduler.grace_period} epochs) must come within the longest trial "
            f"({spec.max_epochs} epochs); allowed: 1 to {spec.max_epochs}."
        )
    devices = {spec.base_config.device}
    if "device" in spec.space:
        devices |= set(spec.space["device"].values_to_check())
    if "cuda" in devices and spec.resources.gpu == 0:
        field = "space.device" if "device" in spec.space else "base.device"
        raise UserError(
            f"Invalid {source}: {field}: a trial would train on 'cuda' without a GPU reserved "
            "for it (resources.gpu is 0); allowed: 'auto' or 'cpu', or set resources.gpu."
        )
    threads, cpus = spec.largest("cpu_threads"), max(1, math.floor(spec.resources.cpu))
    if threads > cpus:
        field = "space.cpu_threads" if "cpu_threads" in spec.space else "base.cpu_threads"
        raise UserError(
            f"Invalid {source}: {field}: a trial would run {threads} torch threads on the "
            f"{spec.resources.cpu:g} CPUs Ray gives it (resources.cpu); allowed: at most "
            f"{cpus}, or raise resources.cpu."
        )
    return spec


def load_study_spec(path: str | Path) -> StudySpec:
    return parse_study_spec(read_yaml_file(path), source=f"study spec {path}")


def space_combinations(spec: StudySpec) -> list[dict[str, Any]]:
    """Every point of a grid study, in a fixed order."""
    paths = list(spec.space)
    values = [spec.space[p].grid or spec.space[p].choice or [] for p in paths]
    return [dict(zip(paths, combo, strict=True)) for combo in itertools.product(*values)]
