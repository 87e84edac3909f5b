"""PagerDuty Events API v2 events into tracked alerts, and change events onto timelines.

A trigger becomes an Alertmanager-shaped body and takes the same ingest (routing, level 0
in the same transaction, maintenance windows, incidents); acknowledge and resolve take the
same `act` path as a person's ack from the CLI. The alert's identity is the integration
and the dedup key: while an alert with that key is open, a trigger updates it; after it
resolved, a trigger opens a new one, as PagerDuty opens a new incident.
"""

from __future__ import annotations

import hmac
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import Session

from escalator.config import Config, Integration
from escalator.escalation.machine import Ack, Resolve
from escalator.escalation.paging import Paging
from escalator.escalation.policies import PolicyCache
from escalator.ingest import events_v2
from escalator.ingest.alertmanager import AMAlert, AMWebhook, ingest
from escalator.ingest.events_v2 import ChangeEvent, Event
from escalator.services.alerts import act
from escalator.store.tables import AlertRow, ChangeEventRow, TimelineRow
from escalator.store.timeline import timeline_row

VIA = "events_v2"


@dataclass(frozen=True)
class KnownIntegration:
    settings: Integration
    key: str


class Integrations:
    """The configured integrations with their keys, resolved once at start-up."""

    def __init__(self, config: Config):
        self._known: list[KnownIntegration] = []
        for integration in config.integrations:
            key = integration.key.resolve()
            if key is None:
                raise ValueError(
                    f"integrations: {integration.name}: key {integration.key.describe()} "
                    "has no value"
                )
            self._known.append(KnownIntegration(integration, key))
        self._limiter = RateLimiter()

    def find(self, routing_key: str) -> Integration | None:
        """The integration of a routing key, comparing every key in constant time."""
        found = None
        given = routing_key.encode()
        for known in self._known:
            if hmac.compare_digest(given, known.key.encode()):
                found = known.settings
        return found

    def allow(self, integration: Integration) -> bool:
        limit = integration.rate_limit
        return self._limiter.allow(integration.name, limit.max, limit.per.total_seconds())


class RateLimiter:
    """A sliding window of accepted events per integration, in this process.

    Per replica: with N replicas behind a balancer a sender may get up to N times the
    limit. It protects the store from one runaway sender, it is not an accounting quota.
    """

    def __init__(self) -> None:
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, name: str, most: int, per_seconds: float) -> bool:
        now = time.monotonic()
        with self._lock:
            seen = self._seen.setdefault(name, deque())
            while seen and seen[0] <= now - per_seconds:
                seen.popleft()
            if len(seen) >= most:
                return False
            seen.append(now)
            return True


def _serialise(session: Session, fingerprint: str) -> None:
    """Two events with one dedup key must not both open an alert. SQLite's BEGIN IMMEDIATE
    already runs one writer at a time; on PostgreSQL a transaction lock on the key does."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": fingerprint}
        )


def _latest(session: Session, fingerprint: str) -> AlertRow | None:
    """The key's most recent occurrence (open or not)."""
    return session.scalars(
        select(AlertRow)
        .where(AlertRow.fingerprint == fingerprint)
        .order_by(AlertRow.starts_at.desc())
        .limit(1)
    ).first()


def enqueue(
    session: Session,
    event: Event,
    integration: Integration,
    config: Config,
    paging: Paging,
    policies: PolicyCache,
    now: datetime,
) -> str:
    """Apply one alert event in the caller's transaction; returns its dedup key."""
    dedup_key = event.dedup_key or events_v2.new_dedup_key()
    fingerprint = events_v2.fingerprint(integration.name, dedup_key)
    _serialise(session, fingerprint)
    latest = _latest(session, fingerprint)
    row = latest if latest is not None and latest.status != "resolved" else None
    if event.action == "trigger":
        # An open alert is updated; after a resolve a new occurrence starts (never on the
        # resolved one's start, even within one tick of the clock).
        if row is not None:
            starts_at = row.starts_at
        elif latest is not None:
            starts_at = max(now, latest.starts_at + timedelta(microseconds=1))
        else:
            starts_at = now
        alert = AMAlert(
            status="firing",
            labels=events_v2.alert_labels(event, integration.name, integration.labels),
            annotations=events_v2.alert_annotations(event, dedup_key),
            startsAt=starts_at,
            generatorURL=event.client_url or "",
            fingerprint=fingerprint,
        )
        policy = integration.policy
        ingest(
            session, AMWebhook(version="4", status="firing", alerts=[alert]), config, paging,
            policies, now, source=VIA, route=(lambda _l: policy) if policy else None,
        )  # fmt: skip
    elif row is not None:  # acknowledge or resolve of a key with no open alert: nothing to do
        by = f"{integration.name} (events v2)"
        change = Ack(by=by, via=VIA) if event.action == "acknowledge" else Resolve(by=by, via=VIA)
        act(session, [row.id], change, paging, policies, now)
    return dedup_key


def change(session: Session, event: ChangeEvent, integration: Integration, now: datetime) -> int:
    """Record a change event and note it on every alert open now; returns how many."""
    open_ids = list(
        session.scalars(select(AlertRow.id).where(AlertRow.status != "resolved").order_by("id"))
    )
    detail = events_v2.change_detail(event, integration.name)
    if open_ids:
        session.execute(
            insert(TimelineRow.__table__),  # type: ignore[arg-type]
            [timeline_row(i, now, "change", detail, integration.name, VIA) for i in open_ids],
        )
    session.add(
        ChangeEventRow(
            at=now,
            integration=integration.name,
            summary=event.summary,
            source=event.source,
            timestamp=event.timestamp,
            custom_details=event.custom_details,
            links=[{"href": link.href, "text": link.text} for link in event.links],
            alerts_noted=len(open_ids),
        )
    )
    return len(open_ids)


def change_count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(ChangeEventRow)) or 0)
