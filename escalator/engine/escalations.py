"""The escalation step of the engine: every alert whose `next_action_at` has come is stepped
with a Tick, in batches claimed with SKIP LOCKED.
"""

from __future__ import annotations

import threading
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from escalator.config import Config
from escalator.engine.incidents import tick_incidents
from escalator.engine.sources import run_sources
from escalator.escalation import machine
from escalator.escalation.apply import state_of
from escalator.escalation.machine import Tick
from escalator.escalation.paging import Paging
from escalator.escalation.policies import PolicyCache
from escalator.incidents.store import record_decision
from escalator.incidents.templates import Templates
from escalator.metrics import Metrics
from escalator.roster.overrides import load_overrides
from escalator.roster.shift_notices import ShiftNotices
from escalator.store.clock import Clock
from escalator.store.db import transaction
from escalator.store.tables import AlertRow


class EscalationEngine:
    def __init__(
        self,
        factory: sessionmaker[Session],
        config: Config,
        clock: Clock,
        methods: frozenset[str],
        policies: PolicyCache | None = None,
        templates: Templates | None = None,
        metrics: Metrics | None = None,
    ):
        self.factory = factory
        self.metrics = metrics or Metrics()
        self.config = config
        self.clock = clock
        self.methods = methods
        self.policies = policies or PolicyCache()
        # Incident templates, overrides read once here (the daemon's, not a module cache).
        self.templates = templates or Templates(config.incidents.templates)
        self._lock = threading.Lock()
        self.notices = ShiftNotices(factory, config, methods)
        # Heartbeats are not called missed until a grace after this (ingest.heartbeats).
        self.started_at = clock.now()

    def paging(self, session: Session, now: datetime) -> Paging:
        return Paging(self.config, self.methods, load_overrides(session, now))

    def tick(self) -> int:
        """Step every due alert; returns how many were stepped (or released, or opened)."""
        stepped = 0
        with self._lock, self.metrics.engine_tick_seconds.time():
            now = self.clock.now()
            first = True
            while True:
                count, sourced = self._tick_batch(now, sources=first)
                stepped += count + sourced
                first = False
                if count < self.config.engine.batch_size:
                    break
            self.notices.run(now)  # "you are on call from ... to ..." (escalator.shift_notices)
            queued = tick_incidents(self.factory, self.config, now, self.methods, self.templates)
        self.metrics.engine_alerts_stepped.inc(stepped)
        return stepped + queued

    def _tick_batch(self, now: datetime, sources: bool = False) -> tuple[int, int]:
        """(alerts stepped, alerts the source steps released or opened). The source steps
        run inside the first batch's transaction: on SQLite every transaction takes the
        write lock, and an idle tick should take it once."""
        with transaction(self.factory) as session:
            sourced = (
                run_sources(session, self.config, self.started_at, self.paging(session, now),
                            self.policies, now)
                if sources
                else 0
            )  # fmt: skip
            rows = list(
                session.scalars(
                    select(AlertRow)
                    .where(AlertRow.next_action_at <= now)
                    .order_by(AlertRow.next_action_at)
                    .limit(self.config.engine.batch_size)
                    .with_for_update(skip_locked=True)
                )
            )
            if not rows:
                return 0, sourced
            paging = self.paging(session, now)
            for row in rows:
                due = row.next_action_at
                policy = self.policies.get(session, row.policy_id)
                decision = machine.step(state_of(row), Tick(), now, policy, paging)
                record_decision(session, row, decision, paging, now)
                if due is not None:
                    self.metrics.escalation_lag.observe(max((now - due).total_seconds(), 0.0))
            return len(rows), sourced
