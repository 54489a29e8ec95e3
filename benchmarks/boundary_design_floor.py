"""How few trials could map the synthetic phase boundaries if their placement were perfect.

A reference for `bench_boundary_search.py`, not a method: for each seeded oracle instance it
searches, with the truth in hand, for the n-point design whose GP estimate (the benchmark's
shared surrogate, fitted on noiseless values) has the smallest region error, for n = 2, 3, …
until that error is <= 5 %. That smallest n is the omniscient count: no search that has to
find the boundary, with noisy trials, can be expected to need fewer. The design search
(random designs, then hill climbing from the best few) only bounds the floor from above: a
better optimizer might find a still smaller error at some n.

Writes benchmarks/results/boundary_design_floor.json (or --output).

Run: .venv/bin/python benchmarks/boundary_design_floor.py [--quick] [--output PATH]
"""

from __future__ import annotations

import time
from concurrent.futures import ProcessPoolExecutor
from itertools import product
from pathlib import Path

import numpy as np
from oracles import ORACLES, PhaseOracle, instance_seeds, instances_parser
from results_file import write_results
from threadpoolctl import threadpool_limits

from hcl_study.levelset import fit_gp_regression, gp_level_set, symmetric_difference_fraction

LEVEL = 0.05
RESOLUTION = 100
LARGEST_DESIGN = 10
RANDOM_DESIGNS = 600
CLIMBS = 3  # hill climbs, from the best random designs
CLIMB_STEPS = 200  # each moves one point by N(0, step²), kept if the error does not grow
STEPS = (0.08, 0.03)  # the step's sd in unit coordinates, first and second half of a climb
RESULTS_PATH = Path(__file__).parent / "results" / "boundary_design_floor.json"
FIELDS = {
    "level": "the region error (area fraction) a design has to reach",
    "seeds": "the seeds: each an instance of the oracle (shifted boundary)",
    "runtime_s": "wall seconds of all searches",
    **{
        name: f"oracle {name}: per seed the smallest n reaching the level (null: not up to "
        f"{LARGEST_DESIGN}), their median, and per seed the best error found at each n"
        for name in sorted(ORACLES)
    },
}


def region_error(oracle: PhaseOracle, truth: np.ndarray, design: np.ndarray) -> float:
    """Region error of the GP fitted on the noiseless order parameter at `design` (n, 2)."""
    gp = fit_gp_regression(design, oracle.value(design), n_restarts=0)
    estimate = gp_level_set(gp, oracle.axes, oracle.threshold, RESOLUTION)
    return symmetric_difference_fraction(estimate.region, truth)


def best_design_error(
    oracle: PhaseOracle, truth: np.ndarray, size: int, rng: np.random.Generator
) -> float:
    """The smallest region error found over `size`-point designs (hill climbs never raise
    an error, so the best climbed one is the best seen)."""
    starts = sorted(
        (
            (region_error(oracle, truth, design), design)
            for design in rng.random((RANDOM_DESIGNS, size, 2))
        ),
        key=lambda start: start[0],
    )[:CLIMBS]
    climbed = []
    for error, design in starts:
        for step_index in range(CLIMB_STEPS):
            step = STEPS[0] if step_index < CLIMB_STEPS // 2 else STEPS[1]
            moved = design.copy()
            point = rng.integers(size)
            moved[point] = np.clip(moved[point] + step * rng.normal(size=2), 0.0, 1.0)
            moved_error = region_error(oracle, truth, moved)
            if moved_error <= error:
                error, design = moved_error, moved
        climbed.append(error)
    return min(climbed)


def omniscient_count(oracle_name: str, seed: int) -> dict[int, float]:
    """Floor errors for n = 2, 3, … up to the first n at or below LEVEL (or LARGEST_DESIGN)."""
    oracle = ORACLES[oracle_name].instance(seed)
    truth = oracle.true_region(RESOLUTION)  # (R, R)
    rng = np.random.default_rng([seed, 17])
    floors: dict[int, float] = {}
    with threadpool_limits(1):
        for size in range(2, LARGEST_DESIGN + 1):
            floors[size] = best_design_error(oracle, truth, size, rng)
            if floors[size] <= LEVEL:
                break
    return floors


def main() -> None:
    """Every oracle and seed; print and write the omniscient counts."""
    parser = instances_parser(__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=RESULTS_PATH, help="JSON results path")
    args = parser.parse_args()
    seeds = instance_seeds(args)
    names = sorted(ORACLES)

    start = time.perf_counter()
    cases = list(product(names, seeds))
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        floors = list(pool.map(omniscient_count, *zip(*cases, strict=True)))
    runtime = time.perf_counter() - start

    result: dict[str, object] = {"level": LEVEL, "seeds": seeds, "runtime_s": runtime}
    print(f"omniscient designs, noiseless values, {len(seeds)} seeds, {runtime:.0f} s")
    for name in names:
        per_seed = [
            floor for (case_name, _), floor in zip(cases, floors, strict=True) if case_name == name
        ]
        counts = [max(floor) if min(floor.values()) <= LEVEL else None for floor in per_seed]
        reached = [count for count in counts if count is not None]
        median = float(np.median(reached)) if len(reached) == len(counts) else None
        print(f"  {name}: smallest n with error <= {LEVEL:.0%}: median {median}, per seed {counts}")
        result[name] = {
            "omniscient_count": counts,
            "median_omniscient_count": median,
            "floor_errors": [{str(n): error for n, error in floor.items()} for floor in per_seed],
        }
    write_results(args.output, __doc__.splitlines()[0], FIELDS, result)


if __name__ == "__main__":
    main()
