"""Catalog page through app.py: table edits saved all or nothing, deactivation of rows in use."""

from __future__ import annotations

from sqlmodel import select

from core import catalog
from core.access import Role
from db.engine import session_scope
from db.models import ArrangementType, AuditEvent, BudgetTier, Flower, Occasion


def _catalog(app, actor):
    at = app(actor)
    at.switch_page("pages/catalog.py")
    return at.run()


def _button(at, label):
    return next(b for b in at.button if b.label == label)


def _rows(engine, shop, model):
    with session_scope(shop.admin, engine=engine) as s:
        return {row.name: row for row in s.exec(select(model)).all()}


def _position(at, kind, name):
    """The table row of `name` as the page shows it."""
    frame = at.data_editor(key=f"catalog_editor_{kind}_0").value
    return list(frame["name"]).index(name)


def _edit(at, kind, *, edited=None, added=(), deleted=()):
    at.session_state[f"catalog_editor_{kind}_0"] = {
        "edited_rows": edited or {},
        "added_rows": list(added),
        "deleted_rows": list(deleted),
    }
    return at.run()


def test_a_table_edit_saves_changed_and_added_rows(app, shops, app_db):
    bloom, fern = shops
    at = _catalog(app, bloom.florist)
    assert not at.exception
    assert [t.label for t in at.tabs] == [
        "Flowers",
        "Arrangement types",
        "Occasions",
        "Budget tiers",
    ]
    tulip = _position(at, "flower", "tulip")
    at = _edit(
        at,
        "flower",
        edited={tulip: {"in_stock": False, "price_tier": "standard"}},
        added=[{"name": "lisianthus", "color": "lavender", "season": "summer"}],
    )
    assert any("Not saved yet: 1 changed, 1 new" in c.value for c in at.caption)
    _button(at, "Save flowers").click()
    at = at.run()
    assert not at.exception
    assert any("Saved the flowers: 1 added, 1 changed." in s.value for s in at.success)
    flowers = _rows(app_db, bloom, Flower)
    assert (flowers["tulip"].in_stock, flowers["tulip"].price_tier) == (False, "standard")
    assert (flowers["lisianthus"].color, flowers["lisianthus"].season) == ("lavender", "summer")
    assert "lisianthus" not in _rows(app_db, fern, Flower)
    # the table is drawn afresh: the new row is there and nothing waits to be saved
    frame = at.data_editor(key="catalog_editor_flower_1").value
    assert "lisianthus" in list(frame["name"])
    assert not any("Not saved yet" in c.value for c in at.caption)


def test_a_bad_row_writes_nothing_and_names_the_row_and_field(app, shops, app_db):
    bloom, _ = shops
    before = _rows(app_db, bloom, BudgetTier)
    at = _catalog(app, bloom.admin)
    budget = _position(at, "budget_tier", "Budget")
    at = _edit(
        at,
        "budget_tier",
        edited={budget: {"max_price": 40.0}},
        added=[{"name": "Silly", "min_price": 90.0, "max_price": 10.0}],
    )
    _button(at, "Save budget tiers").click()
    at = at.run()
    assert not at.exception
    message = at.error[0].value
    assert "New row 1" in message and "maximum price must be at least the minimum" in message
    after = _rows(app_db, bloom, BudgetTier)
    assert after.keys() == before.keys()  # nothing added
    assert after["Budget"].max_price == before["Budget"].max_price == 35  # nor changed
    with session_scope(bloom.admin, engine=app_db) as s:
        assert not s.exec(select(AuditEvent).where(AuditEvent.action.like("catalog.%"))).all()
    # the edits stay in the table, to be fixed and saved again
    assert any("Not saved yet: 1 changed, 1 new" in c.value for c in at.caption)


