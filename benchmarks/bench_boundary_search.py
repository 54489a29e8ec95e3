"""Benchmark: trials needed to map a phase boundary, boundary search vs grid, random and TPE.

Oracle (benchmarks/oracles.py): an order parameter over (log(β + 1), τ) with a curved, not
axis-aligned level set at 0.5, observed with noise sd 0.03; each seed draws an instance whose
boundary is shifted by up to ±0.3 in log(β + 1), the same for every method of that seed, so
that the fixed grids are not judged on one lucky or unlucky alignment. Every method's
estimate of the region {order parameter > 0.5} comes from the SAME surrogate, the GP
regression of `hcl_study.levelset` fitted on that method's points, so only the point
placement differs.

Methods (each run for BUDGET trials, error evaluated every EVAL_EVERY trials):
- boundary: `BoundarySearcher` (SUR acquisition), one trial at a time;
- boundary_x4: the same with batches of 4 proposals (pending points fantasized);
- straddle: `BoundarySearcher(acquisition="straddle")`, the classic baseline acquisition;
- grid: k×k cell-centred grids, k = 2..10 (points at (i + 0.5)/k); its error at n trials is
  the error of the GP fitted on the largest grid with at most n points;
- grid_endpoints: the same with k evenly spaced values from bound to bound on each axis, the
  grid a `search: grid` study is written with (as search_spaces/boundary_c50_grid.yaml);
- random: uniform points in the unit square;
- tpe: Optuna's seeded TPESampler minimizing |order parameter − 0.5|.

Figure of merit: trials needed until the symmetric-difference area between estimated and
true regions is <= 5 % of the (unit-coordinate) domain and stays so up to the budget.
Targets: boundary <= 1/3 of grid and <= 1/2 of TPE; boundary_x4 <= 1.3 × boundary (medians);
the grid target is checked against both grids.
The same count at the stricter levels 2 % and 1 % is reported alongside (no targets).
For the boundary search it also compares the model's expected error (`LevelSet.expected_error`,
the area where the GP puts the latent order parameter on the other side of the threshold
with probability Φ(−|μ − t|/σ), summed) with the actual error, at 8 to 48 trials, and
simulates `target_error` on its runs: where the search would stop, and the actual error there
(the expected error is that of this benchmark's GP, refitted at every evaluation).

Writes benchmarks/results/boundary_search[_<oracle>][_init<N>].json and .png (or --output).

Run: .venv/bin/python benchmarks/bench_boundary_search.py [--quick] [--oracle wavy]
     [--initial-design N] [--output PATH]
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from oracles import ORACLES, PhaseOracle, instance_seeds, instances_parser
from results_file import write_results
from threadpoolctl import threadpool_limits

from hcl_study.levelset import (
    fit_gp_regression,
    gp_level_set,
    symmetric_difference_fraction,
    to_unit,
)
from hcl_study.study.boundary_search import BoundarySearcher

BUDGET = 100
EVAL_EVERY = 1  # every trial: a count is exact, not rounded up to an even number
TARGET_ERROR = 0.05
ERROR_LEVELS = (TARGET_ERROR, 0.02, 0.01)
RESOLUTION = 100
GRID_SIZES = tuple(range(2, 11))  # k of the k×k grids
METHODS = ("boundary", "boundary_x4", "straddle", "grid", "grid_endpoints", "random", "tpe")
CALIBRATION_AT = (8, 12, 16, 24, 48)  # trials at which the expected error is checked
STOP_TARGETS = (0.05, 0.02, 0.01)  # target_error values whose stopping rule is simulated
INITIAL_DESIGN = 8  # the searcher's default Latin-hypercube points (--initial-design)
RESULTS_DIR = Path(__file__).parent / "results"
DEFAULT_ORACLE = "curved"  # results/boundary_search.{json,png}; others get an _<oracle> suffix
COUNT_FIELDS = {
    "trials_needed": "per error level, per method: trials until the error stays <= the level "
    "up to the budget, per seed (null: not within the budget)",
    "median_trials": "the same, median over seeds (null: not within the budget)",
}
FIELDS = {
    "oracle": "the synthetic phase function (benchmarks/oracles.py)",
    "initial_design": "the searchers' Latin-hypercube points",
    "seeds": "the seeds: each an instance of the oracle (shifted boundary) and its noise",
    "budget": "trials per run",
    "target_error": "the error level the targets are judged at (area fraction)",
    "grid_evaluation": "how a grid's error at n trials is defined",
    "boundary_shifts": "per seed, the instance's boundary shift in log(beta + 1)",
    **COUNT_FIELDS,
    "targets": "each target of the docstring, met or not",
    "targets_met": "all of them met",
    "boundary_expected_error_calibration": "at n trials: medians of the boundary search's "
    "model-expected and actual error, of their ratio, and the share of seeds actual <= expected",
    "boundary_target_error_stopping": "per target_error: median trials where the stopping rule "
    "stops, the median actual error there, and the share of seeds within the target",
    "runtime_s": "wall seconds of all runs",
}

Curve = dict[int, float]  # trials -> region error


class Scorer:
    """The shared surrogate: GP regression on a method's points, region error vs the truth.

    Hyperparameters are warm-started from the previous evaluation of the same run, with a
    fresh start from the default kernel as well; the better marginal likelihood wins.
    """

    def __init__(self, oracle: PhaseOracle) -> None:
        self.oracle = oracle
        self.truth = oracle.true_region(RESOLUTION)  # (R, R)
        self.kernel = None
        self.expected_error = math.nan

    def error(self, unit_x: np.ndarray, y: np.ndarray) -> float:
        """Symmetric-difference area fraction of the GP-estimated region; the model's own
        expected value of it is kept in `expected_error`."""
        fits = [fit_gp_regression(unit_x, y, n_restarts=0)]
        if self.kernel is not None:
            fits.append(fit_gp_regression(unit_x, y, n_restarts=0, kernel=self.kernel))
        gp = max(fits, key=lambda fit: fit.model.log_marginal_likelihood_value_)
        self.kernel = gp.kernel
        estimate = gp_level_set(gp, self.oracle.axes, self.oracle.threshold, RESOLUTION)
        self.expected_error = estimate.expected_error
        return symmetric_difference_fraction(estimate.region, self.truth)


def run_searcher(
    oracle: PhaseOracle,
    seed: int,
    *,
    batch: int = 1,
    acquisition: str = "sur",
    initial_design: int = INITIAL_DESIGN,
    expected: Curve | None = None,
) -> Curve:
    """BoundarySearcher through its Tune interface (suggest / on_trial_complete); the model's
    expected error at each evaluation goes into `expected` when given."""
    rng = np.random.default_rng([seed, batch, len(acquisition)])
    searcher = BoundarySearcher(
        list(oracle.axes),
        "order",
        oracle.threshold,
        initial_design=initial_design,
        seed=seed,
        acquisition=acquisition,
    )
    scorer, curve = Scorer(oracle), {}
    points, values = [], []
    while len(values) < BUDGET:
        ids = [f"t{len(values) + i}" for i in range(min(batch, BUDGET - len(values)))]
        configs = [searcher.suggest(trial_id) for trial_id in ids]
        for trial_id, config in zip(ids, configs, strict=True):
            unit = to_unit(oracle.axes, [[config[axis.name] for axis in oracle.axes]])  # (1, 2)
            value = float(oracle.observe(unit, rng)[0])
            searcher.on_trial_complete(trial_id, {"order": value})
            points.append(unit[0])
            values.append(value)
            if len(values) % EVAL_EVERY == 0 and len(values) >= 4:
                curve[len(values)] = scorer.error(np.array(points), np.array(values))
                if expected is not None:
                    expected[len(values)] = scorer.expected_error
    return curve


def run_points(
    oracle: PhaseOracle, seed: int, next_point: Callable[[list, list], np.ndarray]
) -> Curve:
    """A sequential method given as next_point(points, values) -> unit point (2,)."""
    rng = np.random.default_rng([seed, 7])
    scorer, curve = Scorer(oracle), {}
    points, values = [], []
    while len(values) < BUDGET:
        unit = next_point(points, values)  # (2,)
        points.append(unit)
        values.append(float(oracle.observe(unit[None, :], rng)[0]))
        if len(values) % EVAL_EVERY == 0 and len(values) >= 4:
            curve[len(values)] = scorer.error(np.array(points), np.array(values))
    return curve


def run_random(oracle: PhaseOracle, seed: int) -> Curve:
    """Uniform random points."""
    rng = np.random.default_rng([seed, 11])
    return run_points(oracle, seed, lambda points, values: rng.random(2))


def run_tpe(oracle: PhaseOracle, seed: int) -> Curve:
    """Optuna TPE (seeded) minimizing |order parameter − threshold|, in unit coordinates."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed))
    asked: list[optuna.trial.Trial] = []

    def next_point(points: list, values: list) -> np.ndarray:
        if asked:
            study.tell(asked.pop(), abs(values[-1] - oracle.threshold))
        trial = study.ask()
        asked.append(trial)
        return np.array([trial.suggest_float(axis.name, 0.0, 1.0) for axis in oracle.axes])

    return run_points(oracle, seed, next_point)


