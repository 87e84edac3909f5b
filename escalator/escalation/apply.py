"""Carrying out the machine's decisions in the store: the one path every input takes.

The webhook, the engine tick, the CLI and the HTTP API all load an alert row, ask
`machine.step` what to do, and hand the decision to `apply_decision`, which writes the new
state, its timeline notes and its outbox rows in the caller's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert, update
from sqlalchemy.orm import Session

from escalator.config.durations import to_milliseconds
from escalator.escalation.machine import AlertState, CancelPages, Decision, Note, Page
from escalator.escalation.paging import Paging
from escalator.roster.contacts import deliveries
from escalator.store.tables import AlertRow, OutboxRow, TimelineRow
from escalator.store.timeline import timeline_row

_STATE_FIELDS = tuple(AlertState.__dataclass_fields__)


def state_of(row: AlertRow) -> AlertState:
    return AlertState(**{name: getattr(row, name) for name in _STATE_FIELDS})


@dataclass
class EffectRows:
    """A decision's effects as rows to insert (in bulk) and cancellations to run."""

    timeline: list[dict[str, Any]] = field(default_factory=list)
    outbox: list[dict[str, Any]] = field(default_factory=list)
    cancels: list[CancelPages] = field(default_factory=list)

    def for_alert(self, alert_id: int) -> EffectRows:
        """The same rows for another alert: one decision serves every alert opened alike."""
        return EffectRows(
            [{**r, "alert_id": alert_id} for r in self.timeline],
            [{**r, "alert_id": alert_id} for r in self.outbox],
            list(self.cancels),
        )


def effect_rows(alert_id: int, decision: Decision, paging: Paging, now: datetime) -> EffectRows:
    """Turn a decision's notes and pages into timeline and outbox rows (no I/O)."""
    rows = EffectRows()
    for effect in decision.effects:
        if isinstance(effect, Note):
            rows.timeline.append(
                timeline_row(
                    alert_id,
                    now,
                    effect.kind,
                    effect.detail,
                    effect.actor,
                    effect.via,
                    effect.level,
                )
            )
        elif isinstance(effect, CancelPages):
            rows.cancels.append(effect)
        elif isinstance(effect, Page):
            _page_rows(rows, alert_id, effect, paging, now)
    return rows


def _page_rows(
    rows: EffectRows, alert_id: int, effect: Page, paging: Paging, now: datetime
) -> None:
    whom = paging.recipients(effect.step, now)
    names = ", ".join(f"{r.id} ({r.via})" for r in whom) or "nobody"
    label = f"level {effect.level}" + (f" repeat {effect.repeat}" if effect.repeat else "")
    rows.timeline.append(
        timeline_row(
            alert_id, now, "paged", f"{label} ({effect.reason}): {names}", level=effect.level
        )
    )
    for recipient in whom:
        ways = deliveries(paging.config, paging.methods, recipient, effect.step.urgency)  # type: ignore[arg-type]  # recipients exist only with a config
        if not ways:
            rows.timeline.append(
                timeline_row(
                    alert_id,
                    now,
                    "unreachable",
                    f"{recipient.id} has no contact method that can be used",
                    level=effect.level,
                )
            )
        for method, address, delay in ways:
            rows.outbox.append(
                {
                    "alert_id": alert_id,
                    "recipient_kind": recipient.kind,
                    "recipient": recipient.id,
                    "method": method,
                    "address": address,
                    "level": effect.level,
                    "urgency": effect.step.urgency,
                    # None: nothing cancels it but a resolve (a requested escalation).
                    "condition": effect.step.condition if effect.conditional else None,
                    "reason": effect.reason,
                    # What the page renderer says about why this person is paged.
                    "payload": {
                        "via": recipient.via,
                        "repeat": effect.repeat,
                        "step_after": to_milliseconds(effect.step.after),
                        "step_condition": effect.step.condition,
                        **({"detail": effect.detail} if effect.detail else {}),
                    },
                    "status": "pending",
                    "due_at": now + delay,
                    "attempts": 0,
                    "lease_until": None,
                    "leased_by": None,
                    "provider_id": None,
                    "last_error": None,
                    "created_at": now,
                    "sent_at": None,
                }
            )


def write_rows(session: Session, rows: EffectRows) -> None:
    """Insert timeline and outbox rows with one statement each (cancellations are the
    caller's: they name the alert)."""
    # Core inserts on the tables: one executemany each (the ORM's bulk path would emit one
    # statement per row to learn primary keys nobody here needs).
    if rows.timeline:
        session.execute(insert(TimelineRow.__table__), rows.timeline)  # type: ignore[arg-type]
    if rows.outbox:
        session.execute(insert(OutboxRow.__table__), rows.outbox)  # type: ignore[arg-type]


def apply_decision(
    session: Session, row: AlertRow, decision: Decision, paging: Paging, now: datetime
) -> None:
    """Write a decision: state, timeline notes, cancelled and new outbox rows.

    Only the alert's own rows: its incident's consequences (commander, resolution, SLA
    response) are `incidents.store.record_decision`, which every caller uses.
    """
    for name in _STATE_FIELDS:
        setattr(row, name, getattr(decision.state, name))
    row.next_action_at = decision.next_action_at
    row.updated_at = now
    rows = effect_rows(row.id, decision, paging, now)
    for cancel in rows.cancels:
        stmt = (
            update(OutboxRow)
            .where(OutboxRow.alert_id == row.id, OutboxRow.status == "pending")
            .values(status="cancelled", last_error=f"cancelled: alert {row.status}")
        )
        if cancel.scope == "unacknowledged":
            stmt = stmt.where(OutboxRow.condition == "unacknowledged")
        session.execute(stmt)
    write_rows(session, rows)
