"""Heartbeat monitors, maintenance windows and the alerts they hold, PagerDuty Events v2
change events.

Revision ID: 0005
Revises: 0002
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0002"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "heartbeats",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("first_seen_at", sa.DateTime(), nullable=False),
        sa.Column("last_beat_at", sa.DateTime(), nullable=True),
        sa.Column("last_via", sa.String(50), nullable=True),
        sa.Column("beats", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("missed_at", sa.DateTime(), nullable=True),
        sa.Column("alert_id", Id, sa.ForeignKey("alerts.id", ondelete="SET NULL"), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "maintenance_windows",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("match", sa.JSON(), nullable=False),
        sa.Column("match_re", sa.JSON(), nullable=False),
        sa.Column("starts_at", sa.DateTime(), nullable=False),
        sa.Column("ends_at", sa.DateTime(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("include_open", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("ended_by", sa.String(200), nullable=True),
    )
    op.create_index("ix_maintenance_windows_ends_at", "maintenance_windows", ["ends_at"])
    op.create_table(
        "alert_suppressions",
        sa.Column("alert_id", Id, sa.ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("window", sa.String(250), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("until", sa.DateTime(), nullable=False),
        sa.Column("opened_inside", sa.Boolean(), nullable=False),
        sa.Column("released_at", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_alert_suppressions_due", "alert_suppressions", ["released_at", "until"])
    op.create_table(
        "change_events",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("integration", sa.String(200), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("timestamp", sa.DateTime(), nullable=True),
        sa.Column("custom_details", sa.JSON(), nullable=True),
        sa.Column("links", sa.JSON(), nullable=False),
        sa.Column("alerts_noted", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("change_events")
    op.drop_index("ix_alert_suppressions_due", table_name="alert_suppressions")
    op.drop_table("alert_suppressions")
    op.drop_index("ix_maintenance_windows_ends_at", table_name="maintenance_windows")
    op.drop_table("maintenance_windows")
    op.drop_table("heartbeats")
