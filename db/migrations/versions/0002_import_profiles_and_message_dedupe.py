"""import profiles and message dedupe

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 02:57:49.320205
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

from db.rls import (
    disable_counter_rls,
    disable_shared_rls,
    enable_counter_rls,
    enable_shared_rls,
)

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "import_profile",
        sa.Column("owner_tenant_id", sa.Integer(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("file_format", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("mapping", sa.JSON(), nullable=False),
        sa.Column("delimiter", sqlmodel.sql.sqltypes.AutoString(length=4), nullable=True),
        sa.Column("encoding", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("date_format", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("cleanup", sa.JSON(), nullable=False),
        sa.Column("description", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_tenant_id"],
            ["tenant.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("owner_tenant_id", "name", name="uq_import_profile_owner_name"),
    )
    with op.batch_alter_table("import_profile", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_import_profile_owner_tenant_id"), ["owner_tenant_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_import_profile_source"), ["source"], unique=False)

    op.create_table(
        "import_profile_usage",
        sa.Column("profile_id", sa.Integer(), nullable=False),
        sa.Column("success_count", sa.Integer(), nullable=False),
        sa.Column("failure_count", sa.Integer(), nullable=False),
        sa.Column("last_successful_use", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("last_used_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["profile_id"], ["import_profile.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("profile_id"),
    )
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("dedupe_key", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True)
        )
        batch_op.create_unique_constraint("uq_message_tenant_dedupe", ["tenant_id", "dedupe_key"])
    if op.get_bind().dialect.name == "postgresql":
        for stmt in enable_shared_rls("import_profile"):
            op.execute(stmt)
        for stmt in enable_counter_rls("import_profile_usage", "import_profile", "profile_id"):
            op.execute(stmt)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for stmt in disable_counter_rls("import_profile_usage"):
            op.execute(stmt)
        for stmt in disable_shared_rls("import_profile"):
            op.execute(stmt)
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_constraint("uq_message_tenant_dedupe", type_="unique")
        batch_op.drop_column("dedupe_key")

    op.drop_table("import_profile_usage")
    with op.batch_alter_table("import_profile", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_import_profile_source"))
        batch_op.drop_index(batch_op.f("ix_import_profile_owner_tenant_id"))

    op.drop_table("import_profile")
