"""Alert services: acknowledge, resolve, escalate now, snooze.

Each takes the actor, reads the time from the context's clock (the daemon's, or the
database's), and in ONE transaction locks the alerts, steps the machine, writes the
decision and its consequences (incident commander, SLA response). The CLI (locally), the
HTTP API and Twilio replies call only these.

A provider's request (Twilio's signed SMS and keypress webhooks) names itself with a
`Callback`: it is recorded in the action's transaction, so a replay of the same signed
request (Twilio's own retry, or someone who captured it) raises `Replayed` and changes
nothing. A voice call's keypress acts on what the call `offer`ed: the alerts it read out,
and only while each is still at the level (and repeat) it was at then.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from escalator.escalation import machine
from escalator.escalation.apply import state_of
from escalator.escalation.machine import Ack, EscalateNow, Event, Resolve
from escalator.escalation.paging import Paging
from escalator.escalation.policies import PolicyCache
from escalator.incidents.store import record_decision
from escalator.services.context import Actor, ServiceContext
from escalator.store.db import transaction
from escalator.store.tables import AlertRow, OutboxRow, ProviderCallbackRow

# Kept this long, then deleted as new callbacks arrive. A replay is refused while its row
# lasts; beyond it a keypress still finds no offer (offers are pruned too) and an SMS can
# only acknowledge what paged its sender before it arrived (Twilio signs no timestamp, so
# the window is the bound; a week is far past Twilio's retries and any sane capture).
CALLBACK_RETENTION = timedelta(days=7)
_PRUNE_BATCH = 500  # old callback rows deleted per new one (far more than arrive)
# An offered alert that has moved on (see `act`): its outcome's message starts so.
MOVED = "changed since the call began"
# Alert ids are BIGINT: a larger number names no alert (and must not reach the driver).
_MAX_ID = 2**63 - 1


@dataclass(frozen=True)
class Outcome:
    alert_id: int
    changed: bool
    message: str
    status: str


class Selection(enum.Enum):
    """Alerts named by what they are rather than by ID, resolved inside the transaction."""

    OPEN = "open"  # every triggered alert (`ack --all`)
    PAGED_ME = "paged_me"  # every triggered alert that pages the actor (queued pages too)
    # ...whose page to the actor had gone out by now: `ACK ALL` by phone answers the pages
    # its sender had received, never an alert that opened a moment before the reply.
    PAGED_ME_SENT = "paged_me_sent"
    LAST_SMS = "last_sms"  # the alerts of the last SMS page sent to the actor (bare `ACK`)


@dataclass(frozen=True)
class Offered:
    """The alerts a voice call offered (see `offer`), each only while still as offered."""

    call: str  # Twilio's CallSid


Alerts = Sequence[int] | Selection | Offered


@dataclass(frozen=True)
class Callback:
    """A provider's request that acts, named by the provider's own id for it."""

    provider: str  # "twilio"
    key: str  # "sms:<MessageSid>" or "keypress:<CallSid>:<Digits>"


class Replayed(Exception):
    """This callback acted before: nothing was done this time."""


def acknowledge(
    ctx: ServiceContext,
    actor: Actor,
    alerts: Alerts,
    *,
    until: datetime | None = None,
    for_: timedelta | None = None,
    callback: Callback | None = None,
) -> list[Outcome]:
    """Stop the alerts' escalation; with `until` or `for_`, only until then (a snooze)."""

    def event(now: datetime) -> Event:
        return Ack(by=actor.person, via=actor.via, until=now + for_ if for_ else until)

    return _act(ctx, actor, alerts, event, callback)


def acknowledge_all(
    ctx: ServiceContext, actor: Actor, *, paged_only: bool = False
) -> list[Outcome]:
    """Every triggered alert, or (`paged_only`) every one that paged the actor."""
    return acknowledge(ctx, actor, Selection.PAGED_ME if paged_only else Selection.OPEN)


def snooze(ctx: ServiceContext, actor: Actor, alerts: Alerts, for_: timedelta) -> list[Outcome]:
    """Acknowledge for a while: escalation resumes `for_` after now (the service's clock)."""
    return acknowledge(ctx, actor, alerts, for_=for_)


def resolve(
    ctx: ServiceContext, actor: Actor, alerts: Alerts, callback: Callback | None = None
) -> list[Outcome]:
    return _act(ctx, actor, alerts, lambda _now: Resolve(by=actor.person, via=actor.via), callback)


def escalate_now(
    ctx: ServiceContext, actor: Actor, alerts: Alerts, callback: Callback | None = None
) -> list[Outcome]:
    """Page the next level now instead of waiting."""
    return _act(
        ctx, actor, alerts, lambda _now: EscalateNow(by=actor.person, via=actor.via), callback
    )


def _act(
    ctx: ServiceContext,
    actor: Actor,
    alerts: Alerts,
    event: Callable[[datetime], Event],
    callback: Callback | None = None,
) -> list[Outcome]:
    ctx.check_actor(actor)
    with transaction(ctx.factory) as session:
        now = ctx.now(session)
        if callback is not None and not _record(session, callback.provider, callback.key, now):
            raise Replayed(callback.key)  # the transaction rolls back: nothing written
        expected = _offered(session, alerts.call) if isinstance(alerts, Offered) else None
        ids = sorted(expected) if expected is not None else _select(session, actor, alerts, now)
        paging = ctx.paging(session, now)
        outcomes = act(session, ids, event(now), paging, ctx.policies, now, expected=expected)
    ctx.changed()
    return outcomes


