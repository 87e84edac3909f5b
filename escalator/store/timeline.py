"""The one timeline writer: every note on an alert's timeline goes through here."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from escalator.store.tables import TimelineRow


def note(
    session: Session,
    alert_id: int,
    at: datetime,
    kind: str,
    detail: str,
    actor: str | None = None,
    channel: str | None = None,
    level: int | None = None,
) -> None:
    session.add(TimelineRow(**timeline_row(alert_id, at, kind, detail, actor, channel, level)))


def timeline_row(
    alert_id: int,
    at: datetime,
    kind: str,
    detail: str,
    actor: str | None = None,
    channel: str | None = None,
    level: int | None = None,
) -> dict[str, Any]:
    return {
        "alert_id": alert_id,
        "at": at,
        "kind": kind,
        "detail": detail,
        "actor": actor,
        "channel": channel,
        "level": level,
    }
