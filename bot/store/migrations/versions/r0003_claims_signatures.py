"""The claim token of a phase attempt (phaserun.executor) and the audit row signatures.

phaserun.executor names the claim that runs an attempt, so a claim retried after its COMMIT
landed finds its own row. audit_signature holds the Ed25519 signature of each audit row's
hash (`CUTOVER_AUDIT_KEY_FILE`); `cutover audit lockdown` makes it append-only for the bot.
Conditional, as r0002: a database made by `create_all` may already have them.

Revision ID: r0003
Revises: r0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "r0003"
down_revision: str | None = "r0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if "executor" not in {c["name"] for c in inspector.get_columns("phaserun")}:
        op.add_column("phaserun", sa.Column("executor", sa.String(), nullable=True))
    if "audit_signature" not in set(inspector.get_table_names()):
        op.create_table(
            "audit_signature",
            sa.Column("seq", sa.Integer(), nullable=False),
            sa.Column("key_id", sa.String(), nullable=False),
            sa.Column("signature", sa.String(), nullable=False),
            sa.PrimaryKeyConstraint("seq"),
        )


def downgrade() -> None:
    op.drop_table("audit_signature")
    with op.batch_alter_table("phaserun") as batch:
        batch.drop_column("executor")
