"""Heartbeats in the store: one row per configured heartbeat, beats recorded by the
webhook and `POST /heartbeats/{name}`, and the engine step that opens an alert for a
heartbeat gone silent.

Durable and replica-safe like escalation: whether a heartbeat is overdue is a question
asked of its row at each engine tick (never an in-process timer that a restart forgets),
and the row is claimed `FOR UPDATE SKIP LOCKED`, so one replica opens the alert. The
alert goes through the same ingest as Alertmanager's (identity: the heartbeat's
fingerprint and the moment it went overdue), so it routes, pages, opens its incident and
honours maintenance windows like any other; the next beat resolves it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from escalator.config import Config, Heartbeat
from escalator.escalation.paging import Paging
from escalator.escalation.policies import PolicyCache
from escalator.ingest import heartbeats
from escalator.read.times import rfc3339
from escalator.store.tables import HeartbeatRow

log = logging.getLogger("escalator.heartbeats")


def _ensure(session: Session, names: Iterable[str], now: datetime) -> None:
    rows = [
        {
            "name": name,
            "first_seen_at": now,
            "last_beat_at": None,
            "last_via": None,
            "beats": 0,
            "state": "waiting",
            "missed_at": None,
            "alert_id": None,
            "updated_at": now,
        }
        for name in names
    ]
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(
        insert(HeartbeatRow.__table__).on_conflict_do_nothing(index_elements=["name"]), rows  # type: ignore[arg-type]
    )


def _router(config: Config, heartbeat: Heartbeat):  # type: ignore[no-untyped-def]
    return (lambda _labels: heartbeat.policy) if heartbeat.policy else config.route


def _body(heartbeat: Heartbeat, status: str, starts_at: datetime, last_beat: datetime | None,
          ends_at: datetime | None = None) -> Any:  # fmt: skip
    from escalator.ingest.alertmanager import AMAlert, AMWebhook  # it imports maintenance

    alert = AMAlert(
        status=status,  # type: ignore[arg-type]
        labels=heartbeats.alert_labels(heartbeat),
        annotations=heartbeats.alert_annotations(heartbeat, last_beat),
        startsAt=starts_at,
        endsAt=ends_at,
        fingerprint=heartbeats.fingerprint(heartbeat.name),
    )
    return AMWebhook(version="4", status=alert.status, alerts=[alert])


def record_beats(
    session: Session,
    names: Iterable[str],
    via: str,
    config: Config,
    paging: Paging,
    policies: PolicyCache,
    now: datetime,
) -> list[int]:
    """Beats in the caller's transaction; returns the HeartbeatMissed alerts they resolved."""
    from escalator.ingest.alertmanager import ingest

    wanted = sorted(set(names))
    _ensure(session, wanted, now)
    rows = session.scalars(
        select(HeartbeatRow)
        .where(HeartbeatRow.name.in_(wanted))
        .order_by(HeartbeatRow.name)
        .with_for_update()
    )
    resolved: list[int] = []
    for row in rows:
        heartbeat = config.heartbeat(row.name)
        if row.state == "missed" and row.missed_at is not None and heartbeat is not None:
            body = _body(heartbeat, "resolved", row.missed_at, row.last_beat_at, now)
            result = ingest(
                session, body, config, paging, policies, now, source="heartbeat",
                route=_router(config, heartbeat),
            )  # fmt: skip
            resolved.extend(result.resolved)
        row.last_beat_at, row.last_via, row.beats = now, via, row.beats + 1
        row.state, row.missed_at, row.updated_at = "ok", None, now
    return resolved


