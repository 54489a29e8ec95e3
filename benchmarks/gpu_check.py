"""GPU check for the paper's CIFAR-100 setting: ResNet-50 (CIFAR stem), HSCL β = 30, unit ball.

Synthetic 32x32 RGB images stand in for CIFAR-100 (100 classes, batch 512); the step is the
one `hcl_study.train.Trainer` takes: bf16 autocast forward, the loss in float32, Adam, and
the exact hard / plain loss pair logged for claim 1. After `--warmup` steps it times
`--steps` steps with CUDA events and reports the median step (drawing the batch included)
and the median of each of its parts:

- batch: drawing and gathering the batch (in parts_ms only, not in the split);
- backbone: forward + backward of the encoder and projection head (incl. normalization);
- loss: forward + backward of the HSCL loss alone (gradient with respect to z);
- optimizer: the Adam step;
- loss pair: the plain (β = 0) loss of the same batch, logged for claim 1;

then times the per-epoch geometry pass: embedding `--embed` images in eval mode, and the
`GeometryAccumulator` update / update_within / compute on those features. From these it
estimates one CIFAR-100 epoch (50,000 // batch steps; geometry of the 50k training images
plus the 10k test embeddings), one 400-epoch trial and the 10-trial study in GPU-hours.

Prints the figures and writes JSON to benchmarks/results/gpu_check.json (or `--output`; with
`--cpu-smoke` only to `--output`), and to $OUT/gpu_check.json when $OUT is set. Without CUDA
it exits with status 2 and a message; `--cpu-smoke` runs 3 steps at batch 8 on the CPU
instead, to test the script itself.

Usage: .venv/bin/python benchmarks/gpu_check.py [--steps 200] [--warmup 20] [--output PATH]
       [--cpu-smoke]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from results_file import write_results

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere, without an install
    sys.path.insert(0, str(ROOT))

from hcl_study.config import TrainConfig  # noqa: E402
from hcl_study.geometry import GeometryAccumulator  # noqa: E402
from hcl_study.losses import contrastive_loss  # noqa: E402
from hcl_study.models import build_model  # noqa: E402

RESULTS_PATH = Path(__file__).parent / "results" / "gpu_check.json"
NUM_CLASSES, INPUT_SHAPE, FEATURE_DIM = 100, (3, 32, 32), 99
CIFAR_TRAIN, CIFAR_TEST, EPOCHS, TRIALS = 50_000, 10_000, 400, 10
BETA, TAU = 30.0, 1.0
FIELDS = {
    "mode": "cuda, or cpu-smoke (a test of the script, not a measurement)",
    "device": "GPU name (CPU processor in cpu-smoke)",
    "torch": "torch version",
    "setting": "model, loss, batch size, bf16, cudnn.benchmark, warm-up and timed steps, images",
    "samples_per_s": "batch size / step_ms",
    "step_ms": "median milliseconds of a whole training step, drawing the batch included",
    "split_ms": "median milliseconds per step of backbone (forward + backward), loss, "
    "optimizer and the logged loss pair",
    "split_fraction": "split_ms as fractions of their sum",
    "parts_ms": "median milliseconds of each timed part of a step, as marked",
    "metrics_pass": "seconds to embed `images` in eval mode and to run the geometry "
    "accumulator on them; erank of the class means",
    "min_loss_hard_minus_plain": "smallest loss_hard - loss_plain over the timed steps (>= 0)",
    "peak_memory_gib": "peak GPU memory allocated over the timed steps (None on the CPU)",
    "estimate": "one CIFAR-100 epoch (train + metrics seconds), a 400-epoch trial and the "
    "10-trial study in GPU-hours, from the medians",
}
PARTS = ("batch", "backbone_forward", "loss", "backbone_backward", "optimizer", "loss_pair")


def train_config(batch_size: int, device: str) -> TrainConfig:
    """The config of paper_cifar100.yaml (HSCL, β = 30, ball) for the model and loss."""
    return TrainConfig.model_validate(
        {
            "data": {"name": "cifar100", "root": "/unused", "augment": False},
            "model": {"name": "resnet50", "feature_dim": FEATURE_DIM, "head_hidden": 512},
            "loss": {"name": "scl", "beta": BETA, "tau": TAU, "estimator": "reweight"},
            "normalization": "ball",
            "optimizer": {"name": "adam", "lr": 1e-3},
            "batch_size": batch_size,
            "eval_batch_size": 1024,
            "device": device,
            "bf16": True,
        }
    )


class Clock:
    """Marks in a step: CUDA events on the GPU (no sync inside the step), perf_counter on CPU."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.marks: list[Any] = []

    def mark(self) -> None:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self.marks.append(event)
        else:
            self.marks.append(time.perf_counter())

    def intervals_ms(self) -> list[float]:
        """Milliseconds between consecutive marks (call after the device is synchronized)."""
        if self.cuda:
            return [a.elapsed_time(b) for a, b in zip(self.marks[:-1], self.marks[1:], strict=True)]
        return [1000 * (b - a) for a, b in zip(self.marks[:-1], self.marks[1:], strict=True)]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    autocast: bool,
    clock: Clock,
) -> tuple[float, float]:
    """One training step, split at z; returns (loss_hard, loss_plain) as the trainer logs them.

    backward through the loss to z, then z.backward(grad): the same gradients as
    loss.backward(), with the loss's share and the backbone's share apart.
    """
    model.train()
    clock.mark()
    with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=autocast):
        z = model(x)  # (B, d)
    z = z.float()
    clock.mark()
    z_leaf = z.detach().requires_grad_(True)
    loss = contrastive_loss(z_leaf, y, loss="scl", beta=BETA, tau=TAU, estimator="reweight")
    loss.backward()
    clock.mark()
    optimizer.zero_grad(set_to_none=True)
    z.backward(z_leaf.grad)
    clock.mark()
    optimizer.step()
    clock.mark()
    with torch.no_grad():
        plain = contrastive_loss(z_leaf.detach(), y, loss="scl", beta=0.0, tau=TAU)
    hard_value, plain_value = loss.item(), plain.item()  # the trainer's per-step sync
    clock.mark()
    return hard_value, plain_value


