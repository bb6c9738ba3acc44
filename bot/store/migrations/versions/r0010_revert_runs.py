"""Revert runs: run.reverts_run_id links a revert to the completed run it undoes, and
revert_vote holds each approver's vote for it (one per person: a double click counts once).
Conditional, as r0002: a database made by `create_all` may already have them.

Revision ID: r0010
Revises: r0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "r0010"
down_revision: str | None = "r0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    if "reverts_run_id" not in {c["name"] for c in inspector.get_columns("run")}:
        if bind.dialect.name == "sqlite":
            # In place: a batch copy of `run` would break the foreign keys pointing at it.
            op.execute("ALTER TABLE run ADD COLUMN reverts_run_id INTEGER REFERENCES run (id)")
        else:
            op.add_column("run", sa.Column("reverts_run_id", sa.Integer(), nullable=True))
            op.create_foreign_key("fk_run_reverts_run_id", "run", "run", ["reverts_run_id"], ["id"])
        op.create_index(op.f("ix_run_reverts_run_id"), "run", ["reverts_run_id"], unique=False)
    if "revert_vote" in set(inspector.get_table_names()):
        return
    op.create_table(
        "revert_vote",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["run.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "actor"),
    )
    op.create_index(op.f("ix_revert_vote_run_id"), "revert_vote", ["run_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_revert_vote_run_id"), table_name="revert_vote")
    op.drop_table("revert_vote")
    op.drop_index(op.f("ix_run_reverts_run_id"), table_name="run")
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE run DROP COLUMN reverts_run_id")
    else:
        op.drop_constraint("fk_run_reverts_run_id", "run", type_="foreignkey")
        op.drop_column("run", "reverts_run_id")