def offer(ctx: ServiceContext, actor: Actor, call: str, alerts: Alerts) -> list[int]:
    """What a voice call offers now (the alerts it reads out), remembered under its
    CallSid with each alert's level and repeat, for `Offered(call)` to act on. The first
    offer of a call stands: a replayed TwiML request cannot refresh it."""
    with transaction(ctx.factory) as session:
        now = ctx.now(session)
        ids = _storable(_select(session, actor, alerts, now))
        rows = session.execute(
            select(AlertRow.id, AlertRow.level, AlertRow.repeats_done).where(AlertRow.id.in_(ids))
        ).all()
        state = {str(i): [level, repeats] for i, level, repeats in rows}
        if call and not _record(session, "twilio", f"offer:{call}", now, state):
            return sorted(_offered(session, call))
        return sorted(int(i) for i in state)


def _offered(session: Session, call: str) -> dict[int, tuple[int, int]]:
    """alert id -> (level, repeats done) as the call offered it; empty if it offered none."""
    found = session.get(ProviderCallbackRow, ("twilio", f"offer:{call}"))
    offered: dict[str, Any] = (found.offer or {}) if found is not None else {}
    return {int(i): (int(v[0]), int(v[1])) for i, v in offered.items()}


def _record(session: Session, provider: str, key: str, now: datetime, offer: Any = None) -> bool:
    """Insert the callback's row; False when it is already there (a replay). Also prunes
    rows past the retention: a bounded, indexed delete per callback keeps the table small."""
    postgres = session.get_bind().dialect.name == "postgresql"
    key_columns = tuple_(ProviderCallbackRow.provider, ProviderCallbackRow.key)
    old = (
        select(ProviderCallbackRow.provider, ProviderCallbackRow.key)
        .where(ProviderCallbackRow.received_at < now - CALLBACK_RETENTION)
        .limit(_PRUNE_BATCH)
    )
    if postgres:  # two callbacks at once never wait on (or deadlock over) each other's prune
        old = old.with_for_update(skip_locked=True)
    session.execute(delete(ProviderCallbackRow).where(key_columns.in_(old)))
    insert = pg_insert if postgres else sqlite_insert
    values = {"provider": provider, "key": key, "kind": key.split(":", 1)[0]}
    statement = (
        insert(ProviderCallbackRow)
        .values(**values, received_at=now, offer=offer)
        .on_conflict_do_nothing(index_elements=["provider", "key"])
        .returning(ProviderCallbackRow.key)
    )
    # A concurrent duplicate waits on PostgreSQL for the first transaction, then inserts
    # nothing: exactly one of two simultaneous deliveries acts. (RETURNING, not rowcount:
    # an ORM-enabled INSERT's rowcount does not say whether the row went in.)
    return session.execute(statement).scalar_one_or_none() is not None


def _storable(ids: Iterable[int]) -> list[int]:
    return sorted({i for i in ids if 0 < i <= _MAX_ID})


def act(
    session: Session,
    alert_ids: Iterable[int],
    event: Event,
    paging: Paging,
    policies: PolicyCache,
    now: datetime,
    expected: dict[int, tuple[int, int]] | None = None,
) -> list[Outcome]:
    """Lock the alerts' rows, step each, write the decisions: the caller's transaction.

    With `expected` (alert id -> level and repeats done, as a call offered them), an alert
    that has moved since is left alone: the keypress was for the state the caller heard.
    """
    outcomes: list[Outcome] = []
    ids = sorted(set(alert_ids))
    query = (
        select(AlertRow)
        .where(AlertRow.id.in_(_storable(ids)))
        .order_by(AlertRow.id)
        .with_for_update()
    )
    rows = {row.id: row for row in session.scalars(query)}
    for alert_id in ids:
        row = rows.get(alert_id)
        if row is None:
            outcomes.append(Outcome(alert_id, False, "no such alert", "unknown"))
            continue
        if expected is not None and expected.get(alert_id) != (row.level, row.repeats_done):
            message = f"{MOVED} (now at level {row.level})"
            outcomes.append(Outcome(alert_id, False, message, row.status))
            continue
        policy = policies.get(session, row.policy_id)
        decision = machine.step(state_of(row), event, now, policy, paging)
        if decision.changed:
            record_decision(session, row, decision, paging, now)
        outcomes.append(Outcome(alert_id, decision.changed, decision.message, row.status))
    return outcomes


def _select(session: Session, actor: Actor, alerts: Alerts, now: datetime) -> list[int]:
    if isinstance(alerts, Offered):
        return sorted(_offered(session, alerts.call))
    if not isinstance(alerts, Selection):
        return sorted(set(alerts))
    if alerts is Selection.OPEN:
        return open_alert_ids(session)
    if alerts in (Selection.PAGED_ME, Selection.PAGED_ME_SENT):
        pages = select(OutboxRow.alert_id).where(
            OutboxRow.recipient_kind == "person", OutboxRow.recipient == actor.person
        )
        if alerts is Selection.PAGED_ME_SENT:
            pages = pages.where(OutboxRow.sent_at.is_not(None), OutboxRow.sent_at <= now)
        return list(
            session.scalars(
                select(AlertRow.id)
                .where(AlertRow.status == "triggered", AlertRow.id.in_(pages))
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


def open_alert_ids(session: Session, status: Sequence[str] = ("triggered",)) -> list[int]:
    return list(
        session.scalars(
            select(AlertRow.id).where(AlertRow.status.in_(status)).order_by(AlertRow.id)
        )
    )
