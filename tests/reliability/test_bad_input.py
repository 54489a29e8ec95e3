"""A corpus of malformed specs and configs, each through the CLI.

Every case must end with exit code 2 and one `error:` paragraph that names the field and what
is allowed, before anything starts: no Ray session, no study folder with a store, no MLflow
run. Most cases run in-process (typer's CliRunner, no Ray start to pay); two run the real
`hcl-study` executable.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from fake_datasets import write_fake_cifar, write_fake_image_folder
from loopback_server import loopback_server
from mlflow import MlflowClient
from mlflow_server import free_port
from reliability_support import cli_env, run_cli, smoke_spec
from typer.testing import CliRunner

from hcl_study.cli import app
from hcl_study.study.runner import SPEC_FILE, STUDY_FILE, StudyLocation
from hcl_study.tracking import StudyRun

NAME = "bad"
HACKED = "HACKED"
TAG_ATTACK = f'!!python/object/apply:os.system ["echo hacked > {HACKED}"]\n'


@dataclass(frozen=True)
class Case:
    """One malformed input.

    Attributes:
        text: The YAML file's content; `{root}` is replaced by the test's folder.
        expected: Substrings the error must contain: the field, then what is allowed.
        args: Extra CLI arguments; `{free_port}`, `{not_ray}` and `{root}` are filled in.
    """

    text: str
    expected: tuple[str, ...]
    args: tuple[str, ...] = field(default_factory=tuple)


def spec_text(name: str = NAME, **changes: Any) -> str:
    return yaml.safe_dump(smoke_spec(name, **changes), sort_keys=False)


SMOKE_BASE = smoke_spec(NAME)["base"]
SPACE_2D = {"loss.beta": {"uniform": [0.0, 30.0]}, "loss.tau": {"uniform": [0.1, 1.0]}}
BOUNDARY = {"algorithm": "boundary", "order_parameter": "erank_ratio", "threshold": 0.9}
CIFAR_BASE = {
    **SMOKE_BASE,
    "data": {"name": "cifar10", "root": "{root}/cifar"},
    "model": {"name": "mlp"},
}

STUDY_CASES: dict[str, Case] = {
    "invalid_yaml": Case(
        "name: bad\nspace: {loss.beta: {uniform: [0, 1]}\n", ("not valid YAML", "line")
    ),
    "python_object_tag": Case(
        TAG_ATTACK, ("not valid YAML", "python/object/apply", "Python object tags are refused")
    ),
    "python_tag_in_a_value": Case(
        spec_text().replace("name: bad", f"name: {TAG_ATTACK.strip()}"),
        ("not valid YAML", "python/object"),
    ),
    "duplicate_key": Case(spec_text() + "name: other\n", ("duplicate key 'name'", "line")),
    "top_level_list": Case("- name: bad\n", ("expected a mapping at the top level", "list")),
    "empty_file": Case("", ("name: Field required", "space: Field required")),
    "unknown_key": Case(
        spec_text() + "trails: 3\n", ("trails: unknown key", "allowed here: name, base, space")
    ),
    "misspelt_key": Case(
        spec_text(search={"algorithm": "optuna", "num_sample": 4}),
        ("search.num_sample: unknown key; did you mean search.num_samples?",),
    ),
    "unknown_nested_key": Case(
        spec_text(base={"loss": {"name": "scl", "temperature": 0.5}}),
        ("base.loss.temperature: unknown key",),
    ),
    "wrong_type": Case(
        spec_text(checkpoint_every="often"), ("checkpoint_every", "valid integer", "'often'")
    ),
    "space_entry_not_a_mapping": Case(
        spec_text(space={"loss.beta": 3}), ("space.loss.beta", "valid dictionary")
    ),
    "lr_zero": Case(
        spec_text(base={"optimizer": {"name": "adam", "lr": 0.0}}),
        ("base.optimizer.lr", "greater than 0", "got 0.0"),
    ),
    "lr_range_from_zero": Case(
        spec_text(space={"optimizer.lr": {"loguniform": [0.0, 0.01]}}),
        ("space.optimizer.lr", "loguniform needs low"),
    ),
    "tau_zero_in_space": Case(
        spec_text(space={"loss.tau": {"choice": [0.0, 1.0]}}),
        ("space.loss.tau allows 0.0", "greater than 0"),
    ),
    "beta_negative": Case(
        spec_text(base={"loss": {"name": "scl", "beta": -1.0}}),
        ("base.loss.beta", "greater than or equal to 0"),
    ),
    "beta_negative_in_space": Case(
        spec_text(space={"loss.beta": {"uniform": [-5.0, 5.0]}}),
        ("space.loss.beta allows -5.0", "greater than or"),
    ),
    "epochs_zero": Case(
        spec_text(base={"epochs": 0}), ("base.epochs", "greater than or equal to 1")
    ),
    "cuda_without_a_reserved_gpu": Case(
        spec_text(base={**SMOKE_BASE, "device": "cuda"}),
        ("base.device", "without a GPU reserved for it (resources.gpu is 0)"),
    ),
    "boolean_for_an_integer": Case(
        spec_text(checkpoint_every=True), ("checkpoint_every", "expected a number, not a boolean")
    ),
    "boolean_bound_in_space": Case(
        spec_text(space={"batch_size": {"int": [False, 64]}}),
        ("space.batch_size.int", "expected a number, not a boolean"),
    ),
    "num_samples_zero": Case(
        spec_text(search={"algorithm": "optuna", "num_samples": 0}),
        ("search.num_samples", "greater than or equal to 1"),
    ),
    "unknown_normalization": Case(
        spec_text(base={"normalization": "cube"}),
        ("base.normalization", "'none', 'ball' or 'sphere'", "'cube'"),
    ),
    "unknown_loss": Case(
        spec_text(base={"loss": {"name": "triplet"}}),
        ("base.loss.name", "'scl' or 'ucl'", "'triplet'"),
    ),
    "unknown_search_algorithm": Case(
        spec_text(search={"algorithm": "hyperband"}),
        ("search.algorithm", "'optuna', 'random', 'grid'"),
    ),
    "empty_space": Case(
        spec_text(space={}), ("space: the search space is empty", "give at least one parameter")
    ),
    "space_key_not_a_field": Case(
        spec_text(space={"loss.betta": {"uniform": [0, 1]}}),
        ("space.loss.betta: not a training-config field", "loss.beta"),
    ),
    "reversed_bounds": Case(
        spec_text(space={"loss.beta": {"uniform": [30.0, 0.0]}}),
        ("space.loss.beta", "[low, high] with low < high"),
    ),
    "two_distributions": Case(
        spec_text(space={"loss.beta": {"uniform": [0, 1], "choice": [1]}}),
        ("space.loss.beta", "exactly one distribution"),
    ),
    "grid_with_other_num_samples": Case(
        spec_text(
            space={"loss.beta": {"grid": [0.0, 10.0]}},
            search={"algorithm": "grid", "num_samples": 5},
        ),
        ("search.num_samples", "grid points once", "set it to 2"),
    ),
    "grid_of_a_range": Case(
        spec_text(space={"loss.beta": {"uniform": [0, 1]}}, search={"algorithm": "grid"}),
        ("space.loss.beta", "grid or choice values"),
    ),
    "feature_dim_zero": Case(
        spec_text(base={"model": {"name": "mlp", "feature_dim": 0}}),
        ("base.model.feature_dim", "greater than or equal to 1"),
    ),
    "unknown_objective_metric": Case(
        spec_text(objective={"metric": "accuracy", "mode": "max"}),
        ("objective.metric", "allowed: loss"),
    ),
    "name_with_path": Case(
        spec_text(name="../escape"), ("name", "should match pattern", "'../escape'")
    ),
    "more_gpus_than_the_machine": Case(
        spec_text(resources={"cpu": 1, "gpu": 4}),
        ("resources.gpu", "asks for 4 GPU", "allowed: at most"),
    ),
    "more_cpus_than_the_machine": Case(
        spec_text(resources={"cpu": 512, "gpu": 0}),
        ("resources.cpu", "asks for 512 CPU", "allowed: at most"),
    ),
    "missing_cifar_root": Case(
        spec_text(base=CIFAR_BASE),
        ("base.data.root:", "does not exist", "data_batch_1", "Nothing is downloaded"),
    ),
    "invalid_value_by_set": Case(
        spec_text(),
        ("bad.yaml --set base.epochs=0: base.epochs", "greater than or equal to 1"),
        args=("--set", "base.epochs=0"),
    ),
    "partial_cifar_root": Case(
        spec_text(base=CIFAR_BASE), ("data.root", "incomplete; missing data_batch_3")
    ),
    "unreachable_tracking_uri": Case(
        spec_text(),
        ("tracking_uri 'http://127.0.0.1:", "no MLflow server answers", "Allowed values are"),
        args=("--tracking-uri", "http://127.0.0.1:{free_port}"),
    ),  # fmt: skip
    "unsupported_tracking_scheme": Case(
        spec_text(tracking_uri="ftp://127.0.0.1/mlflow"),
        ("tracking_uri", "scheme 'ftp' is not supported", "Allowed"),
    ),
    "file_store_tracking_uri": Case(
        spec_text(),
        ("tracking_uri", "MLflow's file store", "in it instead: sqlite:////", "/mlruns/mlflow.db"),
        args=("--tracking-uri", "{root}/mlruns"),
    ),
    "ray_address_not_answering": Case(
        spec_text(),
        ("--address / RAY_ADDRESS: no Ray head answers at 127.0.0.1:", "ray start --head"),
        args=("--address", "127.0.0.1:{free_port}"),
    ),  # fmt: skip
    "ray_address_not_ray": Case(
        spec_text(),
        ("--address", "not a Ray head", "GCS port"),
        args=("--address", "127.0.0.1:{not_ray}"),
    ),
    "malformed_set": Case(
        spec_text(), ("--set base.epochs", "key.path=value"), args=("--set", "base.epochs")
    ),
    "set_into_a_value": Case(
        spec_text(), ("--set", "'name' is a value"), args=("--set", "name.x=1")
    ),
    "ray_address_malformed": Case(
        spec_text(),
        ("--address", "is not a Ray address", "HOST:PORT"),
        args=("--address", "head-node"),
    ),
    "set_with_empty_key": Case(spec_text(), ("--set", "non-empty key path"), args=("--set", "=5")),
    "spec_is_a_folder": Case("", ("Cannot read", "Is a directory", "readable YAML file")),
    "spec_not_utf8": Case("", ("not a UTF-8 text file",)),
    "float_range_on_integer_field": Case(
        spec_text(space={"epochs": {"uniform": [1, 10]}}),
        ("space.epochs allows", "use int: [low, high]", "base.epochs", "valid integer"),
    ),
    "infinite_lr": Case(
        spec_text(base={"optimizer": {"name": "adam", "lr": float("inf")}}),
        ("base.optimizer.lr", "finite number"),
    ),
    "infinite_bound": Case(
        spec_text(space={"loss.beta": {"uniform": [0.0, float("inf")]}}),
        ("space.loss.beta.uniform", "finite number"),
    ),
    "boundary_threshold_nan": Case(
        spec_text(
            space=SPACE_2D,
            search={**BOUNDARY, "threshold": float("nan"), "num_samples": 8},
        ),
        ("search.threshold", "finite number"),
    ),
    "missing_num_samples": Case(
        spec_text(search={"algorithm": "random"}),
        ("search.num_samples", "number of trials of a 'random' search"),
    ),
    "boundary_field_without_boundary": Case(
        spec_text(search={"algorithm": "optuna", "num_samples": 4, "threshold": 0.9}),
        ("search.threshold", "boundary only", "'optuna'"),
    ),
    "asha_field_with_fifo": Case(
        spec_text(scheduler={"name": "fifo", "grace_period": 2}),
        ("scheduler.grace_period", "asha only", "'fifo'"),
    ),
    "asha_grace_beyond_the_longest_trial": Case(
        spec_text(scheduler={"name": "asha", "grace_period": 50}),
        ("scheduler.grace_period", "longest trial (3 epochs)", "allowed: 1 to 3"),
    ),
    "boundary_budget_below_its_design": Case(
        spec_text(space=SPACE_2D, search={**BOUNDARY, "num_samples": 3, "initial_design": 4}),
        ("search.num_samples", "initial designs", "allowed: at least 4"),
    ),
    "target_error_cap_below_twice_the_design": Case(
        spec_text(
            space=SPACE_2D,
            search={**BOUNDARY, "num_samples": 6, "initial_design": 4, "target_error": 0.05},
        ),
        ("search.num_samples", "at least 8", "got 6"),
    ),
    "data_variant_not_in_the_path": Case(
        spec_text(base={"data": {**SMOKE_BASE["data"], "num_clases": 3}}),
        ("base.data.num_clases: unknown key",),
    ),
    "nested_space_keys": Case(
        spec_text(space={"loss": {"beta": {"uniform": [0.0, 30.0]}}}),
        ("space", "dotted paths", "'loss.beta: {uniform: ...}'"),
    ),
    "cpu_threads_beyond_the_trial_cpus": Case(
        spec_text(base={**SMOKE_BASE, "cpu_threads": 2}, resources={"cpu": 1}),
        ("base.cpu_threads", "2 torch threads", "resources.cpu", "at most 1"),
    ),
    "space_key_not_a_path": Case(
        spec_text(space={1: {"grid": [1.0, 2.0]}}),
        ("space", "dotted paths", "'loss.beta'", "got 1 (a YAML int)"),
    ),
    "missing_data_in_the_space": Case(
        spec_text(
            base=CIFAR_BASE,
            space={"data.root": {"choice": ["{root}/cifar", "{root}/nowhere"]}},
        ),
        ("space.data.root allows", "nowhere", "does not exist"),
    ),
    "image_folder_class_count": Case(
        spec_text(
            base={
                **SMOKE_BASE,
                "data": {"name": "image_folder", "root": "{root}/images", "num_classes": 4},
                "model": {"name": "mlp"},
            }
        ),
        ("data.num_classes", "says 4 classes", "has 3 class folders"),
    ),
    "set_value_quoted_as_typed": Case(
        spec_text(),
        ("--set base.epochs=yes: base.epochs", "expected a number, not a boolean"),
        args=("--set", "base.epochs=yes"),
    ),
    "unknown_key_named_like_a_top_level_field": Case(
        spec_text(),
        ("base.optimizer.seed: unknown key; did you mean base.data.seed or base.seed?",),
        args=("--set", "base.optimizer.seed=1"),
    ),
    "keys_of_another_data_set_by_set": Case(
        spec_text(),
        ("base.data.seed: unknown key", "base.data.seed belongs to base.data.name latent_class"),
        args=("--set", "base.data.name=cifar100", "--set", "base.data.root=/nonexistent"),
    ),
}

TRAIN_CASES: dict[str, Case] = {
    "invalid_yaml": Case("data: {name: latent_class\nepochs: [1,\n", ("not valid YAML", "line 2")),
    "python_object_tag": Case(
        TAG_ATTACK, ("not valid YAML", "python/object/apply", "Python object tags are refused")
    ),
    "duplicate_key": Case("epochs: 1\nepochs: 2\n", ("duplicate key 'epochs'",)),
    "not_a_mapping": Case("3\n", ("expected a mapping at the top level", "int")),
    "unknown_key": Case("epochs: 3\nlearning_rate: 0.1\n", ("learning_rate: unknown key",)),
    "key_of_another_section": Case(
        "epochs: 3\nlr: 0.1\n",
        ("lr: unknown key; did you mean optimizer.lr?", "allowed here: data,"),
    ),
    "key_of_another_data_set": Case(
        "data: {name: latent_class, root: /data}\n",
        ("data.root: unknown key; data.root belongs to data.name cifar10 or cifar100 or image",),
    ),
    "invalid_value_by_set": Case(
        "epochs: 3\n",
        ("bad.yaml --set loss.beta=-1: loss.beta", "greater than or equal to 0"),
        args=("--set", "loss.beta=-1"),
    ),
    "set_value_not_yaml": Case(
        "epochs: 3\n",
        ("--set loss.beta=[1: the value '[1' is not valid YAML", "(line 1, column 3)"),
        args=("--set", "loss.beta=[1"),
    ),
    "wrong_type": Case("batch_size: big\n", ("batch_size", "valid integer", "'big'")),
    "lr_negative": Case("optimizer: {lr: -0.1}\n", ("optimizer.lr", "greater than 0", "-0.1")),
    "tau_zero": Case("loss: {tau: 0}\n", ("loss.tau", "greater than 0")),
    "beta_negative": Case("loss: {beta: -1}\n", ("loss.beta", "greater than or equal to 0")),
    "epochs_zero": Case("epochs: 0\n", ("epochs", "greater than or equal to 1")),
    "unknown_normalization": Case(
        "normalization: cube\n", ("normalization", "'none', 'ball' or 'sphere'")
    ),
    "unknown_loss": Case("loss: {name: triplet}\n", ("loss.name", "'scl' or 'ucl'")),
    "feature_dim_zero": Case(
        "model: {feature_dim: 0}\n", ("model.feature_dim", "greater than or equal to 1")
    ),
    "unknown_device": Case("device: tpu\n", ("device", "'auto', 'cpu' or 'cuda'")),
    "seed_negative": Case("seed: -1\n", ("seed", "greater than or equal to 0")),
    "data_seed_too_large": Case(
        "data: {name: latent_class, seed: 4294967296}\n", ("data.seed", "less than 4294967296")
    ),
    "digits_test_fraction_too_small": Case(
        "data: {name: digits, test_fraction: 0.001}\n",
        ("data.test_fraction", "greater than or equal to 0.01"),
    ),
    "cifar_subset_of_one": Case(
        "data: {name: cifar10, root: x, subset: 1}\n", ("data.subset", "greater than or equal to 2")
    ),
    "boolean_epochs_by_set": Case(
        "epochs: 3\n",
        ("epochs", "expected a number, not a boolean"),
        args=("--set", "epochs=true"),
    ),
    "too_many_cpu_threads": Case(
        "cpu_threads: 100000\n", ("cpu_threads", "less than or equal to 1024")
    ),
    "model_beyond_memory": Case(
        "model: {width: 100000000000000}\n",
        ("out of memory", "can't allocate memory", "reduce model.width"),
    ),
    "data_beyond_memory": Case(
        "data: {name: latent_class, num_train: 10000000000000}\n",
        ("out of memory", "Unable to allocate", "data.num_train"),
    ),
    "boolean_beta": Case("loss: {beta: yes}\n", ("loss.beta", "expected a number, not a boolean")),
    "out_is_a_file": Case("epochs: 1\n", ("--out", "is a file"), args=("--out", "{root}/bad.yaml")),
    "missing_cifar_root": Case(
        "data: {name: cifar10, root: '{root}/cifar'}\n", ("data.root", "does not exist")
    ),
    "partial_cifar_root": Case(
        "data: {name: cifar10, root: '{root}/cifar'}\n", ("data.root", "missing data_batch_3")
    ),
    "malformed_set": Case(
        "epochs: 1\n", ("--set loss.beta", "key.path=value"), args=("--set", "loss.beta")
    ),
    "set_into_a_value": Case(
        "epochs: 1\n", ("--set epochs.max=3", "'epochs' is a value"), args=("--set", "epochs.max=3")
    ),
    "unknown_key_named_like_a_top_level_field": Case(
        "epochs: 1\n",
        ("model.epochs: unknown key; did you mean epochs?",),
        args=("--set", "model.epochs=3"),
    ),
    "keys_of_another_data_set_by_set": Case(
        "data: {name: latent_class, seed: 0}\n",
        ("data.seed: unknown key", "data.seed belongs to data.name latent_class"),
        args=("--set", "data.name=cifar100", "--set", "data.root=/nonexistent"),
    ),
}


@pytest.fixture(scope="module")
def not_ray_port() -> Iterator[int]:
    """A port where an HTTP/1 server answers (as a mistyped dashboard or MLflow port would)."""
    with loopback_server(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n") as port:
        yield port


def prepare(name: str, case: Case, root: Path, not_ray: int) -> tuple[Path, list[str]]:
    """Write the case's file (and data folders) under `root`; its CLI arguments."""
    if name == "partial_cifar_root":
        write_fake_cifar(root / "cifar")
        (root / "cifar" / "data_batch_3").unlink()
    if name == "missing_data_in_the_space":
        write_fake_cifar(root / "cifar")
    if name == "image_folder_class_count":
        write_fake_image_folder(root / "images", num_classes=3)
    path = root / f"{NAME}.yaml"
    if name == "spec_is_a_folder":
        path.mkdir()
    elif name == "spec_not_utf8":
        path.write_bytes("name: caf\u00e9\n".encode("latin-1"))
    else:
        path.write_text(case.text.replace("{root}", str(root)))
    fill = {"free_port": str(free_port()), "not_ray": str(not_ray), "root": str(root)}
    return path, [arg.format(**fill) for arg in case.args]


