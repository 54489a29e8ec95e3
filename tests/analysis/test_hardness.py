"""Own-class hardness weight: closed forms on hand-built features, and on a trained run."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from analysis.hardness import own_class_weight, run_own_class_weight
from hcl_study.cli import app
from hcl_study.config import parse_train_config, read_yaml_file
from hcl_study.errors import EXIT_USER_ERROR, UserError
from hcl_study.train import Trainer

RUN_CONFIG = """\
data: {name: latent_class, num_classes: 4, input_dim: 6, num_train: 120, num_test: 40}
model: {name: mlp, width: 16, feature_dim: 3}
loss: {name: ucl, beta: 5.0, self_negative: false}
normalization: sphere
batch_size: 40
epochs: 2
device: cpu
"""


def two_orthogonal_classes(sizes: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Class 0 at e1 and class 1 at e2 (unit vectors): s = 1 within a class, 0 across."""
    z = torch.cat(
        [torch.eye(2, dtype=torch.float64)[[c]].repeat(n, 1) for c, n in enumerate(sizes)]
    )
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(sizes)])
    return z, labels


@pytest.mark.parametrize("beta", [0.0, 1.5, 8.0])
def test_own_class_weight_equals_its_closed_form(beta: float) -> None:
    sizes = (3, 5)
    z, labels = two_orthogonal_classes(sizes)
    for self_negative, own_extra in ((True, 0), (False, -1)):
        shares = own_class_weight(z, labels, beta=beta, self_negative=self_negative)
        # An anchor of class c weighs its n_c (+ own_extra) class-mates by e^beta, the
        # n_other samples of the other class by e^0 = 1.
        expected = [
            (sizes[c] + own_extra)
            * math.exp(beta)
            / ((sizes[c] + own_extra) * math.exp(beta) + sizes[1 - c])
            for c in labels.tolist()
        ]
        torch.testing.assert_close(shares, torch.tensor(expected, dtype=torch.float64))


def test_own_class_weight_matches_a_naive_loop() -> None:
    """Uneven similarities within each class, and a class of one sample."""
    labels = torch.tensor([0, 0, 0, 1, 1, 2])
    generator = torch.Generator().manual_seed(4)
    z = torch.nn.functional.normalize(
        torch.randn(6, 3, generator=generator, dtype=torch.float64), dim=1
    )
    beta = 2.5
    for self_negative in (True, False):
        expected = []
        for a in range(len(labels)):
            negatives = [n for n in range(len(labels)) if self_negative or n != a]
            weights = {n: math.exp(beta * float(z[a] @ z[n])) for n in negatives}
            own = sum(w for n, w in weights.items() if labels[n] == labels[a])
            expected.append(own / sum(weights.values()))
        shares = own_class_weight(z, labels, beta=beta, self_negative=self_negative)
        torch.testing.assert_close(shares, torch.tensor(expected, dtype=torch.float64))


def test_scl_puts_no_weight_on_the_anchors_class() -> None:
    z, labels = two_orthogonal_classes((3, 5))
    shares = own_class_weight(z, labels, loss="scl", beta=8.0)
    assert torch.equal(shares, torch.zeros(8, dtype=torch.float64))


