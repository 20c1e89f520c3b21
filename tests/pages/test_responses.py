"""Response templates through app.py: the Responses tab of the Templates page (edit, render
with typed values, save, search with highlights, create, promote by admins only) and the
suggested templates in the Playground and on the Review page; on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from sqlmodel import select

from core import registry, responses, templates
from db.engine import get_engine, session_scope
from db.models import DesignTemplateVersion, TemplateKind
from tests.conftest import copy_sqlite, truncate_all
from tests.core.test_registry import tiny_model
from tests.factories import Shop, make_shop

ORDER = "Order Status Inquiry"


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path, monkeypatch) -> Iterator[Engine]:
    """The app's database: a migrated SQLite file, or the run's PostgreSQL as the app role
    (row-level security on; search through the tsvector index)."""
    if request.param == "sqlite":
        copy_sqlite(request.getfixturevalue("migrated_sqlite"), tmp_path / "trellis.db")
        url = f"sqlite:///{tmp_path / 'trellis.db'}"
        engine = get_engine(url)
    else:
        pg = request.getfixturevalue("pg")
        truncate_all(pg.owner)
        url = pg.app_url
        engine = get_engine(url)
    monkeypatch.setenv("DATABASE_URL", url)
    yield engine


@pytest.fixture
def bloom(db: Engine) -> Shop:
    shop = make_shop(db, "Bloom & Co.")
    make_shop(db, "Fern & Thistle")
    return shop


def _responses(app, actor):
    at = app(actor)
    at.switch_page("pages/templates.py")
    return at.run()


def _view(engine, actor, name=ORDER):
    with session_scope(actor, engine=engine) as s:
        return responses.find_response(session=s, actor=actor, name=name)


def _open(at, view):
    at.selectbox(key="pick_response").set_value(view.id)
    return at.run()


def _versions(engine, actor, view):
    with session_scope(actor, engine=engine) as s:
        return s.exec(
            select(DesignTemplateVersion)
            .where(DesignTemplateVersion.template_id == view.id)
            .order_by(DesignTemplateVersion.number)
        ).all()


def _button(at, label):
    return next(b for b in at.button if b.label == label)


def _frames(at):
    return [d.value for d in at.dataframe]


def _frame_with(at, column):
    return next(f for f in _frames(at) if column in f.columns)


def test_edit_render_with_values_and_save_a_response_template(app, bloom, db):
    order = _view(db, bloom.admin)
    at = _open(_responses(app, bloom.admin), order)
    assert not at.exception
    key = f"{order.id}_1"
    overview = _frame_with(at, "resolution rate")
    assert ORDER in list(overview["name"]) and "Orders" in list(overview["category"])

    # render version 1 with a missing required value: each refused variable is named
    at.text_input(key=f"render_value_{order.id}_1_customer_name").input("Ana")
    _button(at, "Render").click()
    at = at.run()
    assert not at.exception
    assert any("2 values refused" in e.value for e in at.error)
    problems = _frame_with(at, "variable")
    assert dict(zip(problems["variable"], problems["problem"], strict=True)) == {
        "order_number": "a value is required",
        "delivery_date": "a value is required",
    }
    # with every value: the text, the date written out, the defaults used
    at.text_input(key=f"render_value_{order.id}_1_order_number").input("A-17")
    at.date_input(key=f"render_value_{order.id}_1_delivery_date").set_value("2026-12-04")
    at.selectbox(key=f"render_value_{order.id}_1_order_status").set_value("with our driver")
    _button(at, "Render").click()
    at = at.run()
    rendered = next(c.value for c in at.code if c.value.startswith("Hi Ana"))
    assert "order A-17. It is with our driver" in rendered
    assert "Friday 4 December 2026" in rendered
    assert rendered.endswith("Warm wishes from all of us at the shop")

    # save: a new optional number variable and a trigger phrase
    text = order.content["text"] + "\nYour driver is {minutes} minutes away."
    at.text_area(key=f"response_text_{key}").input(text)
    at.text_area(key=f"response_phrases_{key}").input("where is my order\nwhere are my flowers")
    at.session_state[f"response_vars_{key}"] = {
        "edited_rows": {},
        "added_rows": [{"name": "minutes", "type": "number", "required": False, "default": "20"}],
        "deleted_rows": [],
    }
    at.text_input(key=f"response_note_{key}").input("Say when the driver comes")
    at.button(key=f"response_save_{key}").click()
    at = at.run()
    assert not at.exception
    assert any("Saved version 2" in s.value for s in at.success)
    saved = _versions(db, bloom.admin, order)[-1]
    assert (saved.number, saved.note, saved.content["text"]) == (
        2,
        "Say when the driver comes",
        text,
    )
    assert {"name": "minutes", "type": "number", "required": False, "default": 20} in saved.content[
        "variables"
    ]
    assert "where are my flowers" in saved.content["triggers"]["phrases"]
    assert _view(db, bloom.admin).production_number == 1  # saved as a draft
    diff = next(c.value for c in at.code if c.value.startswith("--- version 1"))
    assert "+  - minutes (number, optional, default 20)" in diff


def test_an_undeclared_placeholder_is_refused_with_its_position(app, bloom, db):
    order = _view(db, bloom.florist)
    at = _open(_responses(app, bloom.florist), order)
    key = f"{order.id}_1"
    at.text_area(key=f"response_text_{key}").input("Hi {customer_name},\nyour {odrer} is late")
    at.text_input(key=f"response_note_{key}").input("typo")
    at.button(key=f"response_save_{key}").click()
    at = at.run()
    assert not at.exception
    assert any("Nothing was saved" in e.value for e in at.error)
    problems = _frame_with(at, "line")
    assert (problems["line"][0], problems["column"][0]) == (2, 6)
    assert "odrer" in problems["problem"][0]
    assert len(_versions(db, bloom.florist, order)) == 1


def test_search_ranks_and_highlights_as_plain_text(app, bloom, db):
    at = _responses(app, bloom.florist)
    at.text_input(key="response_search").input("damag")
    at = at.run()
    assert not at.exception
    hits = _frame_with(at, "where it matched")
    assert list(hits["name"]) == ["«Damaged» Flowers Resolution"]
    assert "«damage" in hits["where it matched"][0].casefold()
    at.text_input(key="response_search").input("zzz nothing")
    at = at.run()
    assert any("No response template matches" in c.value for c in at.caption)


def test_a_florist_creates_a_response_but_cannot_promote(app, bloom, db):
    at = _responses(app, bloom.florist)
    at.text_input(key="new_response_name").input("Late delivery")
    at.text_input(key="new_response_category").input("Delivery")
    at.text_area(key="new_response_text").input("Sorry {customer_name}, we are running late.")
    at.text_area(key="new_response_phrases").input("running late")
    _button(at, "Create response template").click()
    at = at.run()
    assert not at.exception
    assert any("Created the response template" in s.value for s in at.success)
    late = _view(db, bloom.florist, "Late delivery")
    assert (late.production_number, late.content["category"]) == (None, "Delivery")
    assert late.content["variables"] == [
        {"name": "customer_name", "type": "text", "required": True}
    ]
    assert at.selectbox(key="pick_response").value == late.id  # opened at once
    assert at.button(key=f"promote_locked_{late.id}").disabled
    assert not [b for b in at.button if b.key and b.key.startswith(f"promote_{late.id}")]


def test_an_admin_promotes_a_response_version_after_confirming(app, bloom, db):
    order = _view(db, bloom.admin)
    with session_scope(bloom.admin, engine=db) as s:
        templates.save_version(
            session=s,
            actor=bloom.admin,
            template_id=order.id,
            content={**order.content, "category": "Order help"},
            note="category",
            expected_version=order.version,
        )
    at = _open(_responses(app, bloom.admin), order)
    at.selectbox(key=f"label_version_{order.id}_1").set_value(2)
    at.button(key=f"promote_{order.id}_1").click()
    at = at.run()
    assert any("Tick the confirmation first" in w.value for w in at.warning)
    assert _view(db, bloom.admin).production_number == 1
    at.selectbox(key=f"label_version_{order.id}_1").set_value(2)
    at.checkbox(key=f"label_confirm_{order.id}_1").check()
    at.button(key=f"promote_{order.id}_1").click()
    at = at.run()
    assert not at.exception
    assert any("Promoted: version 2" in s.value for s in at.success)
    assert _view(db, bloom.admin).production_number == 2


def _ask(app, actor, text):
    at = app(actor)
    at.switch_page("pages/playground.py")
    at = at.run()
    at.text_area[0].input(text)
    _button(at, "Ask the model").click()
    return at.run()


def test_playground_suggests_templates_with_score_and_reason(app, bloom, db):
    at = _ask(app, bloom.florist, "Hi, where is my order?")
    assert not at.exception
    assert "No model serves" in at.info[0].value  # no model: triggers and similarity remain
    shown = at.dataframe[0].value
    assert shown["template"][0] == ORDER
    assert "trigger 'where is my order'" in shown["why"][0]
    assert shown["score"][0] > 0.25

    with session_scope(bloom.admin, engine=db) as s:
        registry.store_version(
            session=s, actor=bloom.admin, model=tiny_model(), run_id=None, metrics={}
        )
        registry.activate(session=s, actor=bloom.admin, version=1)
    at = _ask(app, bloom.florist, "Hi, where is my order?")
    assert not at.exception
    shown = _frame_with(at, "why")
    assert shown["template"][0] == ORDER and "intent order_status" in shown["why"][0]


def test_playground_says_what_to_do_when_no_template_fits(app, bloom, db):
    with session_scope(bloom.admin, engine=db) as s:
        for view in templates.list_templates(
            session=s, actor=bloom.admin, kind=TemplateKind.RESPONSE
        ):
            templates.update_details(
                session=s,
                actor=bloom.admin,
                template_id=view.id,
                expected_version=view.version,
                name=view.name,
                description=view.description,
                active=False,
            )
    at = _ask(app, bloom.florist, "Hi, where is my order?")
    assert not at.exception
    assert any("No response template fits" in i.value for i in at.info)


def test_review_shows_suggestions_for_the_item_shown(app, bloom, db):
    from tests.core.test_review import add

    add(db, bloom, "where is my order", confidence=0.2)
    add(db, bloom, "my flowers arrived damaged", confidence=0.3)
    at = app(bloom.admin)
    at.switch_page("pages/review.py")
    at = at.run()
    assert not at.exception
    assert any("Suggested responses" in m.value for m in at.markdown)
    captions = [c.value for c in at.caption]
    shown = [c for c in captions if "trigger" in c]
    assert len(shown) == 1  # only for the item shown, not for the ones up next
    assert "Order Status Inquiry" in shown[0] and "where is my order" in shown[0]
