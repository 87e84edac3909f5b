"""The seed's communication protocol as a pure function of an incident's state and `now`.

An incident is what a critical alert becomes for the people around it: a channel name
(`#incident-{timestamp}`), a commander (whoever acknowledged first), status updates every
15 minutes, stakeholder updates every 30, a resolution notice, and a post-mortem due
24 hours after resolution. This module decides *what is due when*; the shell
(`incidents.store` and `incidents.notices`) loads the state, calls `due`, renders and
queues what it returns and stores the new state, all in one transaction. Nothing here
reads a clock or a database.

Rules:
- A reminder that fell due while the engine was down is sent once, not once per missed
  interval; the next one follows a full interval later (like the machine's repeats).
- A status update posted by the commander pushes the next reminder a full interval out:
  the reminder exists to prompt an update, not to nag after one.
- Post-mortem reminders go out every `postmortem_reminder_every` after resolution and at
  the due time itself (so "overdue" is always announced once), and stop once the
  post-mortem is linked or `postmortem_stop_after` past due.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from escalator.config import IncidentNotice

IncidentStatus = Literal["open", "resolved", "closed"]
NoticeKind = IncidentNotice  # the kinds of notice, named once in escalator.config


@dataclass(frozen=True)
class Schedule:
    """The cadence of the protocol (config `incidents:`)."""

    status_update_every: timedelta = timedelta(minutes=15)
    stakeholder_update_every: timedelta = timedelta(minutes=30)
    postmortem_within: timedelta = timedelta(hours=24)
    postmortem_reminder_every: timedelta = timedelta(hours=8)
    postmortem_stop_after: timedelta = timedelta(days=7)


@dataclass(frozen=True)
class IncidentState:
    alert_id: int
    channel: str
    opened_at: datetime
    status: IncidentStatus = "open"
    commander: str | None = None
    commander_at: datetime | None = None
    initial_sent_at: datetime | None = None
    last_update_at: datetime | None = None
    next_reminder_at: datetime | None = None
    next_stakeholder_at: datetime | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    resolution_sent_at: datetime | None = None
    postmortem_due_at: datetime | None = None
    postmortem_url: str | None = None
    postmortem_by: str | None = None
    postmortem_at: datetime | None = None
    next_postmortem_reminder_at: datetime | None = None


def channel_name(prefix: str, opened_at: datetime, alert_id: int) -> str:
    """`incident-20260302-1900-12`: the seed's `#incident-{timestamp}`, made unique by the id
    because two critical alerts can open in the same minute."""
    return f"{prefix}{opened_at:%Y%m%d-%H%M}-{alert_id}"


def opened(alert_id: int, now: datetime, prefix: str, schedule: Schedule) -> IncidentState:
    return IncidentState(
        alert_id=alert_id,
        channel=channel_name(prefix, now, alert_id),
        opened_at=now,
        next_reminder_at=now + schedule.status_update_every,
        next_stakeholder_at=now + schedule.stakeholder_update_every,
    )


def acknowledged(state: IncidentState, by: str, now: datetime) -> IncidentState:
    """The first person to acknowledge becomes the commander; later acks change nothing."""
    if state.commander is not None or state.status != "open":
        return state
    return replace(state, commander=by, commander_at=now)


def status_posted(state: IncidentState, now: datetime, schedule: Schedule) -> IncidentState:
    state = replace(state, last_update_at=now)
    if state.status == "open":
        state = replace(state, next_reminder_at=now + schedule.status_update_every)
    return state


def resolved(state: IncidentState, by: str, now: datetime, schedule: Schedule) -> IncidentState:
    if state.status != "open":
        return state
    due_at = now + schedule.postmortem_within
    return replace(
        state,
        status="resolved",
        resolved_at=now,
        resolved_by=by,
        next_reminder_at=None,
        next_stakeholder_at=None,
        postmortem_due_at=due_at,
        next_postmortem_reminder_at=min(now + schedule.postmortem_reminder_every, due_at),
    )


def postmortem_linked(state: IncidentState, url: str, by: str, now: datetime) -> IncidentState:
    """Linking the post-mortem closes the incident (a later link replaces the URL)."""
    return replace(
        state,
        status="closed" if state.status != "open" else "open",
        postmortem_url=url,
        postmortem_by=by,
        postmortem_at=now,
        next_postmortem_reminder_at=None,
    )


def is_overdue(state: IncidentState, now: datetime) -> bool:
    return (
        state.status == "resolved"
        and state.postmortem_at is None
        and state.postmortem_due_at is not None
        and state.postmortem_due_at <= now
    )


def duration(state: IncidentState, now: datetime) -> timedelta:
    return (state.resolved_at or now) - state.opened_at


def _following(due_at: datetime, now: datetime, every: timedelta) -> datetime:
    """The next occurrence after one that fell due: on the grid, unless that is past too."""
    nxt = due_at + every
    return nxt if nxt > now else now + every


def due(state: IncidentState, now: datetime, schedule: Schedule) -> tuple[IncidentState, list[str]]:
    """What to send at `now`, in order, and the state after sending it."""
    kinds: list[str] = []
    if state.initial_sent_at is None:
        kinds.append("initial")
        state = replace(state, initial_sent_at=now)
    if state.status == "open":
        if state.next_reminder_at is not None and state.next_reminder_at <= now:
            kinds.append("update_reminder")
            state = replace(
                state,
                next_reminder_at=_following(
                    state.next_reminder_at, now, schedule.status_update_every
                ),
            )
        if state.next_stakeholder_at is not None and state.next_stakeholder_at <= now:
            kinds.append("stakeholder_update")
            state = replace(
                state,
                next_stakeholder_at=_following(
                    state.next_stakeholder_at, now, schedule.stakeholder_update_every
                ),
            )
    if state.status != "open" and state.resolved_at is not None:
        if state.resolution_sent_at is None:
            kinds.append("resolution")
            state = replace(state, resolution_sent_at=now)
        reminder = state.next_postmortem_reminder_at
        if state.postmortem_at is None and reminder is not None and reminder <= now:
            assert state.postmortem_due_at is not None
            kinds.append("postmortem_reminder")
            nxt = _following(reminder, now, schedule.postmortem_reminder_every)
            if reminder < state.postmortem_due_at < nxt:
                nxt = state.postmortem_due_at  # always announce the moment it falls overdue
            stop = nxt > state.postmortem_due_at + schedule.postmortem_stop_after
            state = replace(state, next_postmortem_reminder_at=None if stop else nxt)
    return state, kinds


def next_due_at(state: IncidentState) -> datetime | None:
    """When the engine must next look at this incident; None when nothing more is due."""
    times: list[datetime] = []
    if state.initial_sent_at is None:
        times.append(state.opened_at)
    if state.status == "open":
        times.extend(t for t in (state.next_reminder_at, state.next_stakeholder_at) if t)
    elif state.resolved_at is not None:
        if state.resolution_sent_at is None:
            times.append(state.resolved_at)
        if state.postmortem_at is None and state.next_postmortem_reminder_at is not None:
            times.append(state.next_postmortem_reminder_at)
    return min(times) if times else None


# Escalation triggers -------------------------------------------------------------------


@dataclass(frozen=True)
class Episode:
    """The "multiple critical alerts simultaneously" trigger's memory between ticks."""

    active: bool = False
    since: datetime | None = None
    alert_ids: tuple[int, ...] = ()
    episodes: int = 0


