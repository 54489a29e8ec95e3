"""The files of a local training run.

`metrics.jsonl` (one object per epoch), `class_means.npy` (epochs, C, d) and
`spectrum.npy` (epochs, r), the layout of the paper's reference code.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from hcl_study.train.trainer import EpochResult

METRICS_FILE = "metrics.jsonl"
CLASS_MEANS_FILE = "class_means.npy"
SPECTRUM_FILE = "spectrum.npy"


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
    checkpoints and at the end), so their cost does not grow with every epoch.
    When resuming, `truncate(epoch)` drops what an interrupted run wrote after its
    last checkpoint.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.class_means: list[np.ndarray] = []
        self.spectra: list[np.ndarray] = []

    @property
    def metrics_path(self) -> Path:
        return self.directory / METRICS_FILE

    def truncate(self, epochs: int) -> None:
        """Keep the first `epochs` epochs of existing files (resume)."""
        lines = self.metrics_path.read_text().splitlines() if self.metrics_path.exists() else []
        kept = [line for line in lines if json.loads(line)["epoch"] < epochs]
        self.metrics_path.write_text("".join(f"{line}\n" for line in kept))
        for name, store in ((CLASS_MEANS_FILE, self.class_means), (SPECTRUM_FILE, self.spectra)):
            path = self.directory / name
            store.clear()
            if path.exists():
                store.extend(np.load(path)[:epochs])

    def append(self, result: EpochResult) -> None:
        with self.metrics_path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(epoch_record(result)) + "\n")
        self.class_means.append(result.class_means.astype(np.float32))
        self.spectra.append(result.spectrum.astype(np.float64))

    def flush(self) -> None:
        if self.class_means:
            np.save(self.directory / CLASS_MEANS_FILE, np.stack(self.class_means))
            np.save(self.directory / SPECTRUM_FILE, np.stack(self.spectra))

    def read_metrics(self) -> list[dict]:
        return [json.loads(line) for line in self.metrics_path.read_text().splitlines()]
