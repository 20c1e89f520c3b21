"""Learning insights: specific recommendations with the shop's own numbers, most severe first,
for admins and managers, from the shop's data only."""

from __future__ import annotations

import itertools

import pytest

from core.access import Role
from core.errors import PermissionDenied
from core.insights import Insight, InsightAction, InsightKind, learning_insights
from core.text import text_hash
from db.engine import session_scope
from db.models import Example, Intent, KnowledgeGap
from tests.factories import make_shop

_serial = itertools.count()


def _examples(engine, shop, n, *, label, detected=None, reviewed=True, **fields):
    """n examples labelled `label` the model predicted as `detected` (None: no prediction);
    reviewed ones have status 'reviewed' and know whether the prediction was right."""
    judged = None if detected is None or not reviewed else detected == label
    values = {"status": "reviewed" if reviewed else "approved", "intent_correct": judged}
    values.update(fields)
    with session_scope(shop.admin, engine=engine) as s:
        for _ in range(n):
            text = f"message {next(_serial)} about {label}"
            s.add(
                Example(
                    tenant_id=shop.tenant_id,
                    text=text,
                    text_hash=text_hash(text),
                    correct_intent=label,
                    detected_intent=detected,
                    reviewed=reviewed,
                    **values,
                )
            )


def _insights(engine, actor, **kwargs) -> list[Insight]:
    with session_scope(actor, engine=engine) as s:
        return learning_insights(session=s, actor=actor, **kwargs)


def _about(found, kind, *intents):
    return [i for i in found if i.kind == kind and set(intents) <= set(i.intents)]


def test_an_empty_shop_has_no_insights(engine):
    shop = make_shop(engine)
    assert _insights(engine, shop.admin) == []
    assert _insights(engine, shop.manager) == []


def test_a_thin_error_prone_intent_is_told_to_add_examples_with_its_numbers(engine):
    shop = make_shop(engine)
    _examples(engine, shop, 3, label="gift_message", detected="gift_message")
    _examples(engine, shop, 2, label="gift_message", detected="pricing")
    _examples(engine, shop, 1, label="gift_message")  # reviewed, but never predicted
    _examples(engine, shop, 12, label="pricing", detected="pricing")  # healthy: no insight
    with session_scope(shop.admin, engine=engine) as s:  # neither counts as an example
        for status, reviewed in (("pending", False), ("rejected", True)):
            s.add(
                Example(
                    tenant_id=shop.tenant_id,
                    text=f"a {status} message",
                    text_hash=text_hash(f"a {status} message"),
                    detected_intent="gift_message",
                    status=status,
                    reviewed=reviewed,
                )
            )
    assert _insights(engine, shop.admin) == [
        Insight(
            kind=InsightKind.WEAK_INTENT,
            severity=6.0,  # 2 misses + 4 examples short of 10
            message=(
                "intent 'gift_message' has 6 examples and 40 % errors "
                "(2 of 5 reviewed predictions wrong): add examples"
            ),
            intents=("gift_message",),
            action=InsightAction.ADD_EXAMPLES,
        )
    ]
    assert _insights(engine, shop.admin)[0].level == "medium"


def test_an_intent_with_enough_examples_but_many_errors_is_sent_to_review(engine):
    shop = make_shop(engine)
    _examples(engine, shop, 5, label="funeral", detected="funeral")
    _examples(engine, shop, 5, label="funeral", detected="sympathy")
    _examples(engine, shop, 10, label="funeral", reviewed=False)  # imported, approved
    found = _about(_insights(engine, shop.admin), InsightKind.WEAK_INTENT, "funeral")
    assert [(i.message, i.severity, i.action) for i in found] == [
        (
            "intent 'funeral' has 20 examples and 50 % errors "
            "(5 of 10 reviewed predictions wrong): check its examples and add clearer ones",
            5.0,
            InsightAction.REVIEW_EXAMPLES,
        )
    ]


def test_only_reviewed_predictions_count_as_errors(engine):
    shop = make_shop(engine)
    _examples(engine, shop, 12, label="pricing", detected="pricing")
    # imported examples the serving model got wrong: training data, not reviewed evidence
    _examples(
        engine, shop, 8, label="pricing", detected="vases", reviewed=False, intent_correct=False
    )
    assert _insights(engine, shop.admin) == []


def test_an_active_intent_without_examples_is_reported(engine):
    shop = make_shop(engine)
    with session_scope(shop.admin, engine=engine) as s:
        s.add(Intent(tenant_id=shop.tenant_id, name="allergies"))
        s.add(Intent(tenant_id=shop.tenant_id, name="retired", is_active=False))
    found = _insights(engine, shop.admin)
    assert [(i.message, i.severity) for i in found] == [
        ("intent 'allergies' has no examples yet: add examples", 10.0)
    ]


