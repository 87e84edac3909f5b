"""The shell around `incidents`: tables, hooks the alert paths call, and the incident tick.

Hooks only change state in the caller's transaction (an incident opened, a commander
named, a resolution recorded); every notification is queued by `tick_incidents`, which
runs in the engine with the daemon's real channels. So an ack typed on a laptop with no
chat credentials still produces a chat message, and a crash between the state change and
the message loses nothing: `next_due_at` says what is owed.

Notifications are ordinary outbox rows (`reason` = "incident <kind>", `condition` NULL so
an ack does not cancel them, the rendered text in `payload["text"]`), sent by the same
sender as pages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from escalator.escalation.apply import apply_decision
from escalator.escalation.machine import Decision, Note
from escalator.incidents import protocol as incidents
from escalator.incidents.protocol import IncidentState, Schedule
from escalator.ingest.bulk import insert_rows
from escalator.notify import slack_outbox
from escalator.store.tables import (
    AlertRow,
    AlertSlaRow,
    IncidentRow,
    IncidentUpdateRow,
    TimelineRow,
)
from escalator.store.timeline import note, timeline_row

if TYPE_CHECKING:
    from escalator.config import Config, Incidents
    from escalator.escalation.paging import Paging

# Tables ---------------------------------------------------------------------------------


_STATE_FIELDS = tuple(f.name for f in fields(IncidentState))


def schedule_of(settings: Incidents) -> Schedule:
    return Schedule(
        status_update_every=settings.status_update_every,
        stakeholder_update_every=settings.stakeholder_update_every,
        postmortem_within=settings.postmortem_within,
        postmortem_reminder_every=settings.postmortem_reminder_every,
        postmortem_stop_after=settings.postmortem_stop_after,
    )


def incident_state(row: IncidentRow) -> IncidentState:
    return IncidentState(**{name: getattr(row, name) for name in _STATE_FIELDS})


def latest_update(session: Session, alert_id: int) -> IncidentUpdateRow | None:
    """The incident's most recent status update, if any (its ETA and text feed notices)."""
    return session.scalars(
        select(IncidentUpdateRow)
        .where(IncidentUpdateRow.alert_id == alert_id)
        .order_by(IncidentUpdateRow.id.desc())
        .limit(1)
    ).first()


@dataclass
class Updates:
    """The status updates a batch of incidents' notices read: each one's latest (its ETA
    and text) and those not yet posted, oldest first."""

    latest: dict[int, IncidentUpdateRow] = field(default_factory=dict)
    unposted: dict[int, list[IncidentUpdateRow]] = field(default_factory=dict)


def updates_of(session: Session, alert_ids: Sequence[int]) -> Updates:
    """`Updates` for these incidents in one query, where asking per incident cost two
    queries each: a storm opens hundreds of incidents per engine tick."""
    out = Updates()
    if not alert_ids:
        return out
    of_batch = IncidentUpdateRow.alert_id.in_(alert_ids)
    newest = (
        select(func.max(IncidentUpdateRow.id)).where(of_batch).group_by(IncidentUpdateRow.alert_id)
    )
    rows = session.scalars(
        select(IncidentUpdateRow)
        .where(
            or_(IncidentUpdateRow.id.in_(newest), of_batch & IncidentUpdateRow.posted_at.is_(None))
        )
        .order_by(IncidentUpdateRow.id)
    ).all()
    for row in rows:  # in id order: the last one seen of an incident is its latest
        out.latest[row.alert_id] = row
        if row.posted_at is None:
            out.unposted.setdefault(row.alert_id, []).append(row)
    return out


def store_state(row: IncidentRow, state: IncidentState, now: datetime) -> None:
    for name in _STATE_FIELDS:
        setattr(row, name, getattr(state, name))
    row.next_due_at = incidents.next_due_at(state)
    row.updated_at = now


# Hooks called by ingest and apply_decision ---------------------------------------------


@dataclass(frozen=True)
class OpenedAlert:
    """What the incident hooks need of a just-opened alert (no ORM row in the bulk path)."""

    id: int
    severity: str | None
    policy_name: str


