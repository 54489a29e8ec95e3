"""Translate a study spec into Tune's search space, search algorithm and scheduler."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler
from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter, Searcher

from hcl_study.study.spec import SpaceEntry, StudySpec

if TYPE_CHECKING:
    from hcl_study.study.boundary_search import BoundarySearcher


def tune_domain(entry: SpaceEntry) -> Any:
    """One space entry as a Tune domain (`int` bounds are inclusive)."""
    kind = entry.kind
    values = entry.values_of(kind)
    if kind == "uniform":
        return tune.uniform(*values)
    if kind == "loguniform":
        return tune.loguniform(*values)
    if kind == "int":
        return tune.randint(values[0], values[1] + 1)
    if kind == "choice":
        return tune.choice(list(values))
    return tune.grid_search(list(values))


def param_space(spec: StudySpec) -> dict[str, Any]:
    """Tune's `param_space`: the searched parameters under their dotted names."""
    if spec.search.algorithm == "boundary":
        return {}  # the boundary searcher owns its space
    if spec.search.algorithm == "grid":
        return {
            path: tune.grid_search(list(entry.grid or entry.choice or []))
            for path, entry in spec.space.items()
        }
    return {path: tune_domain(entry) for path, entry in spec.space.items()}


def build_search_algorithm(spec: StudySpec) -> Searcher | BasicVariantGenerator:
    search = spec.search
    if search.algorithm == "optuna":
        from optuna.samplers import TPESampler
        from ray.tune.search.optuna import OptunaSearch

        searcher = OptunaSearch(
            sampler=TPESampler(seed=search.seed),  # OptunaSearch ignores `seed` with a sampler
            metric=spec.objective.metric,
            mode=spec.objective.mode,
        )
        return ConcurrencyLimiter(searcher, max_concurrent=search.max_concurrent)
    if search.algorithm == "boundary":
        return ConcurrencyLimiter(boundary_searcher(spec), max_concurrent=search.max_concurrent)
    return BasicVariantGenerator(random_state=search.seed, max_concurrent=search.max_concurrent)


def boundary_searcher(spec: StudySpec) -> BoundarySearcher:
    """The level-set searcher: uniform/loguniform entries are axes, choices categories."""
    from hcl_study.levelset import Axis
    from hcl_study.study.boundary_search import BoundarySearcher

    axes, categories = [], {}
    for path, entry in spec.space.items():
        if entry.kind == "choice":
            categories[path] = list(entry.choice or [])
            continue
        low, high = entry.values_of(entry.kind)
        axes.append(Axis(path, low, high, log=entry.kind == "loguniform", offset=entry.offset))
    return BoundarySearcher(
        axes,
        metric=spec.search.order_parameter or "",
        threshold=spec.search.threshold or 0.0,
        categories=categories,
        initial_design=spec.search.initial_design,
        seed=spec.search.seed,
        target_error=spec.search.target_error,
    )


def build_scheduler(spec: StudySpec) -> TrialScheduler:
    scheduler = spec.scheduler
    if scheduler.name == "fifo":
        return FIFOScheduler()
    return ASHAScheduler(
        metric=scheduler.metric or spec.objective.metric,
        mode=scheduler.mode or spec.objective.mode,
        time_attr="training_iteration",
        max_t=spec.max_epochs,
        grace_period=scheduler.grace_period,
        reduction_factor=scheduler.reduction_factor,
    )


def num_samples(spec: StudySpec) -> int:
    """Tune's `num_samples`: the grid is expanded by Tune, so one pass of it."""
    return 1 if spec.search.algorithm == "grid" else spec.num_trials
