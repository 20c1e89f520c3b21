"""florist studio: catalog, style and prompt templates with versions, generator configurations,
designs, the shared style library; existing shops get the starter catalog and default templates

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-21 09:30:00.000000
"""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

from db.rls import (
    disable_counter_rls,
    disable_shared_rls,
    disable_tenant_rls,
    enable_counter_rls,
    enable_shared_rls,
    enable_tenant_rls,
)

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NEW_TENANT_TABLES = (
    "flower",
    "arrangement_type",
    "occasion",
    "budget_tier",
    "generator_config",
    "design_template",
    "design_template_version",
    "design",
)
ACTIVE_CONFIG = "is_active"


def _stamps() -> list[sa.Column[Any]]:
    return [
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
    ]


def _tenant_index(table: str) -> None:
    with op.batch_alter_table(table, schema=None) as batch_op:
        batch_op.create_index(batch_op.f(f"ix_{table}_tenant_id"), ["tenant_id"], unique=False)


def _catalog_tables() -> None:
    op.create_table(
        "flower",
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("variety", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("color", sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
        sa.Column("season", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("in_stock", sa.Boolean(), nullable=False),
        sa.Column("price_tier", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("description", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("image_url", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        *_stamps(),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "name", "variety", name="uq_flower_tenant_name_variety"),
    )
    _tenant_index("flower")
    op.create_table(
        "arrangement_type",
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("description", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        *_stamps(),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "name", name="uq_arrangement_type_tenant_name"),
    )
    _tenant_index("arrangement_type")
    op.create_table(
        "occasion",
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("description", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("typical_flowers", sa.JSON(), nullable=False),
        sa.Column("typical_colors", sa.JSON(), nullable=False),
        sa.Column("seasonal_preferences", sa.JSON(), nullable=False),
        sa.Column("price_sensitivity", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        *_stamps(),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "name", name="uq_occasion_tenant_name"),
    )
    _tenant_index("occasion")
    op.create_table(
        "budget_tier",
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("min_price", sa.Float(), nullable=False),
        sa.Column("max_price", sa.Float(), nullable=True),
        sa.Column("description", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        *_stamps(),
        sa.CheckConstraint(
            "min_price >= 0 AND (max_price IS NULL OR max_price >= min_price)",
            name="ck_budget_tier_prices",
        ),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "name", name="uq_budget_tier_tenant_name"),
    )
    _tenant_index("budget_tier")


def _generator_table() -> None:
    op.create_table(
        "generator_config",
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("model_type", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("description", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        *_stamps(),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "name", name="uq_generator_config_tenant_name"),
    )
    with op.batch_alter_table("generator_config", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_generator_config_tenant_id"), ["tenant_id"], unique=False
        )
        batch_op.create_index(
            "uq_generator_config_one_active",
            ["tenant_id", "model_type"],
            unique=True,
            sqlite_where=sa.text(ACTIVE_CONFIG),
            postgresql_where=sa.text(ACTIVE_CONFIG),
        )


def _library_tables() -> None:
    op.create_table(
        "shared_template",
        sa.Column("owner_tenant_id", sa.Integer(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("description", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("content", sa.JSON(), nullable=False),
        sa.Column("source_template_id", sa.Integer(), nullable=True),
        sa.Column("source_number", sa.Integer(), nullable=True),
        *_stamps(),
        sa.ForeignKeyConstraint(["owner_tenant_id"], ["tenant.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "owner_tenant_id", "kind", "name", name="uq_shared_template_owner_name"
        ),
    )
    with op.batch_alter_table("shared_template", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_shared_template_owner_tenant_id"), ["owner_tenant_id"], unique=False
        )
    op.create_table(
        "shared_template_usage",
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("adoptions", sa.Integer(), nullable=False),
        sa.Column("success_count", sa.Integer(), nullable=False),
        sa.Column("failure_count", sa.Integer(), nullable=False),
        sa.Column("last_successful_use", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("last_used_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["item_id"], ["shared_template.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("item_id"),
    )


def _template_tables() -> None:
    op.create_table(
        "design_template",
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("description", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("latest_number", sa.Integer(), nullable=False),
        sa.Column("production_number", sa.Integer(), nullable=True),
        sa.Column("previous_production_number", sa.Integer(), nullable=True),
        sa.Column("usage_count", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("library_item_id", sa.Integer(), nullable=True),
        *_stamps(),
        sa.ForeignKeyConstraint(["library_item_id"], ["shared_template.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "id", name="uq_design_template_tenant_id_id"),
        sa.UniqueConstraint(
            "tenant_id", "kind", "name", name="uq_design_template_tenant_kind_name"
        ),
    )
    _tenant_index("design_template")
    op.create_table(
        "design_template_version",
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("template_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("content", sa.JSON(), nullable=False),
        sa.Column("note", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=True),
        sa.Column("author_name", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "author_id"],
            ["app_user.tenant_id", "app_user.id"],
            name="fk_author_id_same_shop_app_user",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "template_id"],
            ["design_template.tenant_id", "design_template.id"],
            name="fk_template_id_same_shop_design_template",
        ),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "id", name="uq_design_template_version_tenant_id_id"),
        sa.UniqueConstraint(
            "tenant_id", "template_id", "number", name="uq_design_template_version_number"
        ),
    )
    _tenant_index("design_template_version")


def _design_table() -> None:
    op.create_table(
        "design",
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("design_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("image_url", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
        sa.Column("model_type", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("template_id", sa.Integer(), nullable=True),
        sa.Column("template_version_id", sa.Integer(), nullable=True),
        sa.Column("style_id", sa.Integer(), nullable=True),
        sa.Column("occasion", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("tokens", sa.Integer(), nullable=False),
        sa.Column("cost", sa.Float(), nullable=False),
        sa.Column("rating", sa.Integer(), nullable=True),
        sa.Column("approved", sa.Boolean(), nullable=True),
        sa.Column("favorite", sa.Boolean(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("reviewed_by", sa.Integer(), nullable=True),
        sa.Column("reviewed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("recorded_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.CheckConstraint(
            "rating IS NULL OR (rating >= 0 AND rating <= 5)", name="ck_design_rating"
        ),
        sa.CheckConstraint("tokens >= 0 AND cost >= 0", name="ck_design_usage"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "reviewed_by"],
            ["app_user.tenant_id", "app_user.id"],
            name="fk_reviewed_by_same_shop_app_user",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "style_id"],
            ["design_template.tenant_id", "design_template.id"],
            name="fk_style_id_same_shop_design_template",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "template_id"],
            ["design_template.tenant_id", "design_template.id"],
            name="fk_template_id_same_shop_design_template",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "template_version_id"],
            ["design_template_version.tenant_id", "design_template_version.id"],
            name="fk_template_version_id_same_shop_design_template_version",
        ),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "design_id", name="uq_design_tenant_design_id"),
    )
    with op.batch_alter_table("design", schema=None) as batch_op:
        batch_op.create_index("ix_design_tenant_created", ["tenant_id", "created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_design_tenant_id"), ["tenant_id"], unique=False)
        batch_op.create_index("ix_design_tenant_occasion", ["tenant_id", "occasion"], unique=False)
        batch_op.create_index("ix_design_tenant_style", ["tenant_id", "style_id"], unique=False)
        batch_op.create_index(
            "ix_design_tenant_template", ["tenant_id", "template_id"], unique=False
        )


# ---------------------------------------------------------------------------------------------
# What every existing shop starts with: the same as core.catalog.STARTER_CATALOG and
# core.templates.DEFAULT_STYLES / DEFAULT_PROMPTS give a new shop today (a migration keeps its
# own copy: the code may change).
# ---------------------------------------------------------------------------------------------

# name, variety, color, season, price tier, description
FLOWERS = (
    ("rose", "Garden", "pink", "all_year", "standard", "Full, fragrant garden rose."),
    (
        "rose",
        "Avalanche",
        "white",
        "all_year",
        "premium",
        "Large white rose with a long vase life.",
    ),
    ("peony", "Sarah Bernhardt", "blush", "spring", "premium", "Lush double bloom, late spring."),
    (
        "ranunculus",
        "",
        "peach",
        "spring",
        "standard",
        "Layered petals; pairs with roses and peonies.",
    ),
    ("tulip", "", "yellow", "spring", "budget", ""),
    ("sunflower", "", "yellow", "summer", "budget", ""),
    ("hydrangea", "", "blue", "summer", "standard", ""),
    ("dahlia", "Café au Lait", "blush", "autumn", "premium", ""),
    ("chrysanthemum", "", "white", "autumn", "budget", ""),
    ("calla lily", "", "white", "all_year", "premium", ""),
    ("orchid", "Phalaenopsis", "purple", "all_year", "luxury", ""),
    ("protea", "King", "pink", "all_year", "luxury", ""),
    ("bird of paradise", "", "orange", "all_year", "premium", ""),
    ("anthurium", "", "red", "all_year", "premium", ""),
    ("eucalyptus", "Silver dollar", "green", "all_year", "budget", "Foliage."),
)
ARRANGEMENT_TYPES = (
    ("bouquet", "Hand-tied, to carry or put in a vase."),
    ("vase arrangement", "Arranged in a vase, ready to display."),
    ("centerpiece", "Low arrangement for a table."),
    ("flower box", "Blooms packed tight in a hat box."),
    ("wreath", "A ring of flowers and foliage."),
    ("boutonniere", "A single bloom to pin on a lapel."),
)
# name, typical flowers, typical colors, seasonal preferences, price sensitivity
OCCASIONS: tuple[tuple[str, list[str], list[str], dict[str, list[str]], str], ...] = (
    (
        "wedding",
        ["rose", "peony", "ranunculus", "calla lily"],
        ["white", "blush", "ivory"],
        {"spring": ["peony", "ranunculus"], "summer": ["hydrangea"]},
        "low",
    ),
    ("anniversary", ["rose", "orchid"], ["red", "pink"], {}, "medium"),
    ("birthday", ["tulip", "sunflower", "dahlia"], ["yellow", "orange", "pink"], {}, "medium"),
    ("sympathy", ["chrysanthemum", "calla lily"], ["white", "green"], {}, "medium"),
    ("get well", ["sunflower", "tulip"], ["yellow", "orange"], {}, "high"),
    ("corporate event", ["orchid", "anthurium", "protea"], ["white", "green", "red"], {}, "low"),
)
BUDGET_TIERS = (
    ("Budget", 0.0, 35.0),
    ("Standard", 35.0, 75.0),
    ("Premium", 75.0, 150.0),
    ("Luxury", 150.0, None),
)


def _style(palette: str, flowers: str, mood: str, arrangement: str, flair: str) -> dict[str, Any]:
    return {
        "color_palette": palette.split(", "),
        "flowers": flowers.split(", "),
        "mood": mood,
        "arrangement_style": arrangement,
        "flair_elements": flair.split(", "),
        "example_images": [],
    }


STYLES = (
    (
        "Romantic Classic",
        "Soft, lush and timeless: garden roses and peonies in blush tones.",
        _style(
            "pink, white, blush",
            "roses, peonies, ranunculus, sweet peas",
            "romantic",
            "soft, rounded hand-tied bouquet",
            "satin ribbon, pearl pins, trailing greenery",
        ),
    ),
    (
        "Modern Minimalist",
        "Few stems, strong lines and plenty of space.",
        _style(
            "white, green, black",
            "calla lilies, orchids, anthuriums",
            "modern",
            "sparse, architectural arrangement with negative space",
            "geometric vase, single monstera leaf",
        ),
    ),
    (
        "Rustic Natural",
        "Just-picked and relaxed, with seasonal wildflowers.",
        _style(
            "cream, sage green, burnt orange",
            "sunflowers, wildflowers, eucalyptus, wheat",
            "rustic",
            "loose, garden-gathered bouquet",
            "twine, burlap wrap, mason jar",
        ),
    ),
    (
        "Elegant Formal",
        "Tall, symmetrical and refined for grand occasions.",
        _style(
            "ivory, gold, burgundy",
            "roses, orchids, hydrangeas, calla lilies",
            "elegant",
            "tall, symmetrical formal arrangement",
            "gold accents, crystal vase, velvet ribbon",
        ),
    ),
    (
        "Tropical Vibrant",
        "Bold color and big leaves from warmer places.",
        _style(
            "orange, hot pink, yellow",
            "birds of paradise, anthuriums, proteas, heliconias",
            "tropical",
            "bold, layered arrangement with large leaves",
            "monstera leaves, palm fronds, bamboo accents",
        ),
    ),
)


def _from_style(name: str, kind: str, parameter: str) -> dict[str, str]:
    return {"name": name, "type": kind, "source": "style_parameter", "parameter": parameter}


def _from_catalog(name: str, kind: str, catalog: str) -> dict[str, str]:
    return {"name": name, "type": kind, "source": "catalog", "catalog": catalog}


STYLE = _from_style("style", "text", "mood")
OCCASION = _from_catalog("occasion", "text", "occasions")
PROMPTS = (
    (
        "Basic Bouquet",
        "A bouquet in a style, for an occasion.",
        {
            "text": "Create a beautiful {style} bouquet with {flowers} in {colors} colors "
            "for {occasion}",
            "variables": [
                STYLE,
                _from_style("flowers", "list", "flowers"),
                _from_style("colors", "list", "color_palette"),
                OCCASION,
            ],
        },
    ),
    (
        "Modern Arrangement",
        "A contemporary arrangement in a container you name.",
        {
            "text": "A modern {arrangement} in a {container}, featuring {flowers} in a {colors} "
            "palette, with clean lines and negative space, for {occasion}",
            "variables": [
                _from_catalog("arrangement", "text", "arrangement_types"),
                {"name": "container", "type": "text", "source": "free_text"},
                _from_catalog("flowers", "list", "flowers"),
                _from_catalog("colors", "list", "colors"),
                OCCASION,
            ],
        },
    ),
    (
        "Style Specific",
        "Everything a style says: mood, arrangement, flowers, colors and flair.",
        {
            "text": "A {style} floral design: {arrangement_style} of {flowers} in {colors}, "
            "finished with {flair}, for {occasion}",
            "variables": [
                STYLE,
                _from_style("arrangement_style", "text", "arrangement_style"),
                _from_style("flowers", "list", "flowers"),
                _from_style("colors", "list", "color_palette"),
                _from_style("flair", "list", "flair_elements"),
                OCCASION,
            ],
        },
    ),
)

_when = sqlmodel.sql.sqltypes.UTCDateTime
_flower = sa.table(
    "flower",
    *(sa.column(c) for c in ("tenant_id", "name", "variety", "color", "season", "price_tier")),
    *(sa.column(c) for c in ("description", "in_stock", "active", "version")),
    sa.column("created_at", _when()),
    sa.column("updated_at", _when()),
)
_arrangement = sa.table(
    "arrangement_type",
    *(sa.column(c) for c in ("tenant_id", "name", "description", "active", "version")),
    sa.column("created_at", _when()),
    sa.column("updated_at", _when()),
)
_occasion = sa.table(
    "occasion",
    *(sa.column(c) for c in ("tenant_id", "name", "description", "price_sensitivity")),
    *(sa.column(c, sa.JSON()) for c in ("typical_flowers", "typical_colors")),
    sa.column("seasonal_preferences", sa.JSON()),
    *(sa.column(c) for c in ("active", "version")),
    sa.column("created_at", _when()),
    sa.column("updated_at", _when()),
)
_budget = sa.table(
    "budget_tier",
    *(sa.column(c) for c in ("tenant_id", "name", "min_price", "max_price", "description")),
    *(sa.column(c) for c in ("active", "version")),
    sa.column("created_at", _when()),
    sa.column("updated_at", _when()),
)
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


def _give_starting_content(tenant_id: int, now: datetime) -> None:
    row = {"tenant_id": tenant_id, "active": True, "version": 1}
    row |= {"created_at": now, "updated_at": now}
    op.bulk_insert(
        _flower,
        [
            row
            | dict(
                zip(
                    ("name", "variety", "color", "season", "price_tier", "description"),
                    f,
                    strict=True,
                )
            )
            | {"in_stock": True}
            for f in FLOWERS
        ],
    )
    op.bulk_insert(
        _arrangement, [row | {"name": n, "description": d} for n, d in ARRANGEMENT_TYPES]
    )
    op.bulk_insert(
        _occasion,
        [
            row
            | {"name": n, "description": "", "typical_flowers": f, "typical_colors": c}
            | {"seasonal_preferences": s, "price_sensitivity": p}
            for n, f, c, s, p in OCCASIONS
        ],
    )
    op.bulk_insert(
        _budget,
        [
            row | {"name": n, "min_price": lo, "max_price": hi, "description": ""}
            for n, lo, hi in BUDGET_TIERS
        ],
    )
    bind = op.get_bind()
    for kind, defaults in (("style", STYLES), ("prompt", PROMPTS)):
        for name, description, content in defaults:
            template = row | {"kind": kind, "name": name, "description": description}
            template |= {"latest_number": 1, "production_number": 1, "usage_count": 0}
            bind.execute(_template.insert().values(**template))
            template_id = bind.execute(
                sa.text(
                    "SELECT id FROM design_template WHERE tenant_id = :t AND kind = :k AND name = :n"
                ),
                {"t": tenant_id, "k": kind, "n": name},
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


def upgrade() -> None:
    _catalog_tables()
    _generator_table()
    _library_tables()
    _template_tables()
    _design_table()

    # The new tables have no RLS yet, so the owner writes every shop's rows here.
    now = datetime.now(UTC)
    for (tenant_id,) in op.get_bind().execute(sa.text("SELECT id FROM tenant ORDER BY id")):
        _give_starting_content(tenant_id, now)

    if op.get_bind().dialect.name == "postgresql":
        for table in NEW_TENANT_TABLES:
            for stmt in enable_tenant_rls(table):
                op.execute(stmt)
        for stmt in enable_shared_rls("shared_template"):
            op.execute(stmt)
        for stmt in enable_counter_rls("shared_template_usage", "shared_template", "item_id"):
            op.execute(stmt)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for stmt in disable_counter_rls("shared_template_usage"):
            op.execute(stmt)
        for stmt in disable_shared_rls("shared_template"):
            op.execute(stmt)
        for table in NEW_TENANT_TABLES:
            for stmt in disable_tenant_rls(table):
                op.execute(stmt)
    for table in (
        "design",
        "design_template_version",
        "design_template",
        "shared_template_usage",
        "shared_template",
        "generator_config",
        "budget_tier",
        "occasion",
        "arrangement_type",
        "flower",
    ):
        op.drop_table(table)
