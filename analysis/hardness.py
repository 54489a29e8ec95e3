"""Where the hardness weights of a trained run fall: on the anchor's own class or not.

UCL draws its negatives from the whole batch, so an anchor's class-mates are candidate
negatives too (and the anchor itself with `loss.self_negative`). With a large beta the
hardness weights can pile up on them, and then little pushes different classes apart:
HUCL at large beta collapses dimensionally instead of reaching NC. `own_class_weight`
measures this on features; `run_own_class_weight` on a run folder of `hcl-study train`.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Subset

from hcl_study.config import parse_train_config, read_yaml_file
from hcl_study.errors import UserError
from hcl_study.losses import LossName, hardness_weights
from hcl_study.train import Trainer
from hcl_study.train.checkpoint import CHECKPOINT_FILE
from hcl_study.train.evaluation import embed
from hcl_study.train.outputs import CONFIG_FILE

LOW_QUANTILE = 0.05


def own_class_weight(
    z: Tensor,
    labels: Tensor,
    *,
    loss: LossName = "ucl",
    beta: float,
    self_negative: bool = True,
) -> Tensor:
    """Share of each anchor's hardness weight that lies on samples of its own class.

    Args:
        z: Features after normalization, shape (B, d).
        labels: Integer labels, shape (B,).
        loss: `ucl` or `scl` (whose negatives are never of the anchor's class: share 0).
        beta: Hardness, >= 0; 0 gives the share of the anchor's class among its negatives.
        self_negative: Whether the anchor counts among its own candidate negatives (`ucl`).

    Returns:
        Shares in [0, 1], shape (B,).
    """
    weights = hardness_weights(z, labels, loss=loss, beta=beta, self_negative=self_negative)
    same_class = labels[:, None] == labels[None, :]  # (B, B)
    return (weights * same_class).sum(dim=1)  # (B,)


@dataclass(frozen=True)
class RunOwnClassWeight:
    """`own_class_weight` of a trained run on a batch of its training samples."""

    run: Path
    loss: str
    beta: float
    self_negative: bool
    epoch: int
    num_samples: int
    mean: float
    low: float  # the LOW_QUANTILE quantile over the anchors
    min: float


def run_own_class_weight(run: str | Path, num_samples: int = 512) -> RunOwnClassWeight:
    """`own_class_weight` of the model in a run folder on its first training samples.

    The samples are the first `num_samples` of the unaugmented training set (the set the
    geometry metrics are measured on), embedded in eval mode; the loss settings are the
    run's own.

    Args:
        run: A run folder of `hcl-study train` (its `config.yaml` and `checkpoint.pt`).
        num_samples: The batch size, >= 2.

    Raises:
        UserError: The folder has no readable config or checkpoint, or `num_samples` is
            below 2 or above the training set's size.
    """
    run = Path(run)
    for name in (CONFIG_FILE, CHECKPOINT_FILE):
        if not (run / name).is_file():
            raise UserError(
                f"RUN: {run} has no {name}; give a run folder written by `hcl-study train`."
            )
    config = parse_train_config(
        read_yaml_file(run / CONFIG_FILE), source=f"config {run / CONFIG_FILE}"
    ).model_copy(update={"device": "cpu"})
    trainer = Trainer(config)
    try:
        trainer.restore(run)
    except Exception as error:  # noqa: BLE001 - torch raises many kinds for a damaged file
        raise UserError(
            f"RUN: {run / CHECKPOINT_FILE} cannot be read ({type(error).__name__}: {error})."
        ) from None
    available = len(trainer.data.train_eval)
    if not 2 <= num_samples <= available:
        raise UserError(
            f"--samples: {num_samples} samples asked; allowed: 2 to {available}, the size of "
            f"the training set of {run}."
        )
    z, labels = embed(
        trainer.model,
        Subset(trainer.data.train_eval, range(num_samples)),
        device=trainer.device,
        batch_size=config.eval_batch_size,
        autocast=contextlib.nullcontext,
    )  # (n, d), (n,)
    shares = own_class_weight(
        z,
        labels,
        loss=config.loss.name,
        beta=config.loss.beta,
        self_negative=config.loss.self_negative,
    ).double()  # (n,)
    return RunOwnClassWeight(
        run=run,
        loss=config.loss.name,
        beta=config.loss.beta,
        self_negative=config.loss.self_negative,
        epoch=trainer.epoch,
        num_samples=num_samples,
        mean=shares.mean().item(),
        low=torch.quantile(shares, LOW_QUANTILE).item(),
        min=shares.min().item(),
    )
