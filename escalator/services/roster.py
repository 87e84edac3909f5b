"""Roster services: add and remove overrides (a person takes a rotation for a while).

Same shape as the alert services: actor in, the context's clock, one transaction; the CLI
(locally) and the HTTP API call these and nothing else writes overrides.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from escalator.read.times import rfc3339
from escalator.services.context import Actor, NotFound, ServiceContext, ServiceError
from escalator.store.db import transaction
from escalator.store.tables import OverrideRow


def add_override(
    ctx: ServiceContext,
    actor: Actor,
    rotation: str,
    person: str,
    end: datetime,
    start: datetime | None = None,
) -> dict[str, Any]:
    """`person` holds `rotation` from `start` (default: now, by the service's clock) to `end`."""
    ctx.check_actor(actor)
    config = ctx.config
    if config is None:
        raise ServiceError("overrides need the configuration (its rotations and people)")
    if config.rotation(rotation) is None:
        known = ", ".join(r.id for r in config.rotations) or "none"
        raise ServiceError(f"unknown rotation {rotation!r} (known: {known})")
    if config.person(person) is None:
        raise ServiceError(f"unknown person {person!r}")
    with transaction(ctx.factory) as session:
        now = ctx.now(session)
        begin = start or now
        if end <= begin:
            raise ServiceError("the override must end after it starts")
        if end <= now:
            raise ServiceError("the override's end is already past")
        row = OverrideRow(
            rotation=rotation,
            person=person,
            start_at=begin,
            end_at=end,
            created_by=actor.person,
            created_at=now,
        )
        session.add(row)
        session.flush()
        created = {
            "id": row.id,
            "rotation": rotation,
            "person": person,
            "start": rfc3339(begin),
            "end": rfc3339(end),
            "created_by": actor.person,
        }
    ctx.changed()  # the engine's next tick pages through the new roster
    return created


def remove_override(ctx: ServiceContext, actor: Actor, override_id: int) -> dict[str, Any]:
    """Delete an override; returns what it was."""
    ctx.check_actor(actor)
    with transaction(ctx.factory) as session:
        row = session.get(OverrideRow, override_id)
        if row is None:
            raise NotFound(f"no override #{override_id}")
        removed = {"id": row.id, "rotation": row.rotation, "person": row.person}
        session.delete(row)
    ctx.changed()
    return removed
