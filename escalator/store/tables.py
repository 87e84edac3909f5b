"""Tables: alerts, the policies they started with, their timeline, the outbox, overrides.

Times are stored as naive UTC and handed back timezone-aware, the same on SQLite (which
has no time zone type) and PostgreSQL.
"""

# No `from __future__ import annotations` here: SQLAlchemy would then eval() every
# `Mapped[...]` string at import (a third of this module's import time, which every
# CLI verb pays).
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# Integer on SQLite so the primary key is the rowid alias (autoincrement); bigint elsewhere.
Id = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; pass an aware UTC time")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar = {datetime: UTCDateTime, dict[str, Any]: JSON}


class PolicyRow(Base):
    """A policy body as an alert saw it; the id is a hash of the body, so edits add rows."""

    __tablename__ = "policies"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    body: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class AlertRow(Base):
    __tablename__ = "alerts"
    __table_args__ = (
        UniqueConstraint("fingerprint", "starts_at", name="uq_alerts_occurrence"),
        Index("ix_alerts_next_action_at", "next_action_at"),
        Index("ix_alerts_status", "status"),
        Index("ix_alerts_identity", "identity"),
        Index("ix_alerts_severity_status", "severity", "status"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime | None]
    # Text, not a length: values that come from labels have no bound a column may impose
    # (one backend would refuse what the other takes; migration 0010).
    alertname: Mapped[str] = mapped_column(Text)
    # Hash of every label but severity: finds the warning a new critical occurrence rises from.
    identity: Mapped[str] = mapped_column(String(40))
    severity: Mapped[str | None] = mapped_column(Text)
    labels: Mapped[dict[str, Any]]
    annotations: Mapped[dict[str, Any]]
    generator_url: Mapped[str | None] = mapped_column(Text)
    policy_name: Mapped[str] = mapped_column(String(200))
    policy_id: Mapped[str] = mapped_column(ForeignKey("policies.id"))
    status: Mapped[str] = mapped_column(String(20))
    level: Mapped[int]
    next_step: Mapped[int]
    repeats_done: Mapped[int]
    opened_at: Mapped[datetime]
    clock_base: Mapped[datetime]
    acked_at: Mapped[datetime | None]
    acked_by: Mapped[str | None] = mapped_column(String(200))
    ack_via: Mapped[str | None] = mapped_column(String(50))
    ack_expires_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(200))
    resolved_via: Mapped[str | None] = mapped_column(String(50))
    next_action_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class TimelineRow(Base):
    __tablename__ = "timeline"
    __table_args__ = (Index("ix_timeline_alert_id", "alert_id", "id"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    # No foreign key (migration 0009): inserting a row under one would take a KEY SHARE lock
    # on the alert, so the sender recording "sent" would wait for ingest's FOR UPDATE on it.
    # Alerts are never deleted, so the key guarded nothing the code relies on.
    alert_id: Mapped[int] = mapped_column(Id)
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(50))
    actor: Mapped[str | None] = mapped_column(String(200))
    channel: Mapped[str | None] = mapped_column(String(50))
    level: Mapped[int | None]
    detail: Mapped[str] = mapped_column(Text)


class OutboxRow(Base):
    """One notification to one recipient by one method; the sender's unit of work.

    status: pending -> sending (in flight) -> sent | failed; pending -> cancelled when an ack
    or resolve makes it moot. A `sending` row whose worker stopped heartbeating is claimed
    again: a crash mid-send repeats a page rather than losing it.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_due", "status", "due_at"),
        Index("ix_outbox_alert", "alert_id", "status"),
        Index("ix_outbox_provider_id", "provider_id"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    # No foreign key, like the timeline's (0009): a fallback row the sender adds must not
    # wait for ingest's lock on the alert.
    alert_id: Mapped[int | None] = mapped_column(Id)
    recipient_kind: Mapped[str] = mapped_column(String(20))
    recipient: Mapped[str] = mapped_column(String(200))
    method: Mapped[str] = mapped_column(String(20))
    address: Mapped[str | None] = mapped_column(String(500))
    level: Mapped[int | None]
    urgency: Mapped[str] = mapped_column(String(20))
    condition: Mapped[str | None] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(20))
    due_at: Mapped[datetime]
    attempts: Mapped[int]
    lease_until: Mapped[datetime | None]
    # While `sending`: the delivery worker (escalator.notify.leases) that has it in flight.
    # Ownership lasts as long as that worker's heartbeat, not a per-row lease; `attempts`
    # (raised at each claim) is the attempt token that fences the record of the send.
    leased_by: Mapped[str | None] = mapped_column(String(100))
    claimed_at: Mapped[datetime | None]
    provider_id: Mapped[str | None] = mapped_column(String(100))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]


class OverrideRow(Base):
    __tablename__ = "overrides"
    __table_args__ = (Index("ix_overrides_window", "rotation", "end_at"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    rotation: Mapped[str] = mapped_column(String(200))
    person: Mapped[str] = mapped_column(String(200))
    start_at: Mapped[datetime]
    end_at: Mapped[datetime]
    created_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime]


class IncidentRow(Base):
    __tablename__ = "incidents"
    __table_args__ = (
        Index("ix_incidents_next_due_at", "next_due_at"),
        Index("ix_incidents_postmortem", "status", "postmortem_due_at"),
    )
    alert_id: Mapped[int] = mapped_column(
        Id, ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True
    )
    channel: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20))
    opened_at: Mapped[datetime]
    commander: Mapped[str | None] = mapped_column(String(200))
    commander_at: Mapped[datetime | None]
    initial_sent_at: Mapped[datetime | None]
    last_update_at: Mapped[datetime | None]
    next_reminder_at: Mapped[datetime | None]
    next_stakeholder_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(200))
    resolution_sent_at: Mapped[datetime | None]
    postmortem_due_at: Mapped[datetime | None]
    postmortem_url: Mapped[str | None] = mapped_column(Text)
    postmortem_by: Mapped[str | None] = mapped_column(String(200))
    postmortem_at: Mapped[datetime | None]
    next_postmortem_reminder_at: Mapped[datetime | None]
    next_due_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class IncidentUpdateRow(Base):
    """A status update from `escalator update`; `posted_at` is set once the engine queued it."""

    __tablename__ = "incident_updates"
    __table_args__ = (Index("ix_incident_updates_alert", "alert_id", "id"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(Id, ForeignKey("incidents.alert_id", ondelete="CASCADE"))
    at: Mapped[datetime]
    author: Mapped[str] = mapped_column(String(200))
    message: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20))
    eta: Mapped[str | None] = mapped_column(String(200))
    posted_at: Mapped[datetime | None]


class AlertSlaRow(Base):
    """The response-time SLA of one alert: due when, answered when and by whom, breached?"""

    __tablename__ = "alert_slas"
    __table_args__ = (Index("ix_alert_slas_open", "responded_at", "breached_at", "due_at"),)
    alert_id: Mapped[int] = mapped_column(
        Id, ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True
    )
    severity: Mapped[str | None] = mapped_column(Text)
    response_seconds: Mapped[int] = mapped_column(Integer)
    due_at: Mapped[datetime]
    responded_at: Mapped[datetime | None]
    responded_by: Mapped[str | None] = mapped_column(String(200))
    breached_at: Mapped[datetime | None]


class AlertAliasRow(Base):
    """Another Alertmanager occurrence (fingerprint, startsAt) tracked by an existing alert:
    the critical twin of a warning whose severity rose. The alert resolves only when every
    one of its occurrences has."""

    __tablename__ = "alert_aliases"
    __table_args__ = (Index("ix_alert_aliases_alert", "alert_id"),)
    fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    starts_at: Mapped[datetime] = mapped_column(primary_key=True)
    alert_id: Mapped[int] = mapped_column(Id, ForeignKey("alerts.id", ondelete="CASCADE"))
    severity: Mapped[str | None] = mapped_column(Text)
    resolved_at: Mapped[datetime | None]


class TriggerEpisodeRow(Base):
    """Memory of an escalation trigger between ticks, so it pages once per episode."""

    __tablename__ = "trigger_episodes"
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    active: Mapped[bool] = mapped_column(Boolean)
    since: Mapped[datetime | None]
    alert_ids: Mapped[list[int]] = mapped_column(JSON)
    episodes: Mapped[int]
    updated_at: Mapped[datetime]


# Heartbeats, maintenance windows and Events v2 change events (issue 13) ----------------


class HeartbeatRow(Base):
    __tablename__ = "heartbeats"
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    # When this daemon's config first named it: the clock of a heartbeat that never beat.
    first_seen_at: Mapped[datetime]
    last_beat_at: Mapped[datetime | None]
    last_via: Mapped[str | None] = mapped_column(String(50))
    beats: Mapped[int]
    # waiting (never beat), ok, missed (an alert is open for it)
    state: Mapped[str] = mapped_column(String(20))
    # The deadline it missed: the startsAt of its HeartbeatMissed occurrence.
    missed_at: Mapped[datetime | None]
    alert_id: Mapped[int | None] = mapped_column(Id, ForeignKey("alerts.id", ondelete="SET NULL"))
    updated_at: Mapped[datetime]


class MaintenanceRow(Base):
    """A window added by a person (`escalator maintenance add`, the HTTP API)."""

    __tablename__ = "maintenance_windows"
    __table_args__ = (Index("ix_maintenance_windows_ends_at", "ends_at"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    match: Mapped[dict[str, Any]] = mapped_column(JSON)
    match_re: Mapped[dict[str, Any]] = mapped_column(JSON)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    reason: Mapped[str] = mapped_column(Text)
    include_open: Mapped[bool] = mapped_column(Boolean)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    ended_by: Mapped[str | None] = mapped_column(String(200))


class SuppressionRow(Base):
    """An alert held by a window until `until`; `released_at` once the engine let it go."""

    __tablename__ = "alert_suppressions"
    __table_args__ = (Index("ix_alert_suppressions_due", "released_at", "until"),)
    alert_id: Mapped[int] = mapped_column(
        Id, ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True
    )
    window: Mapped[str] = mapped_column(String(250))
    reason: Mapped[str] = mapped_column(Text)
    until: Mapped[datetime]
    # True: opened inside the window (its incident and SLA start at release). False: it was
    # already escalating and `--include-open` held it (those exist already).
    opened_inside: Mapped[bool] = mapped_column(Boolean)
    released_at: Mapped[datetime | None]


class ChangeEventRow(Base):
    """A change event (a deploy, a config push): kept, and noted on the alerts open then."""

    __tablename__ = "change_events"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    at: Mapped[datetime]
    integration: Mapped[str] = mapped_column(String(200))
    summary: Mapped[str] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(Text)
    timestamp: Mapped[datetime | None]
    custom_details: Mapped[Any] = mapped_column(JSON, nullable=True)
    links: Mapped[Any] = mapped_column(JSON)
    alerts_noted: Mapped[int]


class ProviderCallbackRow(Base):
    """A provider's request that acted, by the provider's own id, so a replay acts never.

    `key` is "sms:<MessageSid>" for an SMS reply, "keypress:<CallSid>:<Digits>" for a key
    pressed in a call, and "offer:<CallSid>" for what a call offered when its TwiML was
    produced (`offer`: alert id -> [level, repeats done] then); a keypress acts only on
    alerts still where the call found them. Inserted in the transaction of the action;
    rows older than the retention (services/alerts.py) are deleted as new ones arrive.
    """

    __tablename__ = "provider_callbacks"
    __table_args__ = (Index("ix_provider_callbacks_received", "received_at"),)
    provider: Mapped[str] = mapped_column(String(20), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    received_at: Mapped[datetime]
    offer: Mapped[Any] = mapped_column(JSON, nullable=True)


class DeliveryWorkerRow(Base):
    """A process that sends pages, and when it last said it was alive (escalator.notify.leases).

    One heartbeat per process replaces a lease per page: an outbox row in flight belongs to
    its worker for as long as this row is fresh, however long the provider takes.
    """

    __tablename__ = "delivery_workers"
    id: Mapped[str] = mapped_column(String(100), primary_key=True)  # host:pid:nonce
    hostname: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int]
    started_at: Mapped[datetime]
    heartbeat_at: Mapped[datetime]
