"""Forward + backward time of the vectorized contrastive losses against the loop port.

CIFAR-100 setting of the paper: B = 512, d = 99, C = 100 (labels as balanced as 512
allows: 12 classes of 6, 88 of 5). Targets, measured side by side in one run:

- `reweight` is >= 100x faster than the reference loop port for SCL and UCL at every beta;
- `reweight` HSCL at beta = 30 takes <= 1.5x the time of beta = 0.

The `sample` estimator is timed for information. After one warm-up call each, every
repetition times every method in turn, so all see the same machine load; medians are
reported. Prints a table and writes benchmarks/results/losses.json (or --output).

Usage: python benchmarks/bench_losses.py [--quick] [--device cuda] [--output PATH]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from reference_port import reference_contrastive_loss
from results_file import write_results
from torch import Tensor

from hcl_study.losses import contrastive_loss

BATCH, DIM, NUM_CLASSES, TAU = 512, 99, 100, 0.5
BETAS = (0.0, 5.0, 30.0)
LOSSES = ("scl", "ucl")
LOOP_SPEEDUP_TARGET = 100.0
HARDNESS_SLOWDOWN_TARGET = 1.5
RESULTS_PATH = Path(__file__).parent / "results" / "losses.json"
FIELDS = {
    "setting": "batch size B, feature dimension d, classes C and temperature tau",
    "device": "torch device the losses ran on",
    "torch_version": "torch version",
    "num_threads": "torch CPU threads",
    "quick": "whether --quick (fewer repetitions) was given",
    "repetitions": "timed forward + backward passes per method, all methods in turn in each",
    "cells": "per loss and beta: median seconds of reweight, sample and the loop port, the "
    "loop port's ratios to them, and each method's last loss value",
    "min_loop_over_reweight": "smallest loop-port / reweight time ratio over the cells",
    "hscl_beta30_over_beta0": "reweight SCL time at beta = 30 over beta = 0",
    "targets_met": "the two targets of the docstring, each met or not",
}


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so that wall times cover it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_gradient(step: Callable[[], Tensor], z: Tensor) -> tuple[float, float]:
    """Wall time of forward + backward of `step` with respect to `z`, and the loss value."""
    synchronize(z.device)
    start = time.perf_counter()
    value = step()
    torch.autograd.grad(value, z)
    synchronize(z.device)
    return time.perf_counter() - start, value.item()


def interleaved_medians(
    steps: dict[str, Callable[[], Tensor]], z: Tensor, repetitions: int
) -> dict[str, tuple[float, float]]:
    """Median seconds and last loss value of each step, timed in turn after a warm-up.

    Interleaving the steps exposes them to the same machine load, so ratios are fair.
    """
    for step in steps.values():
        timed_gradient(step, z)
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in steps}
    for _ in range(repetitions):
        for name, step in steps.items():
            runs[name].append(timed_gradient(step, z))
    return {
        name: (statistics.median(seconds for seconds, _ in timings), timings[-1][1])
        for name, timings in runs.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--output", type=Path, default=RESULTS_PATH, help="JSON results path")
    args = parser.parse_args()
    device = torch.device(args.device)
    repetitions = 5 if args.quick else 30

    generator = torch.Generator().manual_seed(0)
    z = F.normalize(torch.randn(BATCH, DIM, generator=generator), dim=1).to(device)  # (B, d)
    z.requires_grad_()
    labels = (torch.arange(BATCH) % NUM_CLASSES).to(device)  # (B,)
    sample_generator = torch.Generator(device=device).manual_seed(0)
    rng = np.random.default_rng(0)

    cells = []
    for loss in LOSSES:
        steps = {}
        for beta in BETAS:
            kwargs = {"loss": loss, "beta": beta, "tau": TAU}
            steps[f"reweight {beta}"] = partial(contrastive_loss, z, labels, **kwargs)
            steps[f"sample {beta}"] = partial(
                contrastive_loss,
                z,
                labels,
                estimator="sample",
                generator=sample_generator,
                **kwargs,
            )
            steps[f"loop_port {beta}"] = partial(
                reference_contrastive_loss, z, labels, rng=rng, **kwargs
            )
        timings = interleaved_medians(steps, z, repetitions)
        for beta in BETAS:
            reweight, reweight_value = timings[f"reweight {beta}"]
            sample, sample_value = timings[f"sample {beta}"]
            loop, loop_value = timings[f"loop_port {beta}"]
            cells.append(
                {
                    "loss": loss,
                    "beta": beta,
                    "reweight_s": reweight,
                    "sample_s": sample,
                    "loop_port_s": loop,
                    "loop_over_reweight": loop / reweight,
                    "loop_over_sample": loop / sample,
                    "values": {
                        "reweight": reweight_value,
                        "sample": sample_value,
                        "loop_port": loop_value,
                    },
                }
            )

    reweight_of = {(cell["loss"], cell["beta"]): cell["reweight_s"] for cell in cells}
    hardness_slowdown = reweight_of[("scl", 30.0)] / reweight_of[("scl", 0.0)]
    min_speedup = min(cell["loop_over_reweight"] for cell in cells)
    targets_met = {
        "reweight_100x_faster_than_loop_port": min_speedup >= LOOP_SPEEDUP_TARGET,
        "hscl_beta30_within_1.5x_of_beta0": hardness_slowdown <= HARDNESS_SLOWDOWN_TARGET,
    }

    print(f"B={BATCH} d={DIM} C={NUM_CLASSES} tau={TAU} device={device} ", end="")
    print(f"threads={torch.get_num_threads()} forward+backward, median seconds")
    print(
        f"{'loss':<5}{'beta':>6}{'reweight':>11}{'sample':>11}{'loop port':>11}{'loop/rw':>9}"
        f"  loss values: reweight / sample / loop port"
    )
    for cell in cells:
        values = cell["values"]
        print(
            f"{cell['loss']:<5}{cell['beta']:>6g}{cell['reweight_s']:>11.5f}"
            f"{cell['sample_s']:>11.5f}{cell['loop_port_s']:>11.3f}"
            f"{cell['loop_over_reweight']:>8.0f}x"
            f"  {values['reweight']:.4f} / {values['sample']:.4f} / {values['loop_port']:.4f}"
        )
    print(f"reweight HSCL beta=30 / beta=0: {hardness_slowdown:.2f}x")
    print(f"targets met: {targets_met}")

    results = {
        "setting": {"batch": BATCH, "dim": DIM, "num_classes": NUM_CLASSES, "tau": TAU},
        "device": str(device),
        "torch_version": torch.__version__,
        "num_threads": torch.get_num_threads(),
        "quick": args.quick,
        "repetitions": repetitions,
        "cells": cells,
        "min_loop_over_reweight": min_speedup,
        "hscl_beta30_over_beta0": hardness_slowdown,
        "targets_met": targets_met,
    }
    write_results(args.output, __doc__.splitlines()[0], FIELDS, results)


if __name__ == "__main__":
    main()
