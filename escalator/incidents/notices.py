"""Incident notifications: who gets them, their template context, and queueing them as
outbox rows (rendered text in `payload["text"]`, condition NULL so an ack keeps them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    select,
)
from sqlalchemy.orm import Session

from escalator.config import Config, Incidents, Runbook, Target
from escalator.config.durations import format_duration
from escalator.escalation.paging import Paging
from escalator.incidents import protocol as incidents
from escalator.incidents import runbooks
from escalator.incidents.store import (
    Updates,
    incident_state,
    schedule_of,
    store_state,
)
from escalator.incidents.templates import Templates
from escalator.ingest.bulk import insert_rows
from escalator.notify import slack_outbox
from escalator.roster.contacts import deliveries
from escalator.roster.oncall import Recipient, resolve_target
from escalator.store.tables import AlertRow, IncidentRow, IncidentUpdateRow, OutboxRow, TimelineRow
from escalator.store.timeline import note


def time_text(value: datetime | None) -> str:
    return "-" if value is None else f"{value:%Y-%m-%d %H:%M} UTC"


def duration_text(value: timedelta) -> str:
    return format_duration(timedelta(seconds=max(int(value.total_seconds()), 0)))


def runbook_for(config: Config, alertname: str) -> Runbook | None:
    return runbooks.find(config.runbooks, alertname)


_STORY_KINDS = (
    "acknowledged",
    "commander",
    "paged",
    "status_update",
    "severity_raised",
    "escalated_manually",
    "ack_expired",
    "sla_breached",
    "escalation_trigger",
)


@dataclass
class Notifier:
    """Everything needed to turn due notices into outbox rows at one moment."""

    config: Config
    paging: Paging
    templates: Templates
    now: datetime
    # Notices queued and not yet inserted: `flush` writes them in one statement. As ORM
    # objects, the commit's unit of work cost more than rendering them.
    outbox: list[dict[str, Any]] = field(default_factory=list)

    @property
    def settings(self) -> Incidents:
        return self.config.incidents

    def ack_hint(self, kind: str, method: str, alert_id: int | None) -> str:
        if kind == "multiple_critical":
            return (
                "Reply ACK ALL to acknowledge all"
                if method == "sms"
                else ("acknowledge all: escalator ack --all")
            )
        if kind == "initial":
            if method == "sms":
                return f"Reply ACK {alert_id} to take command"
            return f"take command: escalator ack {alert_id}"
        if kind == "update_reminder":
            return f'post an update: escalator update {alert_id} "..."'
        if kind in ("resolution", "postmortem_reminder"):
            return f"post-mortem: escalator postmortem {alert_id} --link URL"
        return f"timeline: escalator show {alert_id}"

    def subject(self, kind: str, ctx: dict[str, Any]) -> str:
        if kind == "multiple_critical":
            return f"[CRITICAL] {ctx['count']} critical alerts open at once"
        channel, name = ctx["incident"]["channel"], ctx["alert"]["alertname"]
        return {
            "initial": f"[INCIDENT] {ctx['alert']['severity']} {name} {channel}",
            "status_update": f"[INCIDENT UPDATE] {channel} {name}: "
            f"{ctx.get('update', {}).get('status', '')}",
            "stakeholder_update": f"[INCIDENT STATUS] {channel} {name}: "
            f"{ctx['incident']['status_word']}",
            "resolution": f"[RESOLVED] {channel} {name} after "
            f"{ctx.get('resolution', {}).get('duration', '')}",
            "update_reminder": f"[ACTION] status update due for {channel} {name}",
            "postmortem_reminder": f"[ACTION] post-mortem "
            f"{'overdue' if ctx.get('postmortem', {}).get('overdue') else 'due'} for {channel}",
        }[kind]

    def queue(
        self,
        session: Session,
        alert_id: int | None,
        kind: str,
        ctx: dict[str, Any],
        recipients: Sequence[Recipient],
        emails: Sequence[str] = (),
        urgency: str = "notify",
    ) -> int:
        """One outbox row per recipient and contact method, with the text rendered for it."""
        queued = 0
        subject = self.subject(kind, ctx)
        ways: list[tuple[Recipient, str, str | None, timedelta]] = []
        for recipient in recipients:
            for method, address, delay in deliveries(
                self.paging.config,  # type: ignore[arg-type]  # recipients exist only with one
                self.paging.methods,
                recipient,
                urgency,  # type: ignore[arg-type]  # page or notify, from the notice's kind
            ):
                ways.append((recipient, method, address, delay))
        for address in emails:
            method = "email" if "email" in self.paging.methods else "console"
            ways.append((Recipient("email", address, "stakeholder"), method, address, timedelta(0)))
        # The console is one terminal: a notice is printed once for all its console
        # recipients (named in one line), not once per person.
        console: dict[timedelta, list[Recipient]] = {}
        for recipient, method, address, delay in ways:
            if method == "console":
                console.setdefault(delay, []).append(recipient)
                continue
            self._add(alert_id, kind, ctx, subject, urgency, recipient, method, address)
            queued += 1
        for delay, group in console.items():
            names = [_display(r) for r in group]
            first = group[0] if len(group) == 1 else Recipient("group", ", ".join(names), "")
            extra = {"recipients": names} if len(group) > 1 else {}
            self._add(alert_id, kind, ctx, subject, urgency, first, "console", None, delay, extra)
            queued += 1
        # The incident's own Slack channel gets its share (escalator.notify.slack_outbox).
        queued += slack_outbox.incident_notice(session, self, alert_id, kind, ctx)
        return queued

    def _add(
        self,
        alert_id: int | None,
        kind: str,
        ctx: dict[str, Any],
        subject: str,
        urgency: str,
        recipient: Recipient,
        method: str,
        address: str | None,
        delay: timedelta = timedelta(0),
        extra: dict[str, Any] | None = None,
    ) -> None:
        """One outbox row with the notice rendered for its method."""
        hint = self.ack_hint(kind, method, alert_id)
        text = self.templates.render(kind, method, {**ctx, "ack": hint}, reserve=hint)
        self.outbox.append(
            {
                "alert_id": alert_id,
                "recipient_kind": recipient.kind,
                "recipient": recipient.id[:200],
                "method": method,
                "address": address,
                "level": None,
                "urgency": urgency,
                "condition": None,
                "reason": f"incident {kind}",
                "payload": {
                    "kind": kind,
                    "text": text,
                    "subject": subject,
                    "ack_hint": hint,
                    "via": recipient.via,
                    **(extra or {}),
                },
                "status": "pending",
                "due_at": self.now + delay,
                "attempts": 0,
                "lease_until": None,
                "leased_by": None,
                "provider_id": None,
                "last_error": None,
                "created_at": self.now,
                "sent_at": None,
            }
        )

    def flush(self, session: Session) -> None:
        """Insert the queued notices, all at once (escalator.ingest.bulk)."""
        insert_rows(session, OutboxRow.__table__, self.outbox)
        self.outbox.clear()

    def expand(self, targets: Sequence[Target]) -> list[Recipient]:
        seen: set[tuple[str, str]] = set()
        out: list[Recipient] = []
        for target in targets:
            for r in resolve_target(self.config, target, self.now, self.paging.overrides):
                if (r.kind, r.id) not in seen:
                    seen.add((r.kind, r.id))
                    out.append(r)
        return out

    def channel(self) -> list[Recipient]:
        return [Recipient("channel", self.settings.channel, "incident channel")]

    def stakeholders(self) -> list[Recipient]:
        return self.expand(self.settings.stakeholders)

    def commander(self, incident: IncidentRow) -> list[Recipient]:
        """The commander if they are a configured person, else the incident channel."""
        who = incident.commander
        if who is not None and self.config.person(who) is not None:
            return [Recipient("person", who, "incident commander")]
        return self.channel()

    # Rendering context ----------------------------------------------------------------

    def context(
        self, incident: IncidentRow, alert: AlertRow, latest: IncidentUpdateRow | None
    ) -> dict[str, Any]:
        """`latest`: the incident's latest status update, if any."""
        runbook = runbook_for(self.config, alert.alertname)
        impact = alert.annotations.get("impact")
        impact_lines = [impact] if impact else (runbook.impact if runbook else [])
        eta = (latest.eta if latest is not None else None) or alert.annotations.get("eta")
        status_word = {
            "open": "INVESTIGATING" if alert.status == "acknowledged" else "PAGING ON-CALL",
            "resolved": "RESOLVED",
            "closed": "CLOSED",
        }[incident.status]
        current = (
            f"acknowledged by {alert.acked_by}, investigating"
            if alert.status == "acknowledged"
            else (
                "resolved" if alert.status == "resolved" else "paging on-call, not yet acknowledged"
            )
        )
        state = incident_state(incident)
        service = self.settings.service
        if alert.labels.get("service"):
            service += f" ({alert.labels['service']})"
        return {
            "service": service,
            "now": time_text(self.now),
            "ack": self.ack_hint("initial", "console", alert.id),
            "incident": {
                "id": alert.id,
                "channel": f"#{incident.channel}",
                "opened": time_text(incident.opened_at),
                "commander": incident.commander,
                "status": incident.status,
                "status_word": status_word,
                "duration": duration_text(incidents.duration(state, self.now)),
                "update_every": duration_text(self.settings.status_update_every),
                "last_update": time_text(incident.last_update_at)
                if incident.last_update_at
                else None,
            },
            "alert": {
                "id": alert.id,
                "alertname": alert.alertname,
                "severity": (alert.severity or "none").upper(),
                "summary": alert.annotations.get("summary", ""),
                "description": alert.annotations.get("description", ""),
                "status": alert.status,
                "level": alert.level,
            },
            "impact": impact_lines or ["being assessed"],
            "current_status": current,
            "eta": eta or "unknown, next estimate with the next update",
            # The alert's own `runbook_url` wins, as on its pages; the configured runbook
            # adds its title and immediate actions.
            "runbook": None
            if runbook is None and not alert.annotations.get("runbook_url")
            else {
                "url": alert.annotations.get("runbook_url") or (runbook.url if runbook else ""),
                "title": runbook.title if runbook else None,
                "immediate_actions": runbook.immediate_actions if runbook else [],
            },
            "next_update": time_text(self.now + self.settings.status_update_every),
        }

    def story(self, session: Session, alert_id: int, since: datetime) -> list[dict[str, str]]:
        rows = session.scalars(
            select(TimelineRow)
            .where(
                TimelineRow.alert_id == alert_id,
                TimelineRow.at > since,
                TimelineRow.kind.in_(_STORY_KINDS),
            )
            .order_by(TimelineRow.id)
        ).all()
        return [{"at": f"{r.at:%H:%M}", "text": r.detail} for r in rows[-10:]]


