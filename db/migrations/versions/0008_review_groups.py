"""review groups: the review queue's groups kept as rows, so its first page is an index read;
an index of reviews by time, which every review action counts

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-21 08:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

from db.rls import disable_tenant_rls, enable_tenant_rls

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As core.review_groups computes them (a migration keeps its own copy: the code may change).
WAITING = "e.status = 'pending' AND NOT e.reviewed"
REASONS = {
    "low_confidence": f"{WAITING} AND (e.confidence IS NULL "
    "OR e.confidence < COALESCE(s.review_confidence, 0.6))",
    "low_margin": f"{WAITING} AND e.margin < COALESCE(s.review_margin, 0.1)",
    "escalated": f"{WAITING} AND e.escalated",
    "label_issue": "e.issue_score IS NOT NULL",
}
UNSURE = "1 - COALESCE(e.confidence, 0)"
FLAGS = ", ".join(f"CASE WHEN {cond} THEN 1 ELSE 0 END AS {name}" for name, cond in REASONS.items())
ANY = " OR ".join(f"({cond})" for cond in REASONS.values())


def _per_group(reason: str, where: str) -> str:
    return (
        f"SELECT tenant_id, '{reason}', text_hash, COUNT(*), SUM(u), MAX(id) FROM q {where} "  # noqa: S608 (constants only)
        "GROUP BY tenant_id, text_hash"
    )


# One pass over the examples (q), then a row per group for the queue ("all") and per reason.
BACKFILL = (
    "INSERT INTO review_group (tenant_id, reason, text_hash, size, priority, newest) "  # noqa: S608 (constants only)
    "WITH q AS ("
    "SELECT e.tenant_id, e.text_hash, e.id, "
    f"CASE WHEN e.issue_score > {UNSURE} THEN e.issue_score ELSE {UNSURE} END AS u, {FLAGS} "
    f"FROM example e LEFT JOIN shop_settings s ON s.tenant_id = e.tenant_id WHERE {ANY}) "
    + " UNION ALL ".join(
        [_per_group("all", ""), *(_per_group(name, f"WHERE {name} = 1") for name in REASONS)]
    )
)


def upgrade() -> None:
    op.create_table(
        "review_group",
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("text_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("priority", sa.Float(), nullable=False),
        sa.Column("newest", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "text_hash", "reason", name="uq_review_group_key"),
    )
    with op.batch_alter_table("review_group", schema=None) as batch_op:
        batch_op.create_index(
            "ix_review_group_rank",
            ["tenant_id", "reason", "priority", "newest", "size"],
            unique=False,
        )
        batch_op.create_index(batch_op.f("ix_review_group_tenant_id"), ["tenant_id"], unique=False)

    with op.batch_alter_table("example", schema=None) as batch_op:
        batch_op.create_index(
            "ix_example_tenant_reviewed", ["tenant_id", "reviewed_at"], unique=False
        )

    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:  # the owner reads every shop's rows here
        op.execute("ALTER TABLE example NO FORCE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE shop_settings NO FORCE ROW LEVEL SECURITY")
    op.execute(BACKFILL)
    if postgres:
        op.execute("ALTER TABLE example FORCE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE shop_settings FORCE ROW LEVEL SECURITY")
        for stmt in enable_tenant_rls("review_group"):
            op.execute(stmt)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for stmt in disable_tenant_rls("review_group"):
            op.execute(stmt)
    with op.batch_alter_table("example", schema=None) as batch_op:
        batch_op.drop_index("ix_example_tenant_reviewed")
    with op.batch_alter_table("review_group", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_review_group_tenant_id"))
        batch_op.drop_index("ix_review_group_rank")
    op.drop_table("review_group")
