"""Fencing and replica identity: run.lease_epoch and the replica table.

run.lease_epoch is the lease's fencing token (incremented by every take-over; the holder's
writes are conditional on it). replica holds, per replica id, the live process and its
heartbeat on the database's clock, so a second process with the same id refuses to start.
Conditional, as r0002: a database `create_all` made may already have them.

Revision ID: r0006
Revises: r0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "r0006"
down_revision: str | None = "r0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if "lease_epoch" not in {c["name"] for c in inspector.get_columns("run")}:
        op.add_column(
            "run",
            sa.Column("lease_epoch", sa.Integer(), nullable=False, server_default="0"),
        )
    if "replica" not in set(inspector.get_table_names()):
        op.create_table(
            "replica",
            sa.Column("id", sa.String(length=200), nullable=False),
            sa.Column("incarnation", sa.String(length=300), nullable=False),
            sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )


def downgrade() -> None:
    op.drop_table("replica")
    with op.batch_alter_table("run") as batch:
        batch.drop_column("lease_epoch")
