"""Benchmark: the training loop on configs/latent_class.yaml (C = 50, N = 5,000, batch 512).

Measures, on one machine in one run:

- training throughput: training samples per second of train-only time (9 full batches);
- the share of epoch time spent on the per-epoch geometry metrics (streaming statistics,
  spectrum, regime and NCM accuracy, from the embedded sets), target <= 10 %, and the share
  of the whole evaluation, which adds the eval-mode forward passes over the train and test
  sets that produce the features: train-only, evaluation, forward-pass and metric times of
  the same epochs side by side; also the share of train time spent on the logged
  loss_hard / loss_plain pair;
- one epoch of this loop against a port of the reference training step (the per-anchor loop
  loss of benchmarks/reference_port.py) on the same model, data and optimizer. The port is
  timed on a few steps per repetition (10 steps in all without --quick, 2 with) and
  extrapolated to an epoch.

After a warm-up, each repetition times in turn an epoch of each estimator (in its parts),
one `run_epoch` and the reference steps, so all see the same machine load; medians are
reported. Prints a table and writes benchmarks/results/training.json (or --output).

Usage: python benchmarks/bench_training.py [--quick] [--device cpu|cuda] [--threads N]
       [--output PATH]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from reference_port import reference_contrastive_loss
from results_file import write_results

from hcl_study.config import TrainConfig, read_yaml_file, with_overrides
from hcl_study.train import Trainer
from hcl_study.train.evaluation import embed, geometry_of_features

CONFIG_PATH = Path(__file__).resolve().parents[1] / "configs" / "latent_class.yaml"
RESULTS_PATH = Path(__file__).parent / "results" / "training.json"
METRICS_SHARE_TARGET = 0.10
FIELDS = {
    "config": "the trained config",
    "num_classes": "classes C",
    "feature_dim": "feature dimension d",
    "num_train": "training samples N",
    "batch_size": "training batch size",
    "steps_per_epoch": "training steps per epoch (full batches)",
    "beta": "hardness beta of the loss",
    "device": "torch device",
    "torch_version": "torch version",
    "num_threads": "torch CPU threads",
    "quick": "whether --quick (fewer repetitions and reference steps) was given",
    "epochs_measured": "repetitions: timed epochs per estimator",
    "estimators": "per estimator: median seconds of train, evaluation and its embed / metrics "
    "parts, train without the loss-pair log; throughput, shares, reference ratios; per_epoch: "
    "every repetition's seconds",
    "run_epoch_s": "seconds of each timed run_epoch (reweight: train + evaluation, as logged)",
    "reference_step_s": "seconds of each timed reference loop-port training step",
    "reference_epoch_s_extrapolated": "median reference step x steps_per_epoch",
    "metrics_share_target": "target for the geometry metrics' share of epoch time",
    "metrics_share_target_met": "whether the reweight estimator meets it",
}
T = TypeVar("T")


def timed(device: torch.device, work: Callable[[], T]) -> tuple[float, T]:
    """Wall seconds of `work()` including the device's queued kernels, and its result."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    result = work()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start, result


def make_trainer(device: str, threads: int, **overrides: Any) -> Trainer:
    """A fresh trainer of configs/latent_class.yaml with dotted-path overrides."""
    settings = {"device": device, "cpu_threads": threads, **overrides}
    raw = with_overrides(read_yaml_file(CONFIG_PATH), settings)
    return Trainer(TrainConfig.model_validate(raw))


def embed_both(trainer: Trainer) -> tuple[torch.Tensor, ...]:
    """The forward passes of the evaluation alone: train and test features and labels."""
    features: tuple[torch.Tensor, ...] = ()
    for dataset in (trainer.data.train_eval, trainer.data.test):
        features += embed(
            trainer.model,
            dataset,
            device=trainer.device,
            batch_size=trainer.config.eval_batch_size,
            autocast=trainer._autocast,
        )
    return features


def metrics_of(trainer: Trainer, features: tuple[torch.Tensor, ...]) -> None:
    """The evaluation's geometry metrics alone, from already embedded sets."""
    geometry_of_features(
        *features, num_classes=trainer.num_classes, batch_size=trainer.config.eval_batch_size
    )


def skip_loss_pair(trainer: Trainer) -> Callable[[], dict[str, float]]:
    """`_train_one_epoch` without the logged exact hard / plain losses (timing only)."""

    def train_only() -> dict[str, float]:
        trainer._loss_pair = lambda z, y, loss: (0.0, 0.0)  # type: ignore[method-assign]
        try:
            return trainer._train_one_epoch()
        finally:
            del trainer._loss_pair

    return train_only


def epoch_parts(trainer: Trainer) -> dict[str, float]:
    """One epoch's seconds: train, evaluation, its two parts, train without the loss-pair log."""
    device = trainer.device
    train_s = timed(device, trainer._train_one_epoch)[0]
    evaluation_s = timed(device, trainer.measure)[0]
    embed_s, features = timed(device, lambda: embed_both(trainer))
    return {
        "train_s": train_s,
        "evaluation_s": evaluation_s,
        "evaluation_embed_s": embed_s,
        "evaluation_metrics_s": timed(device, partial(metrics_of, trainer, features))[0],
        "train_without_loss_pair_s": timed(device, skip_loss_pair(trainer))[0],
    }