def check_refused(output: str, exit_code: int, expected: tuple[str, ...]) -> None:
    assert exit_code == 2, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert output.count("error:") == 1, output
    message = output[output.index("error:") :]
    assert "\n" not in message.strip(), f"not one paragraph: {message!r}"
    for part in expected:
        assert part in message, f"{part!r} not in {message!r}"


def check_nothing_started(root: Path, ray_tmp: Path) -> None:
    import ray

    assert not ray.is_initialized(), "a Ray session was started"
    assert not ray_tmp.exists(), "a Ray session wrote its temp folder"
    study_dir = root / "studies" / NAME
    assert not study_dir.exists(), "a study folder was created"
    assert not (root / "mlruns").exists()
    assert not (root / HACKED).exists(), "the YAML file ran a command"


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The test's folder as working directory; a RAY_TMPDIR that Ray must never create."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path / "ray-tmp"))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    return tmp_path


def invoke(args: list[str]) -> tuple[str, int]:
    result = CliRunner().invoke(app, args)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a crash, not a refusal: show its traceback
    return result.output, result.exit_code


@pytest.mark.parametrize("name", list(STUDY_CASES))
def test_study_refuses(name: str, in_tmp: Path, not_ray_port: int) -> None:
    case = STUDY_CASES[name]
    path, args = prepare(name, case, in_tmp, not_ray_port)
    output, exit_code = invoke(["study", str(path), *args])
    check_refused(output, exit_code, case.expected)
    check_nothing_started(in_tmp, in_tmp / "ray-tmp")