def run_grid(oracle: PhaseOracle, seed: int, *, endpoints: bool = False) -> Curve:
    """k×k grids; error at n = that of the largest grid with <= n points.

    Cell-centred ticks (i + 0.5)/k, or with `endpoints` k ticks from 0 to 1 inclusive.
    """
    rng = np.random.default_rng([seed, 13])
    scorer, by_size = Scorer(oracle), {}
    for k in GRID_SIZES:
        ticks = np.linspace(0.0, 1.0, k) if endpoints else (np.arange(k) + 0.5) / k  # (k,)
        points = np.array([(x, y) for y in ticks for x in ticks])  # (k*k, 2)
        by_size[k * k] = scorer.error(points, oracle.observe(points, rng))
    curve = {}
    for n in range(4, BUDGET + 1, EVAL_EVERY):
        fitting = [size for size in by_size if size <= n]
        curve[n] = by_size[max(fitting)]
    return curve


def trials_needed(curve: Curve, level: float) -> float:
    """Fewest trials after which the error stays <= level (inf if never)."""
    needed = math.inf
    for n in sorted(curve, reverse=True):
        if curve[n] > level:
            break
        needed = n
    return needed


@dataclass(frozen=True)
class TrialCounts:
    """Trials each method needs per error level, per seed and as medians over seeds."""

    needed: dict[float, dict[str, list[float]]]  # level -> method -> per seed (inf: never)
    median: dict[float, dict[str, float]]  # level -> method -> median over seeds

    @classmethod
    def of(cls, curves: list[dict[str, Curve]], methods: Sequence[str]) -> TrialCounts:
        """Count on every seed's curves (one dict method -> Curve per seed)."""
        needed = {
            level: {
                method: [trials_needed(run[method], level) for run in curves] for method in methods
            }
            for level in ERROR_LEVELS
        }
        median = {
            level: {method: float(np.median(counts)) for method, counts in by_method.items()}
            for level, by_method in needed.items()
        }
        return cls(needed, median)

    def print(self, what: str) -> None:
        """One block per level: each method's median and per-seed counts."""
        for level, by_method in self.needed.items():
            print(f"trials until {what} <= {level:.0%} and stays there (- = not within budget):")
            for method, counts in by_method.items():
                shown = " ".join("-" if math.isinf(c) else f"{c:.0f}" for c in counts)
                median = self.median[level][method]
                print(f"  {method:14s} median {median:6.1f}   per seed: {shown}")

    def to_json(self) -> dict[str, Any]:
        """`trials_needed` and `median_trials`, levels as strings and inf as None."""
        return {
            "trials_needed": {
                str(level): {m: [None if math.isinf(c) else c for c in v] for m, v in by.items()}
                for level, by in self.needed.items()
            },
            "median_trials": {
                str(level): {m: None if math.isinf(v) else v for m, v in by.items()}
                for level, by in self.median.items()
            },
        }


