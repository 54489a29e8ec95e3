"""Files the service reads cannot run code; secrets stay out of git.

MLflow basic auth is covered in tests/hcl_study/test_tracking.py and the variables of
.env.example in tests/test_compose.py.
"""

from __future__ import annotations

import ast
import os
import pickle
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from hcl_study.config import TrainConfig
from hcl_study.train import CHECKPOINT_FILE, Trainer
from hcl_study.train.checkpoint import load_checkpoint
from hcl_study.trainable import HISTORY_FILE, _History

ROOT = Path(__file__).resolve().parents[2]
MARKER = "PWNED"


class _Payload:
    """Unpickling this runs `touch MARKER` (what a planted checkpoint would do)."""

    def __init__(self, folder: Path) -> None:
        self.target = str(folder / MARKER)

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.target}",)


def tiny_trainer() -> Trainer:
    data = {
        "name": "latent_class",
        "num_classes": 3,
        "input_dim": 4,
        "num_train": 12,
        "num_test": 6,
    }
    model = {"name": "mlp", "width": 8, "depth": 1, "head_hidden": 8}
    config = TrainConfig.model_validate(
        {"data": data, "model": model, "batch_size": 4, "epochs": 1, "device": "cpu"}
    )
    return Trainer(config)


def test_planted_trainer_checkpoint_does_not_run(tmp_path: Path) -> None:
    """`checkpoint.pt` (of `hcl-study train --resume` and of Tune checkpoints) loads with
    torch.load(weights_only=True): a pickled callable is refused before it is called."""
    trainer = tiny_trainer()
    state = trainer.state_dict()
    state["extra"] = _Payload(tmp_path)
    torch.save(state, tmp_path / CHECKPOINT_FILE)
    with pytest.raises(pickle.UnpicklingError, match="[Ww]eights only load failed"):
        load_checkpoint(tmp_path)
    with pytest.raises(pickle.UnpicklingError):
        trainer.restore(tmp_path)
    assert not (tmp_path / MARKER).exists()


def test_planted_tune_checkpoint_folder_does_not_run(tmp_path: Path) -> None:
    """A Tune checkpoint folder holds `checkpoint.pt` and `history.npz`; the trainable reads
    both safely (torch weights_only, numpy without pickles)."""
    good = tmp_path / "good"
    trainer = tiny_trainer()
    history = _History()
    history.append(trainer.run_epoch())
    trainer.save(good)
    history.save(good)
    restored, restored_history = tiny_trainer(), _History()
    restored.restore(good)
    restored_history.load(good, restored.epoch)
    assert restored.epoch == 1 and len(restored_history.class_means) == 1

    planted = tmp_path / "planted"
    shutil.copytree(good, planted)
    payload = np.empty(1, dtype=object)
    payload[0] = _Payload(tmp_path)
    np.savez(planted / HISTORY_FILE, class_means=payload, spectra=payload)
    with pytest.raises(ValueError, match="allow_pickle"):
        _History().load(planted, 1)
    assert not (tmp_path / MARKER).exists()


def _calls(tree: ast.AST, module: str, function: str) -> list[ast.Call]:
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == function
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == module
    ]


def test_every_load_in_the_library_is_safe() -> None:
    """torch.load always with weights_only=True; np.load never with allow_pickle=True; YAML
    only through safe loaders."""
    sources = [*ROOT.joinpath("hcl_study").rglob("*.py"), *ROOT.joinpath("analysis").rglob("*.py")]
    torch_loads = 0
    for path in sources:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for call in _calls(tree, "torch", "load"):
            torch_loads += 1
            keywords = {keyword.arg: keyword.value for keyword in call.keywords}
            weights_only = keywords.get("weights_only")
            assert isinstance(weights_only, ast.Constant) and weights_only.value is True, (
                f"{path}:{call.lineno}: torch.load without weights_only=True"
            )
        for call in _calls(tree, "np", "load") + _calls(tree, "numpy", "load"):
            for keyword in call.keywords:
                assert not (
                    keyword.arg == "allow_pickle" and getattr(keyword.value, "value", False)
                ), f"{path}:{call.lineno}: np.load(allow_pickle=True)"
        for call in _calls(tree, "yaml", "load") + _calls(tree, "yaml", "unsafe_load"):
            assert call.func.attr == "load", f"{path}:{call.lineno}: yaml.unsafe_load"
            loader = {keyword.arg: keyword.value for keyword in call.keywords}.get("Loader")
            assert isinstance(loader, ast.Name) and loader.id in {"_StrictLoader", "SafeLoader"}, (
                f"{path}:{call.lineno}: yaml.load with an unsafe Loader"
            )
    assert torch_loads >= 1


@pytest.mark.skipif(
    shutil.which("git") is None or not (ROOT / ".git").exists(), reason="needs a git checkout"
)
def test_env_file_is_ignored_and_its_template_is_not() -> None:
    """Secrets go into .env (copied from .env.example), which git must never pick up."""
    assert (ROOT / ".env.example").is_file()

    def ignored(name: str) -> bool:
        return (
            subprocess.run(["git", "check-ignore", "-q", name], cwd=ROOT, check=False).returncode
            == 0
        )

    assert ignored(".env")
    assert not ignored(".env.example")
    tracked = subprocess.run(
        ["git", "ls-files", ".env"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert tracked.stdout.strip() == "", ".env is committed"
