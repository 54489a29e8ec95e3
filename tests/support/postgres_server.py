"""A private PostgreSQL cluster on 127.0.0.1 for tests, with a session fixture.

`initdb` refuses to run as root, so as root the cluster is made and run as the `postgres`
user (`runuser`); as any other user, as that user. The cluster lives in its own folder under
/tmp, listens on a free TCP port only (no Unix socket), trusts local connections and runs
with fsync off (test data only). Databases `mlflow` and `optuna` are created: MLflow and
Optuna must not share one (both keep an `alembic_version` table).

Fixture:
    postgres_server: one cluster per test session; skipped, with the reason, when the
        PostgreSQL server binaries are not installed (.ci/run installs them).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow_server import free_port

BIN_GLOB = "/usr/lib/postgresql/*/bin"
SERVICE_USER = "postgres"
DATABASES = ("mlflow", "optuna")
STARTUP_TIMEOUT_S = 60


def find_binaries() -> Path | None:
    """The newest `/usr/lib/postgresql/<version>/bin` holding initdb and pg_ctl, if any."""
    candidates = [Path(path) for path in glob.glob(BIN_GLOB)]
    candidates = [
        path for path in candidates if (path / "initdb").exists() and (path / "pg_ctl").exists()
    ]
    if not candidates:
        return None
    return max(
        candidates, key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0
    )


class PostgresServer:
    """One private PostgreSQL cluster (superuser `postgres`, trust authentication).

    Args:
        binaries: Folder holding initdb, pg_ctl and postgres.
        port: TCP port on 127.0.0.1; a free one when omitted.
    """

    def __init__(self, binaries: Path, port: int | None = None) -> None:
        self.binaries = binaries
        self.port = port or free_port()
        # Short path under /tmp: the postgres user must reach it (pytest's tmp dirs are 0700).
        self.root = Path(tempfile.mkdtemp(prefix="hcl-pg-", dir="/tmp"))
        self.data_dir = self.root / "data"
        self.log_path = self.root / "server.log"
        self.startup_seconds: float | None = None
        self._as_service_user = os.geteuid() == 0
        if self._as_service_user:
            shutil.chown(self.root, user=SERVICE_USER, group=None)

    def _run(
        self, *command: str, timeout: float = STARTUP_TIMEOUT_S
    ) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", SERVICE_USER, "--"] if self._as_service_user else []
        return subprocess.run(
            [*prefix, *command],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=self.root,
        )

    def _check(self, completed: subprocess.CompletedProcess[str], what: str) -> None:
        if completed.returncode != 0:
            log = (
                self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""
            )
            raise RuntimeError(
                f"{what} failed ({completed.returncode}):\n"
                f"{completed.stdout}\n{completed.stderr}\n{log}"
            )

    def uri(self, database: str = "mlflow") -> str:
        """SQLAlchemy URI (psycopg2 driver: plain postgresql:// would pick the missing psycopg3)."""
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        """initdb (first time), start the server, create the `DATABASES`."""
        if not (self.data_dir / "PG_VERSION").exists():
            initdb = self._run(
                str(self.binaries / "initdb"), "-D", str(self.data_dir), "-U", "postgres",
                "-A", "trust", "-E", "UTF8", "--no-sync",
            )  # fmt: skip
            self._check(initdb, "initdb")
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        began = time.monotonic()
        start = self._run(
            str(self.binaries / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_path),
            "-o", options, "-w", "-t", str(STARTUP_TIMEOUT_S), "start",
        )  # fmt: skip
        self._check(start, "pg_ctl start")
        self.startup_seconds = time.monotonic() - began
        self._create_databases()

    def _create_databases(self) -> None:
        import psycopg2

        connection = psycopg2.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="postgres"
        )
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                for name in DATABASES:
                    cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                    if cursor.fetchone() is None:
                        cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            connection.close()

    def stop(self) -> None:
        """Stop the server (fast shutdown) and delete its folder."""
        if (self.data_dir / "postmaster.pid").exists():
            self._run(
                str(self.binaries / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"
            )
        shutil.rmtree(self.root, ignore_errors=True)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A private PostgreSQL cluster for the session, with databases `mlflow` and `optuna`."""
    binaries = find_binaries()
    if binaries is None:
        pytest.skip(
            f"PostgreSQL server binaries not found ({BIN_GLOB}/initdb); install them with "
            "`apt-get install -y postgresql` (.ci/run does)"
        )
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SERVICE_USER)
        except KeyError:
            pytest.skip(
                f"running as root, and there is no '{SERVICE_USER}' user to run PostgreSQL as"
            )
    server = PostgresServer(binaries)
    try:
        server.start()
        yield server
    finally:
        server.stop()
