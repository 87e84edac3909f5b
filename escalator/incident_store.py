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
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    func,
    insert,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from escalator import incidents, machine, runbooks
from escalator.alerts import Paging, PolicyCache, _deliveries, apply_decision, note, state_of
from escalator.config import Config, Incidents, Runbook, Target
from escalator.durations import format_duration
from escalator.incidents import Episode, IncidentState, Schedule
from escalator.machine import Decision, Note, Tick
from escalator.roster import Recipient, resolve_target
from escalator.store.db import transaction
from escalator.store.tables import AlertRow, Base, Id, OutboxRow, TimelineRow
from escalator.templates import Templates

# Tables ---------------------------------------------------------------------------------


class IncidentRow(Base):
    __tablename__ = "incidents"
    __table_args__ = (
        Index("ix_incidents_next_due_at", "next_due_at"),
        Index("ix_incidents_postmortem", "status", "postmortem_due_at"),
    )
    alert_id: Mapped[int] = mapped_column(
        Id, ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True
    )
    channel: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20))
    opened_at: Mapped[datetime]
    commander: Mapped[str | None] = mapped_column(String(200))
    commander_at: Mapped[datetime | None]
    initial_sent_at: Mapped[datetime | None]
    last_update_at: Mapped[datetime | None]
    next_reminder_at: Mapped[datetime | None]
    next_stakeholder_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(200))
    resolution_sent_at: Mapped[datetime | None]
    postmortem_due_at: Mapped[datetime | None]
    postmortem_url: Mapped[str | None] = mapped_column(Text)
    postmortem_by: Mapped[str | None] = mapped_column(String(200))
    postmortem_at: Mapped[datetime | None]
    next_postmortem_reminder_at: Mapped[datetime | None]
    next_due_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class IncidentUpdateRow(Base):
    """A status update from `escalator update`; `posted_at` is set once the engine queued it."""

    __tablename__ = "incident_updates"
    __table_args__ = (Index("ix_incident_updates_alert", "alert_id", "id"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(Id, ForeignKey("incidents.alert_id", ondelete="CASCADE"))
    at: Mapped[datetime]
    author: Mapped[str] = mapped_column(String(200))
    message: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20))
    eta: Mapped[str | None] = mapped_column(String(200))
    posted_at: Mapped[datetime | None]


class AlertSlaRow(Base):
    """The response-time SLA of one alert: due when, answered when and by whom, breached?"""

    __tablename__ = "alert_slas"
    __table_args__ = (Index("ix_alert_slas_open", "responded_at", "breached_at", "due_at"),)
    alert_id: Mapped[int] = mapped_column(
        Id, ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True
    )
    severity: Mapped[str | None] = mapped_column(String(50))
    response_seconds: Mapped[int] = mapped_column(Integer)
    due_at: Mapped[datetime]
    responded_at: Mapped[datetime | None]
    responded_by: Mapped[str | None] = mapped_column(String(200))
    breached_at: Mapped[datetime | None]


class AlertAliasRow(Base):
    """Another Alertmanager occurrence (fingerprint, startsAt) tracked by an existing alert:
    the critical twin of a warning whose severity rose. The alert resolves only when every
    one of its occurrences has."""

    __tablename__ = "alert_aliases"
    __table_args__ = (Index("ix_alert_aliases_alert", "alert_id"),)
    fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    starts_at: Mapped[datetime] = mapped_column(primary_key=True)
    alert_id: Mapped[int] = mapped_column(Id, ForeignKey("alerts.id", ondelete="CASCADE"))
    severity: Mapped[str | None] = mapped_column(String(50))
    resolved_at: Mapped[datetime | None]


class TriggerEpisodeRow(Base):
    """Memory of an escalation trigger between ticks, so it pages once per episode."""

    __tablename__ = "trigger_episodes"
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    active: Mapped[bool] = mapped_column(Boolean)
    since: Mapped[datetime | None]
    alert_ids: Mapped[list[int]] = mapped_column(JSON)
    episodes: Mapped[int]
    updated_at: Mapped[datetime]


MULTIPLE_CRITICAL = "multiple_critical"
_NAMED = 50  # alerts named in one multiple-critical page; the rest are counted
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


def _store_state(row: IncidentRow, state: IncidentState, now: datetime) -> None:
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
    """New alerts (one webhook body): record their response-time SLAs with one insert;
    open an incident for each critical one."""
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
        session.execute(insert(AlertSlaRow.__table__), slas)
    for alert in opened:
        _maybe_open_incident(session, alert, config, now)


def _maybe_open_incident(
    session: Session, row: AlertRow | OpenedAlert, config: Config, now: datetime
) -> None:
    settings = config.incidents
    if not settings.enabled or row.severity not in settings.severities:
        return
    if session.get(IncidentRow, row.id) is not None:
        return
    state = incidents.opened(row.id, now, settings.channel_prefix, schedule_of(settings))
    incident = IncidentRow(alert_id=row.id)
    _store_state(incident, state, now)
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
        _store_state(incident, new, now)


