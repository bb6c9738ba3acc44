"""run_signoff: one row per person who signed a completed run off (a unique key per run and
person: a double click or a Slack retry counts once). Conditional, as r0002: a database made
by `create_all` may already have it.

Revision ID: r0011b
Revises: r0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "r0011b"
down_revision: str | None = "r0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if "run_signoff" in set(sa.inspect(op.get_bind()).get_table_names()):
        return
    op.create_table(
        "run_signoff",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["run.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "actor"),
    )
    op.create_index(op.f("ix_run_signoff_run_id"), "run_signoff", ["run_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_run_signoff_run_id"), table_name="run_signoff")
    op.drop_table("run_signoff")
