"""audit_signature's key becomes (seq, signature): a row planted for a future seq no longer
collides with the bot's own signature of that row.

With `seq` alone as the key, one row the bot's role inserted for the next sequence number made
every later append fail on its unique key: no state change could commit, `/cutover abort`
included. Now the planted row stays beside the real one, and `cutover audit verify
--public-key` names it. Conditional, as r0002: a database made by `create_all` has it already.

Revision ID: r0007
Revises: r0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "r0007"
down_revision: str | None = "r0006"
branch_labels = None
depends_on = None


def _key(columns: list[str]) -> None:
    bind = op.get_bind()
    pk = sa.inspect(bind).get_pk_constraint("audit_signature")
    if pk["constrained_columns"] == columns:
        return
    if bind.dialect.name == "postgresql":  # in place: the table keeps its grants
        op.drop_constraint(pk["name"] or "audit_signature_pkey", "audit_signature", type_="primary")
        op.create_primary_key("audit_signature_pkey", "audit_signature", columns)
        return
    # SQLite cannot change a table's key: a copy with the new one takes its place.
    op.create_table(
        "_audit_signature_new",
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.String(), nullable=False),
        sa.Column("signature", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint(*columns),
    )
    op.execute(
        "INSERT INTO _audit_signature_new (seq, key_id, signature) "
        "SELECT seq, key_id, signature FROM audit_signature"
    )
    op.drop_table("audit_signature")
    op.rename_table("_audit_signature_new", "audit_signature")


def upgrade() -> None:
    _key(["seq", "signature"])


def downgrade() -> None:
    _key(["seq"])
