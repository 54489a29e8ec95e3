"""The training loop: determinism, exact resume, safe checkpoints, divergence, metrics, science."""

from __future__ import annotations

import math
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from fake_datasets import write_fake_cifar
from threadpoolctl import threadpool_info
from torch.utils.data import TensorDataset

from hcl_study.config import TrainConfig, read_yaml_file, with_overrides
from hcl_study.geometry import METRIC_KEYS, REGIME_CODES, GeometryAccumulator
from hcl_study.train import CHECKPOINT_FILE, DIVERGED, EpochResult, Trainer, train
from hcl_study.train.pipeline import EpochPipeline
from hcl_study.train.stopping import EpochInterrupted

ROOT = Path(__file__).resolve().parents[2]
TRAINING_KEYS = (
    "loss",
    "loss_hard",
    "loss_plain",
    "ncm_accuracy_test",
    "regime_code",
    "epoch_seconds",
)


def small_config(**overrides: Any) -> TrainConfig:
    """A tiny latent-class run (5 classes, 200 samples, batches of 50) on the CPU."""
    base: dict[str, Any] = {
        "data": {
            "name": "latent_class",
            "num_classes": 5,
            "input_dim": 8,
            "num_train": 200,
            "num_test": 50,
        },
        "model": {"width": 32, "head_hidden": 32},
        "loss": {"beta": 2.0, "num_negatives": 16},
        "batch_size": 50,
        "epochs": 3,
        "device": "cpu",
    }
    return TrainConfig.model_validate(with_overrides(base, overrides))


def comparable(result: EpochResult) -> dict[str, Any]:
    """Everything an epoch produced except its wall-clock time."""
    metrics = {key: value for key, value in result.metrics.items() if key != "epoch_seconds"}
    return {"epoch": result.epoch, "regime": result.regime, "metrics": metrics}


def assert_same_run(left: list[EpochResult], right: list[EpochResult]) -> None:
    """Exact equality of every metric, regime, class mean and spectrum entry of every epoch."""
    assert [comparable(result) for result in left] == [comparable(result) for result in right]
    for a, b in zip(left, right, strict=True):
        assert np.array_equal(a.class_means, b.class_means)
        assert np.array_equal(a.spectrum, b.spectrum)


def test_same_seed_gives_identical_metrics_and_another_seed_does_not() -> None:
    first = train(small_config(seed=0))
    second = train(small_config(seed=0))
    other = train(small_config(seed=1))

    assert len(first) == 3
    assert_same_run(first, second)
    assert [r.metrics["loss"] for r in other] != [r.metrics["loss"] for r in first]
    assert not np.array_equal(other[-1].class_means, first[-1].class_means)


def test_neighbouring_seeds_share_no_random_stream() -> None:
    """Replicates with seeds 0, 1, 2, … must be independent: no generator of one run may start
    where a generator of another starts (offsets `seed + 1` would give run 0's shuffling the
    stream of run 1's initialization)."""
    starts = []
    for seed in range(4):
        trainer = Trainer(small_config(seed=seed))
        starts += [
            torch.initial_seed(),
            trainer.shuffle_rng.initial_seed(),
            trainer.loss_rng.initial_seed(),
        ]
    assert len(set(starts)) == len(starts) == 12
    assert starts[:3] == [0, 1, 2], "seed 0 keeps its streams, so its published runs stand"


def test_cpu_threads_fix_the_results_whatever_the_process_had() -> None:
    """CPU float sums depend on the thread count (Ray sets it from a trial's CPUs, a plain
    process takes every core), so the config fixes it: the same config gives the same run."""
    config = small_config(
        epochs=2,
        **{"model.width": 256, "data.input_dim": 32, "data.num_train": 1000, "batch_size": 250},
    )
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        on_two = train(config)
        torch.set_num_threads(1)
        on_one = train(config)
        assert torch.get_num_threads() == config.cpu_threads == 1
        assert_same_run(on_two, on_one)
        torch.set_num_threads(1)
        with_two = train(config.model_copy(update={"cpu_threads": 2}))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
    assert [r.metrics for r in with_two] != [r.metrics for r in on_one], "threads change sums"


