"""Own-class hardness weight: closed forms on hand-built features, and on a trained run."""

from __future__ import annotations

import math
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


def test_scl_puts_no_weight_on_the_anchors_class() -> None:
    z, labels = two_orthogonal_classes((3, 5))
    shares = own_class_weight(z, labels, loss="scl", beta=8.0)
    assert torch.equal(shares, torch.zeros(8, dtype=torch.float64))


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hardness")
    (folder / "run.yaml").write_text(RUN_CONFIG)
    out = folder / "run"
    result = CliRunner().invoke(
        app, ["train", "--config", str(folder / "run.yaml"), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    return out


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
    assert share.min <= share.low <= share.mean
    assert 0.0 < share.min and share.mean < 1.0


def test_run_own_class_weight_refuses_a_folder_without_a_run(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"has no config\.yaml; give a run folder"):
        run_own_class_weight(tmp_path)


def test_hardness_command_prints_each_run_and_refuses_a_bad_sample_count(
    trained_run: Path,
) -> None:
    runner = CliRunner()
    share = run_own_class_weight(trained_run, num_samples=64)

    result = runner.invoke(
        app, ["hardness", str(trained_run), "--samples", "64"], env={"COLUMNS": "200"}
    )

    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if str(trained_run) in line)
    assert [cell.strip() for cell in row.strip("│ ").split("│")][1:] == [
        "ucl",
        "5",
        "false",
        "2",
        f"{share.mean:.4f}",
        f"{share.low:.4f}",
        f"{share.min:.4f}",
    ]
    too_many = runner.invoke(app, ["hardness", str(trained_run), "--samples", "121"])
    assert too_many.exit_code == EXIT_USER_ERROR
    assert "--samples: 121 samples asked; allowed: 2 to 120" in too_many.output