def train(folder: Path, config: str) -> Path:
    """The run folder of `hcl-study train` on `config`."""
    (folder / "run.yaml").write_text(config)
    out = folder / "run"
    result = CliRunner().invoke(
        app, ["train", "--config", str(folder / "run.yaml"), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train(tmp_path_factory.mktemp("hardness"), RUN_CONFIG)


@pytest.fixture(scope="module")
def trained_scl_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    scl = RUN_CONFIG.replace(
        "{name: ucl, beta: 5.0, self_negative: false}", "{name: scl, beta: 5.0}"
    )
    return train(tmp_path_factory.mktemp("hardness-scl"), scl)


def test_run_own_class_weight_weighs_the_first_training_samples_as_trained(
    trained_run: Path,
) -> None:
    config = parse_train_config(read_yaml_file(trained_run / "config.yaml"), source="test")
    trainer = Trainer(config)
    trainer.restore(trained_run)
    trainer.model.eval()
    x, y = zip(*(trainer.data.train_eval[i] for i in range(50)), strict=True)
    with torch.no_grad():
        z = trainer.model(torch.stack(x))  # (50, 3)
    expected = own_class_weight(z, torch.as_tensor(y), beta=5.0, self_negative=False)

    share = run_own_class_weight(trained_run, num_samples=50)

    assert (share.loss, share.beta, share.self_negative) == ("ucl", 5.0, False)
    assert (share.epoch, share.num_samples) == (2, 50)
    assert share.mean == pytest.approx(expected.double().mean().item(), rel=1e-6)
    assert share.min == pytest.approx(expected.min().item(), rel=1e-6)
    assert share.low == pytest.approx(torch.quantile(expected.double(), 0.05).item(), rel=1e-6)
    assert share.min < share.low < share.mean
    assert 0.0 < share.min and share.mean < 1.0


def test_run_own_class_weight_of_a_run_stopped_early_and_of_the_whole_training_set(
    trained_run: Path, tmp_path: Path
) -> None:
    """A run stopped after 2 of its 5 epochs is weighed as its checkpoint left it; every one
    of the 120 training samples may be taken, and no fewer than 2."""
    stopped = tmp_path / "stopped"
    shutil.copytree(trained_run, stopped)
    config = stopped / "config.yaml"
    config.write_text(config.read_text().replace("epochs: 2", "epochs: 5"))
    share = run_own_class_weight(stopped, num_samples=120)
    assert (share.epoch, share.num_samples) == (2, 120)
    assert 0.0 < share.min < share.mean < 1.0
    with pytest.raises(UserError, match=r"^--samples: 1 samples asked; allowed: 2 to 120,"):
        run_own_class_weight(stopped, num_samples=1)


def test_scl_run_has_no_weight_on_the_anchors_class(trained_scl_run: Path) -> None:
    share = run_own_class_weight(trained_scl_run, num_samples=64)
    assert (share.loss, share.beta) == ("scl", 5.0)
    assert share.mean == share.low == share.min == 0.0


def test_run_own_class_weight_refuses_a_folder_without_a_run(
    trained_run: Path, tmp_path: Path
) -> None:
    with pytest.raises(UserError, match=r"has no config\.yaml; give a run folder"):
        run_own_class_weight(tmp_path)
    shutil.copy(trained_run / "config.yaml", tmp_path)
    with pytest.raises(UserError, match=r"has no checkpoint\.pt; give a run folder"):
        run_own_class_weight(tmp_path)
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match=r"checkpoint\.pt cannot be read \("):
        run_own_class_weight(tmp_path)


def test_hardness_command_prints_each_run_and_refuses_a_bad_sample_count(
    trained_run: Path, trained_scl_run: Path
) -> None:
    runner = CliRunner()
    share = run_own_class_weight(trained_run, num_samples=64)
    runs = [str(trained_run), str(trained_scl_run)]

    result = runner.invoke(app, ["hardness", *runs, "--samples", "64"], env={"COLUMNS": "250"})

    assert result.exit_code == 0, result.output
    rows = {
        cells[0]: cells[1:]
        for line in result.output.splitlines()
        if (cells := [cell.strip() for cell in line.strip("│ ").split("│")])[0] in runs
    }
    assert rows == {
        str(trained_run): [
            "ucl",
            "5",
            "false",
            "2",
            f"{share.mean:.4f}",
            f"{share.low:.4f}",
            f"{share.min:.4f}",
        ],
        str(trained_scl_run): ["scl", "5", "-", "2", "0.0000", "0.0000", "0.0000"],
    }
    for args, asked in (([], 512), (["--samples", "121"], 121)):
        refused = runner.invoke(app, ["hardness", str(trained_run), *args])
        assert refused.exit_code == EXIT_USER_ERROR
        assert f"--samples: {asked} samples asked; allowed: 2 to 120" in refused.output
