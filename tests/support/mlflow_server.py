"""A real `mlflow server` subprocess on 127.0.0.1 for tests, with pytest fixtures.

Each server keeps its SQLite store and artifact folder under its own root folder, so it
can be stopped and started again on the same port and store (to mimic an outage).
Optional basic-auth mode (`--app-name basic-auth`) writes its own auth config and database.

Fixtures:
    mlflow_server: one shared plain server per test session (use it when the test does not
        stop the server); its `uri` is the tracking URI.
    mlflow_server_factory: a function-scoped `make(auth=False, backend_store_uri=None) ->
        MlflowServer` (a SQLite store in its root unless a store URI is given); every server
        it made is stopped at the end of the test.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

STARTUP_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 20.0
ADMIN_USERNAME = "admin"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class MlflowServer:
    """One `mlflow server` process with a SQLite store and a local artifact folder.

    Args:
        root: Folder holding the store, artifacts, auth files and the server log.
        port: Port to listen on (127.0.0.1 only); a free one when omitted.
        auth: Start the basic-auth app with an admin user (`ADMIN_USERNAME`, `admin_password`).
        backend_store_uri: Store to use instead of `root/mlflow.db` (e.g. a PostgreSQL URI).
    """

    def __init__(
        self,
        root: Path,
        port: int | None = None,
        auth: bool = False,
        backend_store_uri: str | None = None,
    ) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.auth = auth
        self.admin_password = secrets.token_urlsafe(24)
        self.backend_store_uri = backend_store_uri or f"sqlite:///{self.root / 'mlflow.db'}"
        self.artifacts_dir = self.root / "artifacts"
        self.log_path = self.root / "server.log"
        self.startup_seconds: float | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        """The tracking URI clients use."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._process is not None and self._process.poll() is None

    def _command(self) -> list[str]:
        command = [
            str(Path(sys.executable).with_name("mlflow")),
            "server",
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--workers", "1",
            "--backend-store-uri", self.backend_store_uri,
            "--artifacts-destination", str(self.artifacts_dir),
        ]  # fmt: skip
        if self.auth:
            command += ["--app-name", "basic-auth"]
        return command

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            MLFLOW_DISABLE_TELEMETRY="true",
            MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
        )
        for credential in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
            env.pop(credential, None)
        if self.auth:
            config_path = self.root / "basic_auth.ini"
            config_path.write_text(
                "[mlflow]\n"
                "default_permission = READ\n"
                f"database_uri = sqlite:///{self.root / 'basic_auth.db'}\n"
                f"admin_username = {ADMIN_USERNAME}\n"
                f"admin_password = {self.admin_password}\n"
                "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n",
                encoding="utf-8",
            )
            env["MLFLOW_AUTH_CONFIG_PATH"] = str(config_path)
            env["MLFLOW_FLASK_SERVER_SECRET_KEY"] = secrets.token_hex(16)
        return env

    def start(self) -> None:
        """Start the server and wait until `/health` answers.

        Raises:
            RuntimeError: The process exited or did not become healthy in time; the message
                carries the tail of the server log.
        """
        if self.running:
            return
        began = time.monotonic()
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                self._command(),
                env=self._environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        while time.monotonic() - began < STARTUP_TIMEOUT_S:
            if self._process.poll() is not None:
                raise RuntimeError(f"mlflow server exited early:\n{self._log_tail()}")
            if self._healthy():
                self.startup_seconds = time.monotonic() - began
                return
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(
            f"mlflow server not healthy after {STARTUP_TIMEOUT_S} s:\n{self._log_tail()}"
        )

    def stop(self) -> None:
        """Stop the server and every process it started (its own process group)."""
        if self._process is None:
            return
        process, self._process = self._process, None
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        try:  # workers outlive a leader that exited first
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as response:
                return response.status == 200
        except OSError:  # URLError and connection resets are OSErrors
            return False

    def _log_tail(self, characters: int = 4000) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-characters:]


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """A plain server shared by the whole session; tests must not stop it."""
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-server"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def mlflow_server_factory(tmp_path: Path) -> Iterator[Callable[..., MlflowServer]]:
    """`make(auth=False, backend_store_uri=None)` starts a server; all stop after the test."""
    servers: list[MlflowServer] = []

    def make(auth: bool = False, backend_store_uri: str | None = None) -> MlflowServer:
        root = tmp_path / f"mlflow-server-{len(servers)}"
        server = MlflowServer(root, auth=auth, backend_store_uri=backend_store_uri)
        servers.append(server)
        server.start()
        return server

    yield make
    for server in servers:
        server.stop()
