"""Incidents (the seed's communication protocol), status updates, response-time SLAs,
fingerprint aliases for alerts whose severity rose, and escalation-trigger episodes.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "incidents",
        # One incident per critical alert; its id is the alert's id, so `escalator update 12`
        # and `escalator ack 12` name the same thing.
        sa.Column("alert_id", Id, sa.ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("channel", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("opened_at", sa.DateTime(), nullable=False),
        sa.Column("commander", sa.String(200), nullable=True),
        sa.Column("commander_at", sa.DateTime(), nullable=True),
        sa.Column("initial_sent_at", sa.DateTime(), nullable=True),
        sa.Column("last_update_at", sa.DateTime(), nullable=True),
        sa.Column("next_reminder_at", sa.DateTime(), nullable=True),
        sa.Column("next_stakeholder_at", sa.DateTime(), nullable=True),
        sa.Column("resolved_at", sa.DateTime(), nullable=True),
        sa.Column("resolved_by", sa.String(200), nullable=True),
        sa.Column("resolution_sent_at", sa.DateTime(), nullable=True),
        sa.Column("postmortem_due_at", sa.DateTime(), nullable=True),
        sa.Column("postmortem_url", sa.Text(), nullable=True),
        sa.Column("postmortem_by", sa.String(200), nullable=True),
        sa.Column("postmortem_at", sa.DateTime(), nullable=True),
        sa.Column("next_postmortem_reminder_at", sa.DateTime(), nullable=True),
        sa.Column("next_due_at", sa.DateTime(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_incidents_next_due_at", "incidents", ["next_due_at"])
    op.create_index("ix_incidents_postmortem", "incidents", ["status", "postmortem_due_at"])
    op.create_table(
        "incident_updates",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column(
            "alert_id", Id, sa.ForeignKey("incidents.alert_id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("author", sa.String(200), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("eta", sa.String(200), nullable=True),
        sa.Column("posted_at", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_incident_updates_alert", "incident_updates", ["alert_id", "id"])
    op.create_table(
        "alert_slas",
        sa.Column("alert_id", Id, sa.ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("severity", sa.String(50), nullable=True),
        sa.Column("response_seconds", sa.Integer(), nullable=False),
        sa.Column("due_at", sa.DateTime(), nullable=False),
        sa.Column("responded_at", sa.DateTime(), nullable=True),
        sa.Column("responded_by", sa.String(200), nullable=True),
        sa.Column("breached_at", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_alert_slas_open", "alert_slas", ["responded_at", "breached_at", "due_at"])
    op.create_table(
        "alert_aliases",
        sa.Column("fingerprint", sa.String(64), primary_key=True),
        sa.Column("starts_at", sa.DateTime(), primary_key=True),
        sa.Column("alert_id", Id, sa.ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("severity", sa.String(50), nullable=True),
        sa.Column("resolved_at", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_alert_aliases_alert", "alert_aliases", ["alert_id"])
    op.create_table(
        "trigger_episodes",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("since", sa.DateTime(), nullable=True),
        sa.Column("alert_ids", sa.JSON(), nullable=False),
        sa.Column("episodes", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("trigger_episodes")
    op.drop_table("alert_aliases")
    op.drop_table("alert_slas")
    op.drop_table("incident_updates")
    op.drop_table("incidents")
