"""The sender drains the outbox in small stages, like Alertmanager's notification pipeline:
claim (lease due rows) -> inhibit (drop pages an ack or resolve made moot) -> bundle and
rate-limit (one message per person and method) -> send -> record (timeline, retry with
backoff, or fall back to the next contact method).

Delivery is at least once: rows are leased before the provider is called and marked sent
after, so a crash in between re-sends that page when the lease runs out, never drops it.

Rules (the README's "Paging channels" repeats them for users):
- Bundling. Due pages to one person by one method go out as ONE message listing the alerts.
  The first message goes at once; pages falling due within `channels.bundle_window` of the
  last message to that person and method wait for the end of the window and go together.
- Rate limits. At most `channels.rate_limits[method].max` messages per person per `per`.
  Pages over the limit wait until the limit frees and go out as one bundle with every
  page held meanwhile: held, never dropped. The first page of a new incident (alerts whose
  `channels.incident_labels` values were not sent to that person by that method within
  the window) is never held back: it goes at once and takes the held pages with it.
- Retry. `retry` results (HTTP 429 / Twilio 20429, 5xx, timeouts, SMTP 4xx) are retried
  with exponential backoff (`engine.send_retry_base`, doubling, at most 5 min) up to
  `engine.send_max_attempts`; then the method counts as failed.
- Fallback. A `failed` result (Twilio 21211, 21610, 21614, other 4xx; SMTP 5xx; retries
  exhausted) or a failed / undelivered / busy / no-answer status callback moves the page
  to the person's next contact method at once: the next pending method of that page is
  brought forward to now; if the person was reached no other way, an untried method with
  an address (SMS, voice, email), else the console, is added.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from escalator.config import Channels as ChannelSettings
from escalator.config import Config
from escalator.config import Engine as EngineSettings
from escalator.escalation.machine import condition_holds
from escalator.notify.channels.base import Channel, Delivery, Message, SendResult
from escalator.notify.message import Pages
from escalator.store.clock import Clock
from escalator.store.db import transaction
from escalator.store.tables import AlertRow, OutboxRow
from escalator.store.timeline import note

log = logging.getLogger("escalator.sender")

_MAX_BACKOFF = timedelta(minutes=5)
# The console is the developer's view and the last resort: one line per page, never held.
_UNBUNDLED = frozenset({"console"})
# Marks a pending row the rate limit or the bundle window holds (so later sends fold it in).
_HELD = "held: "
# Status callbacks that mean the person never got the message or call.
FAILED_STATUSES = frozenset({"failed", "undelivered", "busy", "no-answer", "canceled"})
DELIVERED_STATUSES = frozenset({"delivered", "completed", "read"})
_PERSON_METHODS = ("sms", "voice", "email")


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class Bundle:
    """One message to send: the lead row's delivery, the message, every row it covers."""

    delivery: Delivery
    message: Message
    row_ids: tuple[int, ...]


