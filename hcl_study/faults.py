"""Test-only fault injection through the real trainable.

`HCL_STUDY_FAULT=raise@3` makes a trial raise just before it reports epoch 3, `exit@3` makes
its process exit (as a killed worker would). A trial that ends before epoch K (K = its
epochs, or one past the epoch it diverged at) faults at K after its last report. Each trial
faults at most once: a marker file per trial in `HCL_STUDY_FAULT_DIR` remembers it, so a
retry runs through.
`HCL_STUDY_FAULT_LIMIT=N` lets only the first N trials that get there fault.
Unset, this costs one dictionary lookup per epoch.
"""

from __future__ import annotations

import os
from pathlib import Path

FAULT_VARIABLE = "HCL_STUDY_FAULT"
FAULT_DIR_VARIABLE = "HCL_STUDY_FAULT_DIR"
FAULT_LIMIT_VARIABLE = "HCL_STUDY_FAULT_LIMIT"


class InjectedFault(RuntimeError):
    """Raised by `inject_fault` to simulate a crashing trial."""


def _claim(path: Path) -> bool:
    """Create `path` if it does not exist yet (atomic across processes)."""
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def inject_fault(trial_id: str, epoch: int) -> None:
    """Fault once per trial at the configured epoch, if a fault is configured."""
    spec = os.environ.get(FAULT_VARIABLE)
    if not spec:
        return
    kind, _, at = spec.partition("@")
    if epoch != int(at):
        return
    directory = Path(os.environ.get(FAULT_DIR_VARIABLE, "."))
    directory.mkdir(parents=True, exist_ok=True)
    if not _claim(directory / f"fault-{trial_id}"):
        return  # this trial faulted before: let the retry through
    limit = os.environ.get(FAULT_LIMIT_VARIABLE)
    if limit is not None and not any(_claim(directory / f"slot-{i}") for i in range(int(limit))):
        return
    if kind == "exit":
        os._exit(17)
    raise InjectedFault(f"injected fault before epoch {epoch} of trial {trial_id}")
