"""Carrying out the machine's decisions in the store: the one path every input takes.

The webhook, the engine tick, the CLI and the HTTP API all load an alert row, ask
`machine.step` what to do, and hand the decision to `apply_decision`, which writes the new
state, its timeline notes and its outbox rows in the caller's transaction.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from escalator import machine
from escalator.config import Config, Policy, Step
from escalator.durations import to_milliseconds
from escalator.machine import AlertState, CancelPages, Decision, Event, Note, Page
from escalator.roster import Override, Recipient, recipients
from escalator.store.tables import AlertRow, OutboxRow, OverrideRow, PolicyRow, TimelineRow

_STATE_FIELDS = tuple(AlertState.__dataclass_fields__)


def state_of(row: AlertRow) -> AlertState:
    return AlertState(**{name: getattr(row, name) for name in _STATE_FIELDS})


def policy_id(policy: Policy) -> str:
    body = json.dumps(policy.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


class PolicyCache:
    """Parsed policy snapshots by id; snapshots never change, so they never go stale."""

    def __init__(self) -> None:
        self._by_id: dict[str, Policy] = {}

    def get(self, session: Session, pid: str) -> Policy:
        policy = self._by_id.get(pid)
        if policy is None:
            row = session.get(PolicyRow, pid)
            if row is None:
                raise LookupError(f"policy snapshot {pid} missing from the store")
            policy = Policy.model_validate(row.body)
            self._by_id[pid] = policy
        return policy

    def ensure(self, session: Session, name: str, policy: Policy, now: datetime) -> str:
        pid = policy_id(policy)
        # Inserted in every opening transaction, never skipped on the strength of the cache:
        # a transaction that rolled back after inserting it would leave the cache believing
        # a row that does not exist, and every later alert would fail its foreign key.
        # ON CONFLICT DO NOTHING: two replicas (or HA webhook posts) opening the first alert
        # of a new policy at once must not fail one of them on the primary key.
        dialect = session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        session.execute(
            insert(PolicyRow)
            .values(id=pid, name=name, body=policy.model_dump(mode="json"), created_at=now)
            .on_conflict_do_nothing(index_elements=["id"])
        )
        self._by_id.setdefault(pid, policy)
        return pid


@dataclass
class Paging:
    """What the shell needs to turn a Page effect into outbox rows at one moment.

    Overrides may be given as a loader, read on first use: most webhook bodies are repeats
    that page nobody and need not query them. Recipients are remembered per step and time,
    because a tick or a body pages many alerts through the same few steps.
    """

    config: Config | None  # None for acks and resolves, which never page
    methods: frozenset[str]  # delivery methods with a working channel
    overrides: list[Override] | Callable[[], list[Override]] = field(default_factory=list)
    _recipients: dict[tuple[int, datetime], list[Recipient]] = field(
        default_factory=dict, init=False, repr=False
    )

    def current_overrides(self) -> list[Override]:
        if callable(self.overrides):
            self.overrides = self.overrides()
        return self.overrides

    def recipients(self, step: Step, at: datetime) -> list[Recipient]:
        if self.config is None:
            raise RuntimeError("paging needs the configuration")
        # Keyed by identity: steps are frozen members of cached policies, alive as long as
        # this Paging (one tick or one request).
        key = (id(step), at)
        found = self._recipients.get(key)
        if found is None:
            found = recipients(self.config, step, at, self.current_overrides())
            self._recipients[key] = found
        return list(found)

    def reachable(self, step: Step, at: datetime) -> bool:
        return bool(self.recipients(step, at))


def load_overrides(session: Session, now: datetime) -> list[Override]:
    rows = session.scalars(select(OverrideRow).where(OverrideRow.end_at > now))
    return [Override(r.rotation, r.person, r.start_at, r.end_at, r.id) for r in rows]


def note(
    session: Session,
    alert_id: int,
    at: datetime,
    kind: str,
    detail: str,
    actor: str | None = None,
    channel: str | None = None,
    level: int | None = None,
) -> None:
    session.add(TimelineRow(**timeline_row(alert_id, at, kind, detail, actor, channel, level)))


def _deliveries(
    paging: Paging, recipient: Recipient, urgency: str
) -> list[tuple[str, str | None, timedelta]]:
    """(method, address, delay) for each way to reach a recipient; console when none works.

    A channel target goes to the chat webhook configured under its name, else to the generic
    JSON webhook of that name, else to the console. A person gets one row per contact rule
    for the urgency whose method has a channel and an address (the sender bundles and
    rate-limits them, and falls back along this order when one fails).
    """
    assert paging.config is not None
    if recipient.kind == "channel":
        settings = paging.config.channels
        if "chat" in paging.methods and settings.chat and recipient.id in settings.chat.webhooks:
            return [("chat", recipient.id, timedelta(0))]
        if (
            "webhook" in paging.methods
            and settings.webhook
            and recipient.id in settings.webhook.endpoints
        ):
            return [("webhook", recipient.id, timedelta(0))]
        return [("console", f"#{recipient.id}", timedelta(0))]
    person = paging.config.person(recipient.id)
    out: list[tuple[str, str | None, timedelta]] = []
    if person is not None:
        for rule in person.rules.get(urgency, []):
            address = person.address(rule.method)
            if rule.method in paging.methods and (address or rule.method == "console"):
                out.append((rule.method, address, rule.after))
    if not out and "console" in paging.methods:
        out.append(("console", None, timedelta(0)))
    return out


def timeline_row(
    alert_id: int,
    at: datetime,
    kind: str,
    detail: str,
    actor: str | None = None,
    channel: str | None = None,
    level: int | None = None,
) -> dict[str, Any]:
    return {
        "alert_id": alert_id,
        "at": at,
        "kind": kind,
        "detail": detail,
        "actor": actor,
        "channel": channel,
        "level": level,
    }


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
        ways = _deliveries(paging, recipient, effect.step.urgency)
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
        session.execute(insert(TimelineRow.__table__), rows.timeline)
    if rows.outbox:
        session.execute(insert(OutboxRow.__table__), rows.outbox)


def apply_decision(
    session: Session, row: AlertRow, decision: Decision, paging: Paging, now: datetime
) -> None:
    """Write a decision: state, timeline notes, cancelled and new outbox rows."""
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
    from escalator.incident_store import on_decision  # late: it builds on this module

    on_decision(session, row, decision, now)  # incident commander, resolution, SLA response


@dataclass(frozen=True)
class Outcome:
    alert_id: int
    changed: bool
    message: str
    status: str


def act(
    session: Session,
    alert_ids: Iterable[int],
    event: Event,
    paging: Paging,
    policies: PolicyCache,
    now: datetime,
) -> list[Outcome]:
    """Apply a person's event (ack, resolve, escalate) to alerts, locking their rows."""
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
        decision = machine.step(state_of(row), event, now, policy, paging.reachable)
        if decision.changed:
            apply_decision(session, row, decision, paging, now)
        outcomes.append(Outcome(alert_id, decision.changed, decision.message, row.status))
    return outcomes


def open_alert_ids(session: Session, status: Sequence[str] = ("triggered",)) -> list[int]:
    return list(
        session.scalars(
            select(AlertRow.id).where(AlertRow.status.in_(status)).order_by(AlertRow.id)
        )
    )
