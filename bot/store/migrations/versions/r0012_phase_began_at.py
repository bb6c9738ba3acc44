"""phaserun.began_at: when the phase's first action was about to begin (written, fenced,
before it starts), and phaserun.marks_begin: the claim was made by a version that writes it.
Recovery tells a phase that a dead process claimed but never began (it starts again) from
one whose actions may be half done (a person decides). A phase claimed before this revision
(or by an older replica still running beside a newer one) has marks_begin false: never
taken for unbegun. Conditional, as r0002: a database made by `create_all` may have them.

Revision ID: r0012
Revises: r0011b
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "r0012"
down_revision: str | None = "r0011b"
branch_labels = None
depends_on = None


def upgrade() -> None:
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("phaserun")}
    if "began_at" not in columns:
        op.add_column("phaserun", sa.Column("began_at", sa.DateTime(timezone=True), nullable=True))
    if "marks_begin" not in columns:
        op.add_column(
            "phaserun",
            sa.Column("marks_begin", sa.Boolean(), nullable=False, server_default=sa.false()),
        )


def downgrade() -> None:
    with op.batch_alter_table("phaserun") as batch:
        batch.drop_column("marks_begin")
        batch.drop_column("began_at")
