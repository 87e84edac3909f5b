"""Provider callbacks: Twilio requests that acted (replays do nothing) and call offers.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
# The integrator re-chains this after the other revisions of issue 11.
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "provider_callbacks",
        sa.Column("provider", sa.String(20), primary_key=True),
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("offer", sa.JSON(), nullable=True),
    )
    op.create_index("ix_provider_callbacks_received", "provider_callbacks", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_provider_callbacks_received", table_name="provider_callbacks")
    op.drop_table("provider_callbacks")
