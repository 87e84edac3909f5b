"""Read models shared by the CLI and the HTTP API, so `escalator list` prints the same
thing whether it reads the database directly or asks a remote daemon."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from escalator.escalation.apply import state_of
from escalator.escalation.machine import next_escalation
from escalator.escalation.policies import PolicyCache
from escalator.maintenance.store import SuppressionRow, held_alerts
from escalator.read.times import rfc3339 as _iso
from escalator.roster.oncall import Override, on_call, resolve_target
from escalator.store.tables import AlertRow, OutboxRow, TimelineRow

if TYPE_CHECKING:
    from escalator.config import Config, Target

# The most alerts one `list` (or GET /api/v1/alerts) returns unless asked for more.
DEFAULT_LIMIT = 500


def _next(row: AlertRow, session: Session, policies: PolicyCache) -> dict[str, Any] | None:
    """The page that will really fire next (the machine's `next_escalation`), or None."""
    if row.status == "resolved":
        return None
    try:
        policy = policies.get(session, row.policy_id)
    except LookupError:  # a snapshot missing from the store: say nothing rather than guess
        return None
    upcoming = next_escalation(state_of(row), policy)
    if upcoming is None:
        return None
    return {"at": _iso(upcoming.at), "level": upcoming.level, "kind": upcoming.kind}


def alert_summary(
    row: AlertRow,
    held: SuppressionRow | None = None,
    upcoming: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """`held`: the maintenance window holding the alert back, if one does; `upcoming`: the
    next page that will really fire (`next_action_at` is only when the engine looks)."""
    return {
        "id": row.id,
        "alertname": row.alertname,
        "severity": row.severity,
        "status": row.status,
        "level": row.level,
        "policy": row.policy_name,
        "opened_at": _iso(row.opened_at),
        # Alertmanager's startsAt: when the condition began, before any routing delay.
        "starts_at": _iso(row.starts_at),
        "acked_by": row.acked_by,
        "acked_at": _iso(row.acked_at),
        "ack_expires_at": _iso(row.ack_expires_at),
        "resolved_by": row.resolved_by,
        "resolved_at": _iso(row.resolved_at),
        "next_action_at": _iso(row.next_action_at),
        "next_escalation": upcoming,
        "fingerprint": row.fingerprint,
        "labels": row.labels,
        "summary": row.annotations.get("summary", ""),
        "maintenance": None if held is None else {"window": held.window, "until": _iso(held.until)},
    }


def count_alerts(session: Session, include_resolved: bool = False) -> int:
    """How many alerts `list_alerts` pages through: what a truncated list reports."""
    query = select(func.count()).select_from(AlertRow)
    if not include_resolved:
        query = query.where(AlertRow.status != "resolved")
    return int(session.scalar(query) or 0)


def list_alerts(
    session: Session,
    include_resolved: bool = False,
    limit: int | None = DEFAULT_LIMIT,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Newest first; `limit` None: every one. Callers report `count_alerts` beside a page
    that did not hold them all, so a cut-off list never passes for the whole."""
    query = select(AlertRow).order_by(AlertRow.id.desc()).offset(offset)
    if limit is not None:
        query = query.limit(limit)
    if not include_resolved:
        query = query.where(AlertRow.status != "resolved")
    rows = list(session.scalars(query))
    held = held_alerts(session, [row.id for row in rows]) if rows else {}
    policies = PolicyCache()
    return [alert_summary(row, held.get(row.id), _next(row, session, policies)) for row in rows]


def show_alert(session: Session, alert_id: int) -> dict[str, Any] | None:
    row = session.get(AlertRow, alert_id)
    if row is None:
        return None
    timeline = session.scalars(
        select(TimelineRow).where(TimelineRow.alert_id == alert_id).order_by(TimelineRow.id)
    )
    outbox = session.scalars(
        select(OutboxRow).where(OutboxRow.alert_id == alert_id).order_by(OutboxRow.id)
    )
    return {
        **alert_summary(
            row, held_alerts(session, [row.id]).get(row.id), _next(row, session, PolicyCache())
        ),
        "annotations": row.annotations,
        "generator_url": row.generator_url,
        "timeline": [
            {
                "at": _iso(t.at),
                "kind": t.kind,
                "actor": t.actor,
                "channel": t.channel,
                "level": t.level,
                "detail": t.detail,
            }
            for t in timeline
        ],
        "notifications": [
            {
                "id": o.id,
                "recipient": o.recipient,
                "method": o.method,
                "level": o.level,
                "status": o.status,
                "attempts": o.attempts,
                "due_at": _iso(o.due_at),
                "sent_at": _iso(o.sent_at),
                "last_error": o.last_error,
            }
            for o in outbox
        ],
    }


def oncall(cfg: Config, at: datetime, overrides: list[Override]) -> list[dict[str, Any]]:
    """Who holds each rotation and each role at `at`."""
    out: list[dict[str, Any]] = []
    for rotation in cfg.rotations:
        shift = on_call(rotation, at, overrides)
        out.append(
            {
                "kind": "rotation",
                "name": rotation.id,
                "people": [shift.person] if shift else [],
                "until": _iso(shift.end) if shift else None,
                "override": bool(shift and shift.override),
            }
        )
    for role, targets in cfg.roles.items():
        people: list[str] = []
        for target in targets:
            for recipient in resolve_target(cfg, target, at, overrides):
                label = recipient.id if recipient.kind == "person" else f"#{recipient.id}"
                if label not in people:
                    people.append(label)
        out.append(
            {"kind": "role", "name": role, "people": people, "until": None, "override": False}
        )
    return out


def describe_targets(targets: list[Target]) -> str:
    return ", ".join(f"{t.kind} {t.ref}" for t in targets)
