"""The study service's own cost, side by side in one run, on the quick.yaml trial config.

(a) steady-state per-epoch time inside Tune with MLflow logging vs the bare training loop
    (both single-threaded, as a 1-CPU trial is), the bare loop run before and after the
    trial. Target <= 1.05x.
(b) fixed per-trial overhead (worker start, imports, MLflow run open/close, checkpoint):
    8 one-epoch trials run one after another with actor reuse. Target median <= 1.5 s.
(c) the whole quick.yaml study's wall time vs the sum of its trials' loop times divided
    by the concurrency. Target <= 1.3x.
Also reports the time of `ray.init`. Writes benchmarks/results/service.json (or --output).

    .venv/bin/python benchmarks/bench_service.py [--quick] [--output PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from results_file import write_results

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "search_spaces" / "quick.yaml"
RESULTS_PATH = ROOT / "benchmarks" / "results" / "service.json"
TRIAL_POINT = {"loss.beta": 30.0, "loss.tau": 0.5, "normalization": "sphere", "optimizer.lr": 0.01}
FIELDS = {
    "ray_init_s": "seconds of one ray.init",
    "a_steady_state": "median epoch seconds (first 2 epochs left out) of the bare loop before "
    "and after the Tune trial, of both bare runs together, of the trial in Tune + MLflow; "
    "ratio: Tune over bare",
    "b_per_trial_overhead": "median and max seconds between one-epoch trials beyond their "
    "epoch time; trials; the study's wall seconds",
    "c_whole_study": "quick.yaml's wall seconds, the ideal (its trials' epoch seconds over "
    "max_concurrent), their ratio and its trials",
    "targets_met": "the three targets of the docstring, each met or not",
    "quick": "whether --quick (shorter runs) was given",
}

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def quick_spec() -> dict[str, Any]:
    """search_spaces/quick.yaml as a dict."""
    return yaml.safe_load(QUICK.read_text())


def write_spec(directory: Path, spec: dict[str, Any]) -> Path:
    """Write `spec` as <name>.yaml into `directory`; its path."""
    path = directory / f"{spec['name']}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def trial_results(experiment_dir: Path) -> list[list[dict[str, Any]]]:
    """Every trial's reported results, in report order."""
    return [
        [json.loads(line) for line in path.read_text().splitlines()]
        for path in sorted(experiment_dir.glob("*/result.json"))
    ]


def time_ray_init() -> float:
    """Seconds of one local `ray.init` (shut down afterwards)."""
    import ray

    started = time.perf_counter()
    ray.init(include_dashboard=False)
    elapsed = time.perf_counter() - started
    ray.shutdown()
    return elapsed


def bare_epoch_times(epochs: int) -> list[float]:
    """The training loop alone, single-threaded like a 1-CPU trial."""
    import torch
    from threadpoolctl import threadpool_limits

    from hcl_study.config import TrainConfig, with_overrides
    from hcl_study.train import Trainer

    base = quick_spec()["base"] | {"epochs": epochs}
    config = TrainConfig.model_validate(with_overrides(base, TRIAL_POINT))
    torch.set_num_threads(1)
    times = []
    with threadpool_limits(1):
        trainer = Trainer(config)
        for _ in range(epochs):
            started = time.perf_counter()
            trainer.run_epoch()
            times.append(time.perf_counter() - started)
    torch.set_num_threads(os.cpu_count() or 1)
    return times


def run(spec: dict[str, Any], directory: Path) -> tuple[float, list[list[dict[str, Any]]]]:
    """Run the study `spec` in `directory`: its wall seconds and every trial's results."""
    from hcl_study.study.runner import run_study

    directory.mkdir(parents=True, exist_ok=True)
    with contextlib.chdir(directory):  # the study's files go under the working directory
        started = time.perf_counter()
        run_study(write_spec(directory, spec))
        wall = time.perf_counter() - started
    return wall, trial_results(directory / "studies" / spec["name"] / "ray" / spec["name"])


