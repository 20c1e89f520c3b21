"""analytics indexes: a shop's examples by created_at with what the metrics read, and the
standing intent relabels

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-21 07:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes  # noqa: F401  (autogenerate writes sqlmodel.sql.sqltypes.AutoString)
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As in db.models (a migration keeps its own copy: the model may change later).
ANALYTICS = [
    "tenant_id",
    "created_at",
    "escalated",
    "confidence",
    "intent_correct",
    "correct_intent",
    "detected_intent",
    "id",
]
RELABELLED_PG = "field = 'intent' AND was_mismatch AND reverted_at IS NULL"
RELABELLED_SQLITE = "field = 'intent' AND was_mismatch = 1 AND reverted_at IS NULL"


def upgrade() -> None:
    # The analytics index leads with (tenant_id, created_at), so it replaces the old one.
    with op.batch_alter_table("example", schema=None) as batch_op:
        batch_op.create_index("ix_example_analytics", ANALYTICS, unique=False)
        batch_op.drop_index("ix_example_tenant_created")
    with op.batch_alter_table("correction", schema=None) as batch_op:
        batch_op.create_index(
            "ix_correction_relabelled",
            ["tenant_id", "example_id"],
            unique=False,
            postgresql_where=sa.text(RELABELLED_PG),
            sqlite_where=sa.text(RELABELLED_SQLITE),
        )


def downgrade() -> None:
    with op.batch_alter_table("correction", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_correction_relabelled",
            postgresql_where=sa.text(RELABELLED_PG),
            sqlite_where=sa.text(RELABELLED_SQLITE),
        )
    with op.batch_alter_table("example", schema=None) as batch_op:
        batch_op.create_index(
            "ix_example_tenant_created", ["tenant_id", "created_at"], unique=False
        )
        batch_op.drop_index("ix_example_analytics")
