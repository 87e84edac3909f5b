"""PostgreSQL for fault tests: a fresh database on the shared server, or a private cluster.

A fresh database (not the conftest's truncated one) matters when the test is about an
*empty* schema: three replicas racing to migrate it. A private cluster (`initdb` into a
temporary folder, its own port) matters when the test stops the server: stopping the
machine's shared PostgreSQL would break every other test running at the same moment.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

PG_BIN = Path(os.environ.get("ESCALATOR_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_SERVER = os.environ.get("ESCALATOR_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")


@contextmanager
def fresh_database(server_url: str = PG_SERVER, prefix: str = "escalator_fault") -> Iterator[str]:
    """An empty database (no schema at all) on the shared server, dropped afterwards."""
    admin_url = make_url(server_url).set(database="postgres")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                {"n": name},
            )
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


def _as_postgres(argv: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root; under root, run its tools as the `postgres` user."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *argv]
    return argv


class PrivatePostgres:
    """A throw-away PostgreSQL cluster on 127.0.0.1:`port`, which a test may stop and start.

    Trust authentication on loopback only; the data directory lives in a temporary folder
    owned by the server's user and is deleted by `destroy()`.
    """

    def __init__(self, port: int):
        self.port = port
        self.root = Path(tempfile.mkdtemp(prefix="escalator-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(self.data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
            ]
        )

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, argv: list[str]) -> None:
        # cwd: the server's user may not be allowed into the caller's working directory.
        done = subprocess.run(
            _as_postgres(argv), capture_output=True, text=True, timeout=120, cwd=self.root
        )
        if done.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed ({done.returncode}): {done.stderr}{done.stdout}")

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} "
            "-c fsync=off -c max_connections=100"
        )
        self._run(
            [
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.log),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            ]
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; `immediate` is a crash (no checkpoint), `fast` a clean shutdown
        that still cuts every client connection, as a failover does."""
        self._run(
            [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop"]
        )

    def running(self) -> bool:
        done = subprocess.run(
            _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "status"]),
            capture_output=True,
            cwd=self.root,
        )
        return done.returncode == 0

    def destroy(self) -> None:
        if self.data.exists() and self.running():
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def pg_activity(database_url: str) -> str:
    """Who is doing what on this database, and who waits on whom: for a hang's report."""
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        return ""
    engine = create_engine(url.set(database="postgres"))
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT pid, state, wait_event_type, wait_event, pg_blocking_pids(pid), "
                    "now() - xact_start, left(query, 160) FROM pg_stat_activity "
                    "WHERE datname = :n ORDER BY xact_start"
                ),
                {"n": url.database},
            ).all()
    except Exception as exc:  # diagnostics must never hide the real failure
        return f"(pg_stat_activity unavailable: {exc})"
    finally:
        engine.dispose()
    return "pg_stat_activity:\n" + "\n".join(str(tuple(r)) for r in rows)