def run_seed(oracle_name: str, initial_design: int, seed: int) -> dict[str, Curve]:
    """All methods on one seed's oracle instance (single-threaded BLAS, so two seeds can
    run side by side)."""
    oracle = ORACLES[oracle_name].instance(seed)
    expected: Curve = {}
    searcher_run = partial(run_searcher, oracle, seed, initial_design=initial_design)
    with threadpool_limits(1):
        return {
            "boundary": searcher_run(expected=expected),
            "boundary_expected": expected,
            "boundary_x4": searcher_run(batch=4),
            "straddle": searcher_run(acquisition="straddle"),
            "grid": run_grid(oracle, seed),
            "grid_endpoints": run_grid(oracle, seed, endpoints=True),
            "random": run_random(oracle, seed),
            "tpe": run_tpe(oracle, seed),
        }


def calibration_at(curves: list[dict[str, Curve]], trials: int) -> dict[str, float]:
    """How the boundary search's model-expected error compares with its actual error."""
    actual = np.array([run["boundary"][trials] for run in curves])  # (S,)
    expected = np.array([run["boundary_expected"][trials] for run in curves])  # (S,)
    return {
        "median_expected": float(np.median(expected)),
        "median_actual": float(np.median(actual)),
        "median_ratio": float(np.median(actual / expected)),
        "share_within": float(np.mean(actual <= expected)),
    }


def stopping_rule(
    curves: list[dict[str, Curve]], target: float, initial_design: int
) -> dict[str, float]:
    """`target_error` simulated on the boundary runs: the first evaluation with at least
    twice the initial design of trials and an expected error <= target; the actual error
    there."""
    stops, errors = [], []
    for run in curves:
        expected = run["boundary_expected"]
        eligible = [n for n in sorted(expected) if n >= 2 * initial_design]
        stop = next((n for n in eligible if expected[n] <= target), max(expected))
        stops.append(stop)
        errors.append(run["boundary"][stop])
    return {
        "median_trials": float(np.median(stops)),
        "median_actual_error": float(np.median(errors)),
        "share_within_target": float(np.mean(np.array(errors) <= target)),
    }


