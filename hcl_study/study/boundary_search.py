"""A Ray Tune searcher that spends trials where an order parameter crosses a threshold.

Instead of optimizing a metric, `BoundarySearcher` maps the level set {metric = threshold}
(e.g. erank_ratio = 0.9, the NC / DC phase boundary) with few trials:

1. a seeded Latin-hypercube initial design per category combination;
2. a GP regression surrogate of the reported metric (`hcl_study.levelset`);
3. proposals that maximize the SUR level-set acquisition (the expected reduction of the
   misclassification area of the estimated region) over Sobol candidates;
4. pending trials fantasized at the posterior mean (kriging believer), so that concurrent
   proposals (Tune's `max_concurrent_trials` / `ConcurrencyLimiter`) spread out.

The searcher enforces the concurrency limit itself (`set_max_concurrency`) rather than
leaving it to `ConcurrencyLimiter`, because the limiter drops the completions of trials
it no longer tracks, such as errored trials resumed by `Tuner.restore`.

Categorical axes are a product: each combination (e.g. each normalization) gets its own
design and surrogate. The designs take turns (fewest trials first); after them, every
combination proposes its best point and the trial goes to the one whose proposal has the
largest SUR score, the expected shrinkage of its misclassified area (in shares of the
domain, so comparable across combinations; pending trials fantasized). SUR over the
union of the regions thus decides where the next trial helps most, and a combination with
no boundary in the domain (e.g. DC everywhere) stops drawing trials once its GP is sure of
that. A combination without a surrogate after its design (every trial failed, or all
still running) scores 0 and waits. With `target_error`, a combination that has reached it
gets no more trials (until a late result raises its error again).

Failed points: a trial that errors, or whose final metric is missing or non-finite (a
diverged run), is recorded as failed. It is left out of the GP (its value is unknown, not
an extreme), and no later proposal comes within `failure_radius` of it, so a diverging spot
is not re-probed. Around failures the order parameter does not exist, and the GP, which
knows nothing there, would stay uncertain forever: SUR therefore counts each point (of its
reference set and of the expected error) by the chance that a trial there succeeds
(`success_probability`, a kernel estimate from the cell's results and failures), so that
a region where trials keep failing stops drawing them. A trial that errors after
reporting its final epoch (`callbacks.ran_to_its_end`: with no retry left, Tune then
passes no result) counts by that report, as its MLflow run does. An errored trial that Tune
later resumes (`Tuner.restore(..., resume_errored=True)`; hcl-study's own resume does not)
and completes counts as a normal result.
Trials Tune removes before they run are forgotten.

With `target_error`, the search ends (`Searcher.FINISHED`) once every category
combination has at least twice its initial design of results and the expected error of its
level set (so weighted) is at most `target_error`; trials already running finish, and their
results, which may raise the error again, do not reopen the search (Tune starts no trials
after FINISHED; `finished` says so). Before twice the initial design the GP's error estimate
is too optimistic to trust. A combination whose every candidate lies within the exclusion
radius of a known point (e.g. a line covered by failures) gets no more trials either, and
the search ends when no combination is left.

The searcher reads only the final result of each trial, so it needs full-length trials:
do not combine it with early-stopping schedulers such as ASHA.
"""

from __future__ import annotations

import copy
import itertools
import logging
import pickle
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ray.tune.search import Searcher

from hcl_study.levelset import (
    Acquisition,
    Axis,
    GPRegression,
    LevelSet,
    fit_gp_regression,
    from_unit,
    gp_level_set,
    latin_hypercube,
    propose,
    space_filling_point,
    success_probability,
    unit_grid,
)
from hcl_study.study.callbacks import ran_to_its_end

logger = logging.getLogger(__name__)


@dataclass
class _Cell:
    """Everything known about one category combination, in unit coordinates."""

    design: np.ndarray  # (initial_design, d)
    observed_x: list[np.ndarray] = field(default_factory=list)  # each (d,)
    observed_y: list[float] = field(default_factory=list)
    gp: GPRegression | None = None  # fitted on observed_x / observed_y
    full_fit_count: int = 0  # observations at the last fit with optimizer restarts
    expected_error: tuple[int, float] | None = None  # (observations, its expected error)
    exhausted: bool = False  # every candidate lies within the exclusion radius of a known point