@pytest.mark.parametrize(
    ("estimator", "optimizer"), [("reweight", "adam"), ("sample", "adam"), ("reweight", "sgd")]
)
def test_resume_from_a_checkpoint_equals_an_uninterrupted_run(
    tmp_path: Path, estimator: str, optimizer: str
) -> None:
    config = small_config(
        epochs=4, **{"loss.estimator": estimator, "optimizer.name": optimizer, "optimizer.lr": 0.01}
    )
    uninterrupted = train(config)

    first = Trainer(config)
    head = [first.run_epoch() for _ in range(2)]
    first.save(tmp_path)
    # Scramble the global RNGs, so only what the checkpoint restores can match.
    torch.manual_seed(12345)
    np.random.seed(12345)
    random.seed(12345)
    resumed = Trainer(config)
    resumed.restore(tmp_path)
    assert resumed.epoch == 2
    tail = train(config, trainer=resumed)

    assert [r.epoch for r in tail] == [2, 3]
    assert_same_run(uninterrupted, head + tail)


def test_checkpoint_loads_with_weights_only_and_holds_the_run_state(tmp_path: Path) -> None:
    trainer = Trainer(small_config(**{"loss.estimator": "sample"}))
    trainer.run_epoch()
    path = trainer.save(tmp_path)

    state = torch.load(path, weights_only=True)

    assert path == tmp_path / CHECKPOINT_FILE
    assert {"model", "optimizer", "epoch", "rng"} <= state.keys()
    assert state["epoch"] == 1
    assert state["optimizer"]["state"]  # Adam moments after one epoch of steps
    for name, tensor in trainer.model.state_dict().items():
        assert torch.equal(state["model"][name], tensor)
    assert {"torch", "numpy", "python", "generators"} <= state["rng"].keys()
    assert torch.equal(state["rng"]["generators"]["loss"], trainer.loss_rng.get_state())
    assert torch.equal(state["rng"]["generators"]["shuffle"], trainer.shuffle_rng.get_state())


def test_exploding_run_ends_diverged_after_that_epoch() -> None:
    config = small_config(
        epochs=5, normalization="none", **{"optimizer.name": "sgd", "optimizer.lr": 1e6}
    )
    seen: list[EpochResult] = []

    results = train(config, on_epoch=seen.append)

    assert [r.epoch for r in seen] == [r.epoch for r in results]
    assert results[-1].regime == DIVERGED
    assert results[-1].diverged
    assert results[-1].metrics["regime_code"] == REGIME_CODES[DIVERGED]
    assert math.isnan(results[-1].metrics["loss"])
    assert len(results) < config.epochs
    assert not any(result.diverged for result in results[:-1])


@pytest.mark.parametrize("estimator", ["reweight", "sample"])
def test_logged_losses_are_the_means_over_the_full_batches_of_the_epoch(
    estimator: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`loss` is the mean of the training losses of the epoch's full batches (210 samples in
    batches of 50: 4 batches, the ragged 10 dropped), and `loss_hard` / `loss_plain` the means
    of the exact β and β = 0 losses of those same batches."""
    from hcl_study.losses import contrastive_loss
    from hcl_study.train import trainer as trainer_module

    batches: list[tuple[torch.Tensor, torch.Tensor, float]] = []

    def recording_loss(z: torch.Tensor, labels: torch.Tensor, **options: Any) -> torch.Tensor:
        value = contrastive_loss(z, labels, **options)
        if "generator" in options:  # the training loss, not the logged pair
            batches.append((z.detach().clone(), labels.clone(), value.item()))
        return value

    monkeypatch.setattr(trainer_module, "contrastive_loss", recording_loss)
    config = small_config(epochs=1, **{"data.num_train": 210, "loss.estimator": estimator})
    (result,) = train(config)

    assert [len(labels) for _, labels, _ in batches] == [50] * 4
    cfg = config.loss
    exact = dict(loss=cfg.name, tau=cfg.tau, negative_scale=cfg.negative_scale)
    hard = [contrastive_loss(z, y, beta=cfg.beta, **exact).item() for z, y, _ in batches]
    plain = [contrastive_loss(z, y, beta=0.0, **exact).item() for z, y, _ in batches]
    assert result.metrics["loss"] == pytest.approx(np.mean([v for *_, v in batches]), rel=1e-12)
    assert result.metrics["loss_hard"] == pytest.approx(np.mean(hard), rel=1e-12)
    assert result.metrics["loss_plain"] == pytest.approx(np.mean(plain), rel=1e-12)
    assert result.metrics["loss_hard"] > result.metrics["loss_plain"] + 1e-3


def test_a_non_finite_training_loss_ends_the_epoch_diverged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A NaN loss is divergence even when the (untouched) model still embeds finitely."""
    from hcl_study.train import trainer as trainer_module

    def nan_loss(z: torch.Tensor, labels: torch.Tensor, **options: Any) -> torch.Tensor:
        return z.sum() * math.nan

    monkeypatch.setattr(trainer_module, "contrastive_loss", nan_loss)
    (result,) = train(small_config(epochs=3))

    assert result.regime == DIVERGED and result.metrics["regime_code"] == REGIME_CODES[DIVERGED]
    assert math.isnan(result.metrics["loss"])
    assert math.isfinite(result.metrics["etf_distance"]), "the geometry itself is finite"


