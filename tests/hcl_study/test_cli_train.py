"""`hcl-study train`: the run folder, exact resume, help, and bad configs (exit code 2)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from hcl_study.cli import app
from hcl_study.errors import EXIT_USER_ERROR
from hcl_study.geometry import METRIC_KEYS

ROOT = Path(__file__).resolve().parents[2]
SMALL_CONFIG = """\
data: {name: latent_class, num_classes: 5, input_dim: 8, num_train: 200, num_test: 50}
model: {name: mlp, width: 32, head_hidden: 32}
loss: {name: scl, beta: 2.0, estimator: sample, num_negatives: 16}
batch_size: 50
device: cpu
"""
RUN_FILES = ("metrics.jsonl", "class_means.npy", "spectrum.npy", "checkpoint.pt", "config.yaml")


def invoke(*args: str) -> Result:
    """Run the CLI in-process with a wide terminal (help text is not cut)."""
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


def read_metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture
def small_config(tmp_path: Path) -> Path:
    path = tmp_path / "small.yaml"
    path.write_text(SMALL_CONFIG)
    return path


def test_train_writes_metrics_class_means_and_spectrum(tmp_path: Path) -> None:
    out = tmp_path / "run"
    config = ROOT / "configs" / "latent_class.yaml"  # C = 50, d = 49
    settings = ("epochs=3", "device=cpu", "data.num_train=1000")  # 1000 samples keep it quick

    result = invoke(
        "train",
        "--config",
        str(config),
        *(option for setting in settings for option in ("--set", setting)),
        "--out",
        str(out),
    )

    assert result.exit_code == 0, result.output
    assert all((out / name).is_file() for name in RUN_FILES)
    records = read_metrics(out)
    assert [record["epoch"] for record in records] == [0, 1, 2]
    expected = {"epoch", "loss", "regime", "ncm_accuracy_test", "epoch_seconds", *METRIC_KEYS}
    for record in records:
        assert expected <= record.keys()
        assert record["regime"] in {"NC", "partial", "DC"}
    assert np.load(out / "class_means.npy").shape == (3, 50, 49)
    assert np.load(out / "spectrum.npy").shape == (3, 49)


def test_resume_produces_the_files_of_an_uninterrupted_run(
    tmp_path: Path, small_config: Path
) -> None:
    whole, split = tmp_path / "whole", tmp_path / "split"
    common = ("train", "--config", str(small_config))

    assert invoke(*common, "--set", "epochs=4", "--out", str(whole)).exit_code == 0
    assert invoke(*common, "--set", "epochs=2", "--out", str(split)).exit_code == 0
    assert len(read_metrics(split)) == 2
    resumed = invoke(*common, "--set", "epochs=4", "--out", str(split), "--resume")

    assert resumed.exit_code == 0, resumed.output
    assert "Resuming" in resumed.output
    untimed = [
        [{k: v for k, v in record.items() if k != "epoch_seconds"} for record in read_metrics(out)]
        for out in (whole, split)
    ]
    assert len(untimed[0]) == 4
    assert untimed[0] == untimed[1]
    for name in ("class_means.npy", "spectrum.npy"):
        assert np.array_equal(np.load(whole / name), np.load(split / name))
    assert (whole / "config.yaml").read_text() == (split / "config.yaml").read_text()


def test_resume_with_another_config_is_refused(tmp_path: Path, small_config: Path) -> None:
    """Resuming continues the run in OUT: a changed field other than epochs (which would mix
    two configs in one run, and the restored optimizer would keep the old learning rate) is
    refused, naming the fields, and leaves the run as it was."""
    out = tmp_path / "run"
    common = ("train", "--config", str(small_config), "--out", str(out))
    assert invoke(*common, "--set", "epochs=2").exit_code == 0
    before = {name: (out / name).read_bytes() for name in RUN_FILES}

    changed = ("--set", "loss.beta=0", "--set", "optimizer.lr=0.01", "--set", "model.width=64")
    refused = invoke(*common, "--set", "epochs=4", *changed, "--resume")

    assert refused.exit_code == 2, refused.output
    assert "--resume:" in refused.output and "only epochs may change" in refused.output
    for field in ("loss.beta: 2.0 -> 0", "optimizer.lr: 0.001 -> 0.01", "model.width: "):
        assert field in refused.output, refused.output
    assert "epochs:" not in refused.output.replace("only epochs may", "")
    assert {name: (out / name).read_bytes() for name in RUN_FILES} == before


def test_help_lists_every_option() -> None:
    result = invoke("train", "--help")

    assert result.exit_code == 0
    for option in ("--out", "--config", "--set", "--resume", "--checkpoint-every"):
        assert option in result.output


@pytest.mark.parametrize(
    ("yaml_text", "settings", "named"),
    [
        (SMALL_CONFIG, ["model.widht=64"], "model.widht"),
        (SMALL_CONFIG, ["optimizer.lr=0"], "optimizer.lr"),
        (SMALL_CONFIG, ["optimizer.lr=-0.1"], "optimizer.lr"),
        (SMALL_CONFIG.replace("batch_size: 50", "batch_size: 1"), [], "batch_size"),
        ("data: [name: latent_class\n", [], "bad.yaml"),
        (None, [], "bad.yaml"),
        (SMALL_CONFIG, ["epochs"], "--set epochs"),
        (SMALL_CONFIG, ["batch_size.x=3"], "--set batch_size.x=3"),
    ],
    ids=[
        "unknown-key",
        "zero-lr",
        "negative-lr",
        "field-in-file",
        "invalid-yaml",
        "missing-file",
        "set-without-value",
        "set-into-a-value",
    ],
)
def test_bad_config_exits_2_naming_the_field_and_writes_nothing(
    tmp_path: Path, yaml_text: str | None, settings: list[str], named: str
) -> None:
    config = tmp_path / "bad.yaml"
    if yaml_text is not None:
        config.write_text(yaml_text)
    out = tmp_path / "run"
    options = [option for setting in settings for option in ("--set", setting)]

    result = invoke("train", "--config", str(config), *options, "--out", str(out))

    assert result.exit_code == EXIT_USER_ERROR, result.output
    assert "error:" in result.stderr
    assert named in result.stderr
    assert "Traceback" not in result.output
    assert not out.exists() or not any(out.iterdir())
