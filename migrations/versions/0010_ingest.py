"""Ingest: columns filled from Alertmanager labels take any length (Text).

`alerts.severity` was VARCHAR(50): a 51-character severity label failed the whole webhook
body on PostgreSQL (and so every alert in it) while SQLite, which does not enforce VARCHAR
lengths, stored it. Both backends must take the same inputs, so label-valued columns are
unbounded. SQLite needs nothing: its declared lengths are never enforced.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# (table, column, old type): every column whose value is a label's.
_COLUMNS = (
    ("alerts", "alertname", sa.String(200)),
    ("alerts", "severity", sa.String(50)),
    ("alert_slas", "severity", sa.String(50)),
    ("alert_aliases", "severity", sa.String(50)),
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column, old in _COLUMNS:
        op.alter_column(table, column, type_=sa.Text(), existing_type=old)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column, old in _COLUMNS:
        op.alter_column(
            table, column, type_=old, existing_type=sa.Text(),
            postgresql_using=f"left({column}, {old.length})",
        )  # fmt: skip
