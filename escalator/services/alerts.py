"""Alert services: acknowledge, resolve, escalate now, snooze.

Each takes the actor, reads the time from the context's clock (the daemon's, or the
database's), and in ONE transaction locks the alerts, steps the machine, writes the
decision and its consequences (incident commander, SLA response). The CLI (locally), the
HTTP API and Twilio replies call only these.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from escalator.escalation import machine
from escalator.escalation.apply import state_of
from escalator.escalation.machine import Ack, EscalateNow, Event, Resolve
from escalator.escalation.paging import Paging
from escalator.escalation.policies import PolicyCache
from escalator.incidents.store import record_decision
from escalator.services.context import Actor, ServiceContext
from escalator.store.db import transaction
from escalator.store.tables import AlertRow, OutboxRow


@dataclass(frozen=True)
class Outcome:
    alert_id: int
    changed: bool
    message: str
    status: str


class Selection(enum.Enum):
    """Alerts named by what they are rather than by ID, resolved inside the transaction."""

    OPEN = "open"  # every triggered alert (`ack --all`)
    PAGED_ME = "paged_me"  # every triggered alert that paged the actor (`ACK ALL` by phone)
    LAST_SMS = "last_sms"  # the alerts of the last SMS page sent to the actor (bare `ACK`)


Alerts = Sequence[int] | Selection


def acknowledge(
    ctx: ServiceContext,
    actor: Actor,
    alerts: Alerts,
    *,
    until: datetime | None = None,
    for_: timedelta | None = None,
) -> list[Outcome]:
    """Stop the alerts' escalation; with `until` or `for_`, only until then (a snooze)."""

    def event(now: datetime) -> Event:
        return Ack(by=actor.person, via=actor.via, until=now + for_ if for_ else until)

    return _act(ctx, actor, alerts, event)


def acknowledge_all(
    ctx: ServiceContext, actor: Actor, *, paged_only: bool = False
) -> list[Outcome]:
    """Every triggered alert, or (`paged_only`) every one that paged the actor."""
    return acknowledge(ctx, actor, Selection.PAGED_ME if paged_only else Selection.OPEN)


def snooze(ctx: ServiceContext, actor: Actor, alerts: Alerts, for_: timedelta) -> list[Outcome]:
    """Acknowledge for a while: escalation resumes `for_` after now (the service's clock)."""
    return acknowledge(ctx, actor, alerts, for_=for_)


def resolve(ctx: ServiceContext, actor: Actor, alerts: Alerts) -> list[Outcome]:
    return _act(ctx, actor, alerts, lambda _now: Resolve(by=actor.person, via=actor.via))


def escalate_now(ctx: ServiceContext, actor: Actor, alerts: Alerts) -> list[Outcome]:
    """Page the next level now instead of waiting."""
    return _act(ctx, actor, alerts, lambda _now: EscalateNow(by=actor.person, via=actor.via))


def _act(
    ctx: ServiceContext, actor: Actor, alerts: Alerts, event: Callable[[datetime], Event]
) -> list[Outcome]:
    ctx.check_actor(actor)
    with transaction(ctx.factory) as session:
        now = ctx.now(session)
        ids = _select(session, actor, alerts)
        outcomes = act(session, ids, event(now), ctx.paging(session, now), ctx.policies, now)
    ctx.changed()
    return outcomes


def act(
    session: Session,
    alert_ids: Iterable[int],
    event: Event,
    paging: Paging,
    policies: PolicyCache,
    now: datetime,
) -> list[Outcome]:
    """Lock the alerts' rows, step each, write the decisions: the caller's transaction."""
    outcomes: list[Outcome] = []
    ids = sorted(set(alert_ids))
    query = select(AlertRow).where(AlertRow.id.in_(ids)).order_by(AlertRow.id).with_for_update()
    rows = {row.id: row for row in session.scalars(query)}
    for alert_id in ids:
        row = rows.get(alert_id)
        if row is None:
            outcomes.append(Outcome(alert_id, False, "no such alert", "unknown"))
            continue
        policy = policies.get(session, row.policy_id)
        decision = machine.step(state_of(row), event, now, policy, paging)
        if decision.changed:
            record_decision(session, row, decision, paging, now)
        outcomes.append(Outcome(alert_id, decision.changed, decision.message, row.status))
    return outcomes


def _select(session: Session, actor: Actor, alerts: Alerts) -> list[int]:
    if not isinstance(alerts, Selection):
        return sorted(set(alerts))
    if alerts is Selection.OPEN:
        return open_alert_ids(session)
    if alerts is Selection.PAGED_ME:
        return list(
            session.scalars(
                select(AlertRow.id)
                .where(
                    AlertRow.status == "triggered",
                    AlertRow.id.in_(
                        select(OutboxRow.alert_id).where(
                            OutboxRow.recipient_kind == "person",
                            OutboxRow.recipient == actor.person,
                        )
                    ),
                )
                .order_by(AlertRow.id)
            )
        )
    last = session.scalar(
        select(OutboxRow.provider_id)
        .where(
            OutboxRow.recipient_kind == "person",
            OutboxRow.recipient == actor.person,
            OutboxRow.method == "sms",
            OutboxRow.sent_at.is_not(None),
            OutboxRow.alert_id.is_not(None),
        )
        .order_by(OutboxRow.sent_at.desc(), OutboxRow.id.desc())
        .limit(1)
    )
    if last is None:
        return []
    found = session.scalars(select(OutboxRow.alert_id).where(OutboxRow.provider_id == last))
    return sorted({a for a in found if a is not None})


def select_alerts(ctx: ServiceContext, actor: Actor, alerts: Alerts) -> list[int]:
    """The IDs a selection names now (read only: what a voice call reads out)."""
    with transaction(ctx.factory) as session:
        return _select(session, actor, alerts)


def open_alert_ids(session: Session, status: Sequence[str] = ("triggered",)) -> list[int]:
    return list(
        session.scalars(
            select(AlertRow.id).where(AlertRow.status.in_(status)).order_by(AlertRow.id)
        )
    )
