"""snapshots and alerts: metric_snapshot, alert_event, alert thresholds on shop_settings

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21 06:12:24.438055
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

from db.rls import disable_tenant_rls, enable_tenant_rls

NEW_TENANT_TABLES = ("metric_snapshot", "alert_event")
OPEN_ALERT = "cleared_at IS NULL"

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "metric_snapshot",
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("period", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("period_start", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("total_messages", sa.Integer(), nullable=False),
        sa.Column("ai_resolved", sa.Integer(), nullable=False),
        sa.Column("escalated", sa.Integer(), nullable=False),
        sa.Column("escalation_rate", sa.Float(), nullable=True),
        sa.Column("avg_confidence", sa.Float(), nullable=True),
        sa.Column("intent_accuracy", sa.Float(), nullable=True),
        sa.Column("correction_rate", sa.Float(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenant.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "tenant_id", "period", "period_start", name="uq_metric_snapshot_tenant_period_start"
        ),
    )
    with op.batch_alter_table("metric_snapshot", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_metric_snapshot_tenant_id"), ["tenant_id"], unique=False
        )

    op.create_table(
        "alert_event",
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("raised_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("cleared_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("cleared_value", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenant.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("alert_event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_alert_event_tenant_id"), ["tenant_id"], unique=False)
        batch_op.create_index(
            "ix_alert_event_tenant_raised", ["tenant_id", "raised_at"], unique=False
        )
        batch_op.create_index(
            "uq_alert_event_one_open",
            ["tenant_id", "kind"],
            unique=True,
            sqlite_where=sa.text(OPEN_ALERT),
            postgresql_where=sa.text(OPEN_ALERT),
        )

    # Server defaults, so existing shops get the seed thresholds (and version 0: never saved).
    with op.batch_alter_table("shop_settings", schema=None) as batch_op:
        for name, default in (
            ("alert_intent_accuracy", "0.7"),
            ("alert_escalation_rate", "0.3"),
            ("alert_macro_f1", "0.7"),
            ("alert_misclassification", "0.15"),
        ):
            batch_op.add_column(
                sa.Column(name, sa.Float(), server_default=sa.text(default), nullable=False)
            )
        batch_op.add_column(
            sa.Column("alert_version", sa.Integer(), server_default=sa.text("0"), nullable=False)
        )

    if op.get_bind().dialect.name == "postgresql":
        for table in NEW_TENANT_TABLES:
            for stmt in enable_tenant_rls(table):
                op.execute(stmt)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in NEW_TENANT_TABLES:
            for stmt in disable_tenant_rls(table):
                op.execute(stmt)
    with op.batch_alter_table("shop_settings", schema=None) as batch_op:
        batch_op.drop_column("alert_version")
        batch_op.drop_column("alert_misclassification")
        batch_op.drop_column("alert_macro_f1")
        batch_op.drop_column("alert_escalation_rate")
        batch_op.drop_column("alert_intent_accuracy")

    with op.batch_alter_table("alert_event", schema=None) as batch_op:
        batch_op.drop_index("uq_alert_event_one_open")
        batch_op.drop_index("ix_alert_event_tenant_raised")
        batch_op.drop_index(batch_op.f("ix_alert_event_tenant_id"))

    op.drop_table("alert_event")
    with op.batch_alter_table("metric_snapshot", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_metric_snapshot_tenant_id"))

    op.drop_table("metric_snapshot")