def test_an_empty_name_is_refused_with_the_row_and_field(app, shops, app_db):
    bloom, _ = shops
    at = _catalog(app, bloom.florist)
    wreath = _position(at, "arrangement_type", "wreath")
    row_id = at.data_editor(key="catalog_editor_arrangement_type_0").value["id"][wreath]
    at = _edit(at, "arrangement_type", edited={wreath: {"name": ""}})
    _button(at, "Save arrangement types").click()
    at = at.run()
    # shown literally: the markdown escapes of the message are not part of what people read
    assert f"Row {row_id}: name: the name needs 1 to 100" in at.error[0].value.replace("\\", "")
    assert "wreath" in _rows(app_db, bloom, ArrangementType)


def test_deleting_a_row_in_use_deactivates_it_and_says_why(app, shops, app_db):
    bloom, _ = shops
    with session_scope(bloom.florist, engine=app_db) as s:
        catalog.create_item(
            session=s,
            actor=bloom.florist,
            kind="flower",
            values={"name": "waxflower", "color": "white"},
        )
    at = _catalog(app, bloom.florist)
    # the starter style "Romantic Classic" names peonies; nothing uses the waxflower
    at = _edit(
        at,
        "flower",
        deleted=[_position(at, "flower", "peony"), _position(at, "flower", "waxflower")],
    )
    _button(at, "Save flowers").click()
    at = at.run()
    message = at.success[0].value
    assert "1 deleted" in message and "Deactivated instead of deleted" in message
    assert "peony" in message and "Romantic Classic" in message
    flowers_after = _rows(app_db, bloom, Flower)
    assert "waxflower" not in flowers_after
    assert flowers_after["peony"].active is False


def test_empty_catalog_says_what_to_do(app, shops, app_db):
    bloom, _ = shops
    with session_scope(bloom.admin, engine=app_db) as s:
        for row in s.exec(select(ArrangementType)).all():
            s.delete(row)
    at = _catalog(app, bloom.florist)
    assert any("No arrangement types yet" in i.value for i in at.info)


def test_managers_are_not_allowed(app, shops):
    bloom, _ = shops
    at = _catalog(app, bloom.actor(Role.MANAGER))
    assert "Not allowed" in at.error[0].value


def test_occasion_lists_and_seasons_are_edited_as_text(app, shops, app_db):
    bloom, _ = shops
    at = _catalog(app, bloom.florist)
    wedding = _position(at, "occasion", "wedding")
    shown = at.data_editor(key="catalog_editor_occasion_0").value
    assert shown["seasonal_preferences"][wedding] == "spring: peony, ranunculus; summer: hydrangea"
    at = _edit(
        at,
        "occasion",
        edited={
            wedding: {
                "typical_colors": "white, ivory",
                "seasonal_preferences": "winter: amaryllis; spring: tulip, peony",
            }
        },
    )
    _button(at, "Save occasions").click()
    at = at.run()
    assert not at.exception
    wedding_row = _rows(app_db, bloom, Occasion)["wedding"]
    assert wedding_row.typical_colors == ["white", "ivory"]
    assert wedding_row.seasonal_preferences == {
        "spring": ["tulip", "peony"],
        "winter": ["amaryllis"],
    }


def test_an_edit_of_a_row_someone_saved_meanwhile_is_refused_and_kept(app, shops, app_db):
    bloom, _ = shops
    at = _catalog(app, bloom.florist)
    tulip = _position(at, "flower", "tulip")
    at = _edit(at, "flower", edited={tulip: {"color": "red"}})
    with session_scope(bloom.admin, engine=app_db) as s:  # another florist, in between
        row = _rows(app_db, bloom, Flower)["tulip"]
        catalog.update_item(
            session=s,
            actor=bloom.admin,
            kind="flower",
            item_id=row.id,
            values={"color": "white"},
            expected_version=row.version,
        )
    _button(at, "Save flowers").click()
    at = at.run()
    assert "changed by someone else" in at.warning[0].value
    assert _rows(app_db, bloom, Flower)["tulip"].color == "white"
    assert any("Not saved yet: 1 changed" in c.value for c in at.caption)
    _button(at, "Discard changes and reload").click()
    at = at.run()
    frame = at.data_editor(key="catalog_editor_flower_1").value
    assert list(frame["color"])[list(frame["name"]).index("tulip")] == "white"
    assert not any("Not saved yet" in c.value for c in at.caption)
