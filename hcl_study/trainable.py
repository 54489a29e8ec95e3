"""The Ray Tune function trainable: adapts the training loop to Tune and MLflow.

Per epoch it logs the metrics to the trial's MLflow child run, then reports them to Tune
(with a checkpoint every `checkpoint_every` epochs and at the end). A retried or
restored trial resumes from `tune.get_checkpoint()` and continues the same MLflow run.
Only the `ray.tune.*` API is used (Ray >= 2.51).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import ray
from ray import tune

from hcl_study.config import TrainConfig, flatten, with_overrides
from hcl_study.faults import inject_fault
from hcl_study.tracking import TrialRun
from hcl_study.train import EpochResult, Trainer
from hcl_study.train.pipeline import EpochPipeline, PipelinedEpoch

HISTORY_FILE = "history.npz"
# In the checkpoint of a trial's last epoch: the trial ended, and its MLflow run was closed,
# before that checkpoint was reported. A trial restored from it (retried after a crash past
# its end, or resumed after the driver died) has nothing left to do.
ENDED_FILE = "ended"
PROGRESS_COLUMNS = ("erank_means", "etf_distance", "loss")


@dataclass(frozen=True)
class TrialContext:
    """What every trial of a study shares (passed with `tune.with_parameters`)."""

    study_name: str
    base: dict[str, Any]
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    checkpoint_every: int
    gpus_per_trial: float = 0.0

    def trial_config(self, params: dict[str, Any]) -> TrainConfig:
        return TrainConfig.model_validate(with_overrides(self.base, params))

    def run_config(self, config: TrainConfig) -> TrainConfig:
        """The config the trial trains with: `device: auto` means the CPU when Ray reserved
        no GPU for it, since Ray leaves every GPU of the node visible to such a trial."""
        if config.device == "auto" and self.gpus_per_trial == 0:
            return config.model_copy(update={"device": "cpu"})
        return config


def tune_metrics(result: EpochResult, total_epochs: int, mlflow_run_id: str) -> dict[str, Any]:
    """What Tune sees each epoch: every scalar (NaN when diverged), the regime and ids.

    The first four keys are the columns of Tune's progress table.
    """
    headline = {key: result.metrics[key] for key in PROGRESS_COLUMNS if key in result.metrics}
    return {
        "regime": result.regime,
        **headline,
        **result.metrics,
        "epoch": result.epoch,
        "total_epochs": total_epochs,
        "diverged": result.diverged,
        "mlflow_run_id": mlflow_run_id,
        "node_id": ray.get_runtime_context().get_node_id(),
        "reported_at": time.time(),  # wall clock, for the service-overhead benchmark
    }


def mlflow_metrics(result: EpochResult) -> dict[str, float]:
    return {key: float(value) for key, value in result.metrics.items()}


class _History:
    """Per-epoch class means and spectra, carried in checkpoints for the final artifacts."""

    def __init__(self) -> None:
        self.class_means: list[np.ndarray] = []
        self.spectra: list[np.ndarray] = []

    def append(self, result: EpochResult) -> None:
        self.class_means.append(result.class_means.astype(np.float32))
        self.spectra.append(result.spectrum.astype(np.float64))

    def save(self, directory: Path) -> None:
        np.savez(
            directory / HISTORY_FILE,
            class_means=np.stack(self.class_means),
            spectra=np.stack(self.spectra),
        )

    def load(self, directory: Path, epochs: int) -> None:
        path = directory / HISTORY_FILE
        if path.exists():
            with np.load(path) as arrays:
                self.class_means = list(arrays["class_means"][:epochs])
                self.spectra = list(arrays["spectra"][:epochs])

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return np.stack(self.class_means), np.stack(self.spectra)


def hcl_trainable(params: dict[str, Any], context: TrialContext) -> None:
    """Train one trial of a study; `params` are the searched values (dotted keys)."""
    config = context.trial_config(params)
    trial_id = tune.get_context().get_trial_id()
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            if (Path(directory) / ENDED_FILE).exists():
                return
    trainer = Trainer(context.run_config(config))
    history = _History()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            trainer.restore(directory)
            history.load(Path(directory), trainer.epoch)
    run = TrialRun.open(
        context.tracking_uri,
        experiment_id=context.experiment_id,
        parent_run_id=context.parent_run_id,
        trial_id=trial_id,
        params=flatten(config.model_dump(mode="json")),
        study_name=context.study_name,
    )
    # `tune.report` blocks until the driver has processed the result: the next epoch trains
    # meanwhile, on the pipeline's thread.
    with EpochPipeline(trainer, context.checkpoint_every) as epochs:
        for epoch in epochs:
            inject_fault(trial_id, epoch.result.epoch)
            _report(epoch, run, history, config.epochs)
    inject_fault(trial_id, trainer.epoch)  # after the last report


def _report(epoch: PipelinedEpoch, run: TrialRun, history: _History, total_epochs: int) -> None:
    """Log one epoch to MLflow and report it to Tune, with a checkpoint where it has one."""
    result = epoch.result
    history.append(result)
    run.log_epoch(result.epoch, mlflow_metrics(result))
    if epoch.last:
        class_means, spectra = history.arrays()
        run.log_final_artifacts(class_means, spectra)
        run.finish(status="diverged" if result.diverged else "finished", regime=result.regime)
    metrics = tune_metrics(result, total_epochs, run.run_id)
    if epoch.state_dir is None:
        tune.report(metrics)
        return
    # A retry resumes after the checkpoint, so what it covers must be in MLflow.
    run.flush()
    history.save(epoch.state_dir)
    if epoch.last:
        (epoch.state_dir / ENDED_FILE).write_text(result.regime)
    tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(str(epoch.state_dir)))
