"""Suggestions: for a customer message, the response templates that fit, ranked by the serving
intent model, trigger phrases and text similarity, each with a score and the reason. Every test
runs on SQLite and, with TEST_DATABASE_URL, on PostgreSQL as the app role (RLS on)."""

from __future__ import annotations

import functools
from typing import Any

import pytest
from sqlalchemy import Engine

from core import registry, responses, templates
from core.access import Actor
from core.errors import InvalidInput
from core.model import IntentModel, fit
from core.responses import WEIGHTS, Suggestion, Weights
from db.engine import session_scope
from tests.factories import Shop, make_shop

TRAINING = {
    "order_status": [
        "where is my order",
        "has my bouquet left the shop yet",
        "when will my flowers arrive",
        "is my delivery on its way",
        "tracking shows nothing for my order",
        "status of order 1234 please",
        "did you send my roses yet",
        "my order has not arrived",
    ],
    "damaged_flowers": [
        "the flowers arrived wilted",
        "half the stems are snapped",
        "the vase was broken on arrival",
        "petals are falling off already",
        "the box was crushed and the flowers are bent",
        "the roses look dead",
        "my bouquet arrived damaged",
        "leaves are brown at the edges",
    ],
    "opening_hours": [
        "what time do you open",
        "are you open on sunday",
        "when do you close today",
        "opening hours please",
        "can I come by after six",
        "is the shop open on holidays",
        "what are your hours",
        "are you open tomorrow morning",
    ],
}


@functools.cache
def florist_model() -> IntentModel:
    texts = [t for examples in TRAINING.values() for t in examples]
    labels = [intent for intent, examples in TRAINING.items() for _ in examples]
    return fit(texts=texts, labels=labels)


def serve_model(engine: Engine, shop: Shop) -> None:
    with session_scope(shop.admin, engine=engine) as s:
        stored = registry.store_version(
            session=s, actor=shop.admin, model=florist_model(), run_id=None, metrics={}
        )
        registry.activate(session=s, actor=shop.admin, version=stored.version)


@pytest.fixture
def shop(engine) -> Shop:
    """A shop with the two starting templates, an opening-hours one, and a serving model."""
    found = make_shop(engine, "Bloom")
    with session_scope(found.admin, engine=engine) as s:
        responses.create_response(
            session=s,
            actor=found.admin,
            name="Opening hours",
            text="We are open from nine to six, Monday to Saturday.",
            phrases=["opening hours", "what time do you open"],
            intents=["opening_hours"],
            production=True,
        )
    serve_model(engine, found)
    return found


def suggest(engine: Engine, actor: Actor, message: str, **kwargs: Any) -> list[Suggestion]:
    with session_scope(actor, engine=engine) as s:
        return responses.suggest(session=s, actor=actor, text=message, **kwargs)


def expected_score(s: Suggestion, weights: Weights = WEIGHTS) -> float:
    return (
        weights.intent * s.intent_probability
        + weights.trigger * (s.trigger is not None)
        + weights.similarity * s.similarity
    )


def test_the_best_template_comes_first_and_says_why(engine, shop):
    found = suggest(engine, shop.florist, "Hi! Where is my order #5521? It was due today.")
    best = found[0]
    assert best.template == "Order Status Inquiry" and best.number == 1
    assert best.intent == "order_status" and best.intent_probability > 0.5
    assert best.trigger == "where is my order"
    assert best.reason.startswith(f"intent order_status {best.intent_probability:.2f}; ")
    assert "; trigger 'where is my order'; text similarity " in best.reason
    assert best.score == pytest.approx(expected_score(best), abs=1e-3)
    assert [s.score for s in found] == sorted((s.score for s in found), reverse=True)


def test_the_intent_model_ranks_a_message_no_trigger_names(engine, shop):
    best = suggest(engine, shop.florist, "petals falling off and stems snapped")[0]
    assert best.template == "Damaged Flowers Resolution"
    assert best.trigger is None and best.reason.startswith("intent damaged_flowers ")


def test_a_trigger_phrase_counts_only_as_whole_words(engine, shop):
    whole = suggest(engine, shop.florist, "What are your OPENING   hours?")
    assert whole[0].template == "Opening hours" and whole[0].trigger == "opening hours"
    partial = suggest(engine, shop.florist, "reopening hoursly")
    assert all(s.trigger is None for s in partial)


