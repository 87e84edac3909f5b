"""The multiple-critical trigger: several critical alerts open at once page the
configured targets once per episode.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    func,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from escalator.incidents import protocol as incidents
from escalator.incidents.notices import Notifier, time_text
from escalator.incidents.protocol import Episode
from escalator.store.tables import AlertRow, TriggerEpisodeRow
from escalator.store.timeline import note

MULTIPLE_CRITICAL = "multiple_critical"


_NAMED = 50  # alerts named in one multiple-critical page; the rest are counted


def _episode_row(session: Session, now: datetime) -> TriggerEpisodeRow | None:
    """The trigger's row, locked; None when another replica holds it this moment."""
    query = (
        select(TriggerEpisodeRow)
        .where(TriggerEpisodeRow.name == MULTIPLE_CRITICAL)
        .with_for_update(skip_locked=True)
    )
    row = session.scalars(query).first()
    if row is None:  # first tick ever, or held elsewhere (then the insert does nothing)
        dialect = session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        session.execute(
            insert(TriggerEpisodeRow)
            .values(
                name=MULTIPLE_CRITICAL,
                active=False,
                since=None,
                alert_ids=[],
                episodes=0,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=["name"])
        )
        row = session.scalars(query).first()
    return row


def check_multiple_critical(session: Session, n: Notifier) -> int:
    settings = n.settings.multiple_critical
    if not settings.enabled:
        return 0
    row = _episode_row(session, n.now)
    if row is None:
        return 0
    is_open = (
        AlertRow.severity == settings.severity,
        AlertRow.status.in_(("triggered", "acknowledged")),
    )  # ix_alerts_severity_status: an index-only count, cheap with 100k alerts open
    count = session.scalar(select(func.count()).select_from(AlertRow).where(*is_open)) or 0
    if (count >= settings.threshold) == row.active:
        return 0  # no episode starts or ends: nothing to load, nothing to write
    # An episode starts or ends (rare): name the alerts, at most _NAMED of them.
    open_alerts = session.scalars(
        select(AlertRow)
        .where(*is_open)
        .order_by(AlertRow.id)
        .limit(max(settings.threshold, _NAMED))
    ).all()
    episode = Episode(row.active, row.since, tuple(row.alert_ids), row.episodes)
    new, page = incidents.multiple_critical(
        episode, [a.id for a in open_alerts], settings.threshold, n.now
    )
    if new != episode:  # write only on a change: this runs every tick
        row.active, row.since, row.alert_ids = new.active, new.since, list(new.alert_ids)
        row.episodes, row.updated_at = new.episodes, n.now
    if not page:
        return 0
    ctx = {
        "now": time_text(n.now),
        "count": count,
        "threshold": settings.threshold,
        "alerts": [
            {
                "id": a.id,
                "alertname": a.alertname,
                "summary": a.annotations.get("summary", ""),
                "status": a.status,
                "level": a.level,
                "since": f"{a.opened_at:%H:%M}",
            }
            for a in open_alerts
        ],
    }
    whom = n.expand(settings.targets)
    names = ", ".join(f"#{a.id} {a.alertname}" for a in open_alerts)
    if count > len(open_alerts):
        names += f" and {count - len(open_alerts)} more"
    for alert in open_alerts:
        note(
            session,
            alert.id,
            n.now,
            "escalation_trigger",
            f"multiple critical alerts simultaneously ({names}): paging "
            f"{', '.join(r.id for r in whom) or 'nobody (no target reachable)'}",
        )
    return n.queue(session, open_alerts[-1].id, "multiple_critical", ctx, whom, urgency="page")
