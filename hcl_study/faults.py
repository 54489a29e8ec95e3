"""Test-only fault injection through the real trainable.

`HCL_STUDY_FAULT=raise@3` makes every trial raise just before epoch 3, `exit@3` makes
its process exit (as a killed worker would). Each trial faults once: a marker file per
trial in `HCL_STUDY_FAULT_DIR` remembers it, so the retry runs through. Unset, this
costs one dictionary lookup per epoch.
"""

from __future__ import annotations

import os
from pathlib import Path

FAULT_VARIABLE = "HCL_STUDY_FAULT"
FAULT_DIR_VARIABLE = "HCL_STUDY_FAULT_DIR"


class InjectedFault(RuntimeError):
    """Raised by `inject_fault` to simulate a crashing trial."""


def inject_fault(trial_id: str, epoch: int) -> None:
    """Fault once per trial at the configured epoch, if a fault is configured."""
    spec = os.environ.get(FAULT_VARIABLE)
    if not spec:
        return
    kind, _, at = spec.partition("@")
    if epoch != int(at):
        return
    marker = Path(os.environ.get(FAULT_DIR_VARIABLE, ".")) / f"fault-{trial_id}"
    if marker.exists():
        return
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
    if kind == "exit":
        os._exit(17)
    raise InjectedFault(f"injected fault before epoch {epoch} of trial {trial_id}")
