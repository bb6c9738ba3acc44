"""Message references and Home viewers: the message_ref and home_viewer tables.

message_ref holds where the bot posted a message it edits later that no run or gate row
points at (the T-1h checklist, a run's sign-off message), so a restarted bot or another
replica edits it instead of posting a copy. home_viewer holds who opened the Home tab and
when, so their Home is republished when a run changes. Conditional, as r0002: a database
made by `create_all` may already have them.

Revision ID: r0004
Revises: r0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "r0004"
down_revision: str | None = "r0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    tables = set(sa.inspect(op.get_bind()).get_table_names())
    if "message_ref" not in tables:
        op.create_table(
            "message_ref",
            sa.Column("key", sa.String(length=100), nullable=False),
            sa.Column("ref", sa.String(), nullable=False),
            sa.Column("run_id", sa.Integer(), nullable=True),
            sa.Column("body", sa.Text(), nullable=True),
            sa.Column("posted_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("key"),
        )
        op.create_index(op.f("ix_message_ref_run_id"), "message_ref", ["run_id"], unique=False)
    if "home_viewer" not in tables:
        op.create_table(
            "home_viewer",
            sa.Column("user_id", sa.String(length=40), nullable=False),
            sa.Column("team_id", sa.String(length=40), nullable=False),
            sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("user_id", "team_id"),
        )
        op.create_index(
            op.f("ix_home_viewer_opened_at"), "home_viewer", ["opened_at"], unique=False
        )


def downgrade() -> None:
    op.drop_index(op.f("ix_home_viewer_opened_at"), table_name="home_viewer")
    op.drop_table("home_viewer")
    op.drop_index(op.f("ix_message_ref_run_id"), table_name="message_ref")
    op.drop_table("message_ref")
