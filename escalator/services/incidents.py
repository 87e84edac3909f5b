"""Incident services: post a status update, link a post-mortem.

Actor in, the context's clock, one transaction. What they record, the daemon's engine
posts on its next tick through its own channels (an update typed on a laptop without
chat credentials still reaches the incident channel).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from escalator.config import Incidents
from escalator.incidents import protocol as incidents
from escalator.incidents.protocol import Schedule
from escalator.incidents.store import incident_state, schedule_of, store_state
from escalator.notify import slack_outbox
from escalator.services.context import Actor, NotFound, ServiceContext, ServiceError
from escalator.store.db import transaction
from escalator.store.tables import IncidentRow, IncidentUpdateRow
from escalator.store.timeline import note

UPDATE_STATUSES = ("IN PROGRESS", "MONITORING", "RESOLVED")


class IncidentError(ServiceError):
    pass


class NoIncident(IncidentError, NotFound):
    pass


@dataclass(frozen=True)
class IncidentDone:
    """What a caller reports back: the incident's ID and channel."""

    incident_id: int
    channel: str
    at: datetime


def post_update(
    ctx: ServiceContext,
    actor: Actor,
    incident_id: int,
    message: str,
    status: str = "IN PROGRESS",
    eta: str | None = None,
) -> IncidentDone:
    """Record a status update; the next reminder counts from now."""
    ctx.check_actor(actor)
    status = status.upper()
    if status not in UPDATE_STATUSES:
        raise IncidentError(f"status must be one of {', '.join(UPDATE_STATUSES)}")
    if not message.strip():
        raise IncidentError("the update has no message")
    schedule = schedule_of(ctx.config.incidents if ctx.config else Incidents())
    with transaction(ctx.factory) as session:
        now = ctx.now(session)
        incident = record_update(session, incident_id, message, actor, status, eta, now, schedule)
        done = IncidentDone(incident_id, incident.channel, now)
    ctx.changed()
    return done


def record_update(
    session: Session,
    alert_id: int,
    message: str,
    actor: Actor,
    status: str,
    eta: str | None,
    now: datetime,
    schedule: Schedule,
) -> IncidentRow:
    """`post_update` inside the caller's transaction; the engine posts it on its next tick."""
    incident = session.get(IncidentRow, alert_id, with_for_update=True)
    if incident is None:
        raise NoIncident(f"alert {alert_id} has no incident (incidents open for critical alerts)")
    session.add(
        IncidentUpdateRow(
            alert_id=alert_id, at=now, author=actor.person, message=message, status=status, eta=eta
        )
    )
    note(session, alert_id, now, "status_update", f"[{status}] {message}", actor.person, actor.via)
    store_state(incident, incidents.status_posted(incident_state(incident), now, schedule), now)
    incident.next_due_at = now
    return incident


def link_postmortem(ctx: ServiceContext, actor: Actor, incident_id: int, url: str) -> IncidentDone:
    """Link the post-mortem of a resolved incident, which closes it."""
    ctx.check_actor(actor)
    if not url.startswith(("http://", "https://")):
        raise IncidentError("the post-mortem link must be an http(s) URL")
    with transaction(ctx.factory) as session:
        now = ctx.now(session)
        incident = session.get(IncidentRow, incident_id, with_for_update=True)
        if incident is None:
            raise NoIncident(f"alert {incident_id} has no incident")
        if incident.status == "open":
            raise IncidentError(
                f"incident #{incident.channel} is still open: resolve it before its post-mortem"
            )
        state = incidents.postmortem_linked(incident_state(incident), url, actor.person, now)
        store_state(incident, state, now)
        note(
            session, incident_id, now, "postmortem", f"post-mortem linked: {url}",
            actor.person, actor.via,
        )
        slack_outbox.postmortem_linked(session, incident_id, url, now)  # archive its channel
        done = IncidentDone(incident_id, incident.channel, now)
    ctx.changed()
    return done