@torch.no_grad()
def geometry_pass(
    model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, batch: int, autocast: bool
) -> dict[str, float]:
    """Seconds to embed `images` in eval mode and to run the geometry accumulator on them."""
    device = images.device
    model.eval()
    synchronize(device)
    started = time.perf_counter()
    features = []
    for start in range(0, len(images), batch):
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=autocast):
            features.append(model(images[start : start + batch]).float())
    z = torch.cat(features)  # (N, d)
    synchronize(device)
    embedded = time.perf_counter()
    accumulator = GeometryAccumulator(NUM_CLASSES, z.shape[1])
    chunks = [slice(start, start + batch) for start in range(0, len(z), batch)]
    for chunk in chunks:
        accumulator.update(z[chunk], labels[chunk])
    for chunk in chunks:
        accumulator.update_within(z[chunk], labels[chunk])
    metrics = accumulator.compute()
    done = time.perf_counter()
    return {
        "images": len(images),
        "embed_s": embedded - started,
        "geometry_s": done - embedded,
        "erank_means": float(metrics["erank_means"]),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    device = torch.device("cpu" if args.cpu_smoke else "cuda")
    autocast = device.type == "cuda"  # as the trainer: bf16 autocast on CUDA only
    torch.manual_seed(0)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    config = train_config(args.batch, device.type)
    model = build_model(config, INPUT_SHAPE).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.optimizer.lr)
    pool = max(args.embed, 4 * args.batch)
    images = torch.randn(pool, *INPUT_SHAPE, device=device)  # (pool, 3, 32, 32)
    labels = torch.arange(pool, device=device) % NUM_CLASSES  # balanced, (pool,)
    generator = torch.Generator(device="cpu").manual_seed(1)

    def batch() -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.randperm(pool, generator=generator)[: args.batch].to(device)
        return images[index], labels[index]

    for _ in range(args.warmup):
        train_step(model, optimizer, *batch(), autocast, Clock(device))
    synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    clocks, losses = [], []
    for _ in range(args.steps):
        clock = Clock(device)
        clock.mark()  # the batch's draw and gather are part of the step
        losses.append(train_step(model, optimizer, *batch(), autocast, clock))
        clocks.append(clock)
    synchronize(device)
    per_step = [clock.intervals_ms() for clock in clocks]  # (steps, parts)
    parts_ms = {
        name: statistics.median(step[i] for step in per_step) for i, name in enumerate(PARTS)
    }
    step_ms = statistics.median(sum(step) for step in per_step)
    split_ms = {
        "backbone": parts_ms["backbone_forward"] + parts_ms["backbone_backward"],
        "loss": parts_ms["loss"],
        "optimizer": parts_ms["optimizer"],
        "loss_pair": parts_ms["loss_pair"],
    }
    embed_images = images[: args.embed]
    # The first eval-mode pass autotunes cuDNN for each batch shape (the full eval batch and
    # the ragged last one): warm both up untimed.
    if device.type == "cuda":
        batch_size = config.eval_batch_size
        warm = batch_size + (args.embed % batch_size or batch_size)
        geometry_pass(model, images[:warm], labels[:warm], batch_size, autocast)
    geometry = geometry_pass(
        model, embed_images, labels[: args.embed], config.eval_batch_size, autocast
    )
    steps_per_epoch = CIFAR_TRAIN // args.batch  # the trainer drops the ragged last batch
    embed_per_image = geometry["embed_s"] / geometry["images"]
    epoch_metrics_s = embed_per_image * (CIFAR_TRAIN + CIFAR_TEST) + geometry["geometry_s"] * (
        CIFAR_TRAIN / geometry["images"]
    )
    epoch_train_s = steps_per_epoch * step_ms / 1000
    epoch_s = epoch_train_s + epoch_metrics_s
    trial_h = EPOCHS * epoch_s / 3600
    hard_minus_plain = min(hard - plain for hard, plain in losses)
    result: dict[str, Any] = {
        "mode": "cpu-smoke" if args.cpu_smoke else "cuda",
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or "cpu",
        "torch": torch.__version__,
        "setting": {
            "model": "resnet50 (CIFAR stem), head 2048-512-99, ball",
            "loss": f"HSCL reweight, beta={BETA:g}, tau={TAU:g}",
            "batch": args.batch,
            "bf16": autocast,
            "cudnn_benchmark": device.type == "cuda",
            "warmup_steps": args.warmup,
            "timed_steps": args.steps,
            "images": "synthetic N(0, 1), 3x32x32, 100 balanced classes",
        },
        "samples_per_s": 1000 * args.batch / step_ms,
        "step_ms": step_ms,
        "split_ms": split_ms,
        "split_fraction": {key: value / sum(split_ms.values()) for key, value in split_ms.items()},
        "parts_ms": parts_ms,
        "metrics_pass": geometry,
        "min_loss_hard_minus_plain": hard_minus_plain,
        "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30
        if device.type == "cuda"
        else None,
        "estimate": {
            "steps_per_epoch": steps_per_epoch,
            "epoch_train_s": epoch_train_s,
            "epoch_metrics_s": epoch_metrics_s,
            "epoch_s": epoch_s,
            "epochs": EPOCHS,
            "trial_gpu_hours": trial_h,
            "trials": TRIALS,
            "study_gpu_hours": TRIALS * trial_h,
        },
    }
    return result