def test_nan_weights_diverge_without_raising_with_the_sampling_estimator() -> None:
    config = small_config(epochs=4, **{"loss.estimator": "sample"})
    trainer = Trainer(config)
    assert not trainer.run_epoch().diverged
    with torch.no_grad():
        trainer.model.encoder.layers[0].weight.fill_(math.nan)

    results = train(config, trainer=trainer)

    assert [(r.epoch, r.regime) for r in results] == [(1, DIVERGED)]
    assert trainer.epoch == 2


def test_overflowing_features_diverge_without_raising_with_the_sampling_estimator() -> None:
    """SGD at lr 1000 without normalization: the features stay finite for a step but their
    similarities overflow, so the weights the negatives are drawn from are NaN."""
    config = small_config(
        epochs=3,
        normalization="none",
        **{"loss.estimator": "sample", "optimizer.name": "sgd", "optimizer.lr": 1000.0},
    )

    results = train(config)

    assert [(r.epoch, r.regime) for r in results] == [(0, DIVERGED)]


@pytest.mark.parametrize("beta", [0.0, 5.0])
def test_epoch_metrics_are_complete_and_respect_the_hardness_bound(beta: float) -> None:
    results = train(small_config(**{"loss.beta": beta}))

    for result in results:
        metrics = result.metrics
        assert set(METRIC_KEYS) | set(TRAINING_KEYS) <= metrics.keys()
        assert all(math.isfinite(value) for value in metrics.values())
        assert metrics["regime_code"] == REGIME_CODES[result.regime]
        assert metrics["loss"] == metrics["loss_hard"]  # reweight trains on the exact hard loss
        if beta > 0:
            assert metrics["loss_hard"] >= metrics["loss_plain"] - 1e-9
        else:
            assert metrics["loss_hard"] == metrics["loss_plain"]
    if beta > 0:  # the bound is not met trivially
        assert all(r.metrics["loss_hard"] > r.metrics["loss_plain"] + 1e-3 for r in results)


def test_ucl_self_negative_setting_reaches_the_loss() -> None:
    ucl = {"loss.name": "ucl", "loss.beta": 30.0, "epochs": 1}
    with_self = train(small_config(**ucl))[0].metrics
    without_self = train(small_config(**ucl, **{"loss.self_negative": False}))[0].metrics
    assert with_self["loss_hard"] != without_self["loss_hard"]
    assert with_self["loss_plain"] != without_self["loss_plain"]
    unaffected = {"loss.beta": 30.0, "epochs": 1}  # SCL never counts the anchor
    assert comparable(train(small_config(**unaffected))[0]) == comparable(
        train(small_config(**unaffected, **{"loss.self_negative": False}))[0]
    )


def test_geometry_statistics_run_on_one_blas_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    def blas_threads() -> list[int]:
        return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]

    before = blas_threads()
    during: list[list[int]] = []
    compute = GeometryAccumulator.compute

    def spy(self: GeometryAccumulator) -> dict[str, Any]:
        during.append(blas_threads())
        return compute(self)

    monkeypatch.setattr(GeometryAccumulator, "compute", spy)
    train(small_config(epochs=2))

    assert before  # numpy's BLAS is visible to threadpoolctl
    assert during == [[1] * len(before)] * 2
    assert blas_threads() == before  # restored after each evaluation


def test_digits_mlp_trains_above_chance() -> None:
    config = TrainConfig.model_validate({"data": {"name": "digits"}, "epochs": 2, "device": "cpu"})

    results = train(config)

    assert len(results) == 2
    for result in results:
        assert all(math.isfinite(value) for value in result.metrics.values())
        assert result.class_means.shape == (10, 9)
    assert results[-1].metrics["ncm_accuracy_test"] > 0.3
    assert results[1].metrics["loss"] < results[0].metrics["loss"]


