"""Maintenance services: add a window, end one. Actor in, the context's clock (the
daemon's, or the database's), one transaction out; the CLI (locally) and the HTTP API
call only these."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from escalator.config import LabelMatcher
from escalator.maintenance.store import add_window, end_window, window_of
from escalator.read.times import rfc3339
from escalator.services.context import Actor, NotFound, ServiceContext, ServiceError
from escalator.store.db import transaction

MAX_WINDOW = timedelta(days=31)


@dataclass(frozen=True)
class Added:
    id: str
    starts_at: datetime
    ends_at: datetime
    held: list[int]  # alerts already escalating that `include_open` now holds

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "starts_at": rfc3339(self.starts_at),
            "ends_at": rfc3339(self.ends_at),
            "held": self.held,
        }


def add(
    ctx: ServiceContext,
    actor: Actor,
    matcher: LabelMatcher,
    reason: str,
    *,
    for_: timedelta | None = None,
    until: datetime | None = None,
    include_open: bool = False,
) -> Added:
    """Start a window now, for `for_` or until `until`."""
    ctx.check_actor(actor)
    if (for_ is None) == (until is None):
        raise ServiceError("give exactly one of `for` (a duration) or `until` (a time)")
    if until is not None and until.tzinfo is None:
        raise ServiceError("`until` needs a UTC offset")
    if not (matcher.match or matcher.match_re):
        raise ServiceError("give at least one match or match_re label")
    if not reason.strip():
        raise ServiceError("give a reason")
    with transaction(ctx.factory) as session:
        now = ctx.now(session)
        ends = now + for_ if for_ is not None else until
        assert ends is not None
        if ends <= now or ends - now > MAX_WINDOW:
            raise ServiceError("the window must end in the future, within 31 days")
        added = add_window(
            session, matcher, now, ends, reason, actor.person, include_open, ctx.policies, now
        )
        result = Added(added.window.key, now, ends, added.held)
    ctx.changed()
    return result


def end(ctx: ServiceContext, actor: Actor, window_id: int) -> dict[str, object]:
    """End a window now; the engine lets what it held escalate on its next tick."""
    ctx.check_actor(actor)
    with transaction(ctx.factory) as session:
        row = end_window(session, window_id, actor.person, ctx.now(session))
        if row is None:
            raise NotFound(f"no maintenance window {window_id}")
        window = window_of(row)
        ended: dict[str, object] = {"id": window.key, "ends_at": rfc3339(window.ends_at)}
    ctx.changed()  # the daemon wakes its engine: release on this tick, not the next
    return ended
