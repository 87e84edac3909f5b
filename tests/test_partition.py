"""A network partition between escalator and PostgreSQL: the path goes silent, nothing closes.

Unlike a server that stops (test_db_outage: connections are cut, so every wait ends at
once), a partition, or a failover whose old address stops answering, leaves every
connection open and every read waiting. A TCP proxy in front of the machine's PostgreSQL
plays the network: on command it stops forwarding in both directions and accepts no new
connection, while its kernel keeps acknowledging what arrives (so the TCP timeouts cannot
fire: only escalator's own deadlines end the waits). During the partition the webhook must
answer 503 within 5 s (never hang, never 500), /readyz 503 within 5 s, and /healthz 200 every
time, because Kubernetes restarts a replica whose liveness probe fails. Once healed, a post
succeeds and its alert is stored.
"""

from __future__ import annotations

import os
import secrets
import select
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from escalator.store.db import make_engine
from escalator.store.deadline import WATCHDOG, Deadlines
from escalator.web.app import create_app
from tests.support.payloads import fingerprint, storm_body, storm_config
from tests.support.pg import PG_SERVER, fresh_database
from tests.support.ports import free_port
from tests.support.processes import EscalatorProcess, clean_env, post_until_accepted
from tests.support.rig import Rig
from tests.support.store import read_record

PARTITION_SECONDS = 25  # long enough to exhaust a 10 + 10 pool many times over
BOUND = 5.0  # every answer during the partition, seconds


class SilentProxy:
    """Forwards 127.0.0.1:`port` to `upstream`; `partition()` makes the path silent."""

    def __init__(self, port: int, upstream: tuple[str, int]) -> None:
        self.port, self.upstream = port, upstream
        self._open = threading.Event()
        self._open.set()
        self._running = True
        self._listener = socket.create_server(("127.0.0.1", port))
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def partition(self) -> None:
        self._open.clear()

    def heal(self) -> None:
        self._open.set()

    def stop(self) -> None:
        self._running = False
        self._open.set()
        self._listener.close()

    def _accept(self) -> None:
        while self._running:
            if not self._open.is_set():  # new connections wait in the backlog, unanswered
                time.sleep(0.05)
                continue
            try:
                ready, _, _ = select.select([self._listener], [], [], 0.1)
                if not ready:
                    continue
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()

    def _pump(self, client: socket.socket, server: socket.socket) -> None:
        peer = {client: server, server: client}
        try:
            while self._running:
                if not self._open.is_set():  # silent: whatever arrives stays in the buffers
                    time.sleep(0.05)
                    continue
                ready, _, _ = select.select([client, server], [], [], 0.1)
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    peer[sock].sendall(data)
        except OSError:
            return
        finally:
            client.close()
            server.close()


@pytest.fixture
def proxied_db() -> Iterator[tuple[str, str, SilentProxy]]:
    """(direct URL, URL through the proxy, the proxy) for a fresh database."""
    with fresh_database(PG_SERVER, prefix="escalator_partition") as direct:
        url = make_url(direct)
        proxy = SilentProxy(free_port(), (url.host or "127.0.0.1", url.port or 5432))
        try:
            through = url.set(host="127.0.0.1", port=proxy.port)
            yield direct, through.render_as_string(hide_password=False), proxy
        finally:
            proxy.stop()


def _timed(fn: object) -> tuple[int, float]:
    start = time.monotonic()
    try:
        code = fn()  # type: ignore[operator]
    except httpx.HTTPError:
        code = 0  # no answer at all within the client's 15 s
    return code, time.monotonic() - start


def test_partition_answers_503_fast_and_healthz_stays_200(
    proxied_db: tuple[str, str, SilentProxy], tmp_path: Path
) -> None:
    direct, through, proxy = proxied_db
    token = secrets.token_urlsafe(16)
    env_name = "ESCALATOR_PARTITION_TEST_TOKEN"
    config = storm_config(tmp_path / "escalator.yaml", (0, 2, 4), token_env=env_name)
    daemon = EscalatorProcess(
        tmp_path, config, through, free_port(), clean_env(**{env_name: token}),
        name="daemon", log_level="warning",
    )  # fmt: skip
    headers = {"Authorization": f"Bearer {token}"}
    tag = uuid.uuid4().hex[:8]
    client = httpx.Client(timeout=15)
    try:
        daemon.start()
        daemon.wait_ready()
        before = client.post(
            f"{daemon.url}/webhooks/alertmanager", json=storm_body(tag, range(3)), headers=headers
        )
        assert before.status_code == 200, before.text
        time.sleep(1)  # the engine and sender have pooled connections in use now

        proxy.partition()
        until = time.monotonic() + PARTITION_SECONDS
        posts: list[tuple[int, float, str]] = []
        probes: dict[str, list[tuple[int, float]]] = {"/healthz": [], "/readyz": []}

        def post(i: int) -> None:
            body = storm_body(tag, [100 + i])
            while time.monotonic() < until:
                start = time.monotonic()
                try:
                    r = client.post(
                        f"{daemon.url}/webhooks/alertmanager", json=body, headers=headers
                    )
                    posts.append((r.status_code, time.monotonic() - start, r.text[:200]))
                except httpx.HTTPError as exc:
                    posts.append((0, time.monotonic() - start, repr(exc)))
                time.sleep(0.2)

        def probe(path: str) -> None:
            while time.monotonic() < until:
                probes[path].append(_timed(lambda: client.get(f"{daemon.url}{path}").status_code))
                time.sleep(0.3)

        # Twelve posters at once: more than the pool holds, as a busy Alertmanager would.
        with ThreadPoolExecutor(14) as pool:
            jobs = [pool.submit(post, i) for i in range(12)]
            jobs += [pool.submit(probe, p) for p in probes]
            for job in jobs:
                job.result()

        assert daemon.alive(), daemon.stderr()
        slow = [p for p in posts if p[1] > BOUND]
        wrong = [p for p in posts if p[0] != 503]
        assert posts and not wrong and not slow, (wrong[:5], slow[:5], daemon.stderr())
        assert all("store unavailable" in text for _c, _t, text in posts), posts[:3]
        health = probes["/healthz"]
        assert len(health) > 20 and all(c == 200 and t < 2.0 for c, t in health), health
        ready = probes["/readyz"]
        assert ready and all(c == 503 and t < BOUND for c, t in ready), ready

        proxy.heal()
        daemon.wait_ready(timeout=60)
        own = storm_body(tag, [999])
        post_until_accepted(client, [daemon.url], own, token=token, timeout=60)
        stored = read_record(direct, 2).alerts
        assert stored.get(fingerprint(tag, 999)) == 1, stored
        assert all(stored.get(fingerprint(tag, i)) == 1 for i in range(3)), stored
        slowest_post = max(t for _c, t, _x in posts)
        print(
            f"partition {PARTITION_SECONDS}s: {len(posts)} posts, all 503, slowest "
            f"{slowest_post:.2f}s; readyz slowest {max(t for _c, t in ready):.2f}s; "
            f"healthz {len(health)} probes, slowest {max(t for _c, t in health):.2f}s"
        )
    finally:
        client.close()
        daemon.stop()