def test_confusions_of_two_intents_count_both_directions(engine):
    shop = make_shop(engine)
    _examples(engine, shop, 40, label="delivery_time", detected="delivery_time")
    _examples(engine, shop, 40, label="order_status", detected="order_status")
    _examples(engine, shop, 20, label="delivery_time", detected="order_status")
    _examples(engine, shop, 11, label="order_status", detected="delivery_time")
    _examples(engine, shop, 2, label="pricing", detected="order_status")  # too few: no pair
    _examples(engine, shop, 10, label="pricing", detected="pricing")
    _examples(engine, shop, 9, label="vases", detected="pricing", reviewed=False)
    pairs = [i for i in _insights(engine, shop.admin) if i.kind == InsightKind.CONFUSED_INTENTS]
    assert pairs == [
        Insight(
            kind=InsightKind.CONFUSED_INTENTS,
            severity=31.0,
            message=(
                "'delivery_time' and 'order_status' are confused 31 times "
                "(20 'delivery_time' taken for 'order_status', 11 the other way): "
                "merge or clarify"
            ),
            intents=("delivery_time", "order_status"),
            action=InsightAction.MERGE_OR_CLARIFY,
        )
    ]
    assert pairs[0].level == "high"


def _gap(engine, shop, **fields):
    values = {"size": 10, "escalation_rate": 1.0, "severity": 10.0, "label": "x"}
    values.update(fields)
    with session_scope(shop.admin, engine=engine) as s:
        row = KnowledgeGap(tenant_id=shop.tenant_id, **values)
        s.add(row)
        s.flush()
        return row.id


def test_open_knowledge_gaps_become_insights(engine):
    shop = make_shop(engine)
    delivery = _gap(
        engine,
        shop,
        size=120,
        severity=120.0,
        label="same day delivery",
        nearest_intents=[["delivery_time", 0.41], ["order_status", 0.2]],
    )
    wedding = _gap(engine, shop, size=40, escalation_rate=0.5, severity=31.5, label="wedding")
    _gap(engine, shop, status="dismissed", size=300, severity=300.0)
    _gap(engine, shop, status="resolved", size=300, severity=300.0, resolution="vases")
    found = _insights(engine, shop.admin)
    assert [(i.gap_id, i.message, i.severity, i.intents) for i in found] == [
        (
            delivery,
            "cluster of 120 escalated messages about 'same day delivery': "
            "create an intent or map it (closest: 'delivery_time')",
            120.0,
            ("delivery_time", "order_status"),
        ),
        (
            wedding,
            "cluster of 40 uncertain messages (20 escalated) about 'wedding': "
            "create an intent or map it",
            31.5,
            (),
        ),
    ]
    assert {i.action for i in found} == {InsightAction.CREATE_OR_MAP_INTENT}


def test_insights_come_most_severe_first_up_to_the_limit(engine):
    shop = make_shop(engine)
    _gap(engine, shop, size=50, severity=50.0)
    _examples(engine, shop, 40, label="delivery_time", detected="delivery_time")
    _examples(engine, shop, 40, label="order_status", detected="order_status")
    _examples(engine, shop, 7, label="delivery_time", detected="order_status")
    _examples(engine, shop, 4, label="gift_message", detected="gift_message")
    found = _insights(engine, shop.admin)
    assert [i.kind for i in found] == [
        InsightKind.KNOWLEDGE_GAP,  # 50
        InsightKind.CONFUSED_INTENTS,  # 7
        InsightKind.WEAK_INTENT,  # gift_message: 6 short
    ]
    assert [i.severity for i in found] == [50.0, 7.0, 6.0]
    assert _insights(engine, shop.admin, limit=2) == found[:2]
    assert _insights(engine, shop.admin, limit=0) == []


def test_florists_get_no_insights(engine):
    shop = make_shop(engine)
    with pytest.raises(PermissionDenied), session_scope(shop.florist, engine=engine) as s:
        learning_insights(session=s, actor=shop.florist)


def test_a_shop_sees_only_its_own_insights(engine):
    a, b = make_shop(engine, "Bloom"), make_shop(engine, "Fern")
    _gap(engine, a, size=50, severity=50.0)
    _examples(engine, a, 4, label="gift_message", detected="gift_message")
    _examples(engine, a, 40, label="delivery_time", detected="order_status")
    assert len(_insights(engine, a.admin)) == 4
    assert _insights(engine, b.admin) == []
    assert _insights(engine, b.manager) == []
    assert _insights(engine, a.manager) == _insights(engine, a.admin)


@pytest.mark.parametrize("role", [Role.ADMIN, Role.MANAGER])
def test_a_perfect_shop_needs_no_advice(engine, role):
    shop = make_shop(engine)
    _examples(engine, shop, 10, label="pricing", detected="pricing")
    _examples(engine, shop, 10, label="vases", detected="vases")
    assert _insights(engine, shop.actor(role)) == []
