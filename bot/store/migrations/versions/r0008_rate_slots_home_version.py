"""Rate budgets shared by every replica (rate_slot), and the version of each person's Home
drawing Slack shows (home_viewer.shown_version, view_hash).

Slack's rate limits are per app per workspace (per channel for chat.postMessage): replicas
keeping them in memory each spent the whole budget. A slow views.publish from one replica
could land after a newer drawing from another: the version and Slack's view hash let an
older drawing be skipped. Conditional, as r0002: a database `create_all` made may have them.

Revision ID: r0008
Revises: r0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "r0008"
down_revision: str | None = "r0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if "rate_slot" not in set(inspector.get_table_names()):
        op.create_table(
            "rate_slot",
            sa.Column("name", sa.String(length=200), nullable=False),
            sa.Column("next_at", sa.Float(), nullable=False),
            sa.PrimaryKeyConstraint("name"),
        )
    columns = {c["name"] for c in inspector.get_columns("home_viewer")}
    if "shown_version" not in columns:
        op.add_column("home_viewer", sa.Column("shown_version", sa.BigInteger(), nullable=True))
    if "view_hash" not in columns:
        op.add_column("home_viewer", sa.Column("view_hash", sa.String(length=100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("home_viewer") as batch:
        batch.drop_column("view_hash")
        batch.drop_column("shown_version")
    op.drop_table("rate_slot")