class Sender:
    def __init__(
        self,
        factory: sessionmaker[Session],
        channels: Mapping[str, Channel],
        clock: Clock,
        settings: EngineSettings,
        batch_size: int = 100,
        config: Config | None = None,
    ):
        self._factory = factory
        self._channels = dict(channels)
        self._clock = clock
        self._settings = settings
        self._config = config
        self._delivery: ChannelSettings = config.channels if config else ChannelSettings()
        self._batch = batch_size
        self._owner = worker_id()
        self._lock = threading.Lock()
        # Page templates and runbooks from this daemon's config, built and held here: pages
        # carry their runbook from the first drain on, with no process-wide state set by
        # some earlier tick.
        self._pages = Pages.from_config(config)

    @property
    def pages(self) -> Pages:
        """The daemon's page renderer (the voice webhook speaks through it too)."""
        return self._pages

    @property
    def methods(self) -> frozenset[str]:
        return frozenset(self._channels)

    def drain(self) -> int:
        """Send everything due now; returns how many messages were attempted."""
        attempted = 0
        with self._lock:
            while True:
                bundles, touched = self._claim(self._clock.now())
                if not touched:
                    return attempted
                for bundle in bundles:
                    result = self._send(bundle.delivery, bundle.message)
                    self._record(bundle, result)
                    attempted += 1

    # claim -> inhibit -> bundle and rate-limit ------------------------------------------

    def _claim(self, now: datetime) -> tuple[list[Bundle], int]:
        """Lease due rows as bundles; returns the bundles and how many rows were looked at."""
        with transaction(self._factory) as session:
            query = (
                select(OutboxRow)
                .where(
                    or_(
                        (OutboxRow.status == "pending") & (OutboxRow.due_at <= now),
                        (OutboxRow.status == "sending") & (OutboxRow.lease_until <= now),
                    )
                )
                .order_by(OutboxRow.due_at, OutboxRow.id)
                .limit(self._batch)
                .with_for_update(skip_locked=True)
            )
            rows = list(session.scalars(query))
            if not rows:
                return [], 0
            alerts = self._alerts(session, rows)
            groups: dict[tuple[str, ...], list[OutboxRow]] = defaultdict(list)
            for row in self._inhibit(rows, alerts):
                groups[self._group_key(row)].append(row)
            bundles = []
            for key, group in groups.items():
                if key[0] == "bundle":
                    hold, why = self._hold_until(session, group, alerts, now)
                    if hold is not None:
                        self._hold(session, group, hold, why, now)
                        continue
                    group = group + self._held_rows(session, group[0], {r.id for r in group})
                    alerts.update(self._alerts(session, group))
                bundles.append(self._lease(group, alerts, now))
            return bundles, len(rows)

    @staticmethod
    def _alerts(session: Session, rows: Sequence[OutboxRow]) -> dict[int, AlertRow]:
        ids = {r.alert_id for r in rows if r.alert_id is not None}
        if not ids:
            return {}
        return {a.id: a for a in session.scalars(select(AlertRow).where(AlertRow.id.in_(ids)))}

    def _inhibit(self, rows: list[OutboxRow], alerts: dict[int, AlertRow]) -> list[OutboxRow]:
        live = []
        for row in rows:
            alert = alerts.get(row.alert_id) if row.alert_id is not None else None
            if (
                alert is not None
                and row.condition
                and not condition_holds(row.condition, alert.status)  # type: ignore[arg-type]
            ):
                row.status = "cancelled"
                row.last_error = f"cancelled: alert {alert.status}"
                continue
            if row.status == "sending":
                log.warning("outbox %s: lease of %s ran out; sending again", row.id, row.leased_by)
            live.append(row)
        return live

    @staticmethod
    def _group_key(row: OutboxRow) -> tuple[str, ...]:
        if row.method in _UNBUNDLED or row.alert_id is None or "text" in (row.payload or {}):
            return ("row", str(row.id))
        return ("bundle", row.recipient_kind, row.recipient, row.method, row.address or "")

    def _incident(self, alert: AlertRow | None) -> tuple[str, ...]:
        if alert is None:
            return ()
        return tuple(str(alert.labels.get(k, "")) for k in self._delivery.incident_labels)

    def _hold_until(
        self,
        session: Session,
        group: list[OutboxRow],
        alerts: dict[int, AlertRow],
        now: datetime,
    ) -> tuple[datetime | None, str]:
        """When this group may go, if not now: the bundle window, then the rate limit."""
        first = group[0]
        window = self._delivery.bundle_window
        limit = self._delivery.rate_limits.get(first.method)  # type: ignore[call-overload]
        span = max(window, limit.per if limit else timedelta(0))
        if span <= timedelta(0):
            return None, ""
        recent = session.execute(
            select(
                OutboxRow.provider_id,
                OutboxRow.id,
                OutboxRow.sent_at,
                OutboxRow.payload,
                AlertRow.labels,
            )
            .join(AlertRow, AlertRow.id == OutboxRow.alert_id, isouter=True)
            .where(
                OutboxRow.recipient_kind == first.recipient_kind,
                OutboxRow.recipient == first.recipient,
                OutboxRow.method == first.method,
                OutboxRow.sent_at.is_not(None),
                OutboxRow.sent_at > now - span,
            )
        ).all()
        if not recent:
            return None, ""
        messages: dict[str, datetime] = {}
        firsts: set[str] = set()
        seen: set[tuple[str, ...]] = set()
        for provider_id, row_id, sent_at, payload, labels in recent:
            key = provider_id or f"row-{row_id}"
            messages[key] = min(sent_at, messages.get(key, sent_at))
            if (payload or {}).get("incident_first"):
                firsts.add(key)
            seen.add(tuple(str((labels or {}).get(k, "")) for k in self._delivery.incident_labels))
        if any(self._incident(alerts.get(r.alert_id or -1)) not in seen for r in group):
            # The first page of a new incident is never held back; so that a storm of
            # distinct alert names cannot use this to flood, such messages have their own
            # budget of `max` per window on top of the ordinary one.
            budget = limit.max if limit is not None else None
            if budget is None or len(firsts) < budget:
                for row in group:
                    row.payload = {**row.payload, "incident_first": True}
                return None, ""
        hold, why = now, ""
        last = max(messages.values())
        if last + window > hold:
            hold, why = last + window, f"bundle window {window.total_seconds():g}s"
        if limit is not None:
            inside = sorted(t for t in messages.values() if t > now - limit.per)
            if len(inside) >= limit.max:
                frees = inside[len(inside) - limit.max] + limit.per
                if frees > hold:
                    hold = frees
                    why = f"rate limit {limit.max} {first.method} per {limit.per}"
        return (hold, why) if hold > now else (None, "")

    def _hold(
        self, session: Session, group: list[OutboxRow], until: datetime, why: str, now: datetime
    ) -> None:
        for row in group:
            if row.alert_id is not None and not (row.last_error or "").startswith(_HELD):
                note(
                    session,
                    row.alert_id,
                    now,
                    "send_held",
                    f"{row.method} to {row.recipient} held until {until:%H:%M:%S} ({why}); "
                    "it goes out in the next bundle",
                    row.recipient,
                    row.method,
                    row.level,
                )
            row.status, row.due_at, row.lease_until = "pending", until, None
            row.last_error = f"{_HELD}{why}"

    def _held_rows(self, session: Session, like: OutboxRow, exclude: set[int]) -> list[OutboxRow]:
        """Rows held for the same person and method: they ride along with this message."""
        rows = session.scalars(
            select(OutboxRow)
            .where(
                OutboxRow.status == "pending",
                OutboxRow.recipient_kind == like.recipient_kind,
                OutboxRow.recipient == like.recipient,
                OutboxRow.method == like.method,
                OutboxRow.last_error.like(f"{_HELD}%"),
            )
            .with_for_update(skip_locked=True)
        )
        return [r for r in rows if r.id not in exclude]

    def _lease(self, group: list[OutboxRow], alerts: dict[int, AlertRow], now: datetime) -> Bundle:
        lead = min(group, key=lambda r: r.id)
        for row in group:
            row.status = "sending"
            row.lease_until = now + self._settings.send_lease
            row.leased_by = self._owner
            row.attempts += 1
            if (row.last_error or "").startswith(_HELD):
                row.last_error = None
        delivery = Delivery(
            id=lead.id,
            alert_id=lead.alert_id,
            recipient_kind=lead.recipient_kind,
            recipient=lead.recipient,
            method=lead.method,
            address=lead.address,
            level=lead.level,
            urgency=lead.urgency,
            reason=lead.reason,
            attempts=lead.attempts,
            payload={**lead.payload, "bundle": [r.id for r in group]},
        )
        # The same alert may reach a person twice in one page (rotation and team): list once.
        unique = {r.alert_id: alerts[r.alert_id] for r in group if r.alert_id in alerts}
        message = self._pages.render_bundle(list(unique.values()), delivery, now)
        return Bundle(delivery, message, tuple(r.id for r in group))

    # send ---------------------------------------------------------------------------------

    def _send(self, delivery: Delivery, message: Message) -> SendResult:
        channel = self._channels.get(delivery.method)
        if channel is None:
            return SendResult("failed", f"no channel configured for {delivery.method}")
        try:
            return channel.send(delivery, message)
        except Exception as exc:  # a channel bug must not kill the sender loop
            log.exception("channel %s raised", delivery.method)
            return SendResult("retry", f"{type(exc).__name__}: {exc}")

    def _backoff(self, attempts: int) -> timedelta:
        return min(self._settings.send_retry_base * (2 ** max(attempts - 1, 0)), _MAX_BACKOFF)

    # record -------------------------------------------------------------------------------

    def _record(self, bundle: Bundle, result: SendResult) -> None:
        now = self._clock.now()
        delivery = bundle.delivery
        size = len(bundle.row_ids)
        # Every row of one message shares an id, so a status callback finds them all and
        # the rate limit counts messages, not alerts.
        provider_id = result.provider_id or f"escalator-{delivery.id}-{delivery.attempts}"
        with transaction(self._factory) as session:
            rows = session.scalars(
                select(OutboxRow)
                .where(OutboxRow.id.in_(bundle.row_ids))
                .order_by(OutboxRow.id)
                .with_for_update()
            )
            for row in rows:
                if row.status != "sending" or row.leased_by != self._owner:
                    continue  # another worker took the row over after our lease ran out
                row.lease_until = None
                outcome = result.outcome
                if outcome == "retry" and row.attempts >= self._settings.send_max_attempts:
                    outcome = "failed"
                what = f"{row.method} to {row.recipient}"
                if size > 1:
                    what += f" (one message for {len(bundle.message.alert_ids)} alerts)"
                if outcome == "sent":
                    row.status, row.sent_at, row.provider_id = "sent", now, provider_id
                    kind, detail = "sent", what
                elif outcome == "retry":
                    row.status, row.due_at = "pending", now + self._backoff(row.attempts)
                    row.last_error = result.detail
                    kind = "send_retry"
                    detail = (
                        f"{what} failed (attempt {row.attempts}), "
                        f"retrying at {row.due_at:%H:%M:%S}"
                    )
                else:
                    row.status, row.last_error = "failed", result.detail
                    row.provider_id = result.provider_id or row.provider_id
                    kind, detail = "send_failed", f"{what} failed"
                if result.detail:
                    detail += f": {result.detail}"
                if outcome == "failed":
                    detail += f"; {self._fallback(session, row, now)}"
                if row.alert_id is not None:
                    note(
                        session,
                        row.alert_id,
                        now,
                        kind,
                        detail,
                        row.recipient,
                        row.method,
                        row.level,
                    )

    # fallback ------------------------------------------------------------------------------

    def _fallback(self, session: Session, row: OutboxRow, now: datetime) -> str:
        """Move the page `row` failed to deliver to the next contact method, at once.

        Returns what was done, for the timeline.
        """
        level = OutboxRow.level.is_(None) if row.level is None else OutboxRow.level == row.level
        siblings = list(
            session.scalars(
                select(OutboxRow)
                .where(
                    OutboxRow.alert_id == row.alert_id
                    if row.alert_id is not None
                    else OutboxRow.alert_id.is_(None),
                    OutboxRow.recipient_kind == row.recipient_kind,
                    OutboxRow.recipient == row.recipient,
                    OutboxRow.created_at == row.created_at,
                    level,
                    OutboxRow.id != row.id,
                )
                .order_by(OutboxRow.id)
            )
        )
        order = self._method_order(row)
        later = order[order.index(row.method) + 1 :] if row.method in order else order
        for method in later:
            for sibling in siblings:
                if sibling.method == method and sibling.status == "pending":
                    sibling.due_at = min(sibling.due_at, now)
                    sibling.last_error = None
                    return f"trying {method} now"
        reached = [
            s.method for s in siblings if s.status in ("sending", "sent", "delivered")
        ]
        if reached:
            return f"already sent by {', '.join(sorted(set(reached)))}"
        tried = {row.method} | {s.method for s in siblings}
        for method in [*later, *order, "console"]:
            if method in tried or method not in self._channels:
                continue
            address = self._address(row, method)
            if method != "console" and address is None:
                continue
            session.add(
                OutboxRow(
                    alert_id=row.alert_id,
                    recipient_kind=row.recipient_kind,
                    recipient=row.recipient,
                    method=method,
                    address=address,
                    level=row.level,
                    urgency=row.urgency,
                    condition=row.condition,
                    reason=row.reason,
                    payload={**row.payload, "fallback_from": row.method},
                    status="pending",
                    due_at=now,
                    attempts=0,
                    created_at=row.created_at,
                )
            )
            return f"falling back to {method}"
        return "no other contact method left"

    def _method_order(self, row: OutboxRow) -> list[str]:
        """The person's rules for this urgency, then their other methods."""
        if row.recipient_kind != "person" or self._config is None:
            return []
        person = self._config.person(row.recipient)
        if person is None:
            return []
        order = [r.method for r in person.rules.get(row.urgency, [])]  # type: ignore[call-overload]
        return list(dict.fromkeys([*order, *_PERSON_METHODS]))

    def _address(self, row: OutboxRow, method: str) -> str | None:
        if method == "console":
            return None
        if row.recipient_kind != "person" or self._config is None:
            return None
        person = self._config.person(row.recipient)
        return person.address(method) if person else None

    # status callbacks ------------------------------------------------------------------------

    def delivery_status(self, provider_id: str, status: str, detail: str = "") -> int:
        """A provider's report on a sent message (Twilio status callback).

        Failed, undelivered, busy, no-answer and canceled move the page to the next contact
        method at once; delivered and completed are recorded. Idempotent: Twilio retries
        callbacks, and only the first report of a final status changes anything.
        Returns how many outbox rows the report changed.
        """
        now = self._clock.now()
        status = status.lower()
        changed = 0
        with transaction(self._factory) as session:
            rows = list(
                session.scalars(
                    select(OutboxRow)
                    .where(OutboxRow.provider_id == provider_id)
                    .order_by(OutboxRow.id)
                    .with_for_update()
                )
            )
            for row in rows:
                if row.status != "sent":
                    continue
                what = f"{row.method} to {row.recipient} {status}"
                if detail:
                    what += f" ({detail})"
                if status in FAILED_STATUSES:
                    row.status, row.last_error = "failed", f"status callback: {status} {detail}"
                    kind, text = "send_failed", f"{what}; {self._fallback(session, row, now)}"
                elif status in DELIVERED_STATUSES:
                    row.status, kind, text = "delivered", "delivered", what
                else:
                    continue  # queued, sending, ringing...: not final
                changed += 1
                if row.alert_id is not None:
                    note(session, row.alert_id, now, kind, text, row.recipient, row.method)
        return changed