def aliased_row(
    session: Session, row: AlertRow | None, fingerprint: str, starts_at: datetime, now: datetime
) -> tuple[AlertRow | None, bool]:
    """For a `resolved` entry: (the alert it belongs to, hold it open?).

    An alert that absorbed a severity rise has two occurrences; it resolves when the last
    of them clears, so "critical cleared, still warning" keeps it open (and noted).
    """
    alias = session.get(AlertAliasRow, (fingerprint, starts_at))
    if alias is None:
        return row, False
    if alias.resolved_at is None:
        alias.resolved_at = now
    target = row if row is not None else session.get(AlertRow, alias.alert_id)
    if target is None or target.status == "resolved":
        return target, False
    pending = list(
        session.scalars(
            select(AlertAliasRow).where(
                AlertAliasRow.alert_id == target.id, AlertAliasRow.resolved_at.is_(None)
            )
        )
    )
    if pending:
        still = ", ".join(f"{a.severity or '?'} ({a.fingerprint})" for a in pending)
        note(
            session,
            target.id,
            now,
            "occurrence_cleared",
            f"{alias.severity or '?'} occurrence {fingerprint} cleared; still firing: {still}",
            "alertmanager",
            "alertmanager",
        )
        return target, True
    return target, False


def absorb_severity_rise(
    session: Session,
    fingerprint: str,
    starts_at: datetime,
    labels: dict[str, str],
    annotations: dict[str, str],
    config: Config,
    paging: Paging,
    policies: PolicyCache,
    now: datetime,
) -> bool:
    """True when a new firing occurrence belongs to an existing alert (nothing to open).

    Either it is a known alias (a repeat of an absorbed critical twin), or it is the same
    problem as an open alert (same alertname and every label but `severity`) with a higher
    severity: then that alert moves to the new policy *without restarting its clock*
    (`clock_base` stays), levels already due under the new policy fire at once, and the
    rise is on its timeline.
    """
    if session.get(AlertAliasRow, (fingerprint, starts_at)) is not None:
        return True
    severity = labels.get("severity")
    identity = incidents.labels_without_severity(labels)
    candidates = session.scalars(
        select(AlertRow)
        .where(
            AlertRow.identity == incidents.alert_identity(labels),
            AlertRow.status != "resolved",
        )
        .order_by(AlertRow.id)
        .with_for_update()
    )
    row = next(
        (
            r
            for r in candidates
            if incidents.labels_without_severity(r.labels) == identity
            and incidents.is_severity_rise(r.severity, severity)
        ),
        None,
    )
    if row is None:
        return False
    name = config.route(labels)
    if name is None:
        return False
    policy = config.policies[name]
    pid = policies.ensure(session, name, policy, now)
    if session.get(AlertAliasRow, (row.fingerprint, row.starts_at)) is None:
        session.add(
            AlertAliasRow(
                fingerprint=row.fingerprint,
                starts_at=row.starts_at,
                alert_id=row.id,
                severity=row.severity,
            )
        )
    session.add(
        AlertAliasRow(
            fingerprint=fingerprint, starts_at=starts_at, alert_id=row.id, severity=severity
        )
    )
    old_severity, old_policy = row.severity, row.policy_name
    row.labels, row.annotations = labels, annotations
    row.severity, row.policy_name, row.policy_id = severity, name, pid
    note(
        session,
        row.id,
        now,
        "severity_raised",
        f"user impact increasing: severity {old_severity} -> {severity} (occurrence "
        f"{fingerprint}); policy {old_policy} -> {name}, clock kept from "
        f"{row.clock_base:%Y-%m-%d %H:%M:%S} UTC",
        "alertmanager",
        "alertmanager",
    )
    # Walk the new policy from its first step on the old clock: every level already due
    # under it fires now (each with its condition checked), the rest at their usual times.
    state = replace(state_of(row), next_step=0, level=-1, repeats_done=0)
    decision = machine.step(state, Tick(), now, policy, paging.reachable)
    apply_decision(session, row, decision, paging, now)
    sla = session.get(AlertSlaRow, row.id)
    if policy.response_time is not None:
        due_at = now + policy.response_time
        if sla is None:
            session.add(
                AlertSlaRow(
                    alert_id=row.id,
                    severity=severity,
                    response_seconds=int(policy.response_time.total_seconds()),
                    due_at=due_at,
                )
            )
        elif sla.responded_at is None and sla.breached_at is None:
            sla.severity = severity
            sla.response_seconds = int(policy.response_time.total_seconds())
            sla.due_at = min(sla.due_at, due_at)
    _maybe_open_incident(session, row, config, now)
    return True


