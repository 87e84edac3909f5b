"""The engine: claim alerts whose `next_action_at` has come, step them, commit.

What is due is a query, never an in-memory timer: APScheduler only decides when to ask.
A restart therefore neither misses nor repeats a step — the rows say where each alert is.
On PostgreSQL the claim is `FOR UPDATE SKIP LOCKED`, so replicas split the due alerts
between them and each step happens once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Select, func, select
from sqlalchemy.exc import OperationalError

from escalator.engine.escalations import EscalationEngine
from escalator.notify.sender import Sender
from escalator.store.db import transaction
from escalator.store.tables import AlertRow, OutboxRow

log = logging.getLogger("escalator.engine")

_MIN_RESCHEDULE = timedelta(milliseconds=50)





class Runner:
    """The local ticker: engine and sender jobs on APScheduler, plus an immediate wake.

    Each job takes its own lock, so a wake that lands during a tick runs right after it
    instead of being dropped. A failed tick (database down) is logged and retried on the
    next interval; nothing is lost because nothing lives only here.
    """

    def __init__(self, engine: EscalationEngine, sender: Sender, interval: timedelta):
        self.engine = engine
        self.sender = sender
        self.interval = interval
        self.healthy = threading.Event()
        self._scheduler = BackgroundScheduler(timezone=UTC)

    def _guarded(self, name: str, fn: Callable[[], int]) -> Callable[[], None]:
        def run() -> None:
            try:
                fn()
                self.healthy.set()
            except OperationalError as exc:
                self.healthy.clear()
                log.error("%s: store unavailable, will retry: %s", name, exc.orig)
            except Exception:
                self.healthy.clear()
                log.exception("%s failed, will retry", name)

        return run

    def _engine_then_sender(self) -> int:
        stepped = self.engine.tick()
        if stepped:
            self.wake_sender()
        self._run_at("engine", self._earliest(select(func.min(AlertRow.next_action_at))))
        return stepped

    def _drain(self) -> int:
        sent = self.sender.drain()
        pending = select(func.min(OutboxRow.due_at)).where(OutboxRow.status == "pending")
        self._run_at("sender", self._earliest(pending))
        return sent

    def _earliest(self, query: Select[tuple[datetime | None]]) -> datetime | None:
        with transaction(self.engine.factory) as session:
            return session.execute(query).scalar()

    def _run_at(self, job_id: str, due: datetime | None) -> None:
        """Bring the job forward to `due` when that is before its next interval run, so a
        step runs when it falls due rather than up to `interval` later. Never later: the
        interval keeps catching what other replicas queue."""
        if due is None or not self._scheduler.running:
            return
        # Not sooner than a moment from now: a row another replica holds locked stays due,
        # and must not turn this loop into a spin.
        due = max(due, datetime.now(UTC) + _MIN_RESCHEDULE)
        job = self._scheduler.get_job(job_id)
        if job is not None and (job.next_run_time is None or due < job.next_run_time):
            self._scheduler.modify_job(job_id, next_run_time=due)

    def start(self) -> None:
        seconds = max(self.interval.total_seconds(), 0.05)
        common = {"coalesce": True, "max_instances": 2, "misfire_grace_time": None}
        self._scheduler.add_job(
            self._guarded("engine", self._engine_then_sender),
            "interval",
            seconds=seconds,
            id="engine",
            next_run_time=datetime.now(UTC),
            **common,
        )
        self._scheduler.add_job(
            self._guarded("sender", self._drain),
            "interval",
            seconds=seconds,
            id="sender",
            next_run_time=datetime.now(UTC),
            **common,
        )
        self._scheduler.start()

    def _wake(self, job_id: str) -> None:
        if self._scheduler.running:
            self._scheduler.modify_job(job_id, next_run_time=datetime.now(UTC))

    def wake(self) -> None:
        """Run the engine now (new alert, ack): do not wait for the next interval."""
        self._wake("engine")

    def wake_sender(self) -> None:
        self._wake("sender")

    def stop(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)


def wait_until(predicate: Callable[[], bool], timeout: float, poll: float = 0.05) -> bool:
    """Poll `predicate` until true or `timeout` seconds pass (for tests and the CLI)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll)
    return predicate()