def reference_steps(trainer: Trainer, steps: int) -> list[float]:
    """Seconds of `steps` reference training steps: forward, loop-port loss, backward, step."""
    cfg = trainer.config.loss
    rng = np.random.default_rng(0)
    trainer.model.train()
    seconds = []
    batches = trainer._train_batches()
    for _ in range(steps):
        x, y = next(batches)

        def step(x: torch.Tensor = x, y: torch.Tensor = y) -> None:
            z = trainer.model(x)  # (B, d)
            loss = reference_contrastive_loss(
                z,
                y,
                loss=cfg.name,
                beta=cfg.beta,
                tau=cfg.tau,
                num_negatives=cfg.num_negatives,
                negative_scale=cfg.negative_scale,
                rng=rng,
            )
            trainer.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            trainer.optimizer.step()

        seconds.append(timed(trainer.device, step)[0])
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer epochs and reference steps")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument(
        "--threads", type=int, default=os.cpu_count() or 1, help="torch CPU threads (cpu_threads)"
    )
    parser.add_argument("--output", type=Path, default=RESULTS_PATH, help="JSON results path")
    args = parser.parse_args()
    epochs, ref_steps = (2, 1) if args.quick else (5, 2)

    trainers = {
        estimator: make_trainer(args.device, args.threads, **{"loss.estimator": estimator})
        for estimator in ("reweight", "sample")
    }
    reference = make_trainer(args.device, args.threads)
    for trainer in trainers.values():  # warm-up: allocator, BLAS threads, kernels
        trainer.run_epoch()
    reference_steps(reference, 1)
    device = trainers["reweight"].device
    columns: dict[str, dict[str, list[float]]] = {name: defaultdict(list) for name in trainers}
    full_epochs, reference_seconds = [], []
    for _ in range(epochs):  # round-robin, so that every part sees the same machine load
        for name, trainer in trainers.items():
            for key, seconds in epoch_parts(trainer).items():
                columns[name][key].append(seconds)
        full_epochs.append(timed(device, trainers["reweight"].run_epoch)[0])
        reference_seconds += reference_steps(reference, ref_steps)
    steps_per_epoch = len(reference.data.train) // reference.config.batch_size
    batch = reference.config.batch_size
    reference_epoch = statistics.median(reference_seconds) * steps_per_epoch

    rows = {}
    for name, column in columns.items():
        median = {key: statistics.median(values) for key, values in column.items()}
        epoch = median["train_s"] + median["evaluation_s"]
        rows[name] = {
            **median,
            "epoch_s": epoch,
            "samples_per_s": steps_per_epoch * batch / median["train_s"],
            "metrics_share": median["evaluation_metrics_s"] / epoch,
            "evaluation_share": median["evaluation_s"] / epoch,
            "evaluation_embed_share_of_evaluation": median["evaluation_embed_s"]
            / median["evaluation_s"],
            "loss_pair_share_of_train": 1 - median["train_without_loss_pair_s"] / median["train_s"],
            "reference_over_train": reference_epoch / median["train_s"],
            "reference_over_epoch": reference_epoch / epoch,
            "per_epoch": dict(column),
        }

    config = trainers["reweight"].config
    num_train = len(reference.data.train)
    print(
        f"{CONFIG_PATH.name}: C={config.num_classes} d={config.feature_dim} N={num_train} "
        f"batch={batch} ({steps_per_epoch} steps/epoch) beta={config.loss.beta} device={device} "
        f"threads={torch.get_num_threads()}; medians over {epochs} epochs"
    )
    print(
        f"{'estimator':<10}{'train s':>9}{'eval s':>9}{'embed s':>9}{'metric s':>9}"
        f"{'metric %':>9}{'eval %':>8}{'pair %':>8}"
        f"{'samples/s':>11}{'ref/train':>11}{'ref/epoch':>11}"
    )
    for name, row in rows.items():
        print(
            f"{name:<10}{row['train_s']:>9.3f}{row['evaluation_s']:>9.3f}"
            f"{row['evaluation_embed_s']:>9.3f}{row['evaluation_metrics_s']:>9.3f}"
            f"{100 * row['metrics_share']:>8.1f}%{100 * row['evaluation_share']:>7.1f}%"
            f"{100 * row['loss_pair_share_of_train']:>7.1f}%{row['samples_per_s']:>11.0f}"
            f"{row['reference_over_train']:>10.1f}x{row['reference_over_epoch']:>10.1f}x"
        )
    print(
        f"run_epoch (reweight, as logged): median {statistics.median(full_epochs):.3f} s; "
        f"reference loop-port step: median {statistics.median(reference_seconds):.3f} s over "
        f"{len(reference_seconds)} steps -> {reference_epoch:.2f} s per {steps_per_epoch}-step "
        "epoch (extrapolated)"
    )
    share = rows["reweight"]["metrics_share"]
    print(
        f"geometry-metrics share (reweight) {100 * share:.1f}% "
        f"(target <= {100 * METRICS_SHARE_TARGET:.0f}%: {share <= METRICS_SHARE_TARGET}); "
        f"whole evaluation with its forward passes "
        f"{100 * rows['reweight']['evaluation_share']:.1f}%"
    )

    results = {
        "config": str(CONFIG_PATH.relative_to(CONFIG_PATH.parents[1])),
        "num_classes": config.num_classes,
        "feature_dim": config.feature_dim,
        "num_train": num_train,
        "batch_size": batch,
        "steps_per_epoch": steps_per_epoch,
        "beta": config.loss.beta,
        "device": str(device),
        "torch_version": torch.__version__,
        "num_threads": torch.get_num_threads(),
        "quick": args.quick,
        "epochs_measured": epochs,
        "estimators": rows,
        "run_epoch_s": full_epochs,
        "reference_step_s": reference_seconds,
        "reference_epoch_s_extrapolated": reference_epoch,
        "metrics_share_target": METRICS_SHARE_TARGET,
        "metrics_share_target_met": share <= METRICS_SHARE_TARGET,
    }
    write_results(args.output, __doc__.splitlines()[0], FIELDS, results)


if __name__ == "__main__":
    main()
