"""Who owns a page in flight: one heartbeat per process instead of a lease per page.

Each process that sends registers a delivery worker (`host:pid:nonce`) and ONE thread
renews its `heartbeat_at` every `HEARTBEAT_EVERY`, on its own short transactions. An outbox
row being sent carries its worker's id (`leased_by`) and an attempt token (`attempts`, raised
at each claim). Another process may take the row over only when that worker is dead:

- its heartbeat is older than `STALE_AFTER` (a crashed or partitioned replica anywhere), or
- it ran on this host (same hostname and pid namespace) and its pid no longer exists (a
  daemon restarted after SIGKILL takes its own pages back at once, without waiting for the
  heartbeat to age). Replicas in tests share one host, so a live pid is never released by
  hostname alone.

Why not a short per-page lease renewed while the provider is called: every page in flight
then costs a renewal write per interval, and when renewals lag under load (SQLite's single
writer, a busy PostgreSQL) a slow-but-alive send loses its lease and a replica sends it a
second time. A per-process heartbeat is one tiny write per second whatever the number of
pages in flight, and a send that takes a minute is still owned. Recording is fenced on
(id, leased_by, attempts): a worker that was presumed dead and comes back cannot overwrite
the record of whoever took the page over.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from escalator.store.db import transaction
from escalator.store.tables import DeliveryWorkerRow

log = logging.getLogger("escalator.sender")

HEARTBEAT_EVERY = 1.0  # seconds
STALE_AFTER = timedelta(seconds=3)
# Worker rows this old are deleted at start-up; their pages were taken over long ago.
_FORGET_AFTER = timedelta(hours=1)


def wall_now() -> datetime:
    """Heartbeats are about real processes, so they use the wall clock, never the daemon's
    (tests move that one by hours, which must not make live workers look dead)."""
    return datetime.now(UTC)


def host_identity() -> str:
    """This host as far as pids mean anything: the hostname plus the pid namespace, so two
    containers that share a hostname never judge each other's pids."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")  # "pid:[4026531836]"
    except OSError:
        return socket.gethostname()
    return f"{socket.gethostname()}#{namespace.removeprefix('pid:').strip('[]')}"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except OSError:
        return True
    return True


class Workers:
    """This process's delivery worker: registration, heartbeat thread, and who is dead."""

    def __init__(self, factory: sessionmaker[Session]):
        self._factory = factory
        self.hostname = host_identity()
        self.pid = os.getpid()
        self.id = f"{socket.gethostname()}:{self.pid}:{uuid.uuid4().hex[:8]}"
        self._registered = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_beat: float | None = None  # time.monotonic() of the last renewal
        # Since when (time.monotonic()) this worker's own heartbeats have succeeded without
        # a gap. Another worker's heartbeat age only means something once we have watched
        # for STALE_AFTER ourselves: after a store outage every heartbeat is old, and the
        # replica that reconnects first must not take over the pages the others still hold.
        self.healthy_since: float | None = None

    # registration -----------------------------------------------------------------------

    def register(self) -> None:
        """Insert (or refresh) this worker's row and forget long-dead workers."""
        now = wall_now()
        with transaction(self._factory) as session:
            row = session.get(DeliveryWorkerRow, self.id)
            if row is None:
                session.add(
                    DeliveryWorkerRow(
                        id=self.id,
                        hostname=self.hostname,
                        pid=self.pid,
                        started_at=now,
                        heartbeat_at=now,
                    )
                )
            else:
                row.heartbeat_at = now
            if not self._registered:
                session.execute(
                    delete(DeliveryWorkerRow).where(
                        DeliveryWorkerRow.heartbeat_at < now - _FORGET_AFTER
                    )
                )
        self._registered = True
        if self.healthy_since is None:
            self.healthy_since = time.monotonic()

    def beat(self) -> None:
        """Renew the heartbeat; re-register if our row was forgotten."""
        if not self._registered:
            self.register()
            return
        with transaction(self._factory) as session:
            done = session.execute(
                update(DeliveryWorkerRow)
                .where(DeliveryWorkerRow.id == self.id)
                .values(heartbeat_at=wall_now())
            )
        if getattr(done, "rowcount", 1) == 0:
            self._registered = False
            self.register()
        if self.healthy_since is None:
            self.healthy_since = time.monotonic()

    def start(self) -> None:
        self.register()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="delivery-heartbeat", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(HEARTBEAT_EVERY):
            try:
                self.beat()
                self.last_beat = time.monotonic()
            except Exception as exc:  # the store is down: keep trying, the lanes will notice
                self.healthy_since = None
                log.warning("delivery heartbeat failed: %s", exc)

    def stop(self) -> None:
        """Stop beating and remove this worker: whatever it still owned is free at once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._registered:
            try:
                with transaction(self._factory) as session:
                    session.execute(
                        delete(DeliveryWorkerRow).where(DeliveryWorkerRow.id == self.id)
                    )
            except Exception as exc:
                log.warning("could not deregister delivery worker: %s", exc)
            self._registered = False

    # liveness ----------------------------------------------------------------------------

    def live(self, session: Session) -> list[str]:
        """Workers whose pages nobody else may take: fresh heartbeats, minus dead local pids.

        This worker is always live to itself (its pages in flight are tracked in memory).
        Until our own heartbeat has run unbroken for STALE_AFTER, stale ones count as live
        too (see `healthy_since`).
        """
        cutoff = wall_now() - STALE_AFTER
        watched = self.healthy_since is not None and (
            time.monotonic() - self.healthy_since >= STALE_AFTER.total_seconds()
        )
        alive = [self.id]
        for wid, host, pid, beat in session.execute(
            select(
                DeliveryWorkerRow.id,
                DeliveryWorkerRow.hostname,
                DeliveryWorkerRow.pid,
                DeliveryWorkerRow.heartbeat_at,
            )
        ):
            if wid == self.id or (beat < cutoff and watched):
                continue
            if host == self.hostname and pid != self.pid and not pid_alive(pid):
                continue  # a dead process on this host: e.g. this daemon before a SIGKILL
            alive.append(wid)
        return alive