def steady_state(epochs: int, workdir: Path) -> dict[str, float]:
    """Median epoch seconds of one trial in Tune with MLflow and of the bare loop, run once
    before and once after it (a change in machine load shows as a gap between the two);
    the first 2 epochs of each run are left out."""
    bare_before = bare_epoch_times(epochs)[2:]
    spec = quick_spec() | {"name": "bench-steady"}
    spec["base"] = spec["base"] | {"epochs": epochs}
    spec["space"] = {key: {"grid": [value]} for key, value in TRIAL_POINT.items()}
    spec["search"] = {"algorithm": "grid", "max_concurrent": 1}
    spec["checkpoint_every"] = 5
    _, trials = run(spec, workdir / "steady")
    bare_after = bare_epoch_times(epochs)[2:]
    reports = [row["reported_at"] for row in trials[0]]
    in_tune = [after - before for before, after in zip(reports, reports[1:], strict=False)]
    bare_median = statistics.median(bare_before + bare_after)
    tune_median = statistics.median(in_tune[2:])
    return {
        "bare_before_epoch_s": statistics.median(bare_before),
        "bare_after_epoch_s": statistics.median(bare_after),
        "bare_epoch_s": bare_median,
        "tune_epoch_s": tune_median,
        "ratio": tune_median / bare_median,
    }


def per_trial_overhead(workdir: Path, count: int = 8) -> dict[str, float]:
    """Seconds between `count` one-epoch trials run one after another, beyond their epoch."""
    spec = quick_spec() | {"name": "bench-overhead"}
    spec["base"] = spec["base"] | {"epochs": 1}
    spec["space"] = {"seed": {"grid": list(range(count))}}
    spec["search"] = {"algorithm": "grid", "max_concurrent": 1}
    wall, trials = run(spec, workdir / "overhead")
    ends = sorted((rows[-1]["reported_at"], rows[-1]["epoch_seconds"]) for rows in trials)
    overheads = [
        (end - previous_end) - work
        for (previous_end, _), (end, work) in zip(ends, ends[1:], strict=False)
    ]
    return {
        "median_s": statistics.median(overheads),
        "max_s": max(overheads),
        "trials": count,
        "study_wall_s": wall,
    }


def whole_study(workdir: Path, epochs: int | None) -> dict[str, float]:
    """quick.yaml (at `epochs` when given) against its trials' loop time / concurrency."""
    spec = quick_spec()
    if epochs is not None:
        spec["base"] = spec["base"] | {"epochs": epochs}
    wall, trials = run(spec, workdir / "quick")
    loop_seconds = sum(row["epoch_seconds"] for rows in trials for row in rows)
    ideal = loop_seconds / spec["search"]["max_concurrent"]
    return {"wall_s": wall, "ideal_s": ideal, "ratio": wall / ideal, "trials": len(trials)}


def main() -> None:
    """Measure (a), (b), (c) and ray.init, print them, write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="shorter runs (quick.yaml at 10 epochs)"
    )
    parser.add_argument("--output", type=Path, default=RESULTS_PATH, help="JSON results path")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        figures: dict[str, Any] = {"ray_init_s": time_ray_init()}
        figures["a_steady_state"] = steady_state(12 if args.quick else 30, workdir)
        figures["b_per_trial_overhead"] = per_trial_overhead(workdir)
        figures["c_whole_study"] = whole_study(workdir, 10 if args.quick else None)
    figures["targets_met"] = {
        "a_ratio_le_1.05": figures["a_steady_state"]["ratio"] <= 1.05,
        "b_median_le_1.5s": figures["b_per_trial_overhead"]["median_s"] <= 1.5,
        "c_ratio_le_1.3": figures["c_whole_study"]["ratio"] <= 1.3,
    }
    figures["quick"] = args.quick
    print(json.dumps(figures, indent=2))
    write_results(args.output, __doc__.splitlines()[0], FIELDS, figures)


if __name__ == "__main__":
    main()