def alerts_opened(
    session: Session, opened: list[OpenedAlert], config: Config, now: datetime
) -> None:
    """New alerts (one webhook body): record their response-time SLAs and open an incident
    for each critical one, with one statement per table whatever the body's size.

    Every incident opened at the same moment starts in the same state but for its id and
    channel, so the state is computed once; ON CONFLICT DO NOTHING keeps this idempotent
    for an alert that has one already (a maintenance release of an alert that had one).
    """
    slas = []
    for alert in opened:
        policy = config.policies.get(alert.policy_name)
        if policy is not None and policy.response_time is not None:
            slas.append(
                {
                    "alert_id": alert.id,
                    "severity": alert.severity,
                    "response_seconds": int(policy.response_time.total_seconds()),
                    "due_at": now + policy.response_time,
                    "responded_at": None,
                    "responded_by": None,
                    "breached_at": None,
                }
            )
    if slas:
        insert_rows(session, AlertSlaRow.__table__, slas)
    settings = config.incidents
    if not settings.enabled:
        return
    ids = [a.id for a in opened if a.severity in settings.severities]
    if not ids:
        return
    template = incidents.opened(0, now, settings.channel_prefix, schedule_of(settings))
    row = {name: getattr(template, name) for name in _STATE_FIELDS}
    row.update(next_due_at=incidents.next_due_at(template), updated_at=now)
    prefix = settings.channel_prefix
    # The channel's time part once for the body, not a strftime per incident.
    stem = incidents.channel_name(prefix, now, 0).removesuffix("0")
    rows = [{**row, "alert_id": i, "channel": f"{stem}{i}"} for i in ids]
    created = insert_rows(
        session, IncidentRow.__table__, rows, conflict=("alert_id",),
        returning=("alert_id", "channel"),
    )  # fmt: skip
    notes = [
        timeline_row(i, now, "incident_opened", f"incident #{channel} declared")
        for _, (i, channel) in created
    ]
    insert_rows(session, TimelineRow.__table__, notes)


def maybe_open_incident(
    session: Session, row: AlertRow | OpenedAlert, config: Config, now: datetime
) -> None:
    settings = config.incidents
    if not settings.enabled or row.severity not in settings.severities:
        return
    if session.get(IncidentRow, row.id) is not None:
        return
    state = incidents.opened(row.id, now, settings.channel_prefix, schedule_of(settings))
    incident = IncidentRow(alert_id=row.id)
    store_state(incident, state, now)
    session.add(incident)
    note(session, row.id, now, "incident_opened", f"incident #{state.channel} declared")


def on_decision(session: Session, row: AlertRow, decision: Decision, now: datetime) -> None:
    """After a machine decision is written: commander on ack, resolution on resolve."""
    for effect in decision.effects:
        if not isinstance(effect, Note) or effect.kind not in ("acknowledged", "resolved"):
            continue
        who = effect.actor or "unknown"
        sla = session.get(AlertSlaRow, row.id)
        if sla is not None and sla.responded_at is None:
            sla.responded_at, sla.responded_by = now, who
            if sla.breached_at is None and incidents.sla_breached(sla.due_at, now, now):
                sla.breached_at = sla.due_at
        incident = session.get(IncidentRow, row.id, with_for_update=True)
        if incident is None:
            continue
        state = incident_state(incident)
        if effect.kind == "acknowledged":
            new = incidents.acknowledged(state, who, now)
            if new.commander != state.commander:
                note(session, row.id, now, "commander", f"{who} is the incident commander", who)
        else:
            by = f"{who} via {effect.via}" if effect.via and effect.via != who else who
            # The hook has no config (a CLI resolve passes none): the post-mortem window is
            # the default here, and the tick applies the configured one before announcing it.
            new = incidents.resolved(state, by, now, Schedule())
        store_state(incident, new, now)


# Status updates and post-mortems (CLI) -------------------------------------------------


# The incident tick --------------------------------------------------------------------


def record_decision(
    session: Session, row: AlertRow, decision: Decision, paging: Paging, now: datetime
) -> None:
    """Write a machine decision and its incident consequences in the caller's transaction:
    the one path every input (tick, webhook, person) takes after `machine.step`."""
    apply_decision(session, row, decision, paging, now)
    on_decision(session, row, decision, now)  # incident commander, resolution, SLA response
    slack_outbox.on_decision(session, row, decision, paging, now)  # Slack cards kept current
