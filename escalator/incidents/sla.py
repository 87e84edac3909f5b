"""Response-time SLA: marking alerts nobody responded to in time."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import (
    select,
)
from sqlalchemy.orm import Session

from escalator.incidents.notices import duration_text
from escalator.store.tables import AlertSlaRow
from escalator.store.timeline import note


def mark_breaches(session: Session, now: datetime) -> None:
    rows = session.scalars(
        select(AlertSlaRow)
        .where(
            AlertSlaRow.responded_at.is_(None),
            AlertSlaRow.breached_at.is_(None),
            AlertSlaRow.due_at < now,
        )
        .with_for_update(skip_locked=True)
    ).all()
    for sla in rows:
        sla.breached_at = sla.due_at
        note(
            session,
            sla.alert_id,
            now,
            "sla_breached",
            f"response-time SLA breached: nobody responded within "
            f"{duration_text(timedelta(seconds=sla.response_seconds))} "
            f"({sla.severity or 'no severity'})",
        )
