"""Maintenance windows, the pure part: which windows are active at a moment, which one
covers an alert, and when the weekly windows of the config occur.

Planned work must not wake anyone, and must not hide a real outage after it ends. So a
window only decides *when escalation may start* for the alerts that open inside it: they
are tracked with a timeline note, page no one, and start escalating when the window ends
(if still firing), exactly as if they had opened at that moment. Nothing here reads a
clock or a database.

Weekly windows are wall-clock times in a time zone, like rotation handoffs: `02:00` stays
02:00 local across daylight-saving changes (a start inside the spring-forward gap falls
at the first valid time after it, fold=0 as in `escalator.roster`), and `duration` is
elapsed time from the start.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from escalator.config import WEEKDAYS, RecurringMaintenance


@dataclass(frozen=True)
class Window:
    """One maintenance window occurrence: `key` is `#<id>` for one made with `escalator
    maintenance add`, `config:<name>` for a weekly one from the config."""

    key: str
    starts_at: datetime
    ends_at: datetime
    reason: str
    match: dict[str, str] = field(default_factory=dict)
    match_re: dict[str, str] = field(default_factory=dict)
    created_by: str | None = None
    include_open: bool = False

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at

    def matches(self, labels: dict[str, str]) -> bool:
        # The same rule as routes (escalator.config.LabelMatcher): equality, and regular
        # expressions anchored at both ends like Alertmanager's.
        if any(labels.get(k) != v for k, v in self.match.items()):
            return False
        return all(re.fullmatch(p, labels.get(k, "")) for k, p in self.match_re.items())

    def describe(self) -> str:
        wanted = [f"{k}={v}" for k, v in sorted(self.match.items())]
        wanted += [f"{k}=~{v}" for k, v in sorted(self.match_re.items())]
        return f"maintenance {self.key} ({', '.join(wanted)}: {self.reason})"


def _local_start(day: date, recurring: RecurringMaintenance, zone: ZoneInfo) -> datetime:
    # fold=0, as rotation handoffs: an ambiguous time is its first occurrence, and a time in
    # the spring-forward gap maps past it.
    local = datetime.combine(day, recurring.starts, tzinfo=zone)
    return local.astimezone(UTC)


def occurrences(recurring: RecurringMaintenance, start: datetime, end: datetime) -> list[Window]:
    """The weekly window's occurrences that overlap [start, end), in order."""
    zone = ZoneInfo(recurring.timezone)
    days = set(recurring.days)
    # A window that began up to `duration` (at most 7 days) before `start` may still run.
    first = (start - recurring.duration).astimezone(zone).date() - timedelta(days=1)
    last = end.astimezone(zone).date() + timedelta(days=1)
    found = []
    day = first
    while day <= last:
        if WEEKDAYS[day.weekday()] in days:
            begins = _local_start(day, recurring, zone)
            ends = begins + recurring.duration
            if begins < end and ends > start:
                found.append(
                    Window(
                        key=f"config:{recurring.name}",
                        starts_at=begins,
                        ends_at=ends,
                        reason=recurring.reason,
                        match=dict(recurring.match),
                        match_re=dict(recurring.match_re),
                    )
                )
        day += timedelta(days=1)
    return found


def active_recurring(recurring: Iterable[RecurringMaintenance], now: datetime) -> list[Window]:
    """Occurrences of the config's weekly windows running at `now`."""
    instant = now + timedelta(microseconds=1)
    return [w for r in recurring for w in occurrences(r, now, instant) if w.active(now)]


def covering(windows: Sequence[Window], labels: dict[str, str], now: datetime) -> Window | None:
    """The active window that holds an alert with `labels` longest, or None.

    Overlapping windows hold an alert until the last of them ends: escalation starts when
    no planned work covers it any more.
    """
    matching = [w for w in windows if w.active(now) and w.matches(labels)]
    return max(matching, key=lambda w: w.ends_at, default=None)
