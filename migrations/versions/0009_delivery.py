"""Delivery lanes: per-process worker heartbeats, the claim time of a page in flight, and no
foreign keys from the timeline and the outbox to alerts (so recording a send never waits for
ingest's lock on the alert row; see escalator.notify.leases).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "delivery_workers",
        sa.Column("id", sa.String(100), primary_key=True),
        sa.Column("hostname", sa.String(200), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(), nullable=False),
    )
    op.add_column("outbox", sa.Column("claimed_at", sa.DateTime(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        # On PostgreSQL an insert under a foreign key takes FOR KEY SHARE on the alert row,
        # which waits for ingest's FOR UPDATE. Alerts are never deleted, so the keys guard
        # nothing. SQLite has one writer and no row locks: its keys stay (dropping one there
        # means rebuilding the table).
        op.drop_constraint("timeline_alert_id_fkey", "timeline", type_="foreignkey")
        op.drop_constraint("outbox_alert_id_fkey", "outbox", type_="foreignkey")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.create_foreign_key(
            "outbox_alert_id_fkey", "outbox", "alerts", ["alert_id"], ["id"], ondelete="CASCADE"
        )
        op.create_foreign_key(
            "timeline_alert_id_fkey", "timeline", "alerts", ["alert_id"], ["id"], ondelete="CASCADE"
        )
    op.drop_column("outbox", "claimed_at")
    op.drop_table("delivery_workers")
