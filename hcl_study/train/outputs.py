"""The files of a local training run.

`metrics.jsonl` (one object per epoch), `class_means.npy` (epochs, C, d) and
`spectrum.npy` (epochs, r), the layout of the paper's reference code.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from hcl_study.errors import UserError
from hcl_study.train.checkpoint import CHECKPOINT_FILE
from hcl_study.train.trainer import DIVERGED, EpochResult

METRICS_FILE = "metrics.jsonl"
CLASS_MEANS_FILE = "class_means.npy"
SPECTRUM_FILE = "spectrum.npy"
CONFIG_FILE = "config.yaml"
RUN_FILES = (CHECKPOINT_FILE, METRICS_FILE, CLASS_MEANS_FILE, SPECTRUM_FILE, CONFIG_FILE)
"""What a run folder holds (and what a fresh run there replaces)."""


def epoch_record(result: EpochResult) -> dict[str, float | int | str | None]:
    """The JSON line of one epoch; non-finite numbers become null (valid JSON)."""
    record: dict[str, float | int | str | None] = {"epoch": result.epoch}
    for key, value in result.metrics.items():
        record[key] = value if math.isfinite(value) else None
    record["regime"] = result.regime
    return record


class RunOutputs:
    """Collects epoch results and writes the run folder.

    Metrics are appended as they come; the arrays are rewritten on `flush()` (at
    checkpoints, before the checkpoint itself, and at the end), so their cost does not grow
    with every epoch. When resuming, `truncate(epoch)` drops what an interrupted run wrote
    after its last checkpoint.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.class_means: list[np.ndarray] = []
        self.spectra: list[np.ndarray] = []

    @property
    def metrics_path(self) -> Path:
        return self.directory / METRICS_FILE

    def start(self) -> None:
        """Begin a fresh run: create the folder and remove the files of an earlier run."""
        self.directory.mkdir(parents=True, exist_ok=True)
        for name in RUN_FILES:
            (self.directory / name).unlink(missing_ok=True)

    def truncate(self, epochs: int) -> None:
        """Keep the first `epochs` epochs of existing files (resume).

        Raises:
            UserError: A file is damaged or holds fewer epochs than the checkpoint (the run
                folder was changed by hand): resuming would misalign the files.
        """
        kept = self._metrics_lines(epochs)
        self.metrics_path.write_text("".join(f"{line}\n" for line in kept))
        for name, store in self._arrays():
            path = self.directory / name
            try:
                arrays = np.load(path)
            except (OSError, ValueError, EOFError) as error:
                raise _damaged(path, epochs, f"it cannot be read ({error})") from None
            if len(arrays) < epochs:
                raise _damaged(path, epochs, f"it holds {len(arrays)} epochs")
            store.clear()
            store.extend(arrays[:epochs])

    def diverged_epoch(self) -> int | None:
        """The epoch in which the run in the folder diverged, or None (also without a run)."""
        lines = self.metrics_path.read_text().splitlines() if self.metrics_path.exists() else []
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:  # a half-written line of a hard kill
                continue
            if isinstance(record, dict) and record.get("regime") == DIVERGED:
                return int(record["epoch"])
        return None

    def _metrics_lines(self, epochs: int) -> list[str]:
        """The lines of the first `epochs` epochs; a half-written last line (a hard kill while
        appending, necessarily past the checkpoint) is dropped."""
        lines = self.metrics_path.read_text().splitlines() if self.metrics_path.exists() else []
        kept = []
        for number, line in enumerate(lines):
            try:
                epoch = json.loads(line)["epoch"]
            except (ValueError, KeyError, TypeError):
                if number == len(lines) - 1:
                    break
                what = f"line {number + 1} is not an epoch"
                raise _damaged(self.metrics_path, epochs, what) from None
            if epoch < epochs:
                kept.append(line)
        if len(kept) != epochs:
            raise _damaged(self.metrics_path, epochs, f"it holds {len(kept)} of those epochs")
        return kept

    def append(self, result: EpochResult) -> None:
        with self.metrics_path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(epoch_record(result)) + "\n")
        self.class_means.append(result.class_means.astype(np.float32))
        self.spectra.append(result.spectrum.astype(np.float64))

    def flush(self) -> None:
        """Rewrite the arrays, each atomically (temp file + rename)."""
        for name, store in self._arrays():
            if store:
                path = self.directory / name
                with open(path.with_suffix(".tmp"), "wb") as handle:
                    np.save(handle, np.stack(store))
                os.replace(path.with_suffix(".tmp"), path)

    def _arrays(self) -> tuple[tuple[str, list[np.ndarray]], ...]:
        """Each array file with the per-epoch arrays it holds."""
        return ((CLASS_MEANS_FILE, self.class_means), (SPECTRUM_FILE, self.spectra))

    def read_metrics(self) -> list[dict]:
        return [json.loads(line) for line in self.metrics_path.read_text().splitlines()]


def _damaged(path: Path, epochs: int, what: str) -> UserError:
    return UserError(
        f"--resume: {path} does not match the checkpoint of {epochs} epochs: {what}. The run "
        "folder was changed or damaged; start the run over with --overwrite."
    )