# Status updates and post-mortems (CLI) -------------------------------------------------


class IncidentError(Exception):
    pass


def post_update(
    session: Session,
    alert_id: int,
    message: str,
    author: str,
    status: str,
    eta: str | None,
    now: datetime,
    schedule: Schedule,
) -> IncidentRow:
    """Record a status update; the engine posts it on its next tick."""
    incident = session.get(IncidentRow, alert_id, with_for_update=True)
    if incident is None:
        raise IncidentError(
            f"alert {alert_id} has no incident (incidents open for critical alerts)"
        )
    session.add(
        IncidentUpdateRow(
            alert_id=alert_id, at=now, author=author, message=message, status=status, eta=eta
        )
    )
    note(session, alert_id, now, "status_update", f"[{status}] {message}", author, "cli")
    _store_state(incident, incidents.status_posted(incident_state(incident), now, schedule), now)
    incident.next_due_at = now
    return incident


def link_postmortem(
    session: Session, alert_id: int, url: str, by: str, now: datetime
) -> IncidentRow:
    incident = session.get(IncidentRow, alert_id, with_for_update=True)
    if incident is None:
        raise IncidentError(f"alert {alert_id} has no incident")
    if incident.status == "open":
        raise IncidentError(
            f"incident #{incident.channel} is still open: resolve it before its post-mortem"
        )
    _store_state(incident, incidents.postmortem_linked(incident_state(incident), url, by, now), now)
    note(session, alert_id, now, "postmortem", f"post-mortem linked: {url}", by, "cli")
    return incident


def postmortems(session: Session, now: datetime, overdue_only: bool) -> list[dict[str, Any]]:
    """Post-mortems not yet linked (overdue ones first), for `escalator postmortems`."""
    rows = session.execute(
        select(IncidentRow, AlertRow)
        .join(AlertRow, AlertRow.id == IncidentRow.alert_id)
        .where(IncidentRow.status == "resolved", IncidentRow.postmortem_at.is_(None))
        .order_by(IncidentRow.postmortem_due_at)
    ).all()
    out = []
    for incident, alert in rows:
        overdue = incidents.is_overdue(incident_state(incident), now)
        if overdue_only and not overdue:
            continue
        assert incident.postmortem_due_at is not None
        out.append(
            {
                "id": incident.alert_id,
                "channel": f"#{incident.channel}",
                "alertname": alert.alertname,
                "commander": incident.commander,
                "resolved_at": _iso(incident.resolved_at),
                "due_at": _iso(incident.postmortem_due_at),
                "overdue": overdue,
                "overdue_by": format_duration(now - incident.postmortem_due_at)
                if overdue
                else None,
            }
        )
    return out


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


# The incident tick --------------------------------------------------------------------


def _t(value: datetime | None) -> str:
    return "-" if value is None else f"{value:%Y-%m-%d %H:%M} UTC"