@dataclass(frozen=True)
class CategoryEstimate:
    """The current level-set estimate of one category combination.

    Attributes:
        category: The categorical values, e.g. {"normalization": "sphere"}.
        n_completed: Trials that reported a finite metric.
        n_failed: Trials that errored or diverged.
        level_set: Contour and μ ± 1.96σ band on a grid; None with fewer than 2 finite
            results or more than 2 continuous axes.
        expected_error: The expected misclassified share of the domain, each point counted
            by the chance that a trial there succeeds (what `target_error` is compared
            with; `level_set.expected_error` without failures); None without a level set.
    """

    category: dict[str, Any]
    n_completed: int
    n_failed: int
    level_set: LevelSet | None
    expected_error: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary, for logging at the end of a study."""
        return {
            "category": self.category,
            "n_completed": self.n_completed,
            "n_failed": self.n_failed,
            "level_set": self.level_set.to_dict() if self.level_set is not None else None,
            "expected_error": self.expected_error,
        }


def _derived_seed(*parts: int) -> int:
    """A seed that depends only on `parts`, so a restored searcher draws the same numbers."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


class BoundarySearcher(Searcher):
    """Tune searcher for the level set {metric = threshold} of a noisy order parameter.

    `suggest` returns a flat config, e.g. {"loss.beta": 3.2, "loss.tau": 0.4,
    "normalization": "sphere"} (plus `fixed`); the trainable merges the dotted keys.

    Args:
        axes: The continuous axes (log axes via `Axis(log=True, offset=...)`).
        metric: The reported order parameter, e.g. "erank_ratio".
        threshold: The level to map, e.g. 0.9.
        categories: Categorical axes, name -> values; searched as a product.
        initial_design: Latin-hypercube points per category combination before the GP.
        mode: Accepted for Tune's validation; the acquisition does not use it.
        seed: Seeds the designs, candidates and GP restarts.
        fixed: Constant entries added to every config.
        acquisition: "sur" (default) or "straddle" (the baseline).
        n_candidates: Sobol candidates per proposal.
        refit_every: Re-run the hyperparameter optimizer with random restarts after this
            many new results; in between it is warm-started from the last fit.
        n_restarts: Random restarts at those refits.
        min_distance: No proposal within this unit distance of a known or pending point.
        failure_radius: No proposal within this unit distance of a failed point.
        target_error: Stop once every level set's expected error is at most this (at most
            2 continuous axes); None runs until Tune's num_samples.
    """

    def __init__(
        self,
        axes: Sequence[Axis],
        metric: str,
        threshold: float,
        *,
        categories: dict[str, Sequence[Any]] | None = None,
        initial_design: int = 8,
        mode: str = "max",
        seed: int = 0,
        fixed: dict[str, Any] | None = None,
        acquisition: Acquisition = "sur",
        n_candidates: int = 1024,
        refit_every: int = 5,
        n_restarts: int = 2,
        min_distance: float = 0.005,
        failure_radius: float = 0.05,
        target_error: float | None = None,
    ) -> None:
        super().__init__(metric=metric, mode=mode)
        categories = {name: list(values) for name, values in (categories or {}).items()}
        fixed = dict(fixed or {})
        names = [axis.name for axis in axes] + list(categories) + list(fixed)
        if not axes:
            raise ValueError("BoundarySearcher needs at least one continuous axis")
        if len(set(names)) != len(names):
            raise ValueError(f"axis, category and fixed names must be distinct, got {names}")
        if any(not values for values in categories.values()):
            raise ValueError("every categorical axis needs at least one value")
        if initial_design < 2 or not np.isfinite(threshold):
            raise ValueError("need initial_design >= 2 and a finite threshold")
        if acquisition not in ("sur", "straddle"):
            raise ValueError(f"acquisition must be 'sur' or 'straddle', got {acquisition!r}")
        if target_error is not None and not (0 < target_error < 0.5 and len(axes) <= 2):
            raise ValueError("target_error must lie in (0, 0.5), with at most 2 continuous axes")
        self.axes = tuple(axes)
        self.threshold = float(threshold)
        self.categories = categories
        self.fixed = fixed
        self.seed = seed
        self.acquisition: Acquisition = acquisition
        self.n_candidates = n_candidates
        self.refit_every = refit_every
        self.n_restarts = n_restarts
        self.min_distance = min_distance
        self.failure_radius = failure_radius
        self.target_error = target_error
        self._combinations = list(itertools.product(*categories.values()))  # [()] if none
        self._cells = [
            _Cell(design=latin_hypercube(len(self.axes), initial_design, seed=[seed, index]))
            for index in range(len(self._combinations))
        ]
        self._pending: dict[str, tuple[int, np.ndarray]] = {}  # trial id -> (cell, (d,))
        self._failed: dict[str, tuple[int, np.ndarray]] = {}  # trial id -> (cell, (d,))
        self._last_results: dict[str, dict[str, Any]] = {}  # pending trial id -> its report
        self._max_concurrent: int | None = None
        self._finished = False  # suggest returned FINISHED: Tune starts no more trials

    # ------------------------------------------------------------------ Tune interface

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        """Take over Tune's concurrency limit (see the module docstring for why)."""
        self._max_concurrent = max_concurrent
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        """Propose the next trial's flat config and remember it as pending.

        Returns None (ask again later) while `max_concurrent` trials are pending, and
        `Searcher.FINISHED` once `target_error` is reached.
        """
        if self._max_concurrent is not None and len(self._pending) >= self._max_concurrent:
            return None
        open_cells = [i for i in range(len(self._cells)) if not self._closed(i)]
        proposal = self._next_proposal(open_cells) if open_cells and not self._finished else None
        if proposal is None:
            self._finished = True
            return Searcher.FINISHED
        index, unit = proposal  # unit: (d,)
        self._pending[trial_id] = (index, unit)
        natural = from_unit(self.axes, unit)[0]  # (d,)
        config = {axis.name: float(value) for axis, value in zip(self.axes, natural, strict=True)}
        config.update(zip(self.categories, self._combinations[index], strict=True))
        config.update(self.fixed)
        return config

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        """Keep a running trial's latest report, its final one if it errors afterwards (a
        failed trial runs again when a study is resumed with its failed trials)."""
        if trial_id in self._pending or trial_id in self._failed:
            self._last_results[trial_id] = result

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        """Record the final metric of a trial (or mark its point failed)."""
        entry = self._pending.pop(trial_id, None) or self._failed.pop(trial_id, None)
        last_result = self._last_results.pop(trial_id, None)
        if entry is None:
            logger.warning("BoundarySearcher: completion of unknown trial %s ignored", trial_id)
            return
        if error and last_result is not None and ran_to_its_end(last_result):
            error, result = False, last_result
        if not error and result is None:
            return  # removed before it ran: nothing was learned
        value = None if result is None else result.get(self.metric)
        if error or value is None or not np.isfinite(value):
            self._failed[trial_id] = entry
            return
        index, unit = entry
        self._cells[index].observed_x.append(unit)
        self._cells[index].observed_y.append(float(value))

    def get_state(self) -> dict[str, Any]:
        """Everything needed to continue the search identically (a deep copy)."""
        return copy.deepcopy(self.__dict__)

    def set_state(self, state: dict[str, Any]) -> None:
        """Continue from a `get_state` result."""
        self.__dict__.update(copy.deepcopy(state))

    def save(self, checkpoint_path: str) -> None:
        """Pickle the state to `checkpoint_path` (called by Tune at each experiment save)."""
        with open(checkpoint_path, "wb") as handle:
            pickle.dump(self.get_state(), handle)

    def restore(self, checkpoint_path: str) -> None:
        """Load a state written by `save` (called by `Tuner.restore`)."""
        with open(checkpoint_path, "rb") as handle:
            self.set_state(pickle.load(handle))

    @property
    def finished(self) -> bool:
        """Whether the search has ended (`suggest` returned `Searcher.FINISHED`), before
        Tune's `num_samples`: every combination reached `target_error` or has no point left
        to try. Final: a result that arrives later and raises an error does not reopen it,
        since Tune starts no trials after FINISHED."""
        return self._finished

    # ------------------------------------------------------------------ estimate

    def estimate(self, resolution: int | None = None) -> list[CategoryEstimate]:
        """The current level set per category combination, from the completed trials."""
        estimates = []
        for index, combination in enumerate(self._combinations):
            cell = self._cells[index]
            gp = self._surrogate(index)
            drawable = gp is not None and len(self.axes) <= 2
            estimates.append(
                CategoryEstimate(
                    category=dict(zip(self.categories, combination, strict=True)),
                    n_completed=len(cell.observed_y),
                    n_failed=len(self._failed_points(index)),
                    level_set=(
                        gp_level_set(gp, self.axes, self.threshold, resolution)
                        if drawable
                        else None
                    ),
                    expected_error=self._expected_error(index) if drawable else None,
                )
            )
        return estimates

    # ------------------------------------------------------------------ internals

    def _next_proposal(self, open_cells: list[int]) -> tuple[int, np.ndarray] | None:
        """The cell and unit point of the next trial (see the module docstring); None when
        every open cell turns out to have no point left to try."""
        designing = [i for i in open_cells if self._issued(i) < len(self._cells[i].design)]
        for index in sorted(designing, key=self._issued):
            proposal = self._next_point(index)
            if proposal is not None:
                return index, proposal[0]
            self._cells[index].exhausted = True  # failures ruled out the rest of its design
        proposals = {}
        for index in (i for i in open_cells if not self._cells[i].exhausted):
            proposal = self._next_point(index)
            if proposal is None:
                self._cells[index].exhausted = True
            else:
                proposals[index] = proposal
        if not proposals:
            return None
        index = max(proposals, key=lambda i: (proposals[i][1], -self._issued(i)))
        return index, proposals[index][0]

    def _closed(self, index: int) -> bool:
        """Whether this cell gets no more trials: it reached `target_error`, or nothing
        is left to try in it."""
        return self._cells[index].exhausted or self._settled(index)

    def _settled(self, index: int) -> bool:
        """Whether this cell has reached `target_error` (never without one)."""
        cell = self._cells[index]
        return (
            self.target_error is not None
            and len(cell.observed_y) >= 2 * len(cell.design)
            and self._expected_error(index) <= self.target_error
        )

    def _expected_error(self, index: int) -> float:
        """`LevelSet.expected_error` of this cell, recomputed only when new results arrived."""
        cell = self._cells[index]
        count = len(cell.observed_y)
        if cell.expected_error is None or cell.expected_error[0] != count:
            gp = self._surrogate(index)
            error = np.inf
            if gp is not None:
                error = self._weighted_error(index, gp_level_set(gp, self.axes, self.threshold))
            cell.expected_error = (count, error)
        return cell.expected_error[1]

    def _weighted_error(self, index: int, level_set: LevelSet) -> float:
        """The expected misclassified share of the domain, each grid point counted by the
        chance that a trial there succeeds: where trials fail there is nothing to map."""
        failed = self._failed_points(index)
        if not failed:
            return level_set.expected_error
        _, points = unit_grid(len(self.axes), level_set.ticks[0].size)  # (k**d, d)
        observed = np.array(self._cells[index].observed_x)
        success = success_probability(points, observed, np.array(failed))
        return float(np.mean(success * level_set.wrong_side.ravel()))

    def _pending_points(self, index: int) -> list[np.ndarray]:
        return [unit for cell, unit in self._pending.values() if cell == index]

    def _failed_points(self, index: int) -> list[np.ndarray]:
        return [unit for cell, unit in self._failed.values() if cell == index]

    def _issued(self, index: int) -> int:
        known = len(self._cells[index].observed_y) + len(self._failed_points(index))
        return known + len(self._pending_points(index))

    def _avoid(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        near = self._cells[index].observed_x + self._pending_points(index)
        failed = self._failed_points(index)
        points = np.array(near + failed).reshape(-1, len(self.axes))  # (k, d)
        radius = np.concatenate(
            [np.full(len(near), self.min_distance), np.full(len(failed), self.failure_radius)]
        )  # (k,)
        return points, radius

    def _next_point(self, index: int) -> tuple[np.ndarray, float] | None:
        """This cell's next point (d,) and the share of the domain by which a trial there
        is expected to shrink its misclassified area (inf for a design point, 0 without
        a surrogate); None when every candidate lies within the exclusion radius of a known
        point."""
        cell = self._cells[index]
        avoid, radius = self._avoid(index)
        step = self._issued(index)
        if step < len(cell.design):
            for candidate in cell.design:
                if avoid.shape[0] == 0 or np.all(
                    np.linalg.norm(avoid - candidate, axis=1) > radius
                ):
                    return candidate, np.inf
        gp = self._surrogate(index)
        if gp is None:
            seed = [self.seed, index, step]
            return space_filling_point(len(self.axes), avoid, seed=seed), 0.0
        pending = self._pending_points(index)
        believer = gp.fantasize(np.array(pending)) if pending else gp
        return propose(
            believer,
            self.threshold,
            avoid=avoid,
            avoid_radius=radius,
            failed=np.array(self._failed_points(index)).reshape(-1, len(self.axes)),
            acquisition=self.acquisition,
            n_candidates=self.n_candidates,
            seed=[self.seed, index, step],
        )

    def _surrogate(self, index: int) -> GPRegression | None:
        """The GP on this cell's finite results, refitted only when new results arrived."""
        cell = self._cells[index]
        count = len(cell.observed_y)
        if count < 2:
            return None
        if cell.gp is not None and cell.gp.train_x.shape[0] == count:
            return cell.gp
        full = cell.gp is None or count >= cell.full_fit_count + self.refit_every
        cell.gp = fit_gp_regression(
            np.array(cell.observed_x),
            np.array(cell.observed_y),
            seed=_derived_seed(self.seed, index, count),
            n_restarts=self.n_restarts if full else 0,
            kernel=None if cell.gp is None else cell.gp.kernel,
        )
        if full:
            cell.full_fit_count = count
        return cell.gp
