"""Connecting to the store and keeping its schema current.

SQLite is the embedded default: WAL with `synchronous=FULL`, so an alert answered 2xx
survives a power cut (the sender's own bookkeeping uses a second, non-durable engine),
and `BEGIN IMMEDIATE` for every transaction, so a CLI ack and the daemon's tick queue
for the write lock instead of failing with "database is locked" when a read transaction
tries to upgrade. PostgreSQL is for replicas.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from escalator.store.deadline import Deadlines, unbounded
from escalator.store.deadline import install as install_deadlines

if TYPE_CHECKING:  # Alembic is imported where it is used: the CLI's reads never need it
    from alembic.config import Config as AlembicConfig

# Arbitrary constant: the PostgreSQL advisory lock that serialises concurrent migrations.
_MIGRATION_LOCK = 0x65736361

# The store cannot serve now: the driver failed (connection refused, cut, timed out) or no
# pooled connection came free within `pool_timeout`. Every way in maps these to 503 (or
# the CLI's "store unavailable"), never to a 500: the caller should retry.
STORE_ERRORS: tuple[type[Exception], ...] = (DBAPIError, PoolTimeout)


def default_database_url() -> str:
    """`ESCALATOR_DATABASE_URL`, else a SQLite file in the user's state directory.

    Not the current directory: the on-call engineer's `escalator ack` must find the same
    database as the daemon wherever the shell happens to be.
    """
    url = os.environ.get("ESCALATOR_DATABASE_URL")
    if url:
        return url
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return f"sqlite:///{state / 'escalator' / 'escalator.db'}"


def _private_file(path: Path) -> None:
    """Create the SQLite file's missing folders 0700 and the file itself 0600 (SQLite
    gives its -wal and -shm files the database's mode): alerts, timelines and console
    token hashes are nobody else's business on a shared machine. Existing files and
    folders keep the mode their owner gave them."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def make_engine(
    url: str, durable: bool = True, deadlines: Deadlines | None = None, **kwargs: Any
) -> Engine:
    """An engine for `url`. `durable=False` is for writes that may be lost in a power cut
    or server crash without losing anything that matters: the sender's delivery records
    (a lost "sent" mark means the page is sent again: at least once either way). It skips
    the per-commit fsync, which on SQLite is most of a commit's cost. On PostgreSQL the
    `deadlines` (default: the environment's, see store/deadline.py) bound every wait."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            _private_file(Path(parsed.database).expanduser())
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # let the "begin" hook below issue BEGIN
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    # Every wait on the server is bounded (store/deadline.py): a partition answers 503 in
    # seconds instead of hanging requests until the pool and the thread pool run dry.
    limits = deadlines or Deadlines.from_env()
    options = limits.server_options() + ("" if durable else " -c synchronous_commit=off")
    given = parsed.query.get("options")  # the URL's own `options` (search_path, ...) stay
    if given:
        options = f"{options} {given if isinstance(given, str) else ' '.join(given)}"
    # A parameter the URL sets itself (`?connect_timeout=10`) is the operator's: it wins.
    socket_params = {k: v for k, v in limits.libpq_params().items() if k not in parsed.query}
    connect_args = {**socket_params, "options": options, **kwargs.pop("connect_args", {})}
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 10)
    kwargs.setdefault("pool_timeout", limits.pool)
    engine = create_engine(url, connect_args=connect_args, **kwargs)
    install_deadlines(engine, limits)  # the checkout ping (instead of pool_pre_ping) and more
    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of truth: everything inside commits together or not at all."""
    with factory() as session, session.begin():
        yield session


def _alembic_config() -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(files("escalator.migrations")))
    return cfg


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine) -> None:
    """Bring the schema to head; safe when several replicas start at once on PostgreSQL."""
    from alembic import command

    cfg = _alembic_config()
    with unbounded(), engine.begin() as conn:
        if is_postgres(engine):
            # A migration may take long, and so may another replica's that we wait for.
            conn.execute(text("SET LOCAL statement_timeout = 0"))
            conn.execute(text("SET LOCAL lock_timeout = 0"))
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


class SchemaNotReady(RuntimeError):
    pass


def require_current_schema(engine: Engine) -> None:
    current, head = current_revision(engine), head_revision()
    if current != head:
        raise SchemaNotReady(
            f"database schema is at {current or 'nothing'}, expected {head}: "
            "run `escalator db upgrade` (or start `escalator serve`, which upgrades)"
        )