def plot(curves: list[dict[str, Curve]], path: Path, title: str) -> None:
    """Error vs trials, median and IQR band over seeds, one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.5))
    for method in METHODS:
        trials = sorted(curves[0][method])
        errors = np.array([[run[method][n] for n in trials] for run in curves])  # (S, T)
        low, median, high = np.percentile(errors, [25, 50, 75], axis=0)
        axis.plot(trials, median, label=method)
        axis.fill_between(trials, low, high, alpha=0.2)
    axis.axhline(TARGET_ERROR, color="black", linestyle="--", linewidth=1, label="5 % target")
    axis.set(xlabel="trials", ylabel="symmetric-difference area (fraction)", yscale="log")
    axis.set_title(title)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main() -> None:
    """Run every method on every seed, print the medians, write JSON and the plot."""
    parser = instances_parser(__doc__.splitlines()[0])
    parser.add_argument("--oracle", choices=sorted(ORACLES), default=DEFAULT_ORACLE)
    parser.add_argument(
        "--initial-design",
        type=int,
        default=INITIAL_DESIGN,
        help="the searchers' Latin-hypercube points (results get an _init<N> suffix)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        help=f"JSON results path, the plot beside it as .png (default {RESULTS_DIR}/"
        "boundary_search[_<oracle>][_init<N>].json)",
    )
    args = parser.parse_args()
    seeds = instance_seeds(args)

    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        one_seed = partial(run_seed, args.oracle, args.initial_design)
        curves = list(pool.map(one_seed, seeds))
    runtime = time.perf_counter() - start

    counts = TrialCounts.of(curves, METHODS)
    primary = counts.median[TARGET_ERROR]
    targets = {
        "boundary <= grid / 3": primary["boundary"] <= primary["grid"] / 3,
        "boundary <= grid_endpoints / 3": primary["boundary"] <= primary["grid_endpoints"] / 3,
        "boundary <= tpe / 2": primary["boundary"] <= primary["tpe"] / 2,
        "boundary_x4 <= 1.3 * boundary": primary["boundary_x4"] <= 1.3 * primary["boundary"],
    }
    print(
        f"oracle {args.oracle}, {len(seeds)} seeds, budget {BUDGET}, initial design "
        f"{args.initial_design}, {runtime:.0f} s"
    )
    counts.print("region error")
    for name, met in targets.items():
        print(f"target at {TARGET_ERROR:.0%}: {name}: {'met' if met else 'MISSED'}")
    calibration = {n: calibration_at(curves, n) for n in CALIBRATION_AT}
    stopping = {
        target: stopping_rule(curves, target, args.initial_design) for target in STOP_TARGETS
    }
    print("boundary search: the model's expected error against the actual one")
    for n, row in calibration.items():
        print(
            f"  {n:3d} trials: expected {row['median_expected']:.4f}, actual "
            f"{row['median_actual']:.4f} (medians); actual/expected median "
            f"{row['median_ratio']:.2f}; actual <= expected in {row['share_within']:.0%} of seeds"
        )
    print("boundary search with target_error (stops at the first eligible evaluation):")
    for target, row in stopping.items():
        print(
            f"  target_error {target:.0%}: stops at {row['median_trials']:.0f} trials (median), "
            f"actual error there {row['median_actual_error']:.4f} (median), within the target "
            f"in {row['share_within_target']:.0%} of seeds"
        )

    stem = "boundary_search" + ("" if args.oracle == DEFAULT_ORACLE else f"_{args.oracle}")
    if args.initial_design != INITIAL_DESIGN:
        stem += f"_init{args.initial_design}"
    output = args.output or RESULTS_DIR / f"{stem}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    plot(curves, output.with_suffix(".png"), f"oracle '{args.oracle}', {len(seeds)} seeds")
    result = {
        "oracle": args.oracle,
        "initial_design": args.initial_design,
        "seeds": seeds,
        "budget": BUDGET,
        "target_error": TARGET_ERROR,
        "grid_evaluation": "GP fitted on the largest k x k grid with <= n points; grid: "
        "cell-centred ticks (i + 0.5)/k, grid_endpoints: k ticks from bound to bound",
        "boundary_shifts": [ORACLES[args.oracle].instance(seed).shift for seed in seeds],
        **counts.to_json(),
        "targets": targets,
        "targets_met": all(targets.values()),
        "boundary_expected_error_calibration": {str(n): row for n, row in calibration.items()},
        "boundary_target_error_stopping": {str(t): row for t, row in stopping.items()},
        "runtime_s": runtime,
    }
    write_results(output, __doc__.splitlines()[0], FIELDS, result)


if __name__ == "__main__":
    main()
