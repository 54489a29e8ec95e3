"""The training loop (no Ray, no MLflow): `Trainer` for step-wise control, `train` to run."""

from hcl_study.train.checkpoint import CHECKPOINT_FILE
from hcl_study.train.trainer import DIVERGED, EpochResult, Trainer, resolve_device, train

__all__ = ["CHECKPOINT_FILE", "DIVERGED", "EpochResult", "Trainer", "resolve_device", "train"]
