"""Shift-change notices: "you are on call from ... to ..." to the incoming person.

The engine calls `ShiftNotices.run(now)` from its tick. Which notices are due is pure
(`due_notices`: shifts starting within the next `shift_notice` of their rotation, or at
most CATCH_UP ago); sending is an outbox row per contact method, like a page, with urgency
`notify`, reason `shift_change` and no alert.

Exactly once per shift, across restarts and replicas, without a table of its own: every
row carries a deterministic key (rotation, person, shift start) in its payload, and the
check for an existing key and the insert run in one transaction that is serialised across
replicas (a PostgreSQL transaction-level advisory lock; on SQLite every transaction
already holds the write lock from its start).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from escalator.config import Config
from escalator.incidents.templates import Templates
from escalator.notify.templates import page_templates
from escalator.roster.contacts import deliveries
from escalator.roster.oncall import Override, Recipient, on_call, segments
from escalator.roster.overrides import load_overrides
from escalator.roster.schedule import local
from escalator.store.db import transaction
from escalator.store.tables import OutboxRow

log = logging.getLogger("escalator.notices")

# A shift that began while no daemon ran is still announced if it began this recently;
# older ones are not (a first deploy must not announce every shift of the past week).
CATCH_UP = timedelta(hours=1)
REASON = "shift_change"
# Arbitrary constant: the PostgreSQL advisory lock that serialises notice creation.
_LOCK_KEY = 0x65736E74
_EPSILON = timedelta(microseconds=1)


@dataclass(frozen=True)
class Notice:
    rotation: str
    person: str
    start: datetime
    end: datetime

    @property
    def key(self) -> str:
        return f"{REASON}:{self.rotation}:{self.person}:{self.start.astimezone(UTC).isoformat()}"


def due_notices(cfg: Config, now: datetime, overrides: list[Override]) -> list[Notice]:
    """Shifts (overrides included) whose start lies in [now - CATCH_UP, now + lead].

    A shift that continues the same person's time on call (an override of the person who
    already holds the rotation) is not a change and gets no notice.
    """
    out: list[Notice] = []
    for rotation in cfg.rotations:
        lead = rotation.shift_notice
        if lead is None:
            continue
        first, last = now - CATCH_UP, now + lead
        for shift in segments(rotation, first, last + _EPSILON, overrides):
            if not first <= shift.start <= last:
                continue
            before = on_call(rotation, shift.start - _EPSILON, overrides)
            if before is not None and before.person == shift.person:
                continue
            out.append(Notice(rotation.id, shift.person, shift.start, shift.end))
    return out


def _context(cfg: Config, notice: Notice) -> dict[str, Any]:
    """What notify/templates/shift_notice.j2 is rendered with."""
    rotation = cfg.rotation(notice.rotation)
    person = cfg.person(notice.person)
    assert rotation is not None
    zone = person.timezone if person else rotation.timezone
    return {
        "person": notice.person,
        "rotation": {
            "id": rotation.id,
            "title": rotation.name or rotation.id,
            "timezone": rotation.timezone,
        },
        "shift": {
            "start": local(notice.start, zone),
            "end": local(notice.end, zone),
            "start_in_rotation": local(notice.start, rotation.timezone),
            "end_in_rotation": local(notice.end, rotation.timezone),
            "start_utc": f"{notice.start.astimezone(UTC):%Y-%m-%dT%H:%MZ}",
        },
    }


def _existing_keys(session: Session, cfg: Config, now: datetime) -> set[str]:
    """Keys of notices already in the outbox that a due notice could collide with."""
    leads = [r.shift_notice for r in cfg.rotations if r.shift_notice is not None]
    since = now - CATCH_UP - max(leads, default=timedelta(0)) - timedelta(days=1)
    payloads = session.scalars(
        select(OutboxRow.payload).where(
            OutboxRow.alert_id.is_(None),
            OutboxRow.reason == REASON,
            OutboxRow.created_at >= since,
        )
    )
    return {p["key"] for p in payloads if isinstance(p, dict) and p.get("key")}


def create_notices(
    session: Session,
    cfg: Config,
    methods: frozenset[str],
    now: datetime,
    notices: list[Notice],
    templates: Templates | None = None,
) -> list[Notice]:
    """Write outbox rows for the notices not yet written; returns those it wrote."""
    templates = templates or page_templates(cfg.channels.templates)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    existing = _existing_keys(session, cfg, now)
    written = []
    for notice in notices:
        if notice.key in existing:
            continue
        recipient = Recipient("person", notice.person, f"rotation {notice.rotation}")
        ways = deliveries(cfg, methods, recipient, "notify")
        if not ways:
            log.warning("shift notice for %s: no usable contact method", notice.person)
        context = _context(cfg, notice)
        for method, address, delay in ways:
            # Rendered per method: `channels.templates.<method>.shift_notice` may replace it.
            rendered = templates.render("shift_notice", method, context)
            title = rendered.partition("\n")[0]
            session.add(
                OutboxRow(
                    alert_id=None,
                    recipient_kind="person",
                    recipient=notice.person,
                    method=method,
                    address=address,
                    level=None,
                    urgency="notify",
                    condition=None,
                    reason=REASON,
                    payload={
                        "key": notice.key,
                        "rotation": notice.rotation,
                        "shift_start": notice.start.astimezone(UTC).isoformat(),
                        "shift_end": notice.end.astimezone(UTC).isoformat(),
                        # The sender's prerendered-notice contract (notify/message.py).
                        "subject": title,
                        "text": rendered,
                        "ack_hint": "shift notice: nothing to acknowledge",
                    },
                    status="pending",
                    due_at=now + delay,
                    attempts=0,
                    created_at=now,
                )
            )
        written.append(notice)
    return written


class ShiftNotices:
    """The engine's notice step: at most every `interval`, write the notices now due.

    `_seen` only saves queries: keys this process knows are written. The database is
    what makes a notice happen once.
    """

    def __init__(
        self,
        factory: sessionmaker[Session],
        config: Config,
        methods: frozenset[str],
        interval: timedelta = timedelta(seconds=30),
    ):
        self.factory = factory
        self.config = config
        self.methods = methods
        self.interval = interval
        self._last: datetime | None = None
        self._seen: set[str] = set()
        self.templates = page_templates(config.channels.templates)

    def run(self, now: datetime) -> int:
        """Write due notices; returns how many shifts were announced by this call."""
        if self._last is not None and self._last <= now < self._last + self.interval:
            return 0
        self._last = now
        with transaction(self.factory) as session:
            overrides = load_overrides(session, now - CATCH_UP)
            due = [n for n in due_notices(self.config, now, overrides) if n.key not in self._seen]
            if not due:
                return 0
            written = create_notices(session, self.config, self.methods, now, due, self.templates)
        self._seen.update(n.key for n in due)
        for notice in written:
            log.info(
                "shift notice: %s holds %s from %s", notice.person, notice.rotation, notice.start
            )
        return len(written)
