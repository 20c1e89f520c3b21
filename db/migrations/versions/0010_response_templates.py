"""response templates: their search table (PostgreSQL: a tsvector with a GIN index); existing
shops get the two starting response templates

Response templates are design templates of kind 'response' (their versions, production label and
audit are the studio's); response_search holds the searchable text of each one's latest version.
On SQLite the full-text index is an FTS5 table that core.responses creates and fills when it
first needs it (it is derived from response_search, and its shadow tables are no model's).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-28 09:00:00.000000
"""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op
from sqlalchemy.dialects import postgresql

from db.rls import disable_tenant_rls, enable_tenant_rls

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "response_search"
# The same document core.responses writes: name weighs most, then triggers and category, then
# the text (a migration keeps its own copy: the code may change).
DOCUMENT = (
    "setweight(to_tsvector('english', coalesce(name, '')), 'A') || "
    "setweight(to_tsvector('english', coalesce(phrases, '') || ' ' || coalesce(intents, '')), 'B')"
    " || setweight(to_tsvector('english', coalesce(category, '')), 'B') || "
    "setweight(to_tsvector('english', coalesce(body, '')), 'C')"
)


def _search_table() -> None:
    op.create_table(
        TABLE,
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("template_id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("category", sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("phrases", sa.Text(), nullable=False),
        sa.Column("intents", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column(
            "document", sa.Text().with_variant(postgresql.TSVECTOR(), "postgresql"), nullable=True
        ),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "template_id"],
            ["design_template.tenant_id", "design_template.id"],
            name="fk_template_id_same_shop_design_template",
        ),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "template_id", name="uq_response_search_template"),
    )
    with op.batch_alter_table(TABLE, schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_response_search_tenant_id"), ["tenant_id"])
        batch_op.create_index("ix_response_search_document", ["document"], postgresql_using="gin")


# ---------------------------------------------------------------------------------------------
# What every existing shop starts with: core.responses.DEFAULT_RESPONSES today.
# ---------------------------------------------------------------------------------------------

SIGN_OFF = {
    "name": "sign_off",
    "type": "text",
    "required": False,
    "default": "Warm wishes from all of us at the shop",
}
CUSTOMER = {"name": "customer_name", "type": "text", "required": True}
ORDER = {"name": "order_number", "type": "text", "required": True}
RESPONSES: tuple[tuple[str, str, dict[str, Any]], ...] = (
    (
        "Order Status Inquiry",
        "Where an order is and when it arrives.",
        {
            "category": "Orders",
            "text": "Hi {customer_name},\n\nThank you for checking on order {order_number}. It "
            "is {order_status} and is due to arrive on {delivery_date}. We will text you as "
            "soon as it has been delivered.\n\n{sign_off}",
            "variables": [
                CUSTOMER,
                ORDER,
                {
                    "name": "order_status",
                    "type": "select",
                    "required": True,
                    "default": "being arranged",
                    "options": ["being arranged", "with our driver", "delivered"],
                },
                {"name": "delivery_date", "type": "date", "required": True},
                SIGN_OFF,
            ],
            "triggers": {
                "phrases": [
                    "where is my order",
                    "order status",
                    "track my order",
                    "has my order shipped",
                    "out for delivery",
                ],
                "intents": ["order_status"],
            },
        },
    ),
    (
        "Damaged Flowers Resolution",
        "Flowers that arrived damaged: an apology and how we make it right.",
        {
            "category": "Quality",
            "text": "Hi {customer_name},\n\nI am so sorry the flowers from order {order_number} "
            "arrived {damage}. That is not the standard we aim for. We will make it right with "
            "{resolution} within {days_to_resolve} days; there is no need to send anything "
            "back, though a photo helps us improve our packing.\n\n{sign_off}",
            "variables": [
                CUSTOMER,
                ORDER,
                {
                    "name": "damage",
                    "type": "select",
                    "required": True,
                    "default": "damaged",
                    "options": ["damaged", "wilted", "crushed", "with a broken vase"],
                },
                {
                    "name": "resolution",
                    "type": "select",
                    "required": True,
                    "default": "a free replacement",
                    "options": ["a free replacement", "a full refund", "store credit"],
                },
                {"name": "days_to_resolve", "type": "number", "required": True, "default": 2},
                SIGN_OFF,
            ],
            "triggers": {
                "phrases": [
                    "arrived damaged",
                    "flowers are wilted",
                    "broken vase",
                    "stems are snapped",
                    "flowers arrived dead",
                    "box was crushed",
                ],
                "intents": ["damaged_flowers"],
            },
        },
    ),
)

_when = sqlmodel.sql.sqltypes.UTCDateTime
_template = sa.table(
    "design_template",
    *(sa.column(c) for c in ("tenant_id", "kind", "name", "description")),
    *(sa.column(c) for c in ("latest_number", "production_number", "usage_count", "active")),
    sa.column("version"),
    sa.column("created_at", _when()),
    sa.column("updated_at", _when()),
)
_version = sa.table(
    "design_template_version",
    *(sa.column(c) for c in ("tenant_id", "template_id", "number", "note", "author_name")),
    sa.column("content", sa.JSON()),
    sa.column("created_at", _when()),
)
_search = sa.table(
    TABLE,
    *(sa.column(c) for c in ("tenant_id", "template_id", "name", "category", "body")),
    *(sa.column(c) for c in ("phrases", "intents", "active")),
    sa.column("updated_at", _when()),
)


def _give_starting_responses(tenant_id: int, now: datetime) -> None:
    bind = op.get_bind()
    have = {
        name.casefold()
        for (name,) in bind.execute(
            sa.text("SELECT name FROM design_template WHERE tenant_id = :t AND kind = 'response'"),
            {"t": tenant_id},
        )
    }
    for name, description, content in RESPONSES:
        if name.casefold() in have:
            continue
        bind.execute(
            _template.insert().values(
                tenant_id=tenant_id,
                kind="response",
                name=name,
                description=description,
                latest_number=1,
                production_number=1,
                usage_count=0,
                active=True,
                version=1,
                created_at=now,
                updated_at=now,
            )
        )
        template_id = bind.execute(
            sa.text(
                "SELECT id FROM design_template "
                "WHERE tenant_id = :t AND kind = 'response' AND name = :n"
            ),
            {"t": tenant_id, "n": name},
        ).scalar_one()
        bind.execute(
            _version.insert().values(
                tenant_id=tenant_id,
                template_id=template_id,
                number=1,
                note="Starting template",
                author_name="Trellis",
                content=content,
                created_at=now,
            )
        )
        triggers = content["triggers"]
        bind.execute(
            _search.insert().values(
                tenant_id=tenant_id,
                template_id=template_id,
                name=name,
                category=content["category"],
                body=content["text"],
                phrases="\n".join(triggers["phrases"]),
                intents="\n".join(triggers["intents"]),
                active=True,
                updated_at=now,
            )
        )


STUDIO_TABLES = ("design_template", "design_template_version")


def _owner_writes(postgres: bool, on: bool) -> None:
    """Let the owner write every shop's studio rows here (FORCE RLS would hide them)."""
    if postgres:
        for table in STUDIO_TABLES:
            op.execute(f"ALTER TABLE {table} {'NO ' if on else ''}FORCE ROW LEVEL SECURITY")


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    _search_table()
    now = datetime.now(UTC)
    _owner_writes(postgres, True)
    for (tenant_id,) in op.get_bind().execute(sa.text("SELECT id FROM tenant ORDER BY id")):
        _give_starting_responses(tenant_id, now)
    _owner_writes(postgres, False)
    if postgres:
        op.execute(f"UPDATE {TABLE} SET document = {DOCUMENT}")  # noqa: S608 (constants)
        for stmt in enable_tenant_rls(TABLE):
            op.execute(stmt)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        for stmt in disable_tenant_rls(TABLE):
            op.execute(stmt)
    else:  # core.responses' FTS5 index of this table, if it was ever made
        op.execute("DROP TABLE IF EXISTS response_search_fts")
    op.drop_table(TABLE)
    # Response templates go with their table: the starting ones and any a florist wrote.
    _owner_writes(postgres, True)
    op.execute(
        "DELETE FROM design_template_version WHERE template_id IN "
        "(SELECT id FROM design_template WHERE kind = 'response')"
    )
    op.execute("DELETE FROM design_template WHERE kind = 'response'")
    _owner_writes(postgres, False)