@pytest.mark.parametrize("name", list(TRAIN_CASES))
def test_train_refuses(name: str, in_tmp: Path, not_ray_port: int) -> None:
    case = TRAIN_CASES[name]
    path, args = prepare(name, case, in_tmp, not_ray_port)
    output, exit_code = invoke(
        ["train", "--config", str(path), "--out", str(in_tmp / "out"), *args]
    )
    check_refused(output, exit_code, case.expected)
    assert not (in_tmp / "out").exists(), "nothing is written for a refused config"
    assert not (in_tmp / HACKED).exists()


@pytest.mark.parametrize("name", ["more_gpus_than_the_machine", "ray_address_not_answering"])
def test_refused_study_sends_nothing_to_the_tracking_server(
    name: str, mlflow_server: Any, in_tmp: Path, not_ray_port: int
) -> None:
    """Checks that need Ray come after the tracking URI check: still, no experiment is made."""
    case = STUDY_CASES[name]
    path, args = prepare(name, case, in_tmp, not_ray_port)
    output, exit_code = invoke(["study", str(path), "--tracking-uri", mlflow_server.uri, *args])
    check_refused(output, exit_code, case.expected)
    check_nothing_started(in_tmp, in_tmp / "ray-tmp")
    assert MlflowClient(mlflow_server.uri).get_experiment_by_name(NAME) is None