def _display(recipient: Recipient) -> str:
    """How the console names a recipient: `#incidents`, `alice`, `product@credlink.example`."""
    return f"#{recipient.id}" if recipient.kind == "channel" else recipient.id


def post_incident(
    session: Session,
    n: Notifier,
    incident: IncidentRow,
    alert: AlertRow,
    batch: Updates,
) -> int:
    """Queue what `incident` owes now. `batch`: the status updates of the tick's incidents,
    read once for all of them (`updates_of`)."""
    queued = 0
    latest = batch.latest.get(alert.id)
    ctx = n.context(incident, alert, latest)
    # Status updates typed with `escalator update` since the last tick, oldest first.
    updates = batch.unposted.get(alert.id, [])
    schedule = schedule_of(n.settings)
    state = incident_state(incident)
    if state.postmortem_due_at is not None and state.resolved_at is not None:
        # The ack/resolve hook has no config; apply the configured post-mortem window here.
        want = state.resolved_at + schedule.postmortem_within
        if want != state.postmortem_due_at and state.resolution_sent_at is None:
            state = replace(
                state,
                postmortem_due_at=want,
                next_postmortem_reminder_at=min(
                    state.resolved_at + schedule.postmortem_reminder_every, want
                ),
            )
    state, kinds = incidents.due(state, n.now, schedule)
    if "initial" in kinds:
        announce = n.channel() + n.stakeholders()
        queued += n.queue(
            session, alert.id, "initial", ctx, announce, n.settings.stakeholder_emails
        )
    for update in updates:
        update.posted_at = n.now
        uctx = {
            **ctx,
            "update": {
                "message": update.message,
                "author": update.author,
                "status": update.status,
                "eta": update.eta,
                "at": time_text(update.at),
            },
            "progress": [],
        }
        queued += n.queue(session, alert.id, "status_update", uctx, n.channel())
    for kind in kinds:
        if kind == "initial":
            continue
        if kind == "update_reminder":
            queued += n.queue(session, alert.id, kind, ctx, n.commander(incident))
        elif kind == "stakeholder_update":
            since = max(incident.opened_at, n.now - n.settings.stakeholder_update_every)
            sctx = {
                **ctx,
                "since": time_text(since),
                "timeline": n.story(session, alert.id, since),
                "next_update": time_text(n.now + n.settings.stakeholder_update_every),
            }
            targets = n.stakeholders() or n.channel()
            queued += n.queue(session, alert.id, kind, sctx, targets, n.settings.stakeholder_emails)
        elif kind in ("resolution", "postmortem_reminder"):
            assert state.resolved_at is not None and state.postmortem_due_at is not None
            last = latest
            rctx = {
                **ctx,
                "resolution": {
                    "at": time_text(state.resolved_at),
                    "by": state.resolved_by or "unknown",
                    "duration": duration_text(incidents.duration(state, n.now)),
                    "root_cause": [
                        alert.annotations.get("root_cause")
                        or "to be established in the post-mortem"
                    ],
                    "actions": [last.message if last is not None else f"{alert.alertname} cleared"],
                },
                "postmortem": {
                    "due": time_text(state.postmortem_due_at),
                    "overdue": state.postmortem_due_at <= n.now,
                    "late": duration_text(n.now - state.postmortem_due_at),
                    "remaining": duration_text(state.postmortem_due_at - n.now),
                },
            }
            if kind == "resolution":
                queued += n.queue(
                    session,
                    alert.id,
                    kind,
                    rctx,
                    n.channel() + n.stakeholders(),
                    n.settings.stakeholder_emails,
                )
            else:
                queued += n.queue(session, alert.id, kind, rctx, n.commander(incident))
                if rctx["postmortem"]["overdue"]:
                    note(
                        session,
                        alert.id,
                        n.now,
                        "postmortem_overdue",
                        f"post-mortem overdue by {rctx['postmortem']['late']}",
                    )
    store_state(incident, state, n.now)
    return queued