def multiple_critical(
    episode: Episode, open_critical: list[int], threshold: int, now: datetime
) -> tuple[Episode, bool]:
    """(new episode state, page now?). One page when the count reaches `threshold`; none
    for further alerts in the same episode; the episode ends when the count drops below."""
    if len(open_critical) >= threshold:
        if episode.active:
            return episode, False
        return Episode(True, now, tuple(sorted(open_critical)), episode.episodes + 1), True
    if episode.active:
        return Episode(False, None, (), episode.episodes), False
    return episode, False


def labels_without_severity(labels: dict[str, str]) -> dict[str, str]:
    """Identity of an alert across a severity change: all labels except `severity`.

    Alertmanager fingerprints all labels, so a warning that turns critical arrives as a new
    alert; this is how it is recognised as the same problem getting worse.
    """
    return {k: v for k, v in labels.items() if k != "severity"}


def alert_identity(labels: dict[str, str]) -> str:
    """A short stable key for `labels_without_severity`, indexed on the alerts table."""
    canonical = json.dumps(labels_without_severity(labels), sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(canonical.encode()).hexdigest()


SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


def is_severity_rise(old: str | None, new: str | None) -> bool:
    return SEVERITY_RANK.get(new or "", -1) > SEVERITY_RANK.get(old or "", -1) >= 0


def sla_breached(due_at: datetime, responded_at: datetime | None, now: datetime) -> bool:
    """A response-time SLA is breached when nobody responded (ack or resolve) by `due_at`
    ("within 5 minutes" includes the fifth minute itself)."""
    return responded_at > due_at if responded_at is not None else now > due_at
