"""review loop: queue fields, corrections undo, shop settings, knowledge gaps

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21 05:06:51.505114
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

from core.text import text_hash
from db.rls import disable_tenant_rls, enable_tenant_rls

NEW_TENANT_TABLES = ("shop_settings", "knowledge_gap")
BATCH = 5_000


revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "shop_settings",
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("review_confidence", sa.Float(), nullable=False),
        sa.Column("review_margin", sa.Float(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_by", sa.Integer(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenant.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", name="uq_shop_settings_tenant"),
    )
    with op.batch_alter_table("shop_settings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_shop_settings_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "knowledge_gap",
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("label", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("escalation_rate", sa.Float(), nullable=False),
        sa.Column("avg_confidence", sa.Float(), nullable=True),
        sa.Column("severity", sa.Float(), nullable=False),
        sa.Column("example_ids", sa.JSON(), nullable=False),
        sa.Column("representatives", sa.JSON(), nullable=False),
        sa.Column("nearest_intents", sa.JSON(), nullable=False),
        sa.Column("resolution", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("resolved_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("resolved_by", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id", "resolved_by"],
            ["app_user.tenant_id", "app_user.id"],
            name="fk_resolved_by_same_shop_app_user",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenant.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("knowledge_gap", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_knowledge_gap_tenant_id"), ["tenant_id"], unique=False)
        batch_op.create_index(
            "ix_knowledge_gap_tenant_status", ["tenant_id", "status"], unique=False
        )

    with op.batch_alter_table("correction", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("previous", sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
        )
        batch_op.add_column(
            sa.Column("version_after", sa.Integer(), nullable=False, server_default=sa.text("1"))
        )
        batch_op.add_column(sa.Column("reverted_by", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("reverted_version", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            "fk_reverted_by_same_shop_app_user",
            "app_user",
            ["tenant_id", "reverted_by"],
            ["tenant_id", "id"],
        )

    with op.batch_alter_table("example", schema=None) as batch_op:
        batch_op.add_column(sa.Column("margin", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("issue_score", sa.Float(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "issue_suggestion", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True
            )
        )
        batch_op.add_column(
            sa.Column("issue_found_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
        batch_op.create_index("ix_example_tenant_issue", ["tenant_id", "issue_score"], unique=False)

    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        for table in NEW_TENANT_TABLES:
            for stmt in enable_tenant_rls(table):
                op.execute(stmt)
    _backfill_examples(postgres)


def _backfill_examples(postgres: bool) -> None:
    """text_hash now groups near-identical texts, and the queue reads the top-1/top-2 margin:
    recompute both for the rows already there (the owner reads every shop's rows here)."""
    bind = op.get_bind()
    if postgres:
        op.execute("ALTER TABLE example NO FORCE ROW LEVEL SECURITY")
    example = sa.table(
        "example",
        sa.column("id", sa.Integer),
        sa.column("text", sa.Text),
        sa.column("top_intents", sa.JSON),
        sa.column("text_hash", sa.String),
        sa.column("margin", sa.Float),
    )
    last = 0
    while rows := bind.execute(
        sa.select(example.c.id, example.c.text, example.c.top_intents)
        .where(example.c.id > last)
        .order_by(example.c.id)
        .limit(BATCH)
    ).all():
        bind.execute(
            sa.update(example)
            .where(example.c.id == sa.bindparam("row_id"))
            .values(text_hash=sa.bindparam("new_hash"), margin=sa.bindparam("new_margin")),
            [
                {"row_id": i, "new_hash": text_hash(t), "new_margin": _margin(top)}
                for i, t, top in rows
            ],
        )
        last = rows[-1][0]
    if postgres:
        op.execute("ALTER TABLE example FORCE ROW LEVEL SECURITY")


def _margin(top: list[list[object]] | None) -> float | None:
    if not top:
        return None
    first = float(top[0][1])  # type: ignore[arg-type]
    second = float(top[1][1]) if len(top) > 1 else 0.0  # type: ignore[arg-type]
    return first - second


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in NEW_TENANT_TABLES:
            for stmt in disable_tenant_rls(table):
                op.execute(stmt)
    with op.batch_alter_table("example", schema=None) as batch_op:
        batch_op.drop_index("ix_example_tenant_issue")
        batch_op.drop_column("issue_found_at")
        batch_op.drop_column("issue_suggestion")
        batch_op.drop_column("issue_score")
        batch_op.drop_column("margin")

    with op.batch_alter_table("correction", schema=None) as batch_op:
        batch_op.drop_constraint("fk_reverted_by_same_shop_app_user", type_="foreignkey")
        batch_op.drop_column("reverted_version")
        batch_op.drop_column("reverted_by")
        batch_op.drop_column("version_after")
        batch_op.drop_column("previous")

    with op.batch_alter_table("knowledge_gap", schema=None) as batch_op:
        batch_op.drop_index("ix_knowledge_gap_tenant_status")
        batch_op.drop_index(batch_op.f("ix_knowledge_gap_tenant_id"))

    op.drop_table("knowledge_gap")
    with op.batch_alter_table("shop_settings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_shop_settings_tenant_id"))

    op.drop_table("shop_settings")