def test_each_reason_names_only_the_signals_that_counted(engine, shop):
    for s in suggest(engine, shop.florist, "when do you close on sunday", k=3):
        assert s.score == pytest.approx(expected_score(s), abs=1e-3)
        parts = s.reason.split("; ")
        assert ("trigger" in s.reason) == (s.trigger is not None)
        assert all(p.startswith(("intent ", "trigger '", "text similarity ")) for p in parts)


def test_suggestions_use_the_production_version_not_a_draft(engine, shop):
    with session_scope(shop.florist, engine=engine) as s:
        order = responses.find_response(session=s, actor=shop.florist, name="Order Status Inquiry")
        draft = {**order.content, "triggers": {"phrases": ["lost my receipt"], "intents": []}}
        templates.save_version(
            session=s,
            actor=shop.florist,
            template_id=order.id,
            content=draft,
            note="draft",
            expected_version=order.version,
        )
    best = suggest(engine, shop.florist, "where is my order")[0]
    assert best.template == "Order Status Inquiry" and best.trigger == "where is my order"
    assert all(
        s.trigger != "lost my receipt" for s in suggest(engine, shop.florist, "lost my receipt")
    )


def test_drafts_and_inactive_templates_are_not_suggested(engine, shop):
    with session_scope(shop.florist, engine=engine) as s:
        responses.create_response(
            session=s, actor=shop.florist, name="Draft", text="Hi", phrases=["where is my order"]
        )
        hours = responses.find_response(session=s, actor=shop.florist, name="Opening hours")
        templates.update_details(
            session=s,
            actor=shop.florist,
            template_id=hours.id,
            expected_version=hours.version,
            active=False,
        )
    found = suggest(engine, shop.florist, "where is my order? what time do you open?", k=10)
    assert {s.template for s in found} <= {"Order Status Inquiry", "Damaged Flowers Resolution"}


def test_without_a_serving_model_triggers_and_text_still_suggest(engine):
    shop = make_shop(engine, "Fern")
    best = suggest(engine, shop.florist, "the box was crushed")[0]
    assert best.template == "Damaged Flowers Resolution"
    assert best.intent is None and best.intent_probability == 0
    assert best.reason.startswith("trigger 'box was crushed'; text similarity ")


def test_at_most_k_and_nothing_that_does_not_fit(engine, shop):
    assert len(suggest(engine, shop.florist, "where is my order", k=1)) == 1
    with pytest.raises(InvalidInput):
        suggest(engine, shop.florist, "where is my order", k=0)
    other = make_shop(engine, "Fern")  # no model: a message sharing no word gets nothing
    assert suggest(engine, other.florist, "zzz qqq") == []


def test_another_shops_templates_are_never_suggested(engine, shop):
    other = make_shop(engine, "Fern")
    with session_scope(other.admin, engine=engine) as s:
        responses.create_response(
            session=s,
            actor=other.admin,
            name="Fern wedding arches",
            text="Arches",
            phrases=["where is my order"],
            production=True,
        )
    found = suggest(engine, shop.florist, "where is my order", k=10)
    assert "Fern wedding arches" not in {s.template for s in found}


def test_core_templates_suggest_is_the_same_api(engine, shop):
    with session_scope(shop.manager, engine=engine) as s:
        via_templates = templates.suggest(session=s, actor=shop.manager, text="are you open sunday")
        direct = responses.suggest(session=s, actor=shop.manager, text="are you open sunday")
    assert via_templates == direct and via_templates[0].template == "Opening hours"


def test_many_messages_at_once_match_one_at_a_time(engine, shop):
    messages = ["where is my order", "flowers arrived wilted", "what are your hours", "hello"]
    with session_scope(shop.florist, engine=engine) as s:
        many = responses.suggest_many(session=s, actor=shop.florist, texts=messages, k=2)
    assert many == [suggest(engine, shop.florist, m, k=2) for m in messages]


def test_weights_measure_each_signal_alone(engine, shop):
    alone = Weights(intent=0.0, trigger=1.0, similarity=0.0)
    found = suggest(engine, shop.florist, "where is my order", weights=alone)
    assert [(s.template, s.score) for s in found] == [("Order Status Inquiry", 1.0)]
