"""The training loop: one epoch at a time, so callers (CLI, Ray trainable) drive it.

Knows nothing of Ray or MLflow. Each epoch trains on shuffled batches, then measures the
geometry of the un-augmented training set in eval mode.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, TensorDataset

from hcl_study.config import TrainConfig
from hcl_study.data import DataBundle, load_dataset
from hcl_study.geometry import DIVERGED
from hcl_study.losses import contrastive_loss
from hcl_study.models import build_model
from hcl_study.train.checkpoint import (
    capture_rng_states,
    load_checkpoint,
    restore_rng_states,
    save_checkpoint,
)
from hcl_study.train.evaluation import GeometryResult, evaluate_geometry
from hcl_study.train.stopping import check_stop


@dataclass
class EpochResult:
    """What one epoch produced.

    Attributes:
        epoch: 0-based epoch index.
        metrics: Scalar metrics: `loss`, `loss_hard`, `loss_plain`, every geometry metric,
            `regime_code`, `ncm_accuracy_test`, `epoch_seconds`.
        regime: `NC`, `DC`, `partial` or `diverged`.
        class_means: Class means of the training set, shape (C, d).
        spectrum: Normalized class-mean spectrum, shape (r,).
    """

    epoch: int
    metrics: dict[str, float]
    regime: str
    class_means: np.ndarray
    spectrum: np.ndarray
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def diverged(self) -> bool:
        return self.regime == DIVERGED


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA when present, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for, but CUDA is not available")
    return torch.device(name)


@dataclass(frozen=True)
class RunSeeds:
    """The seeds of one run's three random streams, derived from its `seed`.

    Run `seed` uses 3·seed, 3·seed + 1 and 3·seed + 2, so no two runs share a stream (with
    `seed`, `seed + 1`, `seed + 2`, the shuffling of run 0 would replay the initialization of
    run 1 and the loss sampling of run 2), and seed 0 keeps the streams 0, 1, 2 it always had.
    Distinct seeds give unrelated streams: MT19937 (CPU) scrambles its seed at
    initialization, Philox (CUDA) takes it as its key.
    """

    init: int  # the global generators: model initialization, augmentations
    shuffle: int  # batch order
    loss: int  # the loss's sampling

    @classmethod
    def derive(cls, seed: int) -> RunSeeds:
        return cls(init=3 * seed, shuffle=3 * seed + 1, loss=3 * seed + 2)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Trainer:
    """Owns data, model, optimizer and RNGs of one run; `run_epoch()` advances one epoch.

    Args:
        config: The validated run configuration.
        data: A pre-loaded data bundle (loaded from `config.data` when omitted).
    """

    def __init__(self, config: TrainConfig, data: DataBundle | None = None) -> None:
        self.config = config
        self.device = resolve_device(config.device)
        # The thread count splits CPU reductions differently, so it would otherwise make the
        # same seed give other metrics on another machine (Ray sets it from the trial's CPUs).
        torch.set_num_threads(config.cpu_threads)
        seeds = RunSeeds.derive(config.seed)
        seed_everything(seeds.init)
        self.data = data if data is not None else load_dataset(config.data)
        self.model = build_model(config, self.data.input_shape).to(self.device)
        self.optimizer = _build_optimizer(config, self.model.parameters())
        self.shuffle_rng = torch.Generator().manual_seed(seeds.shuffle)
        self.loss_rng = torch.Generator(device=self.device).manual_seed(seeds.loss)
        self.epoch = 0
        self._train_tensors = _device_tensors(self.data.train, self.device)

    @property
    def num_classes(self) -> int:
        return self.data.num_classes

    # ----------------------------------------------------------------- training
    def run_epoch(self, stop: threading.Event | None = None) -> EpochResult:
        """Train one epoch, then measure it. Stops early (regime `diverged`) on NaN/inf.

        Args:
            stop: Checked before every training and every measurement batch; once set, the
                epoch is abandoned with `EpochInterrupted`, leaving the trainer mid-epoch
                (for a caller that discards it, such as a stopped trial).
        """
        started = time.perf_counter()
        losses = self._train_one_epoch(stop)
        geometry = self.measure(stop)
        finite_losses = all(math.isfinite(v) for v in losses.values())
        regime = geometry.regime if finite_losses else DIVERGED
        metrics = {**losses, **geometry.metrics}
        metrics["regime_code"] = float(geometry.regime_code(regime))
        metrics["epoch_seconds"] = time.perf_counter() - started
        result = EpochResult(
            epoch=self.epoch,
            metrics=metrics,
            regime=regime,
            class_means=geometry.class_means,
            spectrum=geometry.spectrum,
        )
        self.epoch += 1
        return result

    def measure(self, stop: threading.Event | None = None) -> GeometryResult:
        """The geometry of the model as it is: training-set features, test NCM accuracy.

        Args:
            stop: Checked before every embedded batch (`EpochInterrupted` once set).
        """
        return evaluate_geometry(
            self.model,
            self.data.train_eval,
            self.data.test,
            num_classes=self.num_classes,
            device=self.device,
            batch_size=self.config.eval_batch_size,
            autocast=self._autocast,
            stop=stop,
        )

    def _train_one_epoch(self, stop: threading.Event | None = None) -> dict[str, float]:
        self.model.train()
        cfg = self.config.loss
        totals = {"loss": 0.0, "loss_hard": 0.0, "loss_plain": 0.0}
        num_batches = 0
        for x, y in self._train_batches():
            check_stop(stop)
            with self._autocast():
                z = self.model(x)  # (B, d)
            z = z.float()
            loss = contrastive_loss(
                z,
                y,
                loss=cfg.name,
                beta=cfg.beta,
                tau=cfg.tau,
                estimator=cfg.estimator,
                num_negatives=cfg.num_negatives,
                negative_scale=cfg.negative_scale,
                self_positive=cfg.self_positive,
                self_negative=cfg.self_negative,
                generator=self.loss_rng,
            )
            if not torch.isfinite(loss):
                return {key: math.nan for key in totals}
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            hard, plain = self._loss_pair(z.detach(), y, loss.detach())
            totals["loss"] += loss.item()
            totals["loss_hard"] += hard
            totals["loss_plain"] += plain
            num_batches += 1
        return {key: value / max(num_batches, 1) for key, value in totals.items()}

    def _loss_pair(self, z: Tensor, y: Tensor, training_loss: Tensor) -> tuple[float, float]:
        """The exact (`reweight`) hard and plain (β = 0) losses of the same batch.

        Logged every epoch so that the paper's bound HSCL ≥ SCL (HUCL ≥ UCL) can be
        checked on the very representation that was trained.
        """
        cfg = self.config.loss
        common = dict(
            loss=cfg.name,
            tau=cfg.tau,
            estimator="reweight",
            negative_scale=cfg.negative_scale,
            self_positive=cfg.self_positive,
            self_negative=cfg.self_negative,
        )
        with torch.no_grad():
            if cfg.estimator == "reweight":
                hard = training_loss
            else:
                hard = contrastive_loss(z, y, beta=cfg.beta, **common)
            plain = hard if cfg.beta == 0 else contrastive_loss(z, y, beta=0.0, **common)
        return hard.item(), plain.item()

    def _train_batches(self) -> Iterator[tuple[Tensor, Tensor]]:
        batch_size = self.config.batch_size
        if self._train_tensors is not None:
            x_all, y_all = self._train_tensors
            count = len(y_all)
            order = torch.randperm(count, generator=self.shuffle_rng).to(self.device)
            # Drop the ragged last batch: BatchNorm and the loss need full batches, and
            # equal batch sizes keep the loss scale comparable across steps.
            stop = count - count % batch_size if count >= batch_size else count
            for start in range(0, stop, batch_size):
                index = order[start : start + batch_size]
                yield x_all[index], y_all[index]
            return
        loader = DataLoader(
            self.data.train,
            batch_size=batch_size,
            shuffle=True,
            drop_last=len(self.data.train) >= batch_size,
            generator=self.shuffle_rng,
            num_workers=self.config.num_workers,
            worker_init_fn=_seed_worker,
            pin_memory=self.device.type == "cuda",
        )
        for x, y in loader:
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    def _autocast(self) -> torch.autocast:
        enabled = self.config.bf16 and self.device.type == "cuda"
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=enabled)

    # -------------------------------------------------------------- checkpoints
    def _generators(self) -> dict[str, torch.Generator]:
        return {"shuffle": self.shuffle_rng, "loss": self.loss_rng}

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": capture_rng_states(self._generators()),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        restore_rng_states(state["rng"], self._generators())
        self.epoch = int(state["epoch"])

    def save(self, directory: str | Path) -> Path:
        return save_checkpoint(self.state_dict(), directory)

    def restore(self, directory: str | Path) -> None:
        self.load_state_dict(load_checkpoint(directory))


def train(
    config: TrainConfig,
    *,
    on_epoch: Callable[[EpochResult], None] | None = None,
    trainer: Trainer | None = None,
) -> list[EpochResult]:
    """Run the remaining epochs of `config` (all of them for a fresh trainer).

    Stops after the first diverged epoch. `on_epoch` sees every result as it comes.
    """
    trainer = trainer or Trainer(config)
    results = []
    while trainer.epoch < config.epochs:
        result = trainer.run_epoch()
        results.append(result)
        if on_epoch is not None:
            on_epoch(result)
        if result.diverged:
            break
    return results


def _build_optimizer(
    config: TrainConfig, params: Iterator[torch.nn.Parameter]
) -> torch.optim.Optimizer:
    opt = config.optimizer
    if opt.name == "adam":
        return torch.optim.Adam(params, lr=opt.lr, weight_decay=opt.weight_decay)
    return torch.optim.SGD(params, lr=opt.lr, weight_decay=opt.weight_decay, momentum=opt.momentum)


def _device_tensors(dataset: Dataset, device: torch.device) -> tuple[Tensor, Tensor] | None:
    """The whole data set on the device when it is a plain tensor set (the fast path)."""
    if isinstance(dataset, TensorDataset):
        x, y = dataset.tensors
        return x.to(device), y.to(device)
    return None


def _seed_worker(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)
