"""Playground: the serving model's top intents for a typed message, and why."""

from __future__ import annotations

from core import registry
from db.engine import session_scope
from tests.core.test_registry import tiny_model


def _playground(app, actor):
    at = app(actor)
    at.switch_page("pages/playground.py")
    return at.run()


def _ask(at, text):
    at.text_area[0].input(text)
    next(b for b in at.button if b.label == "Ask the model").click()
    return at.run()


def test_without_a_model_it_says_how_to_get_one(app, shops):
    bloom, _ = shops
    at = _ask(_playground(app, bloom.florist), "where is my order")
    assert not at.exception
    assert "No model serves" in at.info[0].value


def test_shows_top_intents_version_and_why(app, shops, app_db):
    bloom, _ = shops
    with session_scope(bloom.admin, engine=app_db) as s:
        registry.store_version(
            session=s, actor=bloom.admin, model=tiny_model(), run_id=None, metrics={}
        )
        registry.activate(session=s, actor=bloom.admin, version=1)
    at = _ask(_playground(app, bloom.florist), "can I get a refund for my order")
    assert not at.exception
    assert at.subheader[0].value.startswith("refund request")
    assert "Model version 1" in " ".join(c.value for c in at.caption)
    toward = at.dataframe[0].value
    assert "refund" in " ".join(toward["words"])


def test_empty_message_asks_for_text(app, shops):
    bloom, _ = shops
    at = _ask(_playground(app, bloom.admin), "   ")
    assert "Type a customer message" in at.warning[0].value


def test_managers_are_not_allowed(app, shops):
    bloom, _ = shops
    assert "Not allowed" in _playground(app, bloom.manager).error[0].value
