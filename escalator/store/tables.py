"""Tables: alerts, the policies they started with, their timeline, the outbox, overrides.

Times are stored as naive UTC and handed back timezone-aware, the same on SQLite (which
has no time zone type) and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
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
    alertname: Mapped[str] = mapped_column(String(200))
    # Hash of every label but severity: finds the warning a new critical occurrence rises from.
    identity: Mapped[str] = mapped_column(String(40))
    severity: Mapped[str | None] = mapped_column(String(50))
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
    alert_id: Mapped[int] = mapped_column(Id, ForeignKey("alerts.id", ondelete="CASCADE"))
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(50))
    actor: Mapped[str | None] = mapped_column(String(200))
    channel: Mapped[str | None] = mapped_column(String(50))
    level: Mapped[int | None]
    detail: Mapped[str] = mapped_column(Text)


class OutboxRow(Base):
    """One notification to one recipient by one method; the sender's unit of work.

    status: pending -> sending (leased) -> sent | failed; pending -> cancelled when an ack
    or resolve makes it moot. A `sending` row whose lease ran out is claimed again: a crash
    mid-send repeats a page rather than losing it.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_due", "status", "due_at"),
        Index("ix_outbox_alert", "alert_id", "status"),
        Index("ix_outbox_provider_id", "provider_id"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    alert_id: Mapped[int | None] = mapped_column(Id, ForeignKey("alerts.id", ondelete="CASCADE"))
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
    leased_by: Mapped[str | None] = mapped_column(String(100))
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