def _d(value: timedelta) -> str:
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
            for method, address, delay in _deliveries(self.paging, recipient, urgency):
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
            self._add(session, alert_id, kind, ctx, subject, urgency, recipient, method, address)
            queued += 1
        for delay, group in console.items():
            names = [_display(r) for r in group]
            first = group[0] if len(group) == 1 else Recipient("group", ", ".join(names), "")
            extra = {"recipients": names} if len(group) > 1 else {}
            self._add(
                session, alert_id, kind, ctx, subject, urgency, first, "console", None, delay, extra
            )
            queued += 1
        return queued

    def _add(
        self,
        session: Session,
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
        session.add(
            OutboxRow(
                alert_id=alert_id,
                recipient_kind=recipient.kind,
                recipient=recipient.id[:200],
                method=method,
                address=address,
                level=None,
                urgency=urgency,
                condition=None,
                reason=f"incident {kind}",
                payload={
                    "kind": kind,
                    "text": text,
                    "subject": subject,
                    "ack_hint": hint,
                    "via": recipient.via,
                    **(extra or {}),
                },
                status="pending",
                due_at=self.now + delay,
                attempts=0,
                created_at=self.now,
            )
        )

    def expand(self, targets: Sequence[Target]) -> list[Recipient]:
        seen: set[tuple[str, str]] = set()
        out: list[Recipient] = []
        for target in targets:
            for r in resolve_target(self.config, target, self.now, self.paging.current_overrides()):
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

    def context(self, session: Session, incident: IncidentRow, alert: AlertRow) -> dict[str, Any]:
        runbook = runbook_for(self.config, alert.alertname)
        impact = alert.annotations.get("impact")
        impact_lines = [impact] if impact else (runbook.impact if runbook else [])
        latest = session.scalars(
            select(IncidentUpdateRow)
            .where(IncidentUpdateRow.alert_id == alert.id)
            .order_by(IncidentUpdateRow.id.desc())
            .limit(1)
        ).first()
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
            "now": _t(self.now),
            "ack": self.ack_hint("initial", "console", alert.id),
            "incident": {
                "id": alert.id,
                "channel": f"#{incident.channel}",
                "opened": _t(incident.opened_at),
                "commander": incident.commander,
                "status": incident.status,
                "status_word": status_word,
                "duration": _d(incidents.duration(state, self.now)),
                "update_every": _d(self.settings.status_update_every),
                "last_update": _t(incident.last_update_at) if incident.last_update_at else None,
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
            "next_update": _t(self.now + self.settings.status_update_every),
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


def _post_incident(session: Session, n: Notifier, incident: IncidentRow, alert: AlertRow) -> int:
    queued = 0
    ctx = n.context(session, incident, alert)
    # Status updates typed with `escalator update` since the last tick, oldest first.
    updates = session.scalars(
        select(IncidentUpdateRow)
        .where(IncidentUpdateRow.alert_id == alert.id, IncidentUpdateRow.posted_at.is_(None))
        .order_by(IncidentUpdateRow.id)
    ).all()
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
                "at": _t(update.at),
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
                "since": _t(since),
                "timeline": n.story(session, alert.id, since),
                "next_update": _t(n.now + n.settings.stakeholder_update_every),
            }
            targets = n.stakeholders() or n.channel()
            queued += n.queue(session, alert.id, kind, sctx, targets, n.settings.stakeholder_emails)
        elif kind in ("resolution", "postmortem_reminder"):
            assert state.resolved_at is not None and state.postmortem_due_at is not None
            last = session.scalars(
                select(IncidentUpdateRow)
                .where(IncidentUpdateRow.alert_id == alert.id)
                .order_by(IncidentUpdateRow.id.desc())
                .limit(1)
            ).first()
            rctx = {
                **ctx,
                "resolution": {
                    "at": _t(state.resolved_at),
                    "by": state.resolved_by or "unknown",
                    "duration": _d(incidents.duration(state, n.now)),
                    "root_cause": [
                        alert.annotations.get("root_cause")
                        or "to be established in the post-mortem"
                    ],
                    "actions": [last.message if last is not None else f"{alert.alertname} cleared"],
                },
                "postmortem": {
                    "due": _t(state.postmortem_due_at),
                    "overdue": state.postmortem_due_at <= n.now,
                    "late": _d(n.now - state.postmortem_due_at),
                    "remaining": _d(state.postmortem_due_at - n.now),
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
    _store_state(incident, state, n.now)
    return queued


def _mark_breaches(session: Session, now: datetime) -> None:
    rows = session.scalars(
        select(AlertSlaRow)
        .where(
            AlertSlaRow.responded_at.is_(None),
            AlertSlaRow.breached_at.is_(None),
            AlertSlaRow.due_at < now,
        )
        .with_for_update(skip_locked=True)
    ).all()
    for sla in rows:
        sla.breached_at = sla.due_at
        note(
            session,
            sla.alert_id,
            now,
            "sla_breached",
            f"response-time SLA breached: nobody responded within "
            f"{_d(timedelta(seconds=sla.response_seconds))} ({sla.severity or 'no severity'})",
        )


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


def _multiple_critical(session: Session, n: Notifier) -> int:
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
        "now": _t(n.now),
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


def tick_incidents(
    factory: sessionmaker[Session],
    config: Config,
    now: datetime,
    methods: frozenset[str],
    batch_size: int = 200,
    templates: Templates | None = None,
) -> int:
    """One engine tick for the protocol: SLA breaches, the multiple-critical trigger and
    whatever incidents owe; returns how many notifications were queued."""
    from escalator.alerts import load_overrides

    templates = templates or _templates_for(config)
    with transaction(factory) as session:
        _mark_breaches(session, now)
        n = Notifier(config, Paging(config, methods, load_overrides(session, now)), templates, now)
        queued = _multiple_critical(session, n)
        if not config.incidents.enabled:
            return queued
        due_rows = session.execute(
            select(IncidentRow, AlertRow)
            .join(AlertRow, AlertRow.id == IncidentRow.alert_id)
            .where(IncidentRow.next_due_at <= now)
            .order_by(IncidentRow.next_due_at)
            .limit(batch_size)
            .with_for_update(of=IncidentRow, skip_locked=True)
        ).all()
        for incident, alert in due_rows:
            queued += _post_incident(session, n, incident, alert)
    return queued


_TEMPLATE_CACHE: dict[int, tuple[Incidents, Templates]] = {}


def _templates_for(config: Config) -> Templates:
    """Templates per config object (overrides are read once, not every tick)."""
    cached = _TEMPLATE_CACHE.get(id(config))
    if cached is None or cached[0] is not config.incidents:
        cached = (config.incidents, Templates(config.incidents.templates))
        _TEMPLATE_CACHE[id(config)] = cached
    return cached[1]
