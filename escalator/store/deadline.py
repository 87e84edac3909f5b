"""How long escalator waits for PostgreSQL, in one place, and what enforces it.

A network partition does not close connections: the old address of a failed-over server
simply stops answering, and a blocking read waits forever. Left alone, every webhook post
hangs on a pooled connection, the pool runs dry (`QueuePool limit ... reached` after its
30 s), the worker threads fill up and even `/healthz` stops answering, so Kubernetes
restarts replicas that had nothing wrong with them. So every wait is bounded:

- `connect`   libpq `connect_timeout`: a new connection (TCP and start-up) gives up.
- `tcp_user_timeout`, `keepalive_*`   on the socket (libpq's parameters, and the server's
              own for its end): the kernel drops a connection whose packets go
              unacknowledged, or that stays silent, so a real partition ends in an error.
- `statement`, `lock`   the server's `statement_timeout` and `lock_timeout`: a slow query
              or a lock wait ends with an error instead of holding a request.
- `idle_in_transaction`   the server ends a session whose client vanished mid-transaction,
              so its row locks do not outlive the partition.
- `pool`      how long a request waits for a pooled connection (`pool_timeout`).
- `ping`, and `statement + grace`   enforced here, by the `Watchdog`: the TCP timeouts
              cannot fire when something on the path (a proxy, a load balancer, a
              conntrack-ing firewall) keeps acknowledging packets it will never deliver,
              so a watchdog thread shuts the socket of a connection whose ping or
              statement is overdue. The waiting thread then gets an ordinary
              `OperationalError` (a 503), and SQLAlchemy discards the connection.

Each is configurable by environment variable, `ESCALATOR_DB_<NAME>` in seconds (for example
`ESCALATOR_DB_STATEMENT=30`), because they belong to the deployment's network, not to
the paging configuration. Migrations run without `statement`/`lock` (see `unbounded`).
"""

from __future__ import annotations

import contextvars
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.exc import InvalidatePoolError

log = logging.getLogger("escalator.store")


@dataclass(frozen=True)
class Deadlines:
    """Seconds. The defaults answer a webhook 503 within about 4 s of a partition (ping,
    then one reconnect) while leaving a loaded server room for honest slow statements."""

    connect: float = 2.0  # libpq rounds to whole seconds; 2 is its smallest sane value
    ping: float = 1.5  # a pooled connection's liveness check at checkout
    pool: float = 3.0  # waiting for a free pooled connection
    statement: float = 15.0  # server-side statement_timeout
    lock: float = 10.0  # server-side lock_timeout (below statement: the clearer error)
    grace: float = 2.0  # client side: statement + grace, then the socket is shut
    idle_in_transaction: float = 60.0  # server-side idle_in_transaction_session_timeout
    tcp_user_timeout: float = 10.0  # unacknowledged data, then the kernel drops the socket
    keepalive_idle: float = 10.0
    keepalive_interval: float = 3.0
    keepalive_count: float = 3.0
    ready: float = 2.5  # /readyz 503 by then: inside a 3 s readiness probe's timeout

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Deadlines:
        env = os.environ if environ is None else environ
        changes: dict[str, float] = {}
        for f in fields(cls):
            raw = env.get(f"ESCALATOR_DB_{f.name.upper()}")
            if raw:
                try:
                    value = float(raw)
                except ValueError as exc:
                    raise ValueError(f"ESCALATOR_DB_{f.name.upper()}={raw!r}: not seconds") from exc
                if value <= 0:
                    raise ValueError(f"ESCALATOR_DB_{f.name.upper()}={raw!r}: must be > 0")
                changes[f.name] = value
        return replace(cls(), **changes)

    def libpq_params(self) -> dict[str, Any]:
        """The client's socket and connection parameters (psycopg passes them to libpq)."""
        return {
            "connect_timeout": max(2, round(self.connect)),
            "keepalives": 1,
            "keepalives_idle": max(1, round(self.keepalive_idle)),
            "keepalives_interval": max(1, round(self.keepalive_interval)),
            "keepalives_count": max(1, round(self.keepalive_count)),
            "tcp_user_timeout": int(self.tcp_user_timeout * 1000),
        }

    def server_options(self) -> str:
        """`-c` settings for the session: the server's timeouts and its end of the socket."""
        ms = {
            "statement_timeout": self.statement,
            "lock_timeout": self.lock,
            "idle_in_transaction_session_timeout": self.idle_in_transaction,
            "tcp_user_timeout": self.tcp_user_timeout,
        }
        seconds = {
            "tcp_keepalives_idle": self.keepalive_idle,
            "tcp_keepalives_interval": self.keepalive_interval,
            "tcp_keepalives_count": self.keepalive_count,
        }
        parts = [f"-c {k}={int(v * 1000)}" for k, v in ms.items()]
        parts += [f"-c {k}={max(1, round(v))}" for k, v in seconds.items()]
        return " ".join(parts)


# Set by `unbounded()`: the statements of this context are not watched (migrations).
_UNBOUNDED: contextvars.ContextVar[bool] = contextvars.ContextVar("unbounded", default=False)


@contextmanager
def unbounded() -> Iterator[None]:
    """Statements inside run without the client-side deadline (the caller also lifts the
    server's with SET LOCAL): a migration may rightly take minutes, and a replica waiting
    for another's migration lock must not give up."""
    token = _UNBOUNDED.set(True)
    try:
        yield
    finally:
        _UNBOUNDED.reset(token)


