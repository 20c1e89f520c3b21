"""template experiments: the uses of response templates the assistant reports, with their
outcomes, and A/B tests between two versions of a template

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-28 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

from db.rls import disable_tenant_rls, enable_tenant_rls

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NEW_TENANT_TABLES = ("template_experiment", "template_use")
RUNNING_EXPERIMENT = "status = 'running'"


def _same_shop(column: str, parent: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id", column],
        [f"{parent}.tenant_id", f"{parent}.id"],
        name=f"fk_{column}_same_shop_{parent}",
    )


def _experiment_table() -> None:
    op.create_table(
        "template_experiment",
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("template_id", sa.Integer(), nullable=False),
        sa.Column("version_a", sa.Integer(), nullable=False),
        sa.Column("version_b", sa.Integer(), nullable=False),
        sa.Column("split", sa.Float(), nullable=False),
        sa.Column("min_effect", sa.Float(), nullable=False),
        sa.Column("alpha", sa.Float(), nullable=False),
        sa.Column("power", sa.Float(), nullable=False),
        sa.Column("note", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("started_by", sa.Integer(), nullable=True),
        sa.Column("started_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("stopped_by", sa.Integer(), nullable=True),
        sa.Column("stopped_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("stop_reason", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("winner", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "status IN ('running', 'stopped', 'promoted')", name="ck_template_experiment_status"
        ),
        sa.CheckConstraint(
            "min_effect > 0 AND min_effect < 1 AND alpha > 0 AND alpha < 1 "
            "AND power > 0 AND power < 1",
            name="ck_template_experiment_design",
        ),
        sa.CheckConstraint("split > 0 AND split < 1", name="ck_template_experiment_split"),
        sa.CheckConstraint("version_a <> version_b", name="ck_template_experiment_versions"),
        sa.CheckConstraint(
            "winner IS NULL OR winner = version_a OR winner = version_b",
            name="ck_template_experiment_winner",
        ),
        _same_shop("started_by", "app_user"),
        _same_shop("stopped_by", "app_user"),
        _same_shop("template_id", "design_template"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "id", name="uq_template_experiment_tenant_id_id"),
    )
    with op.batch_alter_table("template_experiment", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_template_experiment_tenant_id"), ["tenant_id"], unique=False
        )
        batch_op.create_index(
            "ix_template_experiment_tenant_template", ["tenant_id", "template_id"], unique=False
        )
        batch_op.create_index(
            "uq_template_experiment_one_running",
            ["tenant_id", "template_id"],
            unique=True,
            sqlite_where=sa.text(RUNNING_EXPERIMENT),
            postgresql_where=sa.text(RUNNING_EXPERIMENT),
        )


def _use_table() -> None:
    op.create_table(
        "template_use",
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("use_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("template_id", sa.Integer(), nullable=False),
        sa.Column("version_number", sa.Integer(), nullable=False),
        sa.Column("experiment_id", sa.Integer(), nullable=True),
        sa.Column("variant", sqlmodel.sql.sqltypes.AutoString(length=1), nullable=True),
        sa.Column(
            "conversation_external_id",
            sqlmodel.sql.sqltypes.AutoString(length=128),
            nullable=False,
        ),
        sa.Column("customer_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("outcome", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("rating", sa.Integer(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("outcome_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.CheckConstraint(
            "outcome IN ('unknown', 'resolved', 'escalated')", name="ck_template_use_outcome"
        ),
        sa.CheckConstraint(
            "variant IS NULL OR (variant IN ('A', 'B') AND experiment_id IS NOT NULL)",
            name="ck_template_use_variant",
        ),
        sa.CheckConstraint(
            "rating IS NULL OR (rating >= 1 AND rating <= 5)", name="ck_template_use_rating"
        ),
        _same_shop("experiment_id", "template_experiment"),
        _same_shop("template_id", "design_template"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "use_id", name="uq_template_use_tenant_use_id"),
    )
    with op.batch_alter_table("template_use", schema=None) as batch_op:
        batch_op.create_index(
            "ix_template_use_tenant_experiment",
            ["tenant_id", "experiment_id", "variant"],
            unique=False,
        )
        batch_op.create_index(batch_op.f("ix_template_use_tenant_id"), ["tenant_id"], unique=False)
        batch_op.create_index(
            "ix_template_use_tenant_template_created",
            ["tenant_id", "template_id", "created_at"],
            unique=False,
        )


def upgrade() -> None:
    _experiment_table()
    _use_table()
    if op.get_bind().dialect.name == "postgresql":
        for table in NEW_TENANT_TABLES:
            for stmt in enable_tenant_rls(table):
                op.execute(stmt)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in NEW_TENANT_TABLES:
            for stmt in disable_tenant_rls(table):
                op.execute(stmt)
    op.drop_table("template_use")
    op.drop_table("template_experiment")
