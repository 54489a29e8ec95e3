"""Training checkpoints: model, optimizer, epoch and every RNG state.

Loaded with `torch.load(weights_only=True)`: RNG states are stored as tensors and plain
Python data, never pickled objects, so a checkpoint cannot run code when it is read.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

CHECKPOINT_FILE = "checkpoint.pt"


def capture_rng_states(generators: dict[str, torch.Generator]) -> dict[str, Any]:
    """Every RNG a run draws from, as tensors and plain data."""
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": np_kind,
            "keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "gauss": float(np_gauss),
        },
        "python": {"version": py_version, "state": list(py_state), "gauss": py_gauss},
        "generators": {name: gen.get_state() for name, gen in generators.items()},
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any], generators: dict[str, torch.Generator]) -> None:
    """Inverse of `capture_rng_states`."""
    torch.set_rng_state(states["torch"])
    np_state = states["numpy"]
    np.random.set_state(
        (
            np_state["kind"],
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["gauss"],
        )
    )
    py_state = states["python"]
    random.setstate((py_state["version"], tuple(py_state["state"]), py_state["gauss"]))
    for name, gen in generators.items():
        gen.set_state(states["generators"][name])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(state: dict[str, Any], directory: str | Path) -> Path:
    """Write atomically (temp file + rename), so a crash mid-write keeps the old one."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / CHECKPOINT_FILE
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(directory: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by `save_checkpoint` (safe loading only)."""
    path = Path(directory) / CHECKPOINT_FILE
    return torch.load(path, map_location="cpu", weights_only=True)
