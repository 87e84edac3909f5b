"""What escalator remembers about Slack: the messages it posted, and each incident channel.

`slack_messages` is how a message is updated in place: one row per (message, alert) it is
about, so an ack of alert 12 finds every card showing it. `slack_incident_channels` is the
memory of one incident's channel: its name is decided when the incident opens (so every
replica and retry means the same channel), its Slack ID once `conversations.create` (or
the `name_taken` lookup) answered, and the pinned notice once it is pinned.
"""

# No `from __future__ import annotations`: see escalator/store/tables.py.
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from escalator.store.tables import Base, Id


class SlackMessageRow(Base):
    __tablename__ = "slack_messages"
    __table_args__ = (
        UniqueConstraint("channel", "ts", "alert_id", name="uq_slack_messages_alert"),
        Index("ix_slack_messages_alert", "alert_id"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(Id, ForeignKey("alerts.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(50))
    ts: Mapped[str] = mapped_column(String(50))
    # What the message said when posted (title and body); the live part (state, buttons)
    # is rendered again from the alerts on every update.
    text: Mapped[str] = mapped_column(Text)
    posted_at: Mapped[datetime]
    updated_at: Mapped[datetime | None]


class SlackIncidentChannelRow(Base):
    __tablename__ = "slack_incident_channels"
    alert_id: Mapped[int] = mapped_column(
        Id, ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(80), unique=True)
    channel_id: Mapped[str | None] = mapped_column(String(50))
    pinned_ts: Mapped[str | None] = mapped_column(String(50))
    created_at: Mapped[datetime]
    opened_at: Mapped[datetime | None]  # created, people invited, topic set, notice pinned
    archived_at: Mapped[datetime | None]
