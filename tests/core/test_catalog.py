"""The shop's catalog: starter rows, validation, optimistic edits, table edits all or nothing,
deactivation of rows in use. Both backends (PostgreSQL as the app role, RLS on)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import select

from core import catalog, designs
from core.access import Actor, Role
from core.catalog import CatalogEdits, RowChange, RowRemoval
from core.errors import InvalidInput, NotFound, PermissionDenied, StaleEdit
from db.engine import session_scope
from db.models import AuditEvent, Flower
from tests.factories import Shop, make_shop

TULIP = {"name": "parrot tulip", "color": "red", "season": "spring", "price_tier": "standard"}


@pytest.fixture
def shop(engine) -> Shop:
    return make_shop(engine, "Bloom")


def call(engine: Engine, actor: Actor, function: str, **kwargs: Any) -> Any:
    with session_scope(actor, engine=engine) as s:
        return getattr(catalog, function)(session=s, actor=actor, **kwargs)


def names(engine: Engine, actor: Actor, kind: str, **kwargs: Any) -> list[str]:
    return [i.name for i in call(engine, actor, "list_items", kind=kind, **kwargs)]


def by_name(engine: Engine, actor: Actor, kind: str, name: str) -> Any:
    return next(i for i in call(engine, actor, "list_items", kind=kind) if i.name == name)


def actions(engine: Engine, shop: Shop) -> list[str]:
    with session_scope(shop.admin, engine=engine) as s:
        return [e.action for e in s.exec(select(AuditEvent).order_by(AuditEvent.id)).all()]


# ---------------------------------------------------------------- starter catalog


def test_a_new_shop_gets_the_starter_catalog(engine, shop):
    assert len(names(engine, shop.manager, "flower")) == len(catalog.STARTER_CATALOG["flower"])
    assert "wedding" in names(engine, shop.manager, "occasion")
    assert names(engine, shop.manager, "budget_tier") == ["Budget", "Luxury", "Premium", "Standard"]
    luxury = by_name(engine, shop.manager, "budget_tier", "Luxury")
    assert (luxury.min_price, luxury.max_price) == (150, None)
    wedding = by_name(engine, shop.manager, "occasion", "wedding")
    assert wedding.seasonal_preferences == {
        "spring": ["peony", "ranunculus"],
        "summer": ["hydrangea"],
    }
    with session_scope(shop.admin, engine=engine) as s:
        assert catalog.seed_starter_catalog(session=s, actor=shop.admin) == 0  # once only


def test_catalog_lists_hold_active_rows_and_flowers_in_stock(engine, shop):
    sunflower = by_name(engine, shop.florist, "flower", "sunflower")
    call(
        engine,
        shop.florist,
        "update_item",
        kind="flower",
        item_id=sunflower.id,
        values={"in_stock": False},
        expected_version=sunflower.version,
    )
    wreath = by_name(engine, shop.florist, "arrangement_type", "wreath")
    call(
        engine,
        shop.florist,
        "update_item",
        kind="arrangement_type",
        item_id=wreath.id,
        values={"active": False},
        expected_version=wreath.version,
    )
    lists = call(engine, shop.manager, "catalog_lists")
    assert "sunflower" not in lists.flowers and "rose" in lists.flowers
    assert "wreath" not in lists.arrangement_types and "bouquet" in lists.arrangement_types
    assert len(lists.colors) == len(set(lists.colors)) and "blush" in lists.colors
    assert lists.budget_tiers == ["Budget", "Luxury", "Premium", "Standard"]


# ---------------------------------------------------------------- create and validate


def test_create_a_flower_normalised_and_audited(engine, shop):
    created = call(
        engine,
        shop.florist,
        "create_item",
        kind="flower",
        values={**TULIP, "name": "  parrot   tulip ", "image_url": "https://img.example/t.jpg"},
    )
    assert created.name == "parrot tulip" and created.version == 1 and created.active
    assert created.image_url == "https://img.example/t.jpg"
    assert actions(engine, shop) == ["catalog.create"]


BAD_ROWS = [
    pytest.param("flower", {"color": "red"}, "name: Field required", id="flower-no-name"),
    pytest.param("flower", {**TULIP, "season": "monsoon"}, "season", id="flower-season"),
    pytest.param("flower", {**TULIP, "price_tier": "cheap"}, "price_tier", id="flower-tier"),
    pytest.param(
        "flower", {**TULIP, "image_url": "javascript:alert(1)"}, "http", id="flower-url-scheme"
    ),
    pytest.param(
        "flower", {**TULIP, "image_url": "https://a b.example/x"}, "spaces", id="flower-url-space"
    ),
    pytest.param("flower", {**TULIP, "stock": 5}, "stock: Extra inputs", id="flower-typo"),
    pytest.param(
        "budget_tier",
        {"name": "Odd", "min_price": 50, "max_price": 20},
        "at least the minimum",
        id="tier-range",
    ),
    pytest.param("budget_tier", {"name": "Odd", "min_price": -1}, "between 0", id="tier-negative"),
    pytest.param(
        "occasion",
        {"name": "prom", "seasonal_preferences": "monsoon: lotus"},
        "not a season",
        id="occasion-season",
    ),
    pytest.param(
        "occasion", {"name": "prom", "price_sensitivity": "extreme"}, "price_sensitivity", id="sens"
    ),
    pytest.param("arrangement_type", {"name": ""}, "name: .*1 to 100", id="type-empty-name"),
]


@pytest.mark.parametrize(("kind", "values", "message"), BAD_ROWS)
def test_an_invalid_row_is_refused_clearly_and_writes_nothing(engine, shop, kind, values, message):
    before = names(engine, shop.florist, kind)
    with pytest.raises(InvalidInput, match=message):
        call(engine, shop.florist, "create_item", kind=kind, values=values)
    assert names(engine, shop.florist, kind) == before
    assert actions(engine, shop) == []


def test_an_unknown_catalog_is_refused(engine, shop):
    with pytest.raises(InvalidInput, match="not a catalog"):
        call(engine, shop.florist, "list_items", kind="vases")


def test_occasion_lists_read_from_text(engine, shop):
    created = call(
        engine,
        shop.florist,
        "create_item",
        kind="occasion",
        values={
            "name": "prom",
            "typical_flowers": "orchid, rose, , Rose",
            "typical_colors": ["silver"],
            "seasonal_preferences": "spring: tulip, peony; Winter: amaryllis",
        },
    )
    assert created.typical_flowers == ["orchid", "rose"]
    assert created.seasonal_preferences == {"spring": ["tulip", "peony"], "winter": ["amaryllis"]}


def test_a_name_the_catalog_has_is_refused_whatever_its_case(engine, shop):
    with pytest.raises(InvalidInput, match="already has a flower named 'Rose' \\(garden\\)"):
        call(
            engine,
            shop.florist,
            "create_item",
            kind="flower",
            values={"name": "Rose", "variety": "garden", "color": "red"},
        )
    # Another variety of the same flower is a different row.
    call(
        engine,
        shop.florist,
        "create_item",
        kind="flower",
        values={"name": "rose", "variety": "Juliet", "color": "peach"},
    )


# ---------------------------------------------------------------- update and stale edits


def test_update_changes_only_the_given_fields_and_audits_them(engine, shop):
    hydrangea = by_name(engine, shop.florist, "flower", "hydrangea")
    updated = call(
        engine,
        shop.admin,
        "update_item",
        kind="flower",
        item_id=hydrangea.id,
        values={"color": "white", "in_stock": False},
        expected_version=hydrangea.version,
    )
    assert (updated.color, updated.in_stock, updated.season) == ("white", False, "summer")
    assert updated.version == hydrangea.version + 1
    with session_scope(shop.admin, engine=engine) as s:
        (event,) = s.exec(select(AuditEvent)).all()
    assert event.action == "catalog.update" and event.entity_type == "flower"
    assert event.before == {"color": "blue", "in_stock": True}
    assert event.after == {"color": "white", "in_stock": False}


def test_a_stale_update_is_refused(engine, shop):
    tulip = by_name(engine, shop.florist, "flower", "tulip")
    call(
        engine,
        shop.admin,
        "update_item",
        kind="flower",
        item_id=tulip.id,
        values={"color": "red"},
        expected_version=tulip.version,
    )
    with pytest.raises(StaleEdit, match="changed by someone else") as caught:
        call(
            engine,
            shop.florist,
            "update_item",
            kind="flower",
            item_id=tulip.id,
            values={"color": "white"},
            expected_version=tulip.version,
        )
    assert caught.value.current["color"] == "red"
    assert caught.value.current["version"] == tulip.version + 1
    assert by_name(engine, shop.florist, "flower", "tulip").color == "red"


def test_a_row_of_another_shop_is_not_found(engine, shop):
    other = make_shop(engine, "Fern")
    theirs = by_name(engine, other.florist, "flower", "tulip")
    with pytest.raises(NotFound):
        call(engine, shop.florist, "get_item", kind="flower", item_id=theirs.id)
    with pytest.raises(NotFound):
        call(
            engine,
            shop.florist,
            "update_item",
            kind="flower",
            item_id=theirs.id,
            values={"color": "black"},
            expected_version=theirs.version,
        )
    assert by_name(engine, other.florist, "flower", "tulip").color == "yellow"


# ---------------------------------------------------------------- delete or deactivate


def test_a_row_nothing_uses_is_deleted(engine, shop):
    tier = by_name(engine, shop.florist, "budget_tier", "Premium")
    assert (
        call(
            engine,
            shop.florist,
            "remove_item",
            kind="budget_tier",
            item_id=tier.id,
            expected_version=tier.version,
        )
        == "deleted"
    )
    assert "Premium" not in names(engine, shop.florist, "budget_tier")
    assert actions(engine, shop) == ["catalog.delete"]


def test_a_flower_a_style_uses_is_deactivated_not_deleted(engine, shop):
    peony = by_name(engine, shop.florist, "flower", "peony")
    uses = call(engine, shop.florist, "in_use", kind="flower", item_id=peony.id)
    assert "style 'Romantic Classic'" in uses and "occasion 'wedding'" in uses
    outcome = call(
        engine,
        shop.florist,
        "remove_item",
        kind="flower",
        item_id=peony.id,
        expected_version=peony.version,
    )
    assert outcome == "deactivated"
    assert not by_name(engine, shop.florist, "flower", "peony").active
    assert "peony" not in names(engine, shop.florist, "flower", include_inactive=False)
    assert actions(engine, shop) == ["catalog.deactivate"]


def test_an_occasion_with_designs_is_deactivated(engine, shop):
    sympathy = by_name(engine, shop.florist, "occasion", "sympathy")
    assert call(engine, shop.florist, "in_use", kind="occasion", item_id=sympathy.id) == []
    with session_scope(shop.admin, engine=engine) as s:
        designs.record_design(
            session=s,
            actor=shop.admin,
            design_id="d-1",
            prompt="white lilies",
            image_url="https://img.example/1.png",
            model_type="dalle3",
            occasion="sympathy",
        )
    assert call(engine, shop.florist, "in_use", kind="occasion", item_id=sympathy.id) == [
        "1 designs"
    ]
    assert (
        call(
            engine,
            shop.florist,
            "remove_item",
            kind="occasion",
            item_id=sympathy.id,
            expected_version=sympathy.version,
        )
        == "deactivated"
    )


def test_an_arrangement_type_a_style_names_is_kept(engine, shop):
    bouquet = by_name(engine, shop.florist, "arrangement_type", "bouquet")
    assert call(engine, shop.florist, "in_use", kind="arrangement_type", item_id=bouquet.id) == [
        "style 'Romantic Classic'",
        "style 'Rustic Natural'",
    ]


# ---------------------------------------------------------------- table edits


def test_table_edits_apply_together(engine, shop):
    tulip = by_name(engine, shop.florist, "flower", "tulip")
    statice = call(
        engine,
        shop.florist,
        "create_item",
        kind="flower",
        values={"name": "statice", "color": "purple"},
    )
    peony = by_name(engine, shop.florist, "flower", "peony")
    edits = CatalogEdits(
        added=[TULIP, {"name": "lisianthus", "color": "lavender"}],
        changed=[RowChange(tulip.id, tulip.version, {"in_stock": False})],
        removed=[RowRemoval(statice.id, statice.version), RowRemoval(peony.id, peony.version)],
    )
    outcome = call(engine, shop.florist, "apply_edits", kind="flower", edits=edits)
    assert (outcome.added, outcome.changed, outcome.deleted, outcome.deactivated) == (2, 1, 1, 1)
    listed = names(engine, shop.florist, "flower")
    assert "lisianthus" in listed and "statice" not in listed and "peony" in listed


def test_one_bad_row_refuses_the_whole_table_and_names_every_bad_row(engine, shop):
    tulip = by_name(engine, shop.florist, "flower", "tulip")
    before = call(engine, shop.florist, "list_items", kind="flower")
    edits = CatalogEdits(
        added=[TULIP, {"name": "x", "color": "red", "season": "monsoon"}],
        changed=[RowChange(tulip.id, tulip.version, {"price_tier": "free"})],
    )
    with pytest.raises(InvalidInput) as caught:
        call(engine, shop.florist, "apply_edits", kind="flower", edits=edits)
    assert "New row 2: season" in str(caught.value)
    assert f"Row {tulip.id}: price_tier" in str(caught.value)
    assert call(engine, shop.florist, "list_items", kind="flower") == before
    assert actions(engine, shop) == []


def test_a_duplicate_or_stale_row_found_while_writing_refuses_the_table(engine, shop):
    tulip = by_name(engine, shop.florist, "flower", "tulip")
    with pytest.raises(InvalidInput, match=r"(?i)already has a flower named 'parrot tulip'"):
        call(
            engine,
            shop.florist,
            "apply_edits",
            kind="flower",
            edits=CatalogEdits(added=[TULIP, {**TULIP, "name": "Parrot Tulip"}]),
        )
    with pytest.raises(StaleEdit):
        call(
            engine,
            shop.florist,
            "apply_edits",
            kind="flower",
            edits=CatalogEdits(
                added=[TULIP], changed=[RowChange(tulip.id, tulip.version + 1, {"color": "red"})]
            ),
        )
    with session_scope(shop.admin, engine=engine) as s:
        assert s.exec(select(Flower).where(Flower.name == "parrot tulip")).all() == []


# ---------------------------------------------------------------- roles


def test_managers_read_the_catalog_but_do_not_change_it(engine, shop):
    tulip = by_name(engine, shop.manager, "flower", "tulip")
    m = shop.manager
    with pytest.raises(PermissionDenied):
        call(engine, m, "create_item", kind="flower", values=TULIP)
    with pytest.raises(PermissionDenied):
        call(
            engine,
            m,
            "update_item",
            kind="flower",
            item_id=tulip.id,
            values={"color": "red"},
            expected_version=tulip.version,
        )
    with pytest.raises(PermissionDenied):
        call(engine, m, "remove_item", kind="flower", item_id=tulip.id, expected_version=1)
    with pytest.raises(PermissionDenied):
        call(engine, m, "apply_edits", kind="flower", edits=CatalogEdits(added=[TULIP]))
    with pytest.raises(PermissionDenied):
        call(engine, m, "seed_starter_catalog")
    assert call(engine, m, "get_item", kind="flower", item_id=tulip.id).name == "tulip"
    assert "occasion 'birthday'" in call(engine, m, "in_use", kind="flower", item_id=tulip.id)


@pytest.mark.parametrize("role", [Role.ADMIN, Role.FLORIST])
def test_admins_and_florists_edit_the_catalog(engine, shop, role):
    created = call(
        engine, shop.actor(role), "create_item", kind="arrangement_type", values={"name": "garland"}
    )
    assert created.name == "garland"
