"""Review page through app.py: correct, change intent, stale warning, bulk relabel + undo."""

from __future__ import annotations

from sqlmodel import select

from core import review
from core.text import text_hash
from db.engine import session_scope
from db.models import Correction, Example, Intent
from tests.core.test_review import add


def _intents(engine, shop):
    with session_scope(shop.admin, engine=engine) as s:
        for name in ("order_status", "delivery_time", "refund"):
            s.add(Intent(tenant_id=shop.tenant_id, name=name))


def _review(app, actor):
    at = app(actor)
    at.switch_page("pages/review.py")
    return at.run()


def _button(at, label):
    return next(b for b in at.button if b.label == label)


def _row(engine, shop, eid) -> Example:
    with session_scope(shop.admin, engine=engine) as s:
        return s.exec(select(Example).where(Example.id == eid)).one()


def test_empty_queue_says_so(app, shops, app_db):
    bloom, _ = shops
    at = _review(app, bloom.admin)
    assert not at.exception
    assert any("Nothing waits for review" in s.value for s in at.success)


def test_only_admins_open_it(app, shops):
    bloom, _ = shops
    at = _review(app, bloom.florist)
    assert any("Not allowed" in e.value for e in at.error)


def test_confirm_then_relabel_the_next_item_then_undo(app, shops, app_db):
    bloom, _ = shops
    _intents(app_db, bloom)
    unsure = add(app_db, bloom, "where is my order", confidence=0.2)
    other = add(app_db, bloom, "deliver on sunday?", confidence=0.4)
    at = _review(app, bloom.admin)
    assert not at.exception
    assert at.markdown[0] is not None
    assert any("where is my order" in m.value for m in at.markdown)
    assert {m.label: m.value for m in at.metric}["Waiting"] == "2"
    _button(at, "Save intent").click()  # the preselected intent is the prediction: confirm
    at = at.run()
    assert not at.exception
    assert any("Confirmed order status" in s.value for s in at.success)
    assert _row(app_db, bloom, unsure).status == "reviewed"
    # the next item appears at once; give it another intent
    assert any("deliver on sunday" in m.value for m in at.markdown)
    at.selectbox(key=f"intent_{other}").set_value("delivery_time")
    _button(at, "Save intent").click()
    at = at.run()
    row = _row(app_db, bloom, other)
    assert (row.correct_intent, row.intent_correct) == ("delivery_time", False)
    assert any("Nothing waits for review" in s.value for s in at.success)
    undo = next(b for b in at.button if b.label.startswith("Undo: Relabelled"))
    undo.click()
    at = at.run()
    assert any("back as it was" in s.value for s in at.success)
    row = _row(app_db, bloom, other)
    assert (row.correct_intent, row.status, row.reviewed) == (None, "pending", False)


def test_stale_item_is_refused_and_its_current_state_offered(app, shops, app_db):
    bloom, _ = shops
    _intents(app_db, bloom)
    eid = add(app_db, bloom, "where is my order", confidence=0.2)
    at = _review(app, bloom.admin)
    # another admin corrects it meanwhile
    with session_scope(bloom.admin, engine=app_db) as s:
        review.act(
            session=s,
            actor=bloom.admin,
            example_id=eid,
            action="change_intent",
            intent="refund",
            version=1,
        )
    _button(at, "Reject").click()
    at = at.run()
    assert not at.exception
    assert any("since you loaded it" in w.value for w in at.warning)
    assert _row(app_db, bloom, eid).status == "reviewed"  # not overwritten
    _button(at, f"Review example {eid} as it is now").click()
    at = at.run()
    assert any("where is my order" in m.value for m in at.markdown)
    _button(at, "Reject").click()
    at = at.run()
    assert _row(app_db, bloom, eid).status == "rejected"


def test_new_intent_from_the_form(app, shops, app_db):
    bloom, _ = shops
    _intents(app_db, bloom)
    eid = add(app_db, bloom, "sympathy wreath for a funeral", confidence=0.2)
    at = _review(app, bloom.admin)
    at.selectbox(key=f"intent_{eid}").set_value("➕ New intent…")
    at.text_input(key=f"new_intent_{eid}").input("sympathy")
    _button(at, "Save intent").click()
    at = at.run()
    assert _row(app_db, bloom, eid).correct_intent == "sympathy"


def test_bulk_relabel_ticked_rows_and_undo(app, shops, app_db):
    bloom, _ = shops
    _intents(app_db, bloom)
    ids = [add(app_db, bloom, f"send roses to mum {n}", confidence=0.3) for n in range(3)]
    keep = add(app_db, bloom, "unrelated question", confidence=0.1)
    at = _review(app, bloom.admin)
    assert not at.exception
    # AppTest cannot tick a data_editor cell: set what the page kept of the ticked rows
    at.session_state["bulk_ticked"] = [
        {"id": ids[-1], "version": 1, "hash": text_hash("send roses to mum 2")}
    ]
    at.selectbox(key="bulk_intent").set_value("refund")
    _button(at, "Relabel ticked rows").click()
    at = at.run()
    assert not at.exception
    assert all(_row(app_db, bloom, i).correct_intent == "refund" for i in ids)
    assert _row(app_db, bloom, keep).correct_intent is None
    with session_scope(bloom.admin, engine=app_db) as s:
        assert len(s.exec(select(Correction)).all()) == 3
    next(b for b in at.button if b.label.startswith("Undo: Relabelled")).click()
    at = at.run()
    assert all(_row(app_db, bloom, i).correct_intent is None for i in ids)