def report(result: dict[str, Any]) -> None:
    split, fraction, est = result["split_ms"], result["split_fraction"], result["estimate"]
    geometry = result["metrics_pass"]
    print(f"{result['mode']} on {result['device']} (torch {result['torch']})")
    print(
        f"  {result['samples_per_s']:.0f} samples/s, {result['step_ms']:.1f} ms/step "
        f"at batch {result['setting']['batch']}"
    )
    for key, value in split.items():
        print(f"  {key:<10} {value:8.2f} ms/step  {100 * fraction[key]:5.1f} %")
    print(
        f"  metrics pass: embed {geometry['images']} images {geometry['embed_s']:.2f} s, "
        f"geometry accumulator {geometry['geometry_s']:.2f} s"
    )
    print(
        "  min loss_hard - loss_plain over the timed steps: "
        f"{result['min_loss_hard_minus_plain']:.3g}"
    )
    if result["peak_memory_gib"] is not None:
        print(f"  peak GPU memory {result['peak_memory_gib']:.1f} GiB")
    print(
        f"  CIFAR-100 estimate: {est['steps_per_epoch']} steps/epoch -> "
        f"{est['epoch_train_s']:.1f} s train + "
        f"{est['epoch_metrics_s']:.1f} s metrics per epoch; {est['epochs']} epochs = "
        f"{est['trial_gpu_hours']:.2f} GPU-h per trial, "
        f"{est['study_gpu_hours']:.1f} GPU-h for {est['trials']} trials"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=20, help="untimed steps first")
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--embed", type=int, default=10_000, help="images of the metrics pass")
    parser.add_argument(
        "--output", type=Path, default=None, help=f"JSON path (default {RESULTS_PATH})"
    )
    parser.add_argument(
        "--cpu-smoke", action="store_true", help="3 steps at batch 8 on the CPU, to test the script"
    )
    args = parser.parse_args(argv)
    if args.cpu_smoke:
        args.steps, args.warmup, args.batch, args.embed = 3, 0, 8, 16
        torch.set_num_threads(min(2, torch.get_num_threads()))
    elif not torch.cuda.is_available():
        print(
            "gpu_check: CUDA is not available here; run it on a machine with an NVIDIA GPU "
            "(or use --cpu-smoke to test the script on the CPU).",
            file=sys.stderr,
        )
        return 2
    result = run(args)
    report(result)
    targets = [args.output] if args.output else ([] if args.cpu_smoke else [RESULTS_PATH])
    if os.environ.get("OUT"):
        targets.append(Path(os.environ["OUT"]) / "gpu_check.json")
    for path in dict.fromkeys(targets):
        write_results(path, __doc__.splitlines()[0], FIELDS, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
