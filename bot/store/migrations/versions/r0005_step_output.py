"""Step output: the step_output table.

The tail of what each step printed (a command's stdout and stderr as they came, at most
64 KB), masked before it is written, one row per step_run row that has output: read by
`cutover logs`, the checkpoint's Show output and the last lines quoted under a failing step.
Conditional, as r0002: a database made by `create_all` may already have it.

Revision ID: r0005
Revises: r0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "r0005"
down_revision: str | None = "r0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if "step_output" in set(sa.inspect(op.get_bind()).get_table_names()):
        return
    op.create_table(
        "step_output",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("step_run_id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("section", sa.String(), nullable=False),
        sa.Column("step_id", sa.String(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("truncated", sa.Boolean(), nullable=False),
        sa.Column("bytes", sa.Integer(), nullable=False),
        sa.Column("last_lines", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["run.id"]),
        sa.ForeignKeyConstraint(["step_run_id"], ["steprun.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("step_run_id"),
    )
    op.create_index(op.f("ix_step_output_run_id"), "step_output", ["run_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_step_output_run_id"), table_name="step_output")
    op.drop_table("step_output")
