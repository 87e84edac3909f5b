"""Roster reads shared by the CLI (locally) and the API: overrides and shifts as rows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from escalator.config import Config
from escalator.read.times import rfc3339
from escalator.roster.oncall import config_overrides
from escalator.roster.overrides import load_overrides
from escalator.roster.schedule import rotation_shifts, shift_rows, to_ical
from escalator.store.tables import OverrideRow


def override_rows(
    session: Session, config: Config, now: datetime, include_past: bool
) -> list[dict[str, Any]]:
    """Overrides from the database and the config file, JSON-ready, by start time."""
    query = select(OverrideRow).order_by(OverrideRow.start_at, OverrideRow.id)
    if not include_past:
        query = query.where(OverrideRow.end_at > now)
    rows: list[dict[str, Any]] = [
        {
            "id": r.id,
            "source": "database",
            "rotation": r.rotation,
            "person": r.person,
            "start": r.start_at,
            "end": r.end_at,
            "created_by": r.created_by,
        }
        for r in session.scalars(query)
    ]
    for rotation in config.rotations:
        for o in config_overrides(rotation):
            if include_past or o.end > now:
                rows.append(
                    {
                        "id": None,
                        "source": "config",
                        "rotation": o.rotation,
                        "person": o.person,
                        "start": o.start,
                        "end": o.end,
                        "created_by": None,
                    }
                )
    rows.sort(key=lambda r: (r["start"], r["id"] or 0))
    return [{**r, "start": rfc3339(r["start"]), "end": rfc3339(r["end"])} for r in rows]


def schedule_rows(
    session: Session, config: Config, rotation: str | None, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """Shifts of one rotation (or all) over [start, end), stored overrides included."""
    overrides = load_overrides(session, start)
    chosen = [r for r in config.rotations if rotation is None or r.id == rotation]
    return [
        row
        for r in chosen
        for row in shift_rows(config, r, rotation_shifts(r, start, end, overrides))
    ]


def schedule_ical(
    session: Session,
    config: Config,
    rotation: str | None,
    start: datetime,
    end: datetime,
    now: datetime,
) -> bytes:
    overrides = load_overrides(session, start)
    chosen = [r for r in config.rotations if rotation is None or r.id == rotation]
    return to_ical(config, [(r, rotation_shifts(r, start, end, overrides)) for r in chosen], now)
