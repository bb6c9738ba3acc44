"""phaserun.began_step: the id of the phase's action that began last (written, fenced, before
each action starts, with began_at before the first). An interrupted phase's gate then says
which action had begun and which had not, instead of "it may have begun" for every action
after the first. NULL with began_at set: claimed by a version that marks the first action
only (nothing is said of the later ones). Conditional, as r0002.

Revision ID: r0013
Revises: r0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "r0013"
down_revision: str | None = "r0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("phaserun")}
    if "began_step" not in columns:
        op.add_column("phaserun", sa.Column("began_step", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("phaserun") as batch:
        batch.drop_column("began_step")
