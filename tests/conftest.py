"""Shared fixtures: real databases (a SQLite file and the machine's PostgreSQL), free ports.

Every test run creates its own PostgreSQL database (and drops it at the end), so runs on
the same server never see each other's rows. `ESCALATOR_TEST_PG` names the server
(default: postgresql+psycopg://postgres@127.0.0.1:5432). PostgreSQL tests fail rather
than skip when the server is missing: CI must run them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy import text

from escalator.store.db import make_engine, upgrade
from tests.support.helpers import ROOT
from tests.support.pg import PG_SERVER, fresh_database


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """A fresh database on the PostgreSQL server for this test run; dropped afterwards."""
    with ExitStack() as stack:
        try:
            url = stack.enter_context(fresh_database(prefix="escalator_test"))
        except Exception as exc:  # pragma: no cover - environment problem, reported loudly
            pytest.fail(f"PostgreSQL at {PG_SERVER} is required (see .ci/run): {exc}")
        yield url


def _reset_pg(url: str) -> None:
    """Empty every table between tests (cheaper than a database per test)."""
    engine = make_engine(url)
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(
            text(
                "TRUNCATE alerts, timeline, outbox, overrides, policies, trigger_episodes, "
                "heartbeats, maintenance_windows, change_events, provider_callbacks, "
                "delivery_workers CASCADE"
            )
        )
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test using this runs twice: on a fresh SQLite file and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'escalator.db'}"
    url = request.getfixturevalue("pg_server_url")
    _reset_pg(url)
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'escalator.db'}"


@pytest.fixture
def pg_url(pg_server_url: str) -> str:
    _reset_pg(pg_server_url)
    return pg_server_url


@pytest.fixture
def shipped_config_path() -> Path:
    return ROOT / "config" / "escalator.yaml"