def check_overdue(
    session: Session,
    config: Config,
    started_at: datetime,
    paging: Paging,
    policies: PolicyCache,
    now: datetime,
) -> list[int]:
    """The engine's heartbeat step: open an alert for each heartbeat gone silent."""
    from escalator.ingest.alertmanager import ingest

    if not config.heartbeats:
        return []
    _ensure(session, [h.name for h in config.heartbeats], now)
    # Read without locks first and lock only the heartbeats that look overdue: a beat
    # arriving during a tick must not wait for the tick to commit (it would, were every
    # row locked every second), and the overdue ones are re-checked under the lock.
    candidates = session.execute(
        select(HeartbeatRow.name, HeartbeatRow.last_beat_at, HeartbeatRow.first_seen_at).where(
            HeartbeatRow.name.in_([h.name for h in config.heartbeats]),
            HeartbeatRow.state != "missed",
        )
    ).all()
    overdue = [
        name
        for name, last_beat_at, first_seen_at in candidates
        if (heartbeat := config.heartbeat(name)) is not None
        and heartbeats.deadline(heartbeat, last_beat_at, first_seen_at, started_at) <= now
    ]
    if not overdue:
        return []
    rows = session.scalars(
        select(HeartbeatRow)
        .where(HeartbeatRow.name.in_(overdue), HeartbeatRow.state != "missed")
        .order_by(HeartbeatRow.name)
        .with_for_update(skip_locked=True)
    )
    opened: list[int] = []
    for row in rows:
        heartbeat = config.heartbeat(row.name)
        assert heartbeat is not None
        due = heartbeats.deadline(heartbeat, row.last_beat_at, row.first_seen_at, started_at)
        if due > now:
            continue
        body = _body(heartbeat, "firing", due, row.last_beat_at)
        result = ingest(
            session, body, config, paging, policies, now, source="heartbeat",
            route=_router(config, heartbeat),
        )  # fmt: skip
        if result.unrouted:
            log.error("heartbeat %s missed, but no route or policy takes its alert", row.name)
        row.state, row.missed_at, row.updated_at = "missed", due, now
        row.alert_id = result.opened[0] if result.opened else None
        opened.extend(result.opened)
        log.warning("heartbeat %s missed (due %s)", row.name, due.isoformat())
    return opened


def list_heartbeats(
    session: Session, config: Config, now: datetime, started_at: datetime | None = None
) -> list[dict[str, Any]]:
    """`escalator heartbeat list`: last beat, when it falls due, state, open alert."""
    rows = {
        r.name: r
        for r in session.scalars(
            select(HeartbeatRow).where(HeartbeatRow.name.in_([h.name for h in config.heartbeats]))
        )
    }
    out = []
    for heartbeat in config.heartbeats:
        row = rows.get(heartbeat.name)
        fed = []
        if heartbeat.alertmanager is not None:
            fed.append("alertmanager")
        if heartbeat.token is not None:
            fed.append("http")
        last = row.last_beat_at if row else None
        first = row.first_seen_at if row else now
        # Without a running daemon's start time, the due time is the plain one.
        due = heartbeats.deadline(heartbeat, last, first, started_at or first)
        if row is not None and row.state == "missed":
            state = "missed"
        elif row is None or row.state == "waiting":
            state = "waiting"
        else:
            state = "ok"
        out.append(
            {
                "name": heartbeat.name,
                "fed_by": fed,
                "interval": heartbeat.interval.total_seconds(),
                "grace": heartbeat.grace.total_seconds(),
                "state": state,
                # JSON times: RFC 3339, UTC, `Z` (the one rule, escalator/read/times.py).
                "last_beat_at": rfc3339(last),
                "last_via": row.last_via if row else None,
                "beats": row.beats if row else 0,
                "due_at": None if state == "missed" else rfc3339(due),
                "missed_at": rfc3339(row.missed_at) if row else None,
                "alert_id": row.alert_id if row and state == "missed" else None,
            }
        )
    return out


def split_beats(payload: Any, config: Config) -> tuple[set[str], Any]:
    """(heartbeats beaten, the body without their alerts) for an Alertmanager body.

    A heartbeat's alert (Watchdog) is never tracked or paged: a firing entry is a beat, a
    resolved one (Prometheus stopped evaluating it) is nothing, and silence is the alert.
    """
    if not config.heartbeats:
        return set(), payload
    beaten: set[str] = set()
    kept = []
    for alert in payload.alerts:
        names = heartbeats.beats_in(alert.labels, config.heartbeats)
        if not names:
            kept.append(alert)
        elif alert.status == "firing":
            beaten.update(names)
    if len(kept) == len(payload.alerts):
        return beaten, payload
    return beaten, payload.model_copy(update={"alerts": kept})
