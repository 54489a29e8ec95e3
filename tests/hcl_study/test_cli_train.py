"""`hcl-study train`: the run folder, exact resume, help, and bad configs (exit code 2)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner, Result

from hcl_study.cli import app
from hcl_study.errors import EXIT_INTERRUPTED, EXIT_USER_ERROR
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


def _refuse_non_json(constant: str) -> None:
    raise AssertionError(f"metrics.jsonl holds {constant}, which is not JSON")


def read_metrics(out: Path) -> list[dict]:
    """The records of `metrics.jsonl`, read as strict JSON (no NaN or Infinity)."""
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line, parse_constant=_refuse_non_json) for line in lines]


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


def snapshot(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in RUN_FILES}


def test_a_folder_holding_a_run_is_refused_unless_resumed_or_overwritten(
    tmp_path: Path, small_config: Path
) -> None:
    out = tmp_path / "run"
    common = ("train", "--config", str(small_config), "--out", str(out), "--set", "epochs=2")
    assert invoke(*common).exit_code == 0
    before = snapshot(out)

    refused = invoke(*common, "--set", "loss.beta=0")
    assert refused.exit_code == EXIT_USER_ERROR, refused.output
    assert "holds a run already" in refused.output and "--overwrite" in refused.output
    assert snapshot(out) == before, "a finished run is never replaced silently"

    replaced = invoke(*common, "--set", "loss.beta=0", "--set", "epochs=1", "--overwrite")
    assert replaced.exit_code == 0, replaced.output
    assert "beta: 0" in (out / "config.yaml").read_text()
    assert [record["epoch"] for record in read_metrics(out)] == [0]
    assert np.load(out / "class_means.npy").shape[0] == 1


def test_an_interrupt_while_the_arrays_are_written_leaves_a_resumable_run(
    tmp_path: Path, small_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C inside the second checkpoint's array write: the checkpoint is never ahead of
    the arrays, so `--resume` gives the files of an uninterrupted run."""
    from hcl_study.train.outputs import RunOutputs

    whole, cut = tmp_path / "whole", tmp_path / "cut"
    common = ("train", "--config", str(small_config), "--set", "epochs=4")
    assert invoke(*common, "--out", str(whole)).exit_code == 0
    flush = RunOutputs.flush
    calls = []

    def interrupted_second_flush(self: RunOutputs) -> None:
        calls.append(True)
        if len(calls) == 2:
            raise KeyboardInterrupt
        flush(self)

    monkeypatch.setattr(RunOutputs, "flush", interrupted_second_flush)
    stopped = invoke(*common, "--out", str(cut), "--checkpoint-every", "1")
    assert stopped.exit_code == EXIT_INTERRUPTED
    message = " ".join(stopped.output.split())
    assert "training stopped after 2 of 4 epochs" in message, message
    assert f"{cut} holds its checkpoint after epoch 1" in message
    assert message.endswith(f"--config {cut / 'config.yaml'} --out {cut} --resume")
    monkeypatch.setattr(RunOutputs, "flush", flush)
    assert np.load(cut / "class_means.npy").shape[0] == 1, "the arrays of the first checkpoint"

    resumed = invoke("train", "--config", str(cut / "config.yaml"), "--out", str(cut), "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert f"Resuming {cut} after epoch 1 of 4." in " ".join(resumed.output.split())
    for name in ("class_means.npy", "spectrum.npy"):
        assert np.array_equal(np.load(whole / name), np.load(cut / name))
    assert len(read_metrics(cut)) == 4


def test_an_interrupt_between_the_arrays_and_the_checkpoint_leaves_a_resumable_run(
    tmp_path: Path, small_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C in the second checkpoint's save, after its arrays were written: the arrays are
    an epoch ahead of the checkpoint, and `--resume` cuts them back before it continues."""
    from hcl_study.train import Trainer

    whole, cut = tmp_path / "whole", tmp_path / "cut"
    common = ("train", "--config", str(small_config), "--set", "epochs=4")
    common += ("--checkpoint-every", "1")
    assert invoke(*common, "--out", str(whole)).exit_code == 0
    save = Trainer.save
    calls = []

    def interrupted_second_save(self: Trainer, directory: str | Path) -> Path:
        calls.append(True)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return save(self, directory)

    monkeypatch.setattr(Trainer, "save", interrupted_second_save)
    assert invoke(*common, "--out", str(cut)).exit_code == EXIT_INTERRUPTED
    assert np.load(cut / "class_means.npy").shape[0] == 2, "the arrays are an epoch ahead"
    monkeypatch.setattr(Trainer, "save", save)

    assert invoke(*common, "--out", str(cut), "--resume").exit_code == 0
    for name in ("class_means.npy", "spectrum.npy"):
        assert np.array_equal(np.load(whole / name), np.load(cut / name)), name
    assert read_metrics(cut) == [
        {**record, "epoch_seconds": cut_record["epoch_seconds"]}
        for record, cut_record in zip(read_metrics(whole), read_metrics(cut), strict=True)
    ]


def test_resume_refuses_damaged_files_and_a_shorter_run(tmp_path: Path, small_config: Path) -> None:
    out = tmp_path / "run"
    common = ("train", "--config", str(small_config), "--out", str(out))
    assert invoke(*common, "--set", "epochs=2").exit_code == 0
    spectrum = (out / "spectrum.npy").read_bytes()
    np.save(out / "spectrum.npy", np.load(out / "spectrum.npy")[:1])
    refused = invoke(*common, "--set", "epochs=3", "--resume")
    assert refused.exit_code == EXIT_USER_ERROR, refused.output
    assert "does not match the checkpoint of 2 epochs: it holds 1 epochs" in refused.output
    (out / "spectrum.npy").write_bytes(spectrum)

    shorter = invoke(*common, "--set", "epochs=1", "--resume")
    assert shorter.exit_code == EXIT_USER_ERROR and "can only extend it" in shorter.output

    with (out / "metrics.jsonl").open("a") as handle:
        handle.write('{"epoch": 2, "lo')  # what a hard kill while appending leaves
    assert invoke(*common, "--set", "epochs=3", "--resume").exit_code == 0
    assert [record["epoch"] for record in read_metrics(out)] == [0, 1, 2]

    checkpoint = out / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])
    damaged = invoke(*common, "--set", "epochs=4", "--resume")
    assert damaged.exit_code == EXIT_USER_ERROR, damaged.output
    assert "checkpoint.pt cannot be read" in damaged.output


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_device_without_a_gpu_is_refused(tmp_path: Path, small_config: Path) -> None:
    refused = invoke(
        "train", "--config", str(small_config), "--set", "device=cuda", "--out", str(tmp_path / "o")
    )
    assert refused.exit_code == EXIT_USER_ERROR and "device: 'cuda'" in refused.output
    assert not (tmp_path / "o").exists()


def test_help_lists_every_option() -> None:
    result = invoke("train", "--help")

    assert result.exit_code == 0
    for option in ("--out", "--config", "--set", "--resume", "--checkpoint-every"):
        assert option in result.output


def test_config_prints_the_config_train_runs_and_refuses_what_train_refuses(
    tmp_path: Path, small_config: Path
) -> None:
    settings = ("--set", "loss.beta=5", "--set", "epochs=1")
    shown = invoke("config", "--config", str(small_config), *settings)
    out = tmp_path / "run"
    ran = invoke("train", "--config", str(small_config), *settings, "--out", str(out))

    assert shown.exit_code == 0 and ran.exit_code == 0, shown.output + ran.output
    assert shown.stdout == (out / "config.yaml").read_text()
    config = yaml.safe_load(shown.stdout)
    assert (config["loss"]["beta"], config["epochs"]) == (5.0, 1), "the --set values"
    assert (config["model"]["depth"], config["optimizer"]["lr"]) == (2, 0.001), "the defaults"
    refused = invoke("config", "--config", str(small_config), "--set", "optimizer.lr=0")
    assert refused.exit_code == EXIT_USER_ERROR and refused.stdout == ""
    assert "error: Invalid config" in refused.stderr and "optimizer.lr" in refused.stderr


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


def test_an_interrupt_before_the_first_checkpoint_says_to_start_again(
    tmp_path: Path, small_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hcl_study.train.outputs import RunOutputs

    def interrupted_append(self: RunOutputs, result: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(RunOutputs, "append", interrupted_append)
    out = tmp_path / "run"
    stopped = invoke("train", "--config", str(small_config), "--set", "epochs=4", "--out", str(out))
    assert stopped.exit_code == EXIT_INTERRUPTED
    message = " ".join(stopped.output.split())
    assert "training stopped after 1 of 4 epochs; no checkpoint was written yet" in message
    assert "(the first comes after epoch 4)" in message, "the last epoch, before epoch 10"
    assert message.endswith(f"--out {out} --overwrite")


@pytest.mark.parametrize(("lr", "diverged_epoch", "checkpoint_epoch"), [(2.0, 1, 0), (0.6, 2, 1)])
def test_a_diverged_run_keeps_its_last_finite_checkpoint_and_is_not_resumed(
    tmp_path: Path, small_config: Path, lr: float, diverged_epoch: int, checkpoint_epoch: int
) -> None:
    """SGD at these rates without normalization diverges in epoch 1 or 2 (of 4). The
    checkpoint holds the last finite state (none before epoch 1), the summary says which, and
    `--resume`, which would diverge at the same epoch again, leaves the run as it is."""
    import torch

    from hcl_study.train.checkpoint import load_checkpoint

    out = tmp_path / "run"
    settings = ("epochs=4", "normalization=none", "optimizer.name=sgd", f"optimizer.lr={lr}")
    common = ("train", "--config", str(small_config), "--out", str(out), "--checkpoint-every", "1")
    common += tuple(option for setting in settings for option in ("--set", setting))

    result = invoke(*common)

    assert result.exit_code == 0, result.output
    message = " ".join(result.output.split())
    assert f"Diverged in epoch {diverged_epoch} of 4" in message
    records = read_metrics(out)
    assert [record["regime"] for record in records][-1] == "diverged"
    assert None in records[-1].values(), "a non-finite value is written as null"
    assert len(records) == diverged_epoch
    assert len(np.load(out / "class_means.npy")) == diverged_epoch
    if checkpoint_epoch:
        assert f"checkpoint.pt (after epoch {checkpoint_epoch})" in message
        state = load_checkpoint(out)
        assert state["epoch"] == checkpoint_epoch
        assert all(torch.isfinite(value).all() for value in state["model"].values())
    else:
        assert "no checkpoint.pt" in message
        assert not (out / "checkpoint.pt").exists()
    before = {path.name: path.read_bytes() for path in out.iterdir()}

    resumed = invoke(*common, "--resume")

    assert resumed.exit_code == 0, resumed.output
    message = " ".join(resumed.output.split())
    assert f"Nothing to do: the run in {out} diverged in epoch {diverged_epoch}" in message
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (("--resume", "--overwrite"), "error: --resume, --overwrite: give one of them"),
        (
            ("--checkpoint-every", "0"),
            "'--checkpoint-every': Input should be greater than or equal to 1",
        ),
    ],
)
def test_conflicting_or_out_of_range_options_are_refused(
    options: tuple[str, ...], expected: str, tmp_path: Path, small_config: Path
) -> None:
    out = tmp_path / "run"
    refused = invoke(
        "train", "--config", str(small_config), "--set", "epochs=1", "--out", str(out), *options
    )
    assert refused.exit_code == EXIT_USER_ERROR, refused.output
    assert expected in " ".join(refused.output.split())
    assert not out.exists()


def test_resume_without_a_checkpoint_starts_the_run_at_epoch_1(
    tmp_path: Path, small_config: Path
) -> None:
    out = tmp_path / "run"
    result = invoke(
        "train", "--config", str(small_config), "--set", "epochs=2", "--out", str(out), "--resume"
    )
    assert result.exit_code == 0, result.output
    assert f"No checkpoint in {out}: the run starts at epoch 1." in " ".join(result.output.split())
    assert [record["epoch"] for record in read_metrics(out)] == [0, 1]


def test_resuming_a_complete_run_has_nothing_to_do(tmp_path: Path, small_config: Path) -> None:
    """`--resume` with the epochs the run already has is allowed (epochs >= its own) and
    changes nothing."""
    out = tmp_path / "run"
    common = ("train", "--config", str(small_config), "--set", "epochs=2", "--out", str(out))
    assert invoke(*common).exit_code == 0
    before = snapshot(out)

    resumed = invoke(*common, "--resume")

    assert resumed.exit_code == 0, resumed.output
    assert f"Nothing to do: {out} is already complete." in " ".join(resumed.output.split())
    assert snapshot(out) == before


def test_a_diverged_run_resumed_with_another_config_is_refused(
    tmp_path: Path, small_config: Path
) -> None:
    """A run that diverged before its first checkpoint has none, yet `--resume` still checks
    that it is the same run before saying there is nothing to do."""
    out = tmp_path / "run"
    settings = ("epochs=4", "normalization=none", "optimizer.name=sgd", "optimizer.lr=2.0")
    common = ("train", "--config", str(small_config), "--out", str(out), "--checkpoint-every", "1")
    common += tuple(option for setting in settings for option in ("--set", setting))
    assert invoke(*common).exit_code == 0
    assert not (out / "checkpoint.pt").exists()
    before = {path.name: path.read_bytes() for path in out.iterdir()}

    refused = invoke(*common, "--set", "loss.beta=0", "--resume")

    assert refused.exit_code == EXIT_USER_ERROR, refused.output
    message = " ".join(refused.output.split())
    assert f"--resume: {out} holds a run of another config (loss.beta: 2.0 -> 0" in message
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before
