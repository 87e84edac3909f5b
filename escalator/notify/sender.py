"""The sender drains the outbox in small stages, like Alertmanager's notification pipeline:
claim (lease due rows) -> inhibit (drop pages an ack or resolve made moot) -> send ->
record (timeline, retry with backoff, or give up).

Delivery is at least once: a row is leased before the provider is called and marked sent
after, so a crash in between re-sends that one page when the lease runs out, never drops it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Mapping
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from escalator.alerts import note
from escalator.clock import Clock
from escalator.config import Engine as EngineSettings
from escalator.machine import condition_holds
from escalator.notify.base import Channel, Delivery, Message, SendResult
from escalator.notify.message import render
from escalator.store.db import transaction
from escalator.store.tables import AlertRow, OutboxRow

log = logging.getLogger("escalator.sender")

_MAX_BACKOFF = timedelta(minutes=5)


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Sender:
    def __init__(
        self,
        factory: sessionmaker[Session],
        channels: Mapping[str, Channel],
        clock: Clock,
        settings: EngineSettings,
        batch_size: int = 100,
    ):
        self._factory = factory
        self._channels = dict(channels)
        self._clock = clock
        self._settings = settings
        self._batch = batch_size
        self._owner = worker_id()
        self._lock = threading.Lock()

    @property
    def methods(self) -> frozenset[str]:
        return frozenset(self._channels)

    def drain(self) -> int:
        """Send everything due now; returns how many deliveries were attempted."""
        attempted = 0
        with self._lock:
            while True:
                batch = self._claim(self._clock.now())
                if not batch:
                    return attempted
                for delivery, message in batch:
                    result = self._send(delivery, message)
                    self._record(delivery, result)
                    attempted += 1

    def _claim(self, now: datetime) -> list[tuple[Delivery, Message]]:
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
            alert_ids = {r.alert_id for r in rows if r.alert_id is not None}
            alerts = {
                a.id: a for a in session.scalars(select(AlertRow).where(AlertRow.id.in_(alert_ids)))
            }
            claimed = []
            for row in rows:
                alert = alerts.get(row.alert_id) if row.alert_id is not None else None
                if (
                    alert is not None
                    and row.condition
                    and not condition_holds(
                        row.condition,
                        alert.status,  # type: ignore[arg-type]
                    )
                ):
                    row.status = "cancelled"
                    row.last_error = f"cancelled: alert {alert.status}"
                    continue
                if row.status == "sending":
                    log.warning(
                        "outbox %s: lease of %s ran out; sending again", row.id, row.leased_by
                    )
                row.status = "sending"
                row.lease_until = now + self._settings.send_lease
                row.leased_by = self._owner
                row.attempts += 1
                delivery = Delivery(
                    id=row.id,
                    alert_id=row.alert_id,
                    recipient_kind=row.recipient_kind,
                    recipient=row.recipient,
                    method=row.method,
                    address=row.address,
                    level=row.level,
                    urgency=row.urgency,
                    reason=row.reason,
                    attempts=row.attempts,
                    payload=dict(row.payload),
                )
                claimed.append((delivery, render(alert, delivery)))
            return claimed

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

    def _record(self, delivery: Delivery, result: SendResult) -> None:
        now = self._clock.now()
        with transaction(self._factory) as session:
            row = session.get(OutboxRow, delivery.id, with_for_update=True)
            if row is None or row.status != "sending" or row.leased_by != self._owner:
                return  # another worker took the row over after our lease ran out
            row.lease_until = None
            row.provider_id = result.provider_id or row.provider_id
            outcome = result.outcome
            if outcome == "retry" and row.attempts >= self._settings.send_max_attempts:
                outcome = "failed"
            if outcome == "sent":
                row.status, row.sent_at = "sent", now
                kind, detail = "sent", f"{delivery.method} to {delivery.recipient}"
            elif outcome == "retry":
                row.status, row.due_at = "pending", now + self._backoff(row.attempts)
                row.last_error = result.detail
                kind = "send_retry"
                detail = (
                    f"{delivery.method} to {delivery.recipient} failed (attempt "
                    f"{row.attempts}), retrying at {row.due_at:%H:%M:%S}"
                )
            else:
                row.status, row.last_error = "failed", result.detail
                kind, detail = "send_failed", f"{delivery.method} to {delivery.recipient} failed"
            if result.detail:
                detail += f": {result.detail}"
            if row.alert_id is not None:
                note(
                    session,
                    row.alert_id,
                    now,
                    kind,
                    detail,
                    delivery.recipient,
                    delivery.method,
                    delivery.level,
                )