def test_deadlines_come_from_the_environment() -> None:
    assert Deadlines.from_env({}) == Deadlines()
    custom = Deadlines.from_env({"ESCALATOR_DB_STATEMENT": "30", "ESCALATOR_DB_CONNECT": "5"})
    assert (custom.statement, custom.connect, custom.lock) == (30.0, 5.0, Deadlines().lock)
    assert "-c statement_timeout=30000" in custom.server_options()
    assert custom.libpq_params()["connect_timeout"] == 5
    for bad in ("soon", "0", "-1"):
        with pytest.raises(ValueError, match="ESCALATOR_DB_PING"):
            Deadlines.from_env({"ESCALATOR_DB_PING": bad})


def test_connections_carry_the_deadlines(pg_url: str) -> None:
    limits = Deadlines(statement=1, lock=0.5)
    engine = make_engine(pg_url, deadlines=limits)
    try:
        with engine.connect() as conn:
            shown = {
                name: conn.execute(text(f"SHOW {name}")).scalar()
                for name in ("statement_timeout", "lock_timeout", "tcp_user_timeout")
            }
            assert shown == {"statement_timeout": "1s", "lock_timeout": "500ms",
                             "tcp_user_timeout": "10000"}  # fmt: skip
            fd = conn.connection.dbapi_connection.pgconn.socket  # type: ignore[union-attr]
            with socket.socket(fileno=os.dup(fd)) as sock:  # the client's end, in the kernel
                assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 10_000
                assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
                assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 10
            start = time.monotonic()
            with pytest.raises(OperationalError, match="statement timeout"):
                conn.execute(text("SELECT pg_sleep(5)"))
            assert time.monotonic() - start < 3
            # The failed statement is disarmed: the watchdog will not shut this connection.
            assert id(conn.connection.dbapi_connection) not in WATCHDOG._armed
    finally:
        engine.dispose()


def test_watchdog_ends_a_statement_the_network_swallowed(
    proxied_db: tuple[str, str, SilentProxy],
) -> None:
    _direct, through, proxy = proxied_db
    limits = Deadlines(statement=1, grace=1, ping=0.5, connect=2)
    engine = make_engine(through, deadlines=limits)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1
            proxy.partition()
            start = time.monotonic()
            with pytest.raises(OperationalError):
                conn.execute(text("SELECT 2"))  # sent, acknowledged, never answered
            assert time.monotonic() - start < 4
        start = time.monotonic()  # a pooled connection: its ping is cut, then connect fails
        with pytest.raises(OperationalError), engine.connect() as conn:
            conn.execute(text("SELECT 3"))
        assert time.monotonic() - start < 5
        proxy.heal()
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 4")).scalar() == 4
    finally:
        proxy.heal()
        engine.dispose()


def test_an_exhausted_pool_is_a_503_not_a_500(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every pooled connection busy (as when a partition holds them): the webhook, the API
    and /readyz answer 503 once `pool` has passed; /healthz answers 200 regardless."""
    monkeypatch.setenv("ESCALATOR_DB_POOL", "0.5")
    monkeypatch.setenv("ESCALATOR_WEBHOOK_TOKEN", "hook-secret-0123456789")
    monkeypatch.setenv("ESCALATOR_API_TOKEN", "api-secret-9876543210")
    rig = Rig(pg_url)
    held: list[Connection] = []
    try:
        with TestClient(create_app(rig.daemon, run_engine=False)) as client:
            pool = rig.daemon.db.pool
            limit = pool.size() + pool._max_overflow  # type: ignore[attr-defined]
            held = [rig.daemon.db.connect() for _ in range(limit)]
            hook = {"Authorization": "Bearer hook-secret-0123456789"}
            posted = client.post(
                "/webhooks/alertmanager", json=storm_body("pool", range(1)), headers=hook
            )
            assert posted.status_code == 503 and "store unavailable" in posted.text
            api = {"Authorization": "Bearer api-secret-9876543210"}
            listed = client.get("/api/v1/alerts", headers=api)
            assert listed.status_code == 503, listed.text  # through the app's handler
            ready = client.get("/readyz")
            assert ready.status_code == 503 and "not ready" in ready.text
            assert client.get("/healthz").status_code == 200
            for conn in held:
                conn.close()
            held = []
            assert client.get("/readyz").status_code == 200
    finally:
        for conn in held:
            conn.close()
        rig.close()
