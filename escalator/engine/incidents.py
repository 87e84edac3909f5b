"""The incident step of the engine: SLA breaches, the multiple-critical trigger, and the
notifications incidents owe (queued here with the daemon's channels and templates).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    select,
)
from sqlalchemy.orm import Session, sessionmaker

from escalator.config import Config
from escalator.escalation.paging import Paging
from escalator.incidents.notices import Notifier, post_incident
from escalator.incidents.sla import mark_breaches
from escalator.incidents.store import updates_of
from escalator.incidents.templates import Templates
from escalator.incidents.triggers import check_multiple_critical
from escalator.store.db import transaction
from escalator.store.tables import AlertRow, IncidentRow


def tick_incidents(
    factory: sessionmaker[Session],
    config: Config,
    now: datetime,
    methods: frozenset[str],
    templates: Templates,
    batch_size: int = 200,
) -> int:
    """One engine tick for the protocol: SLA breaches, the multiple-critical trigger and
    whatever incidents owe; returns how many notifications were queued."""
    from escalator.roster.overrides import load_overrides

    with transaction(factory) as session:
        mark_breaches(session, now)
        n = Notifier(config, Paging(config, methods, load_overrides(session, now)), templates, now)
        queued = check_multiple_critical(session, n)
        if config.incidents.enabled:
            queued += _post_due(session, n, batch_size)
        n.flush(session)
    return queued


def _post_due(session: Session, n: Notifier, batch_size: int) -> int:
    """Queue what the due incidents owe (at most `batch_size` of them this tick)."""
    due_rows = session.execute(
        select(IncidentRow, AlertRow)
        .join(AlertRow, AlertRow.id == IncidentRow.alert_id)
        .where(IncidentRow.next_due_at <= n.now)
        .order_by(IncidentRow.next_due_at)
        .limit(batch_size)
        .with_for_update(of=IncidentRow, skip_locked=True)
    ).all()
    # Every due incident's status updates in one read, and no autoflush meanwhile: the
    # incidents' new state is flushed together at commit, not one incident at a time (a
    # storm opens hundreds per tick).
    batch = updates_of(session, [alert.id for _, alert in due_rows])
    queued = 0
    with session.no_autoflush:
        for incident, alert in due_rows:
            queued += post_incident(session, n, incident, alert, batch)
    return queued
