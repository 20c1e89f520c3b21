"""Training page: start a run, see progress and the result; runs history; activate and roll
back models with a confirmation; managers read only."""

from __future__ import annotations

import time

from sqlmodel import select

from core import registry, training
from core.text import text_hash
from db.engine import session_scope
from db.models import AuditEvent, Example
from tests.core.test_registry import PHRASES, tiny_model

MORE = {
    "order_status": [
        "where's my delivery",
        "order number 123 status",
        "is my order on its way",
        "when will my order arrive",
        "my order has not come",
    ],
    "flower_care": [
        "should I cut the stems",
        "keep flowers out of the sun",
        "how to make peonies last",
        "do roses need cold water",
        "vase water tips",
    ],
    "refund_request": [
        "refund please",
        "return my money",
        "I was charged twice, refund",
        "cancel and refund",
        "money back for wilted roses",
    ],
}


def _labelled(engine, shop):
    with session_scope(shop.admin, engine=engine) as s:
        for source in (PHRASES, MORE):
            for intent, texts in source.items():
                for text in texts:
                    s.add(
                        Example(
                            tenant_id=shop.tenant_id,
                            text=text,
                            text_hash=text_hash(text),
                            correct_intent=intent,
                            reviewed=True,
                            status="reviewed",
                        )
                    )


def _training(app, actor):
    at = app(actor)
    at.switch_page("pages/training.py")
    return at.run()


def _wait_done(engine, shop, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with session_scope(shop.admin, engine=engine) as s:
            if training.active_run(session=s, actor=shop.admin) is None:
                return
        time.sleep(0.2)
    raise AssertionError("the run did not finish")


def test_admin_trains_and_sees_the_result(app, shops, app_db):
    bloom, _ = shops
    _labelled(app_db, bloom)
    at = _training(app, bloom.admin)
    assert any("No model serves" in i.value for i in at.info)
    next(b for b in at.button if b.label == "Train").click()
    at = at.run()
    assert "started" in at.success[0].value
    _wait_done(app_db, bloom)
    at = at.run()  # run_every never fires in AppTest: rerun as the fragment would
    assert not at.exception
    assert any("deployed model v1" in s.value for s in at.success)
    assert {m.label: m.value for m in at.metric}["Serving model"] == "v1"


def test_manager_reads_but_cannot_train_or_switch(app, shops, app_db):
    bloom, _ = shops
    with session_scope(bloom.admin, engine=app_db) as s:
        registry.store_version(
            session=s, actor=bloom.admin, model=tiny_model(), run_id=None, metrics={"macro_f1": 0.8}
        )
    at = _training(app, bloom.manager)
    assert not at.exception
    labels = [b.label for b in at.button]
    assert "Train" not in labels and "Activate" not in labels


def test_admin_activates_and_rolls_back_with_confirmation(app, shops, app_db):
    bloom, _ = shops
    with session_scope(bloom.admin, engine=app_db) as s:
        for _ in range(2):
            registry.store_version(
                session=s,
                actor=bloom.admin,
                model=tiny_model(),
                run_id=None,
                metrics={"macro_f1": 0.8},
            )
        registry.activate(session=s, actor=bloom.admin, version=1)
        registry.activate(session=s, actor=bloom.admin, version=2)
    at = _training(app, bloom.admin)
    next(b for b in at.button if b.label.startswith("Roll back")).click()
    at = at.run()
    assert "Tick the confirmation" in at.warning[0].value
    next(c for c in at.checkbox if c.label.startswith("Yes, switch")).check()
    next(b for b in at.button if b.label.startswith("Roll back")).click()
    at = at.run()
    assert "model v1 serves" in at.success[0].value
    with session_scope(bloom.admin, engine=app_db) as s:
        assert registry.serving_version(session=s, actor=bloom.admin).version == 1
        assert (
            s.exec(
                select(AuditEvent)
                .where(AuditEvent.action == "model.activate")
                .order_by(AuditEvent.id.desc())
            )
            .first()
            .reason
            == "rollback"
        )


def test_comparing_two_versions_shows_f1_and_confusion_changes(app, shops, app_db):
    bloom, _ = shops
    confusion = {"labels": ["a", "b"], "matrix": [[5, 1], [2, 4]]}
    better = {"labels": ["a", "b"], "matrix": [[6, 0], [1, 5]]}
    with session_scope(bloom.admin, engine=app_db) as s:
        for f1, matrix in ((0.7, confusion), (0.9, better)):
            registry.store_version(
                session=s,
                actor=bloom.admin,
                model=tiny_model(),
                run_id=None,
                metrics={"per_intent": {"a": {"f1": f1}, "b": {"f1": 0.5}}, "confusion": matrix},
            )
    at = _training(app, bloom.admin)
    assert not at.exception
    compared = at.dataframe[-1].value
    assert list(compared["change"]) == [0.2, 0.0]
    assert any("Confusion change, v1 → v2" in m.value for m in at.markdown)