def test_resnet18_trains_one_epoch_on_augmented_fake_cifar(tmp_path: Path) -> None:
    root = write_fake_cifar(tmp_path / "cifar", num_train=20, num_test=10)
    config = fake_cifar_config(root, epochs=1)
    trainer = Trainer(config)
    assert not isinstance(trainer.data.train, TensorDataset)  # the DataLoader path

    results = train(config, trainer=trainer)

    assert len(results) == 1
    assert results[0].regime != DIVERGED
    assert all(math.isfinite(value) for value in results[0].metrics.values())
    assert results[0].class_means.shape == (10, 9)
    assert results[0].spectrum.shape == (9,)


def test_latent_class_c10_sphere_hard_scl_reaches_neural_collapse() -> None:
    """C = 10, SCL on the sphere, beta = 5: the run is in NC at its 30th (last) epoch."""
    config = TrainConfig.model_validate(
        {
            "data": {"name": "latent_class", "num_classes": 10, "input_dim": 32, "num_train": 2000},
            "loss": {"name": "scl", "beta": 5.0},
            "normalization": "sphere",
            "epochs": 30,
            "device": "cpu",
        }
    )

    results = train(config)

    assert len(results) == 30
    assert results[-1].regime == "NC", [r.regime for r in results]


@pytest.mark.slow
def test_latent_class_c50_hardness_lifts_dimensional_collapse() -> None:
    """configs/latent_class.yaml (C = 50, d = 49, ball, SCL, 60 epochs): beta 30 vs beta 0."""
    raw = read_yaml_file(ROOT / "configs" / "latent_class.yaml")
    final = {}
    for beta in (0.0, 30.0):
        config = TrainConfig.model_validate(
            with_overrides(raw, {"loss.beta": beta, "device": "cpu"})
        )
        assert (config.epochs, config.feature_dim, config.normalization) == (60, 49, "ball")
        final[beta] = train(config)[-1].metrics

    assert final[0.0]["dc_count"] >= 10, final[0.0]
    assert final[30.0]["erank_means"] >= 1.5 * final[0.0]["erank_means"], (final[0.0], final[30.0])


# ------------------------------------------------------------------ EpochPipeline
def test_pipeline_gives_the_loop_results_and_the_state_of_each_checkpoint_epoch(
    tmp_path: Path,
) -> None:
    config = small_config(epochs=5)
    loop = Trainer(config)
    expected, states = [], {}
    for _ in range(config.epochs):
        expected.append(loop.run_epoch())
        states[loop.epoch] = {k: v.clone() for k, v in loop.model.state_dict().items()}

    received, saved_at = [], []
    with EpochPipeline(Trainer(config), checkpoint_every=2) as epochs:
        for epoch in epochs:
            received.append(epoch.result)
            assert epoch.last == (epoch.result.epoch == config.epochs - 1)
            if epoch.state_dir is not None:
                done = epoch.result.epoch + 1
                saved_at.append(done)
                restored = Trainer(config)
                restored.restore(epoch.state_dir)
                assert restored.epoch == done
                for name, tensor in restored.model.state_dict().items():
                    assert torch.equal(tensor, states[done][name]), name

    assert_same_run(expected, received)
    assert saved_at == [2, 4, 5]  # every 2 epochs done, and the last


def test_pipeline_trains_at_most_one_epoch_ahead_and_stops_when_left() -> None:
    trainer = Trainer(small_config(epochs=8))
    with EpochPipeline(trainer, checkpoint_every=3) as epochs:
        for epoch in epochs:
            done = epoch.result.epoch + 1
            deadline = time.monotonic() + 60
            while trainer.epoch < done + 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.3)  # a slow caller: time for several more epochs, were they allowed
            assert trainer.epoch == done + 1
            if done == 4:
                break
    assert trainer.epoch == 5  # the worker stopped after the epoch it had trained ahead


