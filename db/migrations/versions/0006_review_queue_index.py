"""review queue index: the waiting and flagged examples by text_hash, covering what it reads

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21 06:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes  # noqa: F401  (autogenerate writes sqlmodel.sql.sqltypes.AutoString)
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As in db.models (a migration keeps its own copy: the model may change later).
ROWS = "(status = 'pending' AND NOT reviewed) OR issue_score IS NOT NULL"
COLUMNS = ["confidence", "margin", "escalated", "issue_score", "id", "status", "reviewed"]


def upgrade() -> None:
    with op.batch_alter_table("example", schema=None) as batch_op:
        batch_op.create_index(
            "ix_example_review_queue",
            ["tenant_id", "text_hash"],
            unique=False,
            postgresql_include=COLUMNS,
            postgresql_where=sa.text(ROWS),
            sqlite_where=sa.text(ROWS),
        )


def downgrade() -> None:
    with op.batch_alter_table("example", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_example_review_queue",
            postgresql_where=sa.text(ROWS),
            sqlite_where=sa.text(ROWS),
        )
