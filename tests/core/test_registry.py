"""Model versions: stored in the database, one serving, activate and roll back (audited),
verified before loading, and scoped to the shop."""

from __future__ import annotations

import functools

import pytest
from sqlmodel import select

from core import registry
from core.access import Role
from core.artifacts import ArtifactRejected
from core.errors import InvalidInput, NotFound, PermissionDenied
from core.model import IntentModel, fit
from db.engine import session_scope
from db.models import AuditEvent, ModelVersion
from tests.factories import make_shop

PHRASES = {
    "order_status": [
        "where is my order",
        "has my order shipped",
        "track my order please",
        "order not arrived yet",
    ],
    "flower_care": [
        "how do I keep roses fresh",
        "how often to water tulips",
        "my lilies are wilting",
        "trim the stems of my bouquet",
    ],
    "refund_request": [
        "I want my money back",
        "please refund my order",
        "can I get a refund",
        "refund for the damaged flowers",
    ],
}


@functools.cache
def tiny_model() -> IntentModel:
    texts = [t for phrases in PHRASES.values() for t in phrases]
    labels = [intent for intent, phrases in PHRASES.items() for _ in phrases]
    return fit(texts=texts, labels=labels)


def _store(engine, shop, n=1):
    with session_scope(shop.admin, engine=engine) as s:
        return [
            registry.store_version(
                session=s,
                actor=shop.admin,
                model=tiny_model(),
                run_id=None,
                metrics={"macro_f1": 0.5},
            )
            for _ in range(n)
        ]


def test_versions_number_up_and_none_serves_until_activated(engine):
    shop = make_shop(engine)
    stored = _store(engine, shop, 2)
    assert [v.version for v in stored] == [1, 2]
    with session_scope(shop.admin, engine=engine) as s:
        assert registry.serving_version(session=s, actor=shop.admin) is None
        assert registry.predict(session=s, actor=shop.admin, text="where is my order") is None


def test_activate_serves_predictions_and_rollback_restores_the_previous(engine):
    shop = make_shop(engine)
    _store(engine, shop, 2)
    with session_scope(shop.admin, engine=engine) as s:
        registry.activate(session=s, actor=shop.admin, version=1)
        registry.activate(session=s, actor=shop.admin, version=2, reason="better F1")
        prediction = registry.predict(session=s, actor=shop.admin, text="where is my order?")
    assert prediction is not None and prediction.model_version == 2
    assert prediction.intent == "order_status" and 0 < prediction.confidence <= 1
    assert sum(p for _, p in prediction.top) <= 1 + 1e-9
    with session_scope(shop.admin, engine=engine) as s:
        back = registry.rollback(session=s, actor=shop.admin)
        events = s.exec(
            select(AuditEvent).where(AuditEvent.action == "model.activate").order_by(AuditEvent.id)
        ).all()
    assert back.version == 1 and back.is_active
    assert [(e.before, e.after) for e in events] == [
        ({"serving": None}, {"serving": 1}),
        ({"serving": 1}, {"serving": 2}),
        ({"serving": 2}, {"serving": 1}),
    ]
    assert events[-1].reason == "rollback"


def test_rollback_without_history_says_so(engine):
    shop = make_shop(engine)
    _store(engine, shop)
    with session_scope(shop.admin, engine=engine) as s, pytest.raises(InvalidInput):
        registry.rollback(session=s, actor=shop.admin)


def test_a_tampered_artifact_is_refused_and_nothing_is_served(engine):
    shop = make_shop(engine)
    _store(engine, shop)
    with session_scope(shop.admin, engine=engine) as s:
        registry.activate(session=s, actor=shop.admin, version=1)
        row = s.exec(select(ModelVersion)).one()
        data = bytearray(row.artifact)
        data[len(data) // 2] ^= 0xFF
        row.artifact = bytes(data)
        s.add(row)
    registry.MODEL_CACHE._models.clear()  # a fresh replica has nothing cached
    with session_scope(shop.admin, engine=engine) as s, pytest.raises(ArtifactRejected):
        registry.predict(session=s, actor=shop.admin, text="where is my order")


def test_another_shop_neither_sees_nor_activates_the_versions(engine):
    bloom, fern = make_shop(engine, "Bloom"), make_shop(engine, "Fern")
    _store(engine, bloom)
    with session_scope(fern.admin, engine=engine) as s:
        assert registry.list_versions(session=s, actor=fern.admin) == []
        with pytest.raises(NotFound):
            registry.activate(session=s, actor=fern.admin, version=1)


@pytest.mark.parametrize("role", [Role.FLORIST, Role.MANAGER])
def test_only_admins_change_the_serving_model(engine, role):
    shop = make_shop(engine)
    _store(engine, shop)
    with session_scope(shop.actor(role), engine=engine) as s, pytest.raises(PermissionDenied):
        registry.activate(session=s, actor=shop.actor(role), version=1)
