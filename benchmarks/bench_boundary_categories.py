"""Benchmark: a boundary search over a categorical axis, SUR allocation vs taking turns.

A `choice` axis gets one boundary per value. After the initial designs, `BoundarySearcher`
gives each trial to the value whose best proposal has the largest SUR score (the expected
shrinkage of its misclassified area); the alternative is taking turns, each value getting
the same share of trials (independent searchers, one per value).

Oracle: three normalizations over (log(β + 1), τ), as in benchmarks/oracles.py:
- "none": no boundary in the domain (the order parameter is about 0 everywhere, DC);
- "ball": the curved oracle; "sphere": the wavy oracle.
Each seed draws shifted instances (the same for both methods) and the noise; both methods
start each value from the same initial design (the shared searcher's).

Figure of merit: trials until the mean over the three values of the region error
(symmetric-difference area with the true region, GP regression of `hcl_study.levelset` on
the value's own points, as in bench_boundary_search.py) is <= 5 % / 2 % / 1 % and stays so
up to the budget. Also reported: the trials each value received.
Target: SUR allocation needs fewer trials than taking turns at 2 % and 1 % (medians over
10 seeds).

Writes benchmarks/results/boundary_categories.json (or --output).

Run: .venv/bin/python benchmarks/bench_boundary_categories.py [--quick] [--output PATH]
"""

from __future__ import annotations

import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from bench_boundary_search import (
    COUNT_FIELDS,
    ERROR_LEVELS,
    INITIAL_DESIGN,
    RESULTS_DIR,
    Curve,
    Scorer,
    TrialCounts,
)
from oracles import NO_BOUNDARY, ORACLES, PhaseOracle, instance_seeds, instances_parser
from results_file import write_results
from threadpoolctl import threadpool_limits

from hcl_study.levelset import to_unit
from hcl_study.study.boundary_search import BoundarySearcher

VALUES = ("none", "ball", "sphere")
BUDGET = 150
EVAL_EVERY = 2 * len(VALUES)
METHODS = ("sur", "turns")
RESULTS_PATH = RESULTS_DIR / "boundary_categories.json"
FIELDS = {
    "values": "each normalization value and its oracle",
    "seeds": "the seeds: each shifted instances of the oracles and the noise, both methods alike",
    "budget": "trials per run, over all values",
    "initial_design": "Latin-hypercube points per value, the same for both methods",
    **COUNT_FIELDS,
    "sur_allocation_median": "trials each value received under SUR allocation, median over seeds",
    "targets": "each target of the docstring, met or not",
    "runtime_s": "wall seconds of all runs",
}


def instances(seed: int) -> dict[str, PhaseOracle]:
    """This seed's oracle per normalization."""
    families = {"none": NO_BOUNDARY, "ball": ORACLES["curved"], "sphere": ORACLES["wavy"]}
    return {value: family.instance(seed) for value, family in families.items()}


def run(seed: int, method: str) -> tuple[Curve, dict[str, int]]:
    """One search of BUDGET trials; the mean region error every EVAL_EVERY trials from the
    end of the designs, and the trials per value."""
    oracles = instances(seed)
    rng = np.random.default_rng([seed, 17])
    axes = list(oracles["none"].axes)
    shared = BoundarySearcher(
        axes,
        "order",
        0.5,
        categories={"normalization": list(VALUES)},
        initial_design=INITIAL_DESIGN,
        seed=seed,
    )
    if method == "sur":
        searchers = [shared] * len(VALUES)
    else:  # turns: one independent searcher per value, taking trials in order
        searchers = [
            BoundarySearcher(
                axes,
                "order",
                0.5,
                fixed={"normalization": value},
                initial_design=INITIAL_DESIGN,
                seed=len(VALUES) * seed + index,
            )
            for index, value in enumerate(VALUES)
        ]
        # Start each from the shared searcher's design for its value, so that both methods
        # differ only in how they allocate the trials after it.
        for searcher, cell in zip(searchers, shared._cells, strict=True):
            searcher._cells[0].design = cell.design
    scorers = {value: Scorer(oracle) for value, oracle in oracles.items()}
    points = {value: [] for value in VALUES}
    results = {value: [] for value in VALUES}
    curve: Curve = {}
    for number in range(1, BUDGET + 1):
        searcher = searchers[(number - 1) % len(VALUES)]
        config = searcher.suggest(f"t{number}")
        value = config["normalization"]
        oracle = oracles[value]
        unit = to_unit(axes, [[config[axis.name] for axis in axes]])  # (1, 2)
        observed = float(oracle.observe(unit, rng)[0])
        searcher.on_trial_complete(f"t{number}", {"order": observed})
        points[value].append(unit[0])
        results[value].append(observed)
        if number % EVAL_EVERY == 0 and number >= len(VALUES) * INITIAL_DESIGN:
            curve[number] = float(
                np.mean(
                    [scorers[v].error(np.array(points[v]), np.array(results[v])) for v in VALUES]
                )
            )
    return curve, {value: len(results[value]) for value in VALUES}


def run_seed(seed: int) -> dict[str, tuple[Curve, dict[str, int]]]:
    """Both methods on one seed (single-threaded BLAS, so two seeds run side by side)."""
    with threadpool_limits(1):
        return {method: run(seed, method) for method in METHODS}


def main() -> None:
    """Run both methods on every seed, print the medians, write JSON."""
    parser = instances_parser(__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=RESULTS_PATH, help="JSON results path")
    args = parser.parse_args()
    seeds = instance_seeds(args)
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        runs = list(pool.map(run_seed, seeds))
    runtime = time.perf_counter() - start

    counts = TrialCounts.of([{m: run[m][0] for m in METHODS} for run in runs], METHODS)
    allocation = {
        value: float(np.median([run["sur"][1][value] for run in runs])) for value in VALUES
    }
    targets = {
        f"sur < turns at {level:.0%}": counts.median[level]["sur"] < counts.median[level]["turns"]
        for level in ERROR_LEVELS[1:]
    }
    print(f"{len(seeds)} seeds, budget {BUDGET}, initial design {INITIAL_DESIGN}, {runtime:.0f} s")
    counts.print("the mean region error")
    print(
        f"trials per value with SUR allocation (median of {BUDGET}): "
        + ", ".join(f"{value} {count:.0f}" for value, count in allocation.items())
    )
    for name, met in targets.items():
        print(f"target: {name}: {'met' if met else 'MISSED'}")

    result = {
        "values": {"none": "no boundary", "ball": "curved", "sphere": "wavy"},
        "seeds": seeds,
        "budget": BUDGET,
        "initial_design": INITIAL_DESIGN,
        **counts.to_json(),
        "sur_allocation_median": allocation,
        "targets": targets,
        "runtime_s": runtime,
    }
    write_results(args.output, __doc__.splitlines()[0], FIELDS, result)


if __name__ == "__main__":
    main()
