"""Benchmark: streaming geometry metrics for N = 50,000, d = 99, C = 100 in batches of 512.

Targets: update (both passes) + compute <= 1 s at N = 50,000; the accumulator's peak memory
(tracemalloc, numpy path) the same at N = 50,000 and 200,000. Batches are drawn from a small
pool generated before measuring, so the data itself is not counted.

The timed target runs with one BLAS thread, as in a Ray trial (Ray sets OMP_NUM_THREADS to
the trial's CPUs, which OpenBLAS follows): the per-batch products are small (512 x 99), so
BLAS threads add only synchronisation, and on a shared, loaded machine their spin-waiting
can cost several times the work. The default-thread time is reported alongside, not judged.
The two settings are timed in turn, 5 runs each; each reports its run of median total time.

Run: .venv/bin/python benchmarks/bench_geometry.py [--output PATH]
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from results_file import write_results
from threadpoolctl import threadpool_limits

from hcl_study.geometry import GeometryAccumulator, classify_regime

NUM_CLASSES = 100
DIM = 99
BATCH_SIZE = 512
POOL_BATCHES = 16
TIME_TARGET_S = 1.0
MEMORY_GROWTH_TOLERANCE = 1.05
REPETITIONS = 5  # timed runs per thread setting; odd, so that the median is one of them
RESULTS_PATH = Path(__file__).parent / "results" / "geometry.json"
FIELDS = {
    "num_samples": "samples N fed through both passes",
    "dim": "feature dimension d",
    "num_classes": "classes C",
    "batch_size": "samples per update call",
    "blas_threads": "BLAS threads of the judged timing",
    "repetitions": "timed runs per thread setting, the settings in turn",
    "update_s": "first pass (update) seconds, of the 1-thread run of median total time",
    "update_within_s": "second pass (update_within) seconds, same run",
    "compute_s": "compute() seconds, same run",
    "total_s": "the three together: the median over the 1-thread runs",
    "regime": "regime classified from the metrics (a check that they are sensible)",
    "total_s_default_blas_threads": "median total seconds with default BLAS threads",
    "peak_bytes_n50000": "tracemalloc peak of the accumulator at N = 50,000",
    "peak_bytes_n200000": "the same at N = 200,000",
    "time_target_s": "target for total_s",
    "targets_met": "total_s within the target and peak memory flat in N (within 5 %)",
}


def batch_pool(rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """Noisy simplex-ETF batches (float32 features, int64 labels)."""
    centring = np.eye(NUM_CLASSES) - 1.0 / NUM_CLASSES
    means = np.linalg.svd(centring)[0][:, :DIM] * np.sqrt(NUM_CLASSES / DIM)  # (C, d)
    pool = []
    for _ in range(POOL_BATCHES):
        labels = rng.integers(0, NUM_CLASSES, size=BATCH_SIZE)  # (B,)
        features = means[labels] + 0.01 * rng.normal(size=(BATCH_SIZE, DIM))  # (B, d)
        pool.append((features.astype(np.float32), labels))
    return pool


def batches(pool: list[tuple[np.ndarray, np.ndarray]], num_samples: int) -> Iterator[tuple]:
    """num_samples samples as pool batches in turn, the last one cut short."""
    for index, start in enumerate(range(0, num_samples, BATCH_SIZE)):
        features, labels = pool[index % len(pool)]
        size = min(BATCH_SIZE, num_samples - start)
        yield features[:size], labels[:size]


def median_run(runs: list[dict[str, float | str]]) -> dict[str, float | str]:
    """The run of median total time (an odd count of runs), so its parts add up to it."""
    return sorted(runs, key=lambda run: float(run["total_s"]))[len(runs) // 2]


def timed_run(pool: list, num_samples: int) -> dict[str, float | str]:
    """Seconds for the first pass, the second pass and compute()."""
    accumulator = GeometryAccumulator(NUM_CLASSES, DIM)
    start = time.perf_counter()
    for features, labels in batches(pool, num_samples):
        accumulator.update(features, labels)
    first_pass = time.perf_counter()
    for features, labels in batches(pool, num_samples):
        accumulator.update_within(features, labels)
    second_pass = time.perf_counter()
    metrics = accumulator.compute()
    end = time.perf_counter()
    return {
        "update_s": first_pass - start,
        "update_within_s": second_pass - first_pass,
        "compute_s": end - second_pass,
        "total_s": end - start,
        "regime": classify_regime(metrics),
    }


def peak_memory_bytes(pool: list, num_samples: int) -> int:
    """tracemalloc peak over constructing, feeding (both passes) and computing."""
    tracemalloc.start()
    accumulator = GeometryAccumulator(NUM_CLASSES, DIM)
    for features, labels in batches(pool, num_samples):
        accumulator.update(features, labels)
    for features, labels in batches(pool, num_samples):
        accumulator.update_within(features, labels)
    accumulator.compute()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def main() -> None:
    """Time both thread settings, measure peak memory, print and write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=RESULTS_PATH, help="JSON results path")
    args = parser.parse_args()
    pool = batch_pool(np.random.default_rng(0))
    timed_run(pool, 5 * BATCH_SIZE)  # warm-up (BLAS threads, imports)
    default_runs, one_thread_runs = [], []
    for _ in range(REPETITIONS):  # the thread settings in turn, under the same machine load
        default_runs.append(timed_run(pool, 50_000))
        with threadpool_limits(limits=1, user_api="blas"):
            one_thread_runs.append(timed_run(pool, 50_000))
    default_threads, timings = median_run(default_runs), median_run(one_thread_runs)
    with threadpool_limits(limits=1, user_api="blas"):
        peaks = {n: peak_memory_bytes(pool, n) for n in (50_000, 200_000)}
    memory_flat = peaks[200_000] <= MEMORY_GROWTH_TOLERANCE * peaks[50_000]
    results = {
        "num_samples": 50_000,
        "dim": DIM,
        "num_classes": NUM_CLASSES,
        "batch_size": BATCH_SIZE,
        "blas_threads": 1,
        "repetitions": REPETITIONS,
        **timings,
        "total_s_default_blas_threads": default_threads["total_s"],
        "peak_bytes_n50000": peaks[50_000],
        "peak_bytes_n200000": peaks[200_000],
        "time_target_s": TIME_TARGET_S,
        "targets_met": timings["total_s"] <= TIME_TARGET_S and memory_flat,
    }
    print(
        f"N=50,000 d={DIM} C={NUM_CLASSES} batch={BATCH_SIZE}: "
        f"update {timings['update_s']:.3f} s + update_within {timings['update_within_s']:.3f} s "
        f"+ compute {timings['compute_s']:.3f} s = {timings['total_s']:.3f} s "
        f"(1 BLAS thread; target <= {TIME_TARGET_S} s); regime {timings['regime']}"
    )
    print(f"same with default BLAS threads (not judged): {default_threads['total_s']:.3f} s")
    print(
        f"peak memory: {peaks[50_000] / 2**20:.2f} MiB at N=50,000, "
        f"{peaks[200_000] / 2**20:.2f} MiB at N=200,000; targets met: {results['targets_met']}"
    )
    write_results(args.output, __doc__.splitlines()[0], FIELDS, results)


if __name__ == "__main__":
    main()
