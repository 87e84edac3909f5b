"""Slack: posted messages (to update them in place) and incident channels.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "slack_messages",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("alert_id", Id, sa.ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("channel", sa.String(50), nullable=False),
        sa.Column("ts", sa.String(50), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("posted_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=True),
        sa.UniqueConstraint("channel", "ts", "alert_id", name="uq_slack_messages_alert"),
    )
    op.create_index("ix_slack_messages_alert", "slack_messages", ["alert_id"])
    op.create_table(
        "slack_incident_channels",
        sa.Column("alert_id", Id, sa.ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True),
        # Decided once, when the incident opens: every retry and replica means this channel.
        sa.Column("name", sa.String(80), nullable=False, unique=True),
        sa.Column("channel_id", sa.String(50), nullable=True),
        sa.Column("pinned_ts", sa.String(50), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("opened_at", sa.DateTime(), nullable=True),
        sa.Column("archived_at", sa.DateTime(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("slack_incident_channels")
    op.drop_index("ix_slack_messages_alert", table_name="slack_messages")
    op.drop_table("slack_messages")
