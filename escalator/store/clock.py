"""The one place the shell reads the time.

Everything that needs "now" takes a Clock, so tests can freeze it or run compressed-time
policies against the real clock. Where no daemon runs (the CLI working on the database),
the database's clock is used (`database_now`), never the laptop's.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy import text
from sqlalchemy.orm import Session


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


def database_now(session: Session) -> datetime:
    """The database server's clock, for actions taken where no daemon clock exists (the CLI
    on a laptop): every writer then agrees on one clock, whatever the laptop's says."""
    if session.get_bind().dialect.name == "sqlite":
        # SQLite's CURRENT_TIMESTAMP has whole seconds; %f keeps milliseconds.
        value = session.scalar(text("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')"))
        return datetime.fromisoformat(str(value)).replace(tzinfo=UTC)
    stamp = session.scalar(text("SELECT statement_timestamp()"))
    assert isinstance(stamp, datetime)
    return stamp.astimezone(UTC)
