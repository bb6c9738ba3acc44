"""Leases and the replay guard: run.owner, run.lease_until, the seen_request table.

Conditional on purpose: a database that `create_all` made after these were added to the
models (between 7e63008 and migrations) already has some of them; it is stamped at the
baseline and this revision adds only what is missing. The 'cancelled' statuses of runs,
phases and gates are values of existing text columns: no DDL.

Revision ID: r0002
Revises: r0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "r0002"
down_revision: str | None = "r0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    tables = set(inspector.get_table_names())
    if "seen_request" not in tables:
        op.create_table(
            "seen_request",
            sa.Column("signature", sa.String(length=200), nullable=False),
            sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("signature"),
        )
    columns = {c["name"] for c in inspector.get_columns("run")}
    if "owner" not in columns:
        op.add_column("run", sa.Column("owner", sa.String(), nullable=True))
    if "lease_until" not in columns:
        op.add_column("run", sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))
    if "ix_run_owner" not in {i["name"] for i in inspector.get_indexes("run")}:
        op.create_index(op.f("ix_run_owner"), "run", ["owner"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_run_owner"), table_name="run")
    with op.batch_alter_table("run") as batch:
        batch.drop_column("lease_until")
        batch.drop_column("owner")
    op.drop_table("seen_request")