def test_leaving_the_pipeline_interrupts_the_epoch_in_progress(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    trainer = Trainer(small_config(epochs=3))  # 4 batches per epoch
    original_batches = trainer._train_batches
    mid_epoch, pipeline_holder = threading.Event(), []
    trained_in_epoch_1 = []

    def batches_pausing_in_epoch_1() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for number, batch in enumerate(original_batches()):
            if trainer.epoch == 1:
                trained_in_epoch_1.append(number)
                if number == 2:  # hold here until the caller has left the pipeline
                    mid_epoch.set()
                    assert pipeline_holder[0]._stop.wait(timeout=60)
            yield batch

    monkeypatch.setattr(trainer, "_train_batches", batches_pausing_in_epoch_1)
    with EpochPipeline(trainer, checkpoint_every=1) as epochs:
        pipeline_holder.append(epochs)
        for epoch in epochs:
            assert epoch.result.epoch == 0
            assert mid_epoch.wait(timeout=60)
            break

    assert trainer.epoch == 1, "epoch 1 was abandoned, not finished"
    assert trained_in_epoch_1 == [0, 1, 2]  # batch 2 came after the stop and was not trained
    adam_steps = {int(state["step"]) for state in trainer.optimizer.state.values()}
    assert adam_steps == {4 + 2}  # epoch 0's four batches and epoch 1's first two
    with pytest.raises(EpochInterrupted):
        stop = threading.Event()
        stop.set()
        Trainer(small_config()).run_epoch(stop=stop)


def test_leaving_the_pipeline_interrupts_the_measurement_in_progress(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A stop set while an epoch is measured ends the measurement within one batch, so that a
    reused Ray worker is free well before Tune's reset deadline (about 2 s)."""
    trainer = Trainer(small_config(epochs=3, eval_batch_size=20))  # 10 + 3 batches to embed
    original_forward = trainer.model.forward
    mid_measurement, pipeline_holder = threading.Event(), []
    embedded_in_epoch_1: list[int] = []

    def forward_pausing_in_measurement_1(x: torch.Tensor) -> torch.Tensor:
        if trainer.epoch == 1 and not trainer.model.training:
            embedded_in_epoch_1.append(len(x))
            if len(embedded_in_epoch_1) == 3:  # hold here until the caller has left
                mid_measurement.set()
                assert pipeline_holder[0]._stop.wait(timeout=60)
        return original_forward(x)

    monkeypatch.setattr(trainer.model, "forward", forward_pausing_in_measurement_1)
    with EpochPipeline(trainer, checkpoint_every=1) as epochs:
        pipeline_holder.append(epochs)
        for epoch in epochs:
            assert epoch.result.epoch == 0
            assert mid_measurement.wait(timeout=60)
            break

    assert embedded_in_epoch_1 == [20, 20, 20], "no batch embedded after the one in progress"
    assert trainer.epoch == 1, "epoch 1 was abandoned, not finished"
    adam_steps = {int(state["step"]) for state in trainer.optimizer.state.values()}
    assert adam_steps == {4 + 4}, "epoch 1 was stopped in its measurement, after training"
    stop = threading.Event()
    stop.set()
    with pytest.raises(EpochInterrupted):
        trainer.measure(stop=stop)
    assert len(embedded_in_epoch_1) == 3


def test_pipeline_deletes_saved_states_once_handled_or_left(tmp_path: Path) -> None:
    seen: list[Path] = []
    with EpochPipeline(Trainer(small_config(epochs=4)), checkpoint_every=1) as epochs:
        for epoch in epochs:
            assert epoch.state_dir is not None and epoch.state_dir.is_dir()
            assert all(not path.exists() for path in seen)
            seen.append(epoch.state_dir)
            if epoch.result.epoch == 1:
                break
    assert len(seen) == 2
    assert not any(path.exists() for path in seen)


def test_pipeline_removes_the_states_that_dead_processes_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    assert ended.wait() == 0  # its pid is now free: its states are stale
    stale = tmp_path / f"hcl-epoch-state-{ended.pid}-abc"
    live = tmp_path / f"hcl-epoch-state-{os.getpid()}-def"
    other = tmp_path / "hcl-epoch-state-of-someone"
    for folder in (stale, live, other):
        (folder / "checkpoint.pt").parent.mkdir()
        (folder / "checkpoint.pt").write_bytes(b"state")
    with EpochPipeline(Trainer(small_config(epochs=1)), checkpoint_every=1) as epochs:
        (epoch,) = list(epochs)
        assert epoch.state_dir is not None
        assert epoch.state_dir.name.startswith(f"hcl-epoch-state-{os.getpid()}-")
    assert not stale.exists(), "a dead process's state is removed"
    assert live.exists() and other.exists(), "live processes' and unknown folders are kept"


def test_pipeline_hands_worker_errors_to_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    trainer = Trainer(small_config(epochs=4))
    original = trainer.run_epoch

    def failing_second_epoch(stop: threading.Event | None = None) -> EpochResult:
        if trainer.epoch == 1:
            raise RuntimeError("out of memory in epoch 1")
        return original(stop)

    monkeypatch.setattr(trainer, "run_epoch", failing_second_epoch)
    received = []
    with (
        pytest.raises(RuntimeError, match="out of memory in epoch 1"),
        EpochPipeline(trainer, checkpoint_every=1) as epochs,
    ):
        for epoch in epochs:
            received.append(epoch.result.epoch)
    assert received == [0]


def test_pipeline_ends_at_a_diverged_epoch_and_yields_nothing_when_done(tmp_path: Path) -> None:
    config = small_config(
        epochs=5, normalization="none", **{"optimizer.name": "sgd", "optimizer.lr": 1e6}
    )
    with EpochPipeline(Trainer(config), checkpoint_every=10) as epochs:
        received = list(epochs)
    assert received[-1].result.diverged and received[-1].last
    assert received[-1].state_dir is not None  # the last epoch is always saved
    assert not any(epoch.result.diverged for epoch in received[:-1])

    finished = Trainer(small_config(epochs=2))
    train(finished.config, trainer=finished)
    with EpochPipeline(finished, checkpoint_every=1) as epochs:
        assert list(epochs) == []


def record_training_labels(monkeypatch: pytest.MonkeyPatch) -> list[torch.Tensor]:
    """The labels of every training batch, in order (the loss calls that draw negatives)."""
    from hcl_study.losses import contrastive_loss
    from hcl_study.train import trainer as trainer_module

    labels: list[torch.Tensor] = []

    def recording_loss(z: torch.Tensor, y: torch.Tensor, **options: Any) -> torch.Tensor:
        if "generator" in options:
            labels.append(y.clone())
        return contrastive_loss(z, y, **options)

    monkeypatch.setattr(trainer_module, "contrastive_loss", recording_loss)
    return labels


def fake_cifar_config(root: Path, **overrides: Any) -> TrainConfig:
    """ResNet-18 on augmented fake CIFAR-10 in batches of 10: the DataLoader path."""
    base = {
        "data": {"name": "cifar10", "root": str(root), "augment": True},
        "model": {"name": "resnet18", "head_hidden": 32},
        "batch_size": 10,
        "epochs": 2,
        "device": "cpu",
    }
    return TrainConfig.model_validate(with_overrides(base, overrides))


def test_a_training_set_smaller_than_a_batch_is_one_batch() -> None:
    trainer = Trainer(small_config(epochs=1, batch_size=64, **{"data.num_train": 40}))
    (result,) = train(trainer.config, trainer=trainer)
    assert {int(state["step"]) for state in trainer.optimizer.state.values()} == {1}
    assert result.metrics["loss"] > 0


def test_in_memory_batches_follow_the_shuffle_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    labels = record_training_labels(monkeypatch)
    trainer = Trainer(small_config(epochs=1))
    y_all = trainer.data.train.tensors[1]
    train(trainer.config, trainer=trainer)
    order = torch.randperm(200, generator=torch.Generator().manual_seed(1))  # seed 0's stream 1
    assert torch.equal(torch.cat(labels), y_all[order])


def test_loader_batches_follow_the_shuffle_stream_and_drop_the_ragged_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from torch.utils.data import DataLoader

    root = write_fake_cifar(tmp_path / "cifar", num_train=25, num_test=10)
    labels = record_training_labels(monkeypatch)
    trainer = Trainer(fake_cifar_config(root, epochs=1))
    y_all = trainer.data.train_eval.tensors[1]
    train(trainer.config, trainer=trainer)
    assert [len(y) for y in labels] == [10, 10]
    shuffle = torch.Generator().manual_seed(1)  # seed 0's stream 1
    reference = DataLoader(range(25), 10, shuffle=True, drop_last=True, generator=shuffle)
    assert torch.equal(torch.cat(labels), y_all[torch.cat(list(reference))])


def test_resume_of_an_augmented_run_gives_the_uninterrupted_run(tmp_path: Path) -> None:
    """The crops and flips draw from torch's global RNG, which the checkpoint restores."""
    root = write_fake_cifar(tmp_path / "cifar", num_train=20, num_test=10)
    config = fake_cifar_config(root)
    uninterrupted = train(config)
    first = Trainer(config)
    head = [first.run_epoch()]
    first.save(tmp_path / "checkpoint")
    resumed = Trainer(config)
    resumed.restore(tmp_path / "checkpoint")
    assert_same_run(uninterrupted, head + train(config, trainer=resumed))


def test_bf16_is_ignored_on_the_cpu() -> None:
    (with_bf16,) = train(small_config(epochs=1, bf16=True))
    (without,) = train(small_config(epochs=1))
    assert comparable(with_bf16) == comparable(without)


def test_optimizer_settings_reach_the_optimizer() -> None:
    sgd = Trainer(small_config(**{"optimizer.name": "sgd"})).optimizer
    assert isinstance(sgd, torch.optim.SGD) and sgd.param_groups[0]["momentum"] == 0.9
    adam = Trainer(small_config(**{"optimizer.weight_decay": 0.01})).optimizer
    assert isinstance(adam, torch.optim.Adam) and adam.param_groups[0]["weight_decay"] == 0.01


def test_a_failed_checkpoint_write_keeps_the_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hcl_study.train.checkpoint import load_checkpoint

    trainer = Trainer(small_config())
    trainer.run_epoch()
    trainer.save(tmp_path)
    trainer.run_epoch()

    def torn_save(state: Any, path: Any, *args: Any, **kwargs: Any) -> None:
        Path(path).write_bytes(b"torn")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", torn_save)
    with pytest.raises(OSError, match="disk full"):
        trainer.save(tmp_path)
    monkeypatch.undo()
    assert load_checkpoint(tmp_path)["epoch"] == 1


def test_save_creates_its_folder(tmp_path: Path) -> None:
    from hcl_study.train.checkpoint import load_checkpoint

    Trainer(small_config()).save(tmp_path / "a" / "b")
    assert load_checkpoint(tmp_path / "a" / "b")["epoch"] == 0


def test_leaving_the_pipeline_deletes_the_state_it_trained_ahead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with EpochPipeline(Trainer(small_config(epochs=4)), checkpoint_every=1) as epochs:
        for _ in epochs:
            deadline = time.monotonic() + 60
            while epochs._done.empty() and time.monotonic() < deadline:
                time.sleep(0.01)  # epoch 1 trained ahead and its state saved, not yet taken
            trained_ahead = not epochs._done.empty()
            break
    assert trained_ahead, "epoch 1 was not trained ahead within 60 s"
    assert list(tmp_path.glob("hcl-epoch-state-*")) == []


def test_geometry_is_measured_on_the_training_set_in_eval_mode_and_ncm_on_the_test_set() -> None:
    from hcl_study.geometry.ncm import ncm_accuracy

    trainer = Trainer(small_config(epochs=1))
    result = trainer.run_epoch()
    trainer.model.eval()
    with torch.no_grad():
        z_train = trainer.model(trainer.data.train_eval.tensors[0]).double()  # (N, d)
        z_test = trainer.model(trainer.data.test.tensors[0])
    y_train, y_test = trainer.data.train_eval.tensors[1], trainer.data.test.tensors[1]
    means = torch.stack([z_train[y_train == c].mean(0) for c in range(5)]).numpy()  # (C, d)
    np.testing.assert_allclose(result.class_means, means, rtol=1e-5, atol=1e-6)
    assert result.metrics["ncm_accuracy_test"] == ncm_accuracy(z_test, y_test, result.class_means)


def test_an_augmented_run_measures_its_unaugmented_images(tmp_path: Path) -> None:
    root = write_fake_cifar(tmp_path / "cifar", num_train=20, num_test=10)
    trainer = Trainer(fake_cifar_config(root, epochs=1))
    result = trainer.run_epoch()
    trainer.model.eval()
    with torch.no_grad():
        z = trainer.model(trainer.data.train_eval.tensors[0]).double()  # (N, d)
    y = trainer.data.train_eval.tensors[1]
    present = [c for c in range(10) if (y == c).any()]
    means = torch.stack([z[y == c].mean(0) for c in present]).numpy()
    np.testing.assert_allclose(result.class_means[present], means, rtol=1e-4, atol=1e-5)
