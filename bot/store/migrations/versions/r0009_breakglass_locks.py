"""Break-glass overrides and environment locks: the override_vote and env_lock tables.

One row per approver's vote (with their justification) to continue past a gate's failed
overridable steps, or to start during a change freeze; unique per subject and person.
Conditional, as r0002: a database made by `create_all` may already have it.

Revision ID: r0009
Revises: r0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "r0009"
down_revision: str | None = "r0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    tables = set(sa.inspect(op.get_bind()).get_table_names())
    if "override_vote" not in tables:
        op.create_table(
            "override_vote",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("subject", sa.String(length=200), nullable=False),
            sa.Column("actor", sa.String(), nullable=False),
            sa.Column("justification", sa.Text(), nullable=False),
            sa.Column("at", sa.DateTime(timezone=True), nullable=True),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("subject", "actor"),
        )
        op.create_index(
            op.f("ix_override_vote_subject"), "override_vote", ["subject"], unique=False
        )
    if "env_lock" not in tables:
        op.create_table(
            "env_lock",
            sa.Column("environment", sa.String(length=40), nullable=False),
            sa.Column("reason", sa.Text(), nullable=False),
            sa.Column("locked_by", sa.String(), nullable=False),
            sa.Column("locked_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("environment"),
        )


def downgrade() -> None:
    op.drop_table("env_lock")
    op.drop_index(op.f("ix_override_vote_subject"), table_name="override_vote")
    op.drop_table("override_vote")
