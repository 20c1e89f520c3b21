"""Corrections: the log of review changes, reverting one or a whole batch through the page,
the stale-revert warning, and the empty state."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine
from sqlmodel import col, select

from core import review
from core.access import Actor
from core.text import text_hash
from db.engine import session_scope
from db.models import Correction, Example, Intent
from tests.factories import Shop

PAGE = "pages/corrections.py"


def _example(engine: Engine, shop: Shop, text: str) -> int:
    with session_scope(shop.admin, engine=engine) as s:
        if not s.exec(select(Intent).where(col(Intent.name) == "refund")).first():
            for name in ("order_status", "refund"):
                s.add(Intent(tenant_id=shop.tenant_id, name=name))
        example = Example(
            tenant_id=shop.tenant_id,
            text=text,
            text_hash=text_hash(text),
            detected_intent="order_status",
            confidence=0.4,
            top_intents=[["order_status", 0.4], ["refund", 0.3]],
            margin=0.1,
        )
        s.add(example)
        s.flush()
        assert example.id is not None
        return example.id


def _act(engine: Engine, actor: Actor, example_id: int, action: str, **kw: Any) -> Any:
    with session_scope(actor, engine=engine) as s:
        return review.act(
            session=s,
            actor=actor,
            example_id=example_id,
            action=action,
            launch_retrain=False,
            **kw,
        )


def _open(app, actor):
    at = app(actor)
    at.switch_page(PAGE)
    return at.run()


def _pick(at, row: int):
    """Select a row of the corrections table, as a click on it would."""
    key = at.dataframe[0].key
    assert key and key.startswith("corrections_table")
    at.session_state[key] = {"selection": {"rows": [row], "columns": []}}
    return at.run()


def _button(at, label: str):
    return next(b for b in at.button if b.label.startswith(label))


def _example_row(engine: Engine, shop: Shop, example_id: int) -> Example:
    with session_scope(shop.admin, engine=engine) as s:
        return s.exec(select(Example).where(col(Example.id) == example_id)).one()


def test_empty_state_points_to_the_review_page(app, shops):
    bloom, _ = shops
    at = _open(app, bloom.admin)
    assert not at.exception
    assert any("No corrections yet" in i.value for i in at.info)
    assert not at.dataframe


def test_lists_a_correction_made_by_a_review_and_no_other_shops(app, shops, app_db):
    bloom, fern = shops
    ours = _example(app_db, bloom, "=cmd| where are my *roses*")
    _act(app_db, bloom.admin, ours, "change_intent", intent="refund", note="asked for money back")
    _act(
        app_db, fern.admin, _example(app_db, fern, "fern secret"), "change_intent", intent="refund"
    )
    at = _open(app, bloom.admin)
    assert not at.exception
    assert "1 corrections" in " ".join(c.value for c in at.caption)
    table = at.dataframe[0].value
    assert list(table["example"]) == ["=cmd| where are my *roses*"]
    assert list(table["reviewer"]) == [bloom.admin.display_name]
    assert (table["before"][0], table["after"][0], bool(table["mismatch"][0])) == (
        "order_status",
        "refund",
        True,
    )
    assert "fern secret" not in str(table.to_dict())
    assert at.get("download_button")
    [chart] = at.get("vega_lite_chart")  # the reviewer activity, stacked per reviewer
    assert '"reviewer:N"' in chart.proto.spec or '"field": "reviewer"' in chart.proto.spec


def test_revert_through_the_page_needs_confirmation_and_restores_the_example(app, shops, app_db):
    bloom, _ = shops
    eid = _example(app_db, bloom, "where is my bouquet")
    _act(app_db, bloom.admin, eid, "change_intent", intent="refund")
    at = _pick(_open(app, bloom.admin), 0)
    assert not at.exception
    revert = _button(at, "Revert this correction")
    assert revert.disabled  # not before the confirmation
    at.checkbox(key=next(k for k in _keys(at) if k.startswith("confirm_revert_"))).check()
    at = at.run()
    _button(at, "Revert this correction").click()
    at = at.run()
    assert not at.exception
    assert any("Reverted correction" in s.value for s in at.success)
    row = _example_row(app_db, bloom, eid)
    assert (row.correct_intent, row.status, row.reviewed) == (None, "pending", False)
    with session_scope(bloom.admin, engine=app_db) as s:
        assert s.exec(select(Correction)).one().reverted_by == bloom.admin.user_id
    assert "by " + bloom.admin.display_name in list(at.dataframe[0].value["reverted"])


def test_revert_of_an_example_changed_since_shows_why_and_writes_nothing(app, shops, app_db):
    bloom, _ = shops
    eid = _example(app_db, bloom, "cancel my tulips")
    _act(app_db, bloom.admin, eid, "change_intent", intent="refund")
    _act(app_db, bloom.admin, eid, "reject")  # a later change to the same example
    at = _pick(_open(app, bloom.admin), 1)  # the older correction
    assert "Correction" in at.subheader[0].value
    at.checkbox(key=next(k for k in _keys(at) if k.startswith("confirm_revert_"))).check()
    at = at.run()
    _button(at, "Revert this correction").click()
    at = at.run()
    assert not at.exception
    assert any("changed again" in w.value for w in at.warning)
    assert not at.success
    assert _example_row(app_db, bloom, eid).status == "rejected"
    with session_scope(bloom.admin, engine=app_db) as s:
        assert all(c.reverted_at is None for c in s.exec(select(Correction)).all())


def test_undo_a_whole_batch_through_the_page(app, shops, app_db):
    bloom, _ = shops
    ids = [_example(app_db, bloom, "same message") for _ in range(2)]
    _act(app_db, bloom.admin, ids[0], "change_intent", intent="refund", group=True)
    at = _pick(_open(app, bloom.admin), 1)
    assert not at.exception
    assert _button(at, "Undo its whole batch (2 examples)").disabled
    at.checkbox(key=next(k for k in _keys(at) if k.startswith("confirm_batch_"))).check()
    at = at.run()
    _button(at, "Undo its whole batch").click()
    at = at.run()
    assert not at.exception
    assert any("2 examples restored" in s.value for s in at.success)
    assert {_example_row(app_db, bloom, i).status for i in ids} == {"pending"}


def test_a_new_correction_clears_the_pick_instead_of_moving_it(app, shops, app_db):
    bloom, _ = shops
    _act(app_db, bloom.admin, _example(app_db, bloom, "first"), "reject")
    at = _pick(_open(app, bloom.admin), 0)
    assert _button(at, "Revert this correction")
    _act(app_db, bloom.admin, _example(app_db, bloom, "second"), "reject")
    at = at.run()
    assert not at.exception
    assert not [b for b in at.button if b.label.startswith("Revert")]
    assert list(at.dataframe[0].value["example"]) == ["second", "first"]


def _keys(at) -> list[str]:
    return [w.key for w in at.checkbox if w.key]
