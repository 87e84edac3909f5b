"""What the console's pages show, read from the store in one transaction per page.

Plain dicts for the templates; nothing here writes. The alert list is paginated in SQL
(10,000 open alerts must still render in well under 150 ms), and "what fires next" is
worked out only for the alerts on the page, from each alert's own policy snapshot and
today's roster.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from escalator.config import Config, Policy
from escalator.config.durations import format_duration
from escalator.daemon import Daemon
from escalator.escalation.apply import state_of
from escalator.escalation.machine import next_escalation
from escalator.incidents import protocol as incidents
from escalator.incidents import runbooks
from escalator.incidents.store import incident_state, latest_update
from escalator.read import report
from escalator.read.views import oncall
from escalator.roster.oncall import on_call
from escalator.roster.overrides import load_overrides
from escalator.roster.schedule import rotation_shifts, shift_note
from escalator.store.tables import (
    AlertRow,
    IncidentRow,
    OutboxRow,
    OverrideRow,
    TimelineRow,
)

PER_PAGE = 50
STATES = {
    "open": ("triggered", "acknowledged"),
    "triggered": ("triggered",),
    "acknowledged": ("acknowledged",),
    "resolved": ("resolved",),
}


def ago(then: datetime | None, now: datetime) -> str:
    """`5m` (past) or `in 5m` (future), to the second below a minute."""
    if then is None:
        return "-"
    seconds = int((now - then).total_seconds())
    text = short(timedelta(seconds=abs(seconds)))
    return f"in {text}" if seconds < 0 else text


def short(delta: timedelta) -> str:
    """The two largest units of a duration: `2h5m`, `3d4h`, `45s`."""
    seconds = int(delta.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size or (unit == "s" and not parts):
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts[:2])


def http_url(value: object) -> str | None:
    """A link target only if it is http(s): annotations come from outside, and a
    `javascript:` runbook link must not become a clickable script."""
    if isinstance(value, str) and value.lower().startswith(("http://", "https://")):
        return value
    return None


def utc(value: datetime | None) -> str:
    return "-" if value is None else f"{value:%Y-%m-%d %H:%M:%S} UTC"


@dataclass(frozen=True)
class AlertFilter:
    state: str = "open"
    severity: str = ""
    label: str = ""  # key=value
    page: int = 1

    def statuses(self) -> tuple[str, ...]:
        return STATES.get(self.state, STATES["open"])

    def where(self) -> list[Any]:
        """Every condition but the status (the list is read one status at a time)."""
        clauses: list[Any] = []
        if self.severity:
            clauses.append(AlertRow.severity == self.severity)
        if self.label:
            key, _, value = self.label.partition("=")
            key, value = key.strip(), value.strip()
            if key == "alertname":
                clauses.append(AlertRow.alertname == value)
            elif key:
                clauses.append(AlertRow.labels[key].as_string() == value)
        return clauses

    def query(self, page: int | None = None) -> dict[str, str]:
        out = {"state": self.state, "severity": self.severity, "label": self.label}
        out = {k: v for k, v in out.items() if v and not (k == "state" and v == "open")}
        if page is not None and page > 1:
            out["page"] = str(page)
        return out


def _names(paging: Any, policy: Policy, level: int, at: datetime) -> str:
    whom = paging.recipients(policy.steps[level], at)
    return ", ".join(r.id if r.kind == "person" else f"#{r.id}" for r in whom) or "nobody"


def next_firing(row: AlertRow, policy: Policy, paging: Any, now: datetime) -> str:
    """What will really fire next for this alert, when, and to whom: the machine's own
    `next_escalation` (skipped steps are not shown), with the names from today's roster."""
    if row.status == "resolved":
        return "nothing: resolved"
    upcoming = next_escalation(state_of(row), policy)
    if upcoming is None:
        return "nothing more (acknowledged)" if row.status == "acknowledged" else "nothing more"
    names = _names(paging, policy, upcoming.level, max(upcoming.at, now))
    if upcoming.kind == "ack_ends":
        what = f"ack ends: level {upcoming.level} → {names} again"
    elif upcoming.kind == "repeat":
        what = f"repeat of level {upcoming.level} → {names}"
    else:
        what = f"level {upcoming.level} → {names}"
    when = "now" if upcoming.at <= now else ago(upcoming.at, now)
    return f"{what} ({when})"


