"""Seeing the roster: shifts over a time range as rows, a text table, or an iCalendar feed.

Built on the pure roster (escalator.roster.segments), so `escalator schedule`, the
calendar URL and the engine all agree about who is on call when.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event

from escalator.config import Config, Rotation
from escalator.roster.oncall import Override, Shift, coverage_gaps, segments

NOBODY = "NOBODY"
# How far ahead `check-config` looks for times when someone must be paged and nobody is.
GAP_HORIZON = timedelta(weeks=4)


def local(at: datetime, zone: str) -> str:
    """`Mon 2026-03-02 09:00 EST`: what a person reads, with the zone spelled out."""
    return at.astimezone(ZoneInfo(zone)).strftime("%a %Y-%m-%d %H:%M %Z")


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def rotation_shifts(
    rotation: Rotation, start: datetime, end: datetime, overrides: list[Override]
) -> list[Shift]:
    """Shifts of one rotation overlapping [start, end), gaps included (person "")."""
    return segments(rotation, start, end, overrides, include_gaps=True)


def shift_note(shift: Shift) -> str:
    """How the person got the shift: an override (with its id) or a layer."""
    if not shift.person:
        return "gap: nobody on call"
    if shift.override:
        return f"override #{shift.override_id}" if shift.override_id else "override (config)"
    return f"layer {shift.layer}" if shift.layer else ""


def shift_rows(cfg: Config, rotation: Rotation, shifts: list[Shift]) -> list[dict[str, Any]]:
    """JSON-ready rows: UTC instants plus the same times in the rotation's zone."""
    rows = []
    for shift in shifts:
        person = cfg.person(shift.person) if shift.person else None
        rows.append(
            {
                "rotation": rotation.id,
                "person": shift.person or None,
                "name": person.display if person else None,
                "start": _iso(shift.start),
                "end": _iso(shift.end),
                "timezone": rotation.timezone,
                "local_start": local(shift.start, rotation.timezone),
                "local_end": local(shift.end, rotation.timezone),
                "layer": shift.layer,
                "override": shift.override,
                "override_id": shift.override_id,
                "note": shift_note(shift),
            }
        )
    return rows


def table_rows(rows: list[dict[str, Any]]) -> list[list[str]]:
    return [
        [
            r["rotation"],
            r["local_start"],
            r["local_end"],
            r["person"] or NOBODY,
            r["note"],
        ]
        for r in rows
    ]


TABLE_HEADER = ["ROTATION", "FROM", "UNTIL", "WHO", "NOTE"]


def to_ical(
    cfg: Config,
    shifts_by_rotation: list[tuple[Rotation, list[Shift]]],
    stamp: datetime,
) -> bytes:
    """An iCalendar (RFC 5545) feed, one event per shift.

    UIDs are derived from rotation, person and start, so a calendar that re-fetches the
    feed updates events in place instead of duplicating them. `stamp` is DTSTAMP (the
    caller's "now"), passed in so the output is reproducible.
    """
    cal = Calendar()
    cal.add("prodid", "-//escalator//on-call roster//EN")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    names = ", ".join(r.name or r.id for r, _ in shifts_by_rotation)
    cal.add("x-wr-calname", f"On call: {names}")
    for rotation, shifts in shifts_by_rotation:
        title = rotation.name or rotation.id
        for shift in shifts:
            event = Event()
            who = shift.person or NOBODY
            person = cfg.person(shift.person) if shift.person else None
            display = person.display if person else who
            event.add(
                "uid",
                f"{rotation.id}-{who}-{shift.start.astimezone(UTC):%Y%m%dT%H%M%SZ}@escalator",
            )
            event.add("dtstamp", stamp.astimezone(UTC))
            event.add("dtstart", shift.start.astimezone(UTC))
            event.add("dtend", shift.end.astimezone(UTC))
            summary = f"{title}: {display}" if shift.person else f"{title}: NOBODY on call"
            note = shift_note(shift)
            event.add("summary", f"{summary} ({note})" if note else summary)
            event.add(
                "description",
                f"Rotation {rotation.id} ({rotation.timezone}): {who} from "
                f"{local(shift.start, rotation.timezone)} to {local(shift.end, rotation.timezone)}",
            )
            event.add("categories", ["on-call", rotation.id])
            cal.add_component(event)
    return cal.to_ical()


def roster_warnings(config: Config, now: datetime, horizon: timedelta = GAP_HORIZON) -> list[str]:
    """Coverage gaps in the next `horizon` (config overrides included), one line per
    rotation, role or policy level, for `check-config`."""
    gaps = coverage_gaps(config, now, now + horizon)
    by_subject: dict[str, list[tuple[datetime, datetime]]] = {}
    for gap in gaps:
        by_subject.setdefault(gap.subject, []).append((gap.start, gap.end))
    out = []
    weeks = int(horizon / timedelta(weeks=1))
    for subject, spans in by_subject.items():
        start, end = spans[0]
        more = f" (and {len(spans) - 1} more)" if len(spans) > 1 else ""
        until = "the end of the check" if end >= now + horizon else f"{end:%Y-%m-%d %H:%M} UTC"
        out.append(
            f"{subject} reaches nobody from {start:%Y-%m-%d %H:%M} UTC until {until}{more} "
            f"in the next {weeks} weeks"
        )
    return out
