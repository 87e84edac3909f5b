"""Post-mortems still owed, for `escalator postmortems` and the API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    select,
)
from sqlalchemy.orm import Session

from escalator.config.durations import format_duration
from escalator.incidents import protocol as incidents
from escalator.incidents.store import incident_state
from escalator.read.times import rfc3339
from escalator.store.tables import AlertRow, IncidentRow


def postmortems(session: Session, now: datetime, overdue_only: bool) -> list[dict[str, Any]]:
    """Post-mortems not yet linked (overdue ones first), for `escalator postmortems`."""
    rows = session.execute(
        select(IncidentRow, AlertRow)
        .join(AlertRow, AlertRow.id == IncidentRow.alert_id)
        .where(IncidentRow.status == "resolved", IncidentRow.postmortem_at.is_(None))
        .order_by(IncidentRow.postmortem_due_at)
    ).all()
    out = []
    for incident, alert in rows:
        overdue = incidents.is_overdue(incident_state(incident), now)
        if overdue_only and not overdue:
            continue
        assert incident.postmortem_due_at is not None
        out.append(
            {
                "id": incident.alert_id,
                "channel": f"#{incident.channel}",
                "alertname": alert.alertname,
                "commander": incident.commander,
                "resolved_at": _iso(incident.resolved_at),
                "due_at": _iso(incident.postmortem_due_at),
                "overdue": overdue,
                "overdue_by": format_duration(now - incident.postmortem_due_at)
                if overdue
                else None,
            }
        )
    return out


def _iso(value: datetime | None) -> str | None:
    return rfc3339(value)  # the one JSON rule (read/times.py)