def test_resume_of_an_unknown_study_is_refused(in_tmp: Path) -> None:
    output, exit_code = invoke(["resume", "nowhere"])
    check_refused(output, exit_code, ("NAME_OR_PATH", "no study found", "study.json"))


@pytest.mark.parametrize("command", ["study", "train"])
def test_executable_refuses_python_tags(command: str, in_tmp: Path) -> None:
    """The real `hcl-study` process: a YAML object tag is refused, its command never runs."""
    path = in_tmp / "attack.yaml"
    path.write_text(TAG_ATTACK)
    args = (
        [command, str(path)]
        if command == "study"
        else [command, "--config", str(path), "--out", "out"]
    )
    completed = run_cli(args, in_tmp, cli_env(), timeout=300)
    check_refused(
        completed.stdout + completed.stderr,
        completed.returncode,
        ("Python object tags are refused",),
    )
    assert not (in_tmp / HACKED).exists()
    assert not (in_tmp / "out").exists() and not (in_tmp / "studies").exists()


def test_tracking_failure_after_the_checks_is_one_paragraph_with_exit_1(
    in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLflow failing mid-way (an outage past the retries) is not bad input: exit 1, but
    still one paragraph instead of a traceback."""
    import analysis.report
    from hcl_study.errors import TrackingError

    def outage(*args: object, **kwargs: object) -> None:
        raise TrackingError("Could not read metrics within 120 s (tracking server unreachable?)")

    monkeypatch.setattr(analysis.report, "write_report", outage)
    output, exit_code = invoke(["analyze", "some-study", "--tracking-uri", "sqlite:///x.db"])
    assert exit_code == 1 and "Traceback" not in output
    assert output.strip() == (
        "tracking error: Could not read metrics within 120 s (tracking server unreachable?)"
    )


def mlflow_study_of_another_spec(root: Path, *, deleted: bool) -> str:
    """The study NAME in an MLflow store under `root` as an earlier start left it: its
    parent run logged 10 epochs (the spec to refuse has 3); its experiment deleted when
    `deleted`. Returns the store's URI."""
    store = root / "elsewhere"
    uri = f"sqlite:///{store / 'mlflow.db'}"
    study_run = StudyRun.start_or_resume(
        uri, NAME, {"base": {"epochs": 10}}, artifact_location=(store / "artifacts").as_uri()
    )
    study_run.finish("FINISHED")
    if deleted:
        MlflowClient(uri).delete_experiment(study_run.experiment_id)
    return uri


@pytest.mark.parametrize(
    ("deleted", "expected"),
    [
        (True, ("The MLflow experiment 'bad' was deleted", "mlflow experiments restore")),
        (False, ("already exists in MLflow with a different spec (base.epochs changed)",)),
    ],
)
def test_study_that_mlflow_would_refuse_is_refused_before_anything_starts(
    deleted: bool, expected: tuple[str, ...], in_tmp: Path
) -> None:
    uri = mlflow_study_of_another_spec(in_tmp, deleted=deleted)
    path = in_tmp / f"{NAME}.yaml"
    path.write_text(spec_text())

    output, exit_code = invoke(["study", str(path), "--tracking-uri", uri])

    check_refused(output, exit_code, expected)
    check_nothing_started(in_tmp, in_tmp / "ray-tmp")


def test_resume_of_a_study_whose_experiment_was_deleted_starts_no_ray(in_tmp: Path) -> None:
    import ray

    uri = mlflow_study_of_another_spec(in_tmp, deleted=True)
    study_dir = in_tmp / "studies" / NAME
    study_dir.mkdir(parents=True)
    (study_dir / SPEC_FILE).write_text(spec_text())
    StudyLocation(NAME, str(study_dir), str(study_dir / "ray"), uri).save()

    output, exit_code = invoke(["resume", NAME])

    check_refused(output, exit_code, ("The MLflow experiment 'bad' was deleted",))
    assert not ray.is_initialized(), "a Ray session was started"
    assert not (in_tmp / "ray-tmp").exists(), "a Ray session wrote its temp folder"
    assert sorted(path.name for path in study_dir.iterdir()) == [SPEC_FILE, STUDY_FILE]
