"""Overrides in the store: reading those still in force (the roster itself stays pure)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from escalator.roster.oncall import Override
from escalator.store.tables import OverrideRow


def load_overrides(session: Session, now: datetime) -> list[Override]:
    rows = session.scalars(select(OverrideRow).where(OverrideRow.end_at > now))
    return [Override(r.rotation, r.person, r.start_at, r.end_at, r.id) for r in rows]