def _fileno(dbapi_conn: Any) -> int | None:
    pgconn = getattr(dbapi_conn, "pgconn", None)  # psycopg 3
    try:
        return int(pgconn.socket) if pgconn is not None else None
    except Exception:  # closed or broken: nothing to shut
        return None


class Watchdog:
    """Shuts the socket of a connection whose current wait is past its deadline.

    `arm` before a blocking call, `disarm` after it. Killing happens under the same lock
    that `disarm` takes, so a socket is only shut while its connection is still armed,
    i.e. still open and still owned by the waiting thread (never a reused descriptor).
    """

    def __init__(self, poll: float = 0.1) -> None:
        self._armed: dict[int, tuple[float, Any, str]] = {}
        self._lock = threading.Lock()
        self._poll = poll
        self._thread: threading.Thread | None = None
        self.kills = 0  # how many sockets were shut (for tests and logs)

    def arm(self, dbapi_conn: Any, seconds: float, what: str) -> None:
        with self._lock:
            self._armed[id(dbapi_conn)] = (time.monotonic() + seconds, dbapi_conn, what)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="escalator-db-watchdog", daemon=True
                )
                self._thread.start()

    def disarm(self, dbapi_conn: Any) -> None:
        with self._lock:
            self._armed.pop(id(dbapi_conn), None)

    def _run(self) -> None:
        while True:
            time.sleep(self._poll)
            now = time.monotonic()
            with self._lock:
                overdue = [k for k, (due, _c, _w) in self._armed.items() if due <= now]
                for key in overdue:
                    _due, conn, what = self._armed.pop(key)
                    self._shut(conn, what)

    def _shut(self, dbapi_conn: Any, what: str) -> None:
        fd = _fileno(dbapi_conn)
        if fd is None or fd < 0:
            return
        try:
            # A duplicate descriptor: shutdown() acts on the shared socket, and closing
            # the duplicate leaves libpq's own descriptor for libpq to close.
            with socket.socket(fileno=os.dup(fd)) as sock:
                sock.shutdown(socket.SHUT_RDWR)
            self.kills += 1
            log.error("database connection silent past its deadline (%s): closed it", what)
        except OSError as exc:
            log.warning("could not shut a silent database connection: %s", exc)


WATCHDOG = Watchdog()


def _watched(call: Callable[[Any], None], watchdog: Watchdog, seconds: float) -> Any:
    def run(dbapi_conn: Any) -> None:
        if _UNBOUNDED.get():
            return call(dbapi_conn)
        watchdog.arm(dbapi_conn, seconds, call.__name__)
        try:
            call(dbapi_conn)
        finally:
            watchdog.disarm(dbapi_conn)

    return run


def install(engine: Engine, deadlines: Deadlines, watchdog: Watchdog = WATCHDOG) -> None:
    """Ping at checkout and watch every statement, commit and rollback of `engine`.

    Replaces `pool_pre_ping` (whose ping cannot be bounded): a ping that fails or is cut
    raises InvalidatePoolError, so every connection pooled before it is replaced too (a
    partition silences them all) and the checkout makes one new connection, bounded by
    `connect`.
    """
    statement_limit = deadlines.statement + deadlines.grace

    def fairy_conn(conn: Any) -> Any:
        return conn.connection.dbapi_connection

    @event.listens_for(engine, "connect")
    def _fresh(_dbapi_conn: Any, record: Any) -> None:
        record.info["escalator_fresh"] = True

    @event.listens_for(engine, "checkout")
    def _ping(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        if record.info.pop("escalator_fresh", False):
            return  # just connected: it answered a moment ago
        watchdog.arm(dbapi_conn, deadlines.ping, "ping")
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:
            raise InvalidatePoolError(f"pooled connection failed its ping: {exc}") from exc
        finally:
            watchdog.disarm(dbapi_conn)

    @event.listens_for(engine, "before_cursor_execute")
    def _before(conn: Any, *_args: Any) -> None:
        if not _UNBOUNDED.get():
            watchdog.arm(fairy_conn(conn), statement_limit, "statement")

    @event.listens_for(engine, "after_cursor_execute")
    def _after(conn: Any, *_args: Any) -> None:
        watchdog.disarm(fairy_conn(conn))

    @event.listens_for(engine, "handle_error")
    def _error(context: Any) -> None:
        # The statement is over (it failed): a connection left armed would be shut later
        # while it rolls back or sits in the pool.
        try:
            dbapi_conn = context.connection.connection.dbapi_connection
        except Exception:  # no connection, or already invalidated: checkin/close disarm it
            return
        if dbapi_conn is not None:
            watchdog.disarm(dbapi_conn)

    # COMMIT and ROLLBACK (also the pool's rollback on return) are not cursor executions:
    # the dialect's own methods are wrapped, on this engine's dialect instance only.
    dialect = engine.dialect
    for method in ("do_commit", "do_rollback"):
        setattr(dialect, method, _watched(getattr(dialect, method), watchdog, statement_limit))

    for name in ("checkin", "close", "invalidate", "soft_invalidate", "detach"):

        def _done(dbapi_conn: Any, *_args: Any) -> None:
            if dbapi_conn is not None:
                watchdog.disarm(dbapi_conn)

        event.listen(engine, name, _done)
