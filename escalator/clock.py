"""The one place the shell reads the time.

Everything that needs "now" takes a Clock, so tests can freeze it (freezegun patches
`datetime.now`) or run compressed-time policies against the real clock.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock that moves only when told: for tests that walk an escalation minute by minute."""

    def __init__(self, start: datetime):
        self.current = start

    def now(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> datetime:
        from datetime import timedelta

        self.current += timedelta(**delta)
        return self.current