def _page_ids(session: Session, flt: AlertFilter, page: int, counts: dict[str, int]) -> list[int]:
    """The ids on one page: triggered first, newest first within a status.

    Read one status at a time through the status (or severity, status) index, ids only:
    sorting whole rows, JSON and all, to keep 50 of 10,000 would cost far more.
    """
    offset, wanted, ids = (page - 1) * PER_PAGE, PER_PAGE, []
    for status in flt.statuses():
        count = counts.get(status, 0)
        if offset >= count:
            offset -= count
            continue
        taken = session.scalars(
            select(AlertRow.id)
            .where(AlertRow.status == status, *flt.where())
            .order_by(AlertRow.id.desc())
            .limit(wanted)
            .offset(offset)
        ).all()
        ids.extend(taken)
        wanted, offset = wanted - len(taken), 0
        if wanted <= 0:
            break
    return ids


def alert_list(daemon: Daemon, session: Session, flt: AlertFilter, now: datetime) -> dict[str, Any]:
    counts: dict[str, int] = {
        status: count
        for status, count in session.execute(
            select(AlertRow.status, func.count())
            .where(AlertRow.status.in_(flt.statuses()), *flt.where())
            .group_by(AlertRow.status)
        ).all()
    }
    total = sum(counts.values())
    pages = max(1, -(-total // PER_PAGE))
    page = min(max(flt.page, 1), pages)
    ids = _page_ids(session, flt, page, counts)
    by_id = {r.id: r for r in session.scalars(select(AlertRow).where(AlertRow.id.in_(ids)))}
    rows = [by_id[i] for i in ids if i in by_id]
    paging = daemon.paging(session, now)
    items = []
    for row in rows:
        policy = daemon.policies.get(session, row.policy_id)
        items.append(
            {
                "id": row.id,
                "status": row.status,
                "level": row.level,
                "severity": row.severity or "none",
                "alertname": row.alertname,
                "summary": row.annotations.get("summary", ""),
                "age": ago(row.opened_at, now),
                "opened": utc(row.opened_at),
                "next": next_firing(row, policy, paging, now),
                "acked_by": row.acked_by,
                "ack_until": ago(row.ack_expires_at, now) if row.ack_expires_at else None,
            }
        )
    # Every severity ever seen, from the (severity, status) index alone: reading the rows
    # of the open alerts to narrow it down costs ~100 ms at 10,000 of them.
    severities = sorted(
        s for s in session.scalars(select(AlertRow.severity).group_by(AlertRow.severity)) if s
    )
    return {
        "alerts": items,
        "total": total,
        "page": page,
        "pages": pages,
        "severities": severities,
        "filter": flt,
        "prev_query": flt.query(page - 1) if page > 1 else None,
        "next_query": flt.query(page + 1) if page < pages else None,
    }


def mine_count(session: Session, person: str | None) -> int:
    if person is None:
        return 0
    return (
        session.scalar(
            select(func.count())
            .select_from(AlertRow)
            .where(
                AlertRow.status == "triggered",
                AlertRow.id.in_(
                    select(OutboxRow.alert_id).where(
                        OutboxRow.recipient_kind == "person", OutboxRow.recipient == person
                    )
                ),
            )
        )
        or 0
    )


# The alert page --------------------------------------------------------------------------


def _step_fate(timeline: list[TimelineRow]) -> dict[int, list[str]]:
    """What happened at each level, from the timeline: paged, skipped, reached nobody."""
    words = {
        "paged": "fired",
        "step_skipped": "skipped",
        "nobody_to_page": "reached nobody",
        "repeat_skipped": "repeat skipped",
    }
    fate: dict[int, list[str]] = {}
    for entry in timeline:
        if entry.level is not None and entry.kind in words:
            label = words[entry.kind]
            if entry.kind == "paged" and "repeat" in entry.detail:
                label = "repeated"
            elif entry.kind == "paged" and "manually" in entry.detail:
                label = "fired (escalated by hand)"
            fate.setdefault(entry.level, [])
            if label not in fate[entry.level]:
                fate[entry.level].append(label)
    return fate


def _targets(step: Any) -> str:
    return ", ".join(f"{t.kind} {t.ref}" for t in step.targets)


def alert_page(
    daemon: Daemon, session: Session, alert_id: int, now: datetime
) -> dict[str, Any] | None:
    row = session.get(AlertRow, alert_id)
    if row is None:
        return None
    config = daemon.config
    policy = daemon.policies.get(session, row.policy_id)
    timeline = list(
        session.scalars(
            select(TimelineRow).where(TimelineRow.alert_id == alert_id).order_by(TimelineRow.id)
        )
    )
    outbox = session.scalars(
        select(OutboxRow).where(OutboxRow.alert_id == alert_id).order_by(OutboxRow.id)
    ).all()
    fate = _step_fate(timeline)
    steps = []
    for index, step in enumerate(policy.steps):
        due = row.clock_base + step.after
        if index in fate:
            state = "; ".join(fate[index])
        elif index < row.next_step:
            state = "passed"
        elif row.status == "resolved":
            state = "not reached"
        else:
            state = f"due {ago(due, now)}" if due > now else "due now"
        steps.append(
            {
                "level": index,
                "after": format_duration(step.after),
                "condition": step.condition,
                "urgency": step.urgency,
                "targets": _targets(step),
                "state": state,
                "fired": index in fate
                and any(f.startswith(("fired", "repeated")) for f in fate[index]),
            }
        )
    runbook_url = row.annotations.get("runbook_url")
    runbook = runbooks.find(config.runbooks, row.alertname)
    paging = daemon.paging(session, now)
    incident = session.get(IncidentRow, alert_id)
    return {
        "id": row.id,
        "alertname": row.alertname,
        "status": row.status,
        "severity": row.severity or "none",
        "level": row.level,
        "summary": row.annotations.get("summary", ""),
        "labels": sorted(row.labels.items()),
        "annotations": sorted(row.annotations.items()),
        "generator_url": http_url(row.generator_url),
        "runbook_url": http_url(runbook_url) or (runbook.url if runbook else None),
        "runbook_title": runbook.title if runbook else None,
        "opened": utc(row.opened_at),
        "age": ago(row.opened_at, now),
        "acked_by": row.acked_by,
        "acked_at": utc(row.acked_at) if row.acked_at else None,
        "ack_until": utc(row.ack_expires_at) if row.ack_expires_at else None,
        "resolved_by": row.resolved_by,
        "resolved_at": utc(row.resolved_at) if row.resolved_at else None,
        "next": next_firing(row, policy, paging, now),
        "policy": row.policy_name,
        "repeat": None
        if policy.repeat is None
        else f"every {format_duration(policy.repeat.every)}, {policy.repeat.times} times",
        "ack_timeout": format_duration(policy.ack_timeout) if policy.ack_timeout else None,
        "steps": steps,
        "timeline": [
            {
                "at": utc(t.at),
                "kind": t.kind,
                "actor": t.actor,
                "channel": t.channel,
                "level": t.level,
                "detail": t.detail,
            }
            for t in timeline
        ],
        "pages": [
            {
                "id": o.id,
                "recipient": o.recipient if o.recipient_kind != "channel" else f"#{o.recipient}",
                "method": o.method,
                "level": o.level,
                "reason": o.reason,
                "status": o.status,
                "attempts": o.attempts,
                "due": utc(o.due_at),
                "sent": utc(o.sent_at) if o.sent_at else None,
                "error": o.last_error,
            }
            for o in outbox
        ],
        "incident": f"#{incident.channel}" if incident else None,
    }


# On call ---------------------------------------------------------------------------------


def _local(at: datetime, zone: str) -> str:
    return at.astimezone(ZoneInfo(zone)).strftime("%a %d %b %H:%M")


def oncall_page(config: Config, session: Session, now: datetime, week: int) -> dict[str, Any]:
    overrides = load_overrides(session, now - timedelta(days=8 + 7 * max(-week, 0)))
    holders = oncall(config, now, overrides)
    start = now + timedelta(weeks=week)
    start = start.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(
        days=start.weekday()
    )
    end = start + timedelta(days=7)
    rotations = []
    for rotation in config.rotations:
        zone = rotation.timezone
        current = on_call(rotation, now, overrides)
        handoffs = []
        cursor = current
        for _ in range(3):
            if cursor is None:
                break
            following = on_call(rotation, cursor.end, overrides)
            handoffs.append(
                {
                    "at": _local(cursor.end, zone),
                    "in": ago(cursor.end, now),
                    "to": following.person if following else "nobody",
                }
            )
            cursor = following
        shifts = [
            {
                "person": s.person or "NOBODY",
                "start": _local(max(s.start, start), zone),
                "end": _local(min(s.end, end), zone),
                "note": shift_note(s),
                "override": s.override,
                "gap": not s.person,
                "now": s.start <= now < s.end,
            }
            for s in rotation_shifts(rotation, start, end, overrides)
        ]
        rotations.append(
            {
                "id": rotation.id,
                "name": rotation.name or rotation.id,
                "timezone": zone,
                "holder": current.person if current else None,
                "until": _local(current.end, zone) if current else None,
                "handoffs": handoffs,
                "shifts": shifts,
            }
        )
    rows = session.scalars(
        select(OverrideRow).where(OverrideRow.end_at > now).order_by(OverrideRow.start_at)
    ).all()
    db_overrides = [
        {
            "id": r.id,
            "rotation": r.rotation,
            "person": r.person,
            "start": utc(r.start_at),
            "end": utc(r.end_at),
            "by": r.created_by or "-",
        }
        for r in rows
    ]
    return {
        "roles": [h for h in holders if h["kind"] == "role"],
        "rotations": rotations,
        "overrides": db_overrides,
        "week": week,
        "week_label": f"{start:%d %b} – {end - timedelta(days=1):%d %b %Y}",
        "people": [p.id for p in config.people],
    }


# Incidents -------------------------------------------------------------------------------


def incidents_page(session: Session, now: datetime, show_resolved: int = 20) -> dict[str, Any]:
    open_rows = session.execute(
        select(IncidentRow, AlertRow)
        .join(AlertRow, AlertRow.id == IncidentRow.alert_id)
        .where(IncidentRow.status == "open")
        .order_by(IncidentRow.opened_at.desc())
    ).all()
    out_open = []
    for incident, alert in open_rows:
        latest = latest_update(session, alert.id)
        due = incident.next_reminder_at
        out_open.append(
            {
                "id": alert.id,
                "channel": f"#{incident.channel}",
                "alertname": alert.alertname,
                "summary": alert.annotations.get("summary", ""),
                "alert_status": alert.status,
                "commander": incident.commander,
                "opened": utc(incident.opened_at),
                "duration": short(now - incident.opened_at),
                "last_update": None
                if latest is None
                else {
                    "at": ago(latest.at, now),
                    "status": latest.status,
                    "message": latest.message,
                    "author": latest.author,
                },
                "next_due": ago(due, now) if due else None,
                "overdue": due is not None and due <= now,
            }
        )
    done_rows = session.execute(
        select(IncidentRow, AlertRow)
        .join(AlertRow, AlertRow.id == IncidentRow.alert_id)
        .where(IncidentRow.status != "open")
        .order_by(IncidentRow.resolved_at.desc())
        .limit(show_resolved)
    ).all()
    out_done = []
    for incident, alert in done_rows:
        state = incident_state(incident)
        out_done.append(
            {
                "id": alert.id,
                "channel": f"#{incident.channel}",
                "alertname": alert.alertname,
                "commander": incident.commander,
                "resolved": utc(incident.resolved_at),
                "resolved_by": incident.resolved_by,
                "duration": short(incidents.duration(state, now)),
                "postmortem_url": http_url(incident.postmortem_url),
                "postmortem_due": ago(incident.postmortem_due_at, now)
                if incident.postmortem_due_at
                else None,
                "overdue": incidents.is_overdue(state, now),
            }
        )
    return {"open": out_open, "done": out_done}


# Report ----------------------------------------------------------------------------------

PERIODS = {"7d": 7, "30d": 30, "90d": 90}


def report_page(session: Session, now: datetime, period: str) -> dict[str, Any]:
    days = PERIODS.get(period, 30)
    since = now - timedelta(days=days)
    records, pages = report.load(session, since, now)
    built = report.build(records, pages, since, now)
    return {"period": f"{days}d", "report": built, "chart": chart(built), "at": now}


def chart(built: dict[str, Any]) -> dict[str, Any] | None:
    """Bars of median time to acknowledge per week, with the p90 as a tick: drawn as SVG
    shapes by the template (attributes only: no inline style, so the CSP stays strict)."""
    weeks = built["by_week"]
    if not weeks:
        return None
    width, height, pad = 640, 220, 40
    values = [
        (
            w["week"],
            (w["time_to_acknowledge"]["median_seconds"] or 0) / 60,
            (w["time_to_acknowledge"]["p90_seconds"] or 0) / 60,
            w["count"],
        )
        for w in weeks
    ]
    top = max(max(v[2], v[1]) for v in values) or 1.0
    slot = (width - 2 * pad) / len(values)
    bars = []
    for i, (week, median, p90, count) in enumerate(values):
        x = pad + i * slot + slot * 0.15
        h = (height - 2 * pad) * median / top
        y90 = height - pad - (height - 2 * pad) * p90 / top
        bars.append(
            {
                "x": round(x, 1),
                "w": round(slot * 0.7, 1),
                "y": round(height - pad - h, 1),
                "h": round(h, 1),
                "y90": round(y90, 1),
                "label": week,
                "title": f"{week}: median {median:.1f} min, p90 {p90:.1f} min, {count} alerts",
                "lx": round(x + slot * 0.35, 1),
            }
        )
    return {
        "width": width,
        "height": height,
        "pad": pad,
        "base": height - pad,
        "top": f"{top:.0f} min",
        "bars": bars,
    }
