"""The review loop: queue reasons and ranking, grouping, actions, optimistic locking, bulk, undo."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, insert
from sqlmodel import col, select

from core import review, review_groups
from core.errors import InvalidInput, NotFound, PermissionDenied, StaleEdit
from core.review import Action, QueueFilter, Reason
from core.shop_settings import review_thresholds, set_review_thresholds
from core.text import text_hash
from db.engine import session_scope
from db.models import AuditEvent, Correction, Example, Intent, TrainingRun
from tests.factories import Shop, make_shop

T0 = datetime(2026, 11, 1, 12, tzinfo=UTC)


def add(
    engine: Engine,
    shop: Shop,
    text: str,
    *,
    predicted: str | None = "order_status",
    confidence: float | None = 0.5,
    runner_up: tuple[str, float] = ("delivery_time", 0.1),
    escalated: bool = False,
    reviewed: bool = False,
    status: str = "pending",
    correct: str | None = None,
    source: str = "live",
    at: datetime = T0,
    issue: tuple[float, str] | None = None,
) -> int:
    top = None
    if predicted is not None and confidence is not None:
        top = [[predicted, confidence], list(runner_up)]
    with session_scope(shop.admin, engine=engine) as s:
        example = Example(
            tenant_id=shop.tenant_id,
            text=text,
            text_hash=text_hash(text),
            detected_intent=predicted,
            confidence=confidence,
            top_intents=top,
            margin=None if top is None else confidence - runner_up[1],  # type: ignore[operator]
            escalated=escalated,
            reviewed=reviewed,
            status=status,
            correct_intent=correct,
            source=source,
            created_at=at,
            ai_response="Your order is on its way.",
            issue_score=issue[0] if issue else None,
            issue_suggestion=issue[1] if issue else None,
        )
        s.add(example)
        s.flush()
        # Written directly: keep the queue's groups as the product's writers do.
        review_groups.refresh(session=s, actor=shop.admin, text_hashes={example.text_hash})
        assert example.id is not None
        return example.id


def page(engine: Engine, shop: Shop, **filters: Any) -> review.QueuePage:
    with session_scope(shop.admin, engine=engine) as s:
        return review.queue(session=s, actor=shop.admin, filters=QueueFilter(**filters))


def act(engine: Engine, shop: Shop, example_id: int, action: Action, **kw: Any) -> Any:
    with session_scope(shop.admin, engine=engine) as s:
        return review.act(session=s, actor=shop.admin, example_id=example_id, action=action, **kw)


def example(engine: Engine, shop: Shop, example_id: int) -> Example:
    with session_scope(shop.admin, engine=engine) as s:
        row = s.get(Example, example_id)
        assert row is not None
        return row


@pytest.fixture
def shop(engine: Engine) -> Shop:
    """A shop whose intents are order_status, delivery_time and refund."""
    made = make_shop(engine)
    with session_scope(made.admin, engine=engine) as s:
        for name in ("order_status", "delivery_time", "refund"):
            s.add(Intent(tenant_id=made.tenant_id, name=name))
    return made


# --- the queue ----------------------------------------------------------------------------


def test_queue_holds_what_needs_a_person_and_counts_reasons(engine, shop):
    low = add(engine, shop, "hello there", confidence=0.3)
    close = add(engine, shop, "roses or tulips", confidence=0.7, runner_up=("a", 0.65))
    escalated = add(engine, shop, "I want a manager", confidence=0.9, escalated=True)
    flagged = add(
        engine,
        shop,
        "send lilies",
        confidence=0.95,
        reviewed=True,
        status="reviewed",
        correct="order_status",
        issue=(0.8, "sympathy"),
    )
    add(engine, shop, "sure thing", confidence=0.95)  # confident: not queued
    add(engine, shop, "old one", confidence=0.2, reviewed=True, status="reviewed")
    add(engine, shop, "no prediction yet", predicted=None, confidence=None)
    got = page(engine, shop)
    reasons = {item.text: set(item.reasons) for item in got.items}
    assert reasons == {
        "hello there": {Reason.LOW_CONFIDENCE},
        "roses or tulips": {Reason.LOW_MARGIN},
        "I want a manager": {Reason.ESCALATED},
        "send lilies": {Reason.LABEL_ISSUE},
        "no prediction yet": {Reason.LOW_CONFIDENCE},
    }
    assert got.groups == got.messages == 5
    assert got.by_reason == {
        Reason.LOW_CONFIDENCE: 2,
        Reason.LOW_MARGIN: 1,
        Reason.ESCALATED: 1,
        Reason.LABEL_ISSUE: 1,
    }
    only = page(engine, shop, reason=Reason.ESCALATED)
    assert [i.example_id for i in only.items] == [escalated]
    assert {low, close, flagged} <= {i.example_id for i in got.items}


def test_thresholds_are_the_shops_own(engine, shop):
    add(engine, shop, "maybe an order", confidence=0.7, runner_up=("x", 0.2))
    assert page(engine, shop).groups == 0
    with session_scope(shop.admin, engine=engine) as s:
        set_review_thresholds(
            session=s, actor=shop.admin, confidence=0.75, margin=0.1, expected_version=0
        )
    assert page(engine, shop).groups == 1
    with session_scope(shop.admin, engine=engine) as s, pytest.raises(StaleEdit):
        set_review_thresholds(
            session=s, actor=shop.admin, confidence=0.5, margin=0.1, expected_version=0
        )
    with session_scope(shop.florist, engine=engine) as s, pytest.raises(PermissionDenied):
        set_review_thresholds(
            session=s, actor=shop.florist, confidence=0.5, margin=0.1, expected_version=1
        )
    with session_scope(shop.admin, engine=engine) as s, pytest.raises(InvalidInput):
        set_review_thresholds(
            session=s, actor=shop.admin, confidence=1.5, margin=0.1, expected_version=1
        )
    with session_scope(shop.manager, engine=engine) as s:
        assert review_thresholds(session=s, actor=shop.manager).confidence == 0.75


def test_two_admins_saving_thresholds_at_once_one_wins(threaded_engine):
    engine = threaded_engine
    shop = make_shop(engine)
    for round_ in range(4):
        barrier = threading.Barrier(2)
        outcomes: list[str] = []

        def admin(value: float, version: int = round_, b: threading.Barrier = barrier) -> None:
            b.wait()
            try:
                with session_scope(shop.admin, engine=engine) as s:
                    set_review_thresholds(
                        session=s,
                        actor=shop.admin,
                        confidence=value,
                        margin=0.1,
                        expected_version=version,
                    )
                outcomes.append("saved")
            except StaleEdit:
                outcomes.append("stale")

        threads = [threading.Thread(target=admin, args=(v,)) for v in (0.5, 0.7)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(outcomes) == ["saved", "stale"]
        with session_scope(shop.admin, engine=engine) as s:
            assert review_thresholds(session=s, actor=shop.admin).version == round_ + 1


def test_near_identical_messages_are_one_item_ranked_by_impact(engine, shop):
    for n in range(5):
        add(engine, shop, f"Where is my order #{1000 + n}?", confidence=0.5)
    rare = add(engine, shop, "do you sell cacti", confidence=0.1)
    got = page(engine, shop)
    assert [i.group_size for i in got.items] == [5, 1]
    top = got.items[0]
    assert top.priority == pytest.approx(2.5) and got.items[1].example_id == rare
    assert got.groups == 2 and got.messages == 6


def test_filters_paging_and_skips(engine, shop):
    a = add(engine, shop, "a message", predicted="order_status", confidence=0.2, at=T0)
    b = add(
        engine,
        shop,
        "b message",
        predicted="delivery_time",
        confidence=0.4,
        source="imported",
        at=T0 + timedelta(days=2),
    )
    c = add(engine, shop, "c message", predicted="order_status", confidence=0.55, correct="refund")

    def ids(**filters: Any) -> set[int]:
        return {i.example_id for i in page(engine, shop, **filters).items}

    assert ids(predicted="order_status") == {a, c}
    assert ids(intent="refund") == {c}
    assert ids(min_confidence=0.3, max_confidence=0.5) == {b}
    assert ids(source="imported") == {b}
    assert ids(since=T0 + timedelta(days=1)) == {b}
    assert ids(until=T0 + timedelta(days=1)) == {a, c}
    assert ids(skip_groups=[text_hash("a message")]) == {b, c}
    with session_scope(shop.admin, engine=engine) as s:
        first = review.queue(session=s, actor=shop.admin, page=1, page_size=2)
        second = review.queue(session=s, actor=shop.admin, page=2, page_size=2)
        nxt = review.next_item(session=s, actor=shop.admin)
    assert first.pages == 2 and len(first.items) == 2 and len(second.items) == 1
    assert {i.example_id for i in first.items + second.items} == {a, b, c}
    assert nxt is not None and nxt.example_id == a  # least confident first


def test_empty_queue(engine, shop):
    got = page(engine, shop)
    assert got.items == [] and got.groups == 0 and got.pages == 1
    with session_scope(shop.admin, engine=engine) as s:
        assert review.next_item(session=s, actor=shop.admin) is None


# --- actions ------------------------------------------------------------------------------


def corrections(engine: Engine, shop: Shop, example_id: int) -> list[Correction]:
    with session_scope(shop.admin, engine=engine) as s:
        return list(
            s.exec(
                select(Correction)
                .where(Correction.example_id == example_id)
                .order_by(col(Correction.id))
            ).all()
        )


def audit_actions(engine: Engine, shop: Shop) -> list[str]:
    with session_scope(shop.admin, engine=engine) as s:
        return [e.action for e in s.exec(select(AuditEvent).order_by(col(AuditEvent.id))).all()]


def test_correct_confirms_the_prediction(engine, shop):
    eid = add(engine, shop, "where is it", confidence=0.4, issue=(0.6, "delivery_time"))
    result = act(engine, shop, eid, Action.CORRECT, version=1, note="fine")
    row = example(engine, shop, eid)
    assert (row.correct_intent, row.intent_correct, row.reviewed, row.status) == (
        "order_status",
        True,
        True,
        "reviewed",
    )
    assert row.reviewer_id == shop.admin.user_id and row.version == 2
    assert row.issue_score is None and row.issue_suggestion is None
    [c] = corrections(engine, shop, eid)
    assert (c.field, c.original_value, c.corrected_value, c.was_mismatch, c.note) == (
        "intent",
        "order_status",
        "order_status",
        False,
        "fine",
    )
    assert c.reviewer_id == shop.admin.user_id and c.batch_id == result.batch_id
    assert "review.correct" in audit_actions(engine, shop)
    assert page(engine, shop).groups == 0


def test_change_intent_records_the_mismatch_and_can_create_an_intent(engine, shop):
    eid = add(engine, shop, "sympathy wreath please", confidence=0.3)
    with pytest.raises(InvalidInput, match="no intent 'sympathy'"):
        act(engine, shop, eid, Action.CHANGE_INTENT, version=1, intent="sympathy")
    assert example(engine, shop, eid).version == 1  # nothing written
    act(engine, shop, eid, Action.CHANGE_INTENT, version=1, intent="sympathy", create_intent=True)
    row = example(engine, shop, eid)
    assert (row.correct_intent, row.intent_correct, row.status) == ("sympathy", False, "reviewed")
    [c] = corrections(engine, shop, eid)
    assert (c.original_value, c.corrected_value, c.was_mismatch) == (
        "order_status",
        "sympathy",
        True,
    )
    with session_scope(shop.admin, engine=engine) as s:
        assert "sympathy" in s.exec(select(Intent.name)).all()
        assert "sympathy" in review.intents(session=s, actor=shop.admin)
    assert {"intent.create", "review.change_intent"} <= set(audit_actions(engine, shop))
    with pytest.raises(InvalidInput, match="Pick the intent"):
        act(engine, shop, eid, Action.CHANGE_INTENT, intent="  ")


def test_fix_response_escalate_and_reject(engine, shop):
    fix = add(engine, shop, "it arrived wilted", confidence=0.4)
    esc = add(engine, shop, "I need a human", confidence=0.4)
    rej = add(engine, shop, "asdfgh", confidence=0.2)
    act(engine, shop, fix, Action.FIX_RESPONSE, response="We'll replace them today.")
    act(engine, shop, esc, Action.ESCALATE)
    act(engine, shop, rej, Action.REJECT)
    fixed, escalated, rejected = (example(engine, shop, i) for i in (fix, esc, rej))
    assert fixed.correct_response == "We'll replace them today." and fixed.reviewed
    assert fixed.correct_intent == "order_status"
    [c] = corrections(engine, shop, fix)
    assert (c.field, c.original_value, c.corrected_value) == (
        "response",
        "Your order is on its way.",
        "We'll replace them today.",
    )
    assert escalated.status == "escalated" and escalated.escalated and not escalated.reviewed
    assert rejected.status == "rejected" and rejected.reviewed
    assert corrections(engine, shop, rej)[0].corrected_value == "rejected"
    assert page(engine, shop).groups == 0
    with pytest.raises(InvalidInput, match="Write the response"):
        act(engine, shop, fix, Action.FIX_RESPONSE, response="")
    with pytest.raises(InvalidInput, match="Unknown action"):
        act(engine, shop, fix, "delete")


def test_group_action_corrects_every_waiting_near_identical_message(engine, shop):
    ids = [add(engine, shop, f"Where's my order {n}!", confidence=0.5) for n in range(4)]
    done = add(
        engine,
        shop,
        "where's my order 99",
        confidence=0.5,
        reviewed=True,
        status="reviewed",
        correct="refund",
    )
    other = add(engine, shop, "something else", confidence=0.5)
    result = act(engine, shop, ids[0], Action.CHANGE_INTENT, intent="order_status", group=True)
    assert sorted(result.example_ids) == sorted(ids) and result.count == 4
    assert all(example(engine, shop, i).reviewed for i in ids)
    assert example(engine, shop, done).correct_intent == "refund"  # reviewed before: untouched
    assert not example(engine, shop, other).reviewed


def test_correct_needs_an_intent_to_confirm(engine, shop):
    eid = add(engine, shop, "no prediction", predicted=None, confidence=None)
    with pytest.raises(InvalidInput, match="no intent to confirm"):
        act(engine, shop, eid, Action.CORRECT)


def test_only_admins_review_and_only_their_own_shop(engine, shop):
    other = make_shop(engine, "Fern & Thistle")
    eid = add(engine, shop, "hello", confidence=0.2)
    for actor in (shop.florist, shop.manager):
        with session_scope(actor, engine=engine) as s, pytest.raises(PermissionDenied):
            review.act(session=s, actor=actor, example_id=eid, action=Action.CORRECT)
        with session_scope(actor, engine=engine) as s, pytest.raises(PermissionDenied):
            review.queue(session=s, actor=actor)
    with session_scope(other.admin, engine=engine) as s:
        assert review.queue(session=s, actor=other.admin).groups == 0
        with pytest.raises(NotFound):
            review.act(session=s, actor=other.admin, example_id=eid, action=Action.CORRECT)
        with pytest.raises(NotFound):
            review.bulk_relabel(
                session=s, actor=other.admin, example_ids=[eid], intent="x", create_intent=True
            )
    assert example(engine, shop, eid).version == 1


# --- optimistic locking -------------------------------------------------------------------


def test_stale_version_is_refused_and_says_who_changed_it(engine, shop):
    eid = add(engine, shop, "where is my order", confidence=0.3)
    loaded = page(engine, shop).items[0]
    act(engine, shop, eid, Action.CHANGE_INTENT, version=loaded.version, intent="order_status")
    with pytest.raises(StaleEdit) as raised:
        act(engine, shop, eid, Action.REJECT, version=loaded.version)
    assert "Admin of Bloom & Co." in str(raised.value)
    current = raised.value.current
    assert isinstance(current, review.QueueItem) and current.status == "reviewed"
    assert current.version == 2
    assert example(engine, shop, eid).status == "reviewed"
    assert len(corrections(engine, shop, eid)) == 1


def test_two_reviewers_in_200_random_interleavings_lose_no_update(engine, shop):
    """Each reviewer loads the example then acts with the version it loaded; whatever the
    order, an action succeeds exactly when nobody saved in between, and every success shows."""
    eid = add(engine, shop, "interleaved", confidence=0.3)
    rng = random.Random(7)
    successes = 0
    expected_label = None
    for trial in range(200):
        steps = [("load", 0), ("load", 1), ("save", 0), ("save", 1)]
        while True:  # a reviewer saves only after loading
            rng.shuffle(steps)
            if all(steps.index(("load", r)) < steps.index(("save", r)) for r in (0, 1)):
                break
        loaded: dict[int, int] = {}
        saved_since: dict[int, bool] = {}
        for step, who in steps:
            if step == "load":
                loaded[who] = example(engine, shop, eid).version
                saved_since[who] = False
                continue
            label = f"intent_{trial}_{who}"
            try:
                act(
                    engine,
                    shop,
                    eid,
                    Action.CHANGE_INTENT,
                    version=loaded[who],
                    intent=label,
                    create_intent=True,
                )
            except StaleEdit:
                assert saved_since[who], "refused although nobody saved in between"
                continue
            assert not saved_since[who], "saved over someone else's change"
            successes += 1
            expected_label = label
            for other in saved_since:
                saved_since[other] = True
    row = example(engine, shop, eid)
    assert row.version == 1 + successes and row.correct_intent == expected_label
    assert len(corrections(engine, shop, eid)) == successes
    assert 200 <= successes < 400


def test_concurrent_savers_on_threads_one_wins(threaded_engine):
    engine = threaded_engine
    shop = make_shop(engine)
    for round_ in range(5):
        eid = add(engine, shop, f"race {round_}", confidence=0.3)
        barrier = threading.Barrier(2)
        outcomes: list[str] = []

        def reviewer(name: str, eid: int = eid, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            try:
                act(
                    engine,
                    shop,
                    eid,
                    Action.CHANGE_INTENT,
                    version=1,
                    intent=name,
                    create_intent=True,
                )
                outcomes.append("saved")
            except StaleEdit:
                outcomes.append("stale")

        threads = [threading.Thread(target=reviewer, args=(n,)) for n in ("left", "right")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(outcomes) == ["saved", "stale"]
        assert example(engine, shop, eid).version == 2
        assert len(corrections(engine, shop, eid)) == 1


# --- bulk and undo ------------------------------------------------------------------------

FIELDS = (
    "correct_intent",
    "intent_correct",
    "correct_response",
    "reviewed",
    "status",
    "escalated",
    "reviewer_id",
    "reviewed_at",
    "issue_score",
    "issue_suggestion",
    "updated_at",
)


def many(engine: Engine, shop: Shop, n: int) -> list[int]:
    rows = [
        {
            "tenant_id": shop.tenant_id,
            "text": f"bulk message {i}",
            "text_hash": text_hash(f"bulk message {i}"),
            "detected_intent": "order_status" if i % 2 else "delivery_time",
            "confidence": 0.4,
            "reviewed": i % 3 == 0,
            "status": "reviewed" if i % 3 == 0 else "pending",
            "correct_intent": "refund" if i % 3 == 0 else None,
            "reviewed_at": T0 if i % 3 == 0 else None,
            "reviewer_id": shop.admin.user_id if i % 3 == 0 else None,
            "issue_score": 0.7 if i % 5 == 0 else None,
            "issue_suggestion": "refund" if i % 5 == 0 else None,
            "escalated": i % 7 == 0,
            "source": "imported",
            "created_at": T0,
            "updated_at": T0 + timedelta(seconds=i),
            "version": 1 + i % 4,
        }
        for i in range(n)
    ]
    with session_scope(shop.admin, engine=engine) as s:
        s.execute(insert(Example), rows)
        s.add(Intent(tenant_id=shop.tenant_id, name="sympathy"))
        return list(s.exec(select(Example.id).order_by(col(Example.id))).all())  # type: ignore[arg-type]


def state(engine: Engine, shop: Shop) -> dict[int, tuple[Any, ...]]:
    with session_scope(shop.admin, engine=engine) as s:
        rows = s.exec(select(Example)).all()
        return {r.id: tuple(getattr(r, f) for f in FIELDS) for r in rows}  # type: ignore[misc]


def test_bulk_relabel_of_10000_is_all_or_nothing_and_undo_restores_exactly(engine, shop):
    ids = many(engine, shop, 10_000)
    before = state(engine, shop)
    versions = dict(zip(ids, (1 + i % 4 for i in range(len(ids))), strict=True))
    stale = dict(versions)
    stale[ids[-1]] += 1
    with session_scope(shop.admin, engine=engine) as s, pytest.raises(StaleEdit):
        review.bulk_relabel(
            session=s, actor=shop.admin, example_ids=ids, intent="sympathy", expected_versions=stale
        )
    assert state(engine, shop) == before
    with session_scope(shop.admin, engine=engine) as s:
        done = review.bulk_relabel(
            session=s,
            actor=shop.admin,
            example_ids=ids,
            intent="sympathy",
            expected_versions=versions,
            note="bulk",
        )
    assert done.count == 10_000
    after = state(engine, shop)
    assert all(v[0] == "sympathy" and v[3] and v[4] == "reviewed" for v in after.values())
    with session_scope(shop.admin, engine=engine) as s:
        assert s.exec(select(Correction).where(Correction.batch_id == done.batch_id)).all()
        restored = review.undo_batch(session=s, actor=shop.admin, batch_id=done.batch_id)
    assert restored == 10_000
    assert state(engine, shop) == before
    with session_scope(shop.admin, engine=engine) as s:
        bumped = s.exec(select(Example.version).where(Example.id == ids[0])).one()
        assert bumped == versions[ids[0]] + 2
        with pytest.raises(NotFound, match="already undone"):
            review.undo_batch(session=s, actor=shop.admin, batch_id=done.batch_id)


def test_bulk_refuses_unknown_intent_and_empty_selection(engine, shop):
    ids = many(engine, shop, 3)
    with session_scope(shop.admin, engine=engine) as s:
        with pytest.raises(InvalidInput, match="no intent 'nope'"):
            review.bulk_relabel(session=s, actor=shop.admin, example_ids=ids, intent="nope")
        with pytest.raises(InvalidInput, match="at least one"):
            review.bulk_relabel(session=s, actor=shop.admin, example_ids=[], intent="sympathy")
        with pytest.raises(NotFound):
            review.bulk_relabel(
                session=s, actor=shop.admin, example_ids=[*ids, 999_999], intent="sympathy"
            )


def test_revert_one_correction_and_refuse_when_changed_since(engine, shop):
    eid = add(engine, shop, "revert me", confidence=0.3)
    first = act(engine, shop, eid, Action.CHANGE_INTENT, intent="order_status")
    act(engine, shop, eid, Action.REJECT)
    [c1, c2] = corrections(engine, shop, eid)
    with session_scope(shop.admin, engine=engine) as s, pytest.raises(StaleEdit, match="again"):
        review.revert_correction(session=s, actor=shop.admin, correction_id=c1.id)
    with session_scope(shop.admin, engine=engine) as s:
        review.revert_correction(session=s, actor=shop.admin, correction_id=c2.id)
    assert example(engine, shop, eid).status == "reviewed"
    with session_scope(shop.admin, engine=engine) as s:
        review.undo_batch(session=s, actor=shop.admin, batch_id=first.batch_id)
    row = example(engine, shop, eid)
    assert (row.reviewed, row.status, row.correct_intent, row.reviewer_id) == (
        False,
        "pending",
        None,
        None,
    )
    assert [c.reverted_at is not None for c in corrections(engine, shop, eid)] == [True, True]
    with session_scope(shop.admin, engine=engine) as s, pytest.raises(InvalidInput):
        review.revert_correction(session=s, actor=shop.admin, correction_id=c1.id)
    assert "review.revert" in audit_actions(engine, shop)


# --- conversation context and auto-retrain ------------------------------------------------


def test_auto_retrain_is_queued_once_by_reviews(engine, shop, monkeypatch):
    monkeypatch.setenv("TRELLIS_AUTO_RETRAIN_AFTER", "3")
    ids = [add(engine, shop, f"message number {n}", confidence=0.3) for n in range(5)]
    runs = [act(engine, shop, i, Action.CORRECT, launch_retrain=False).retrain_run for i in ids[:2]]
    assert runs == [None, None]
    queued = act(engine, shop, ids[2], Action.CORRECT, launch_retrain=False).retrain_run
    assert queued is not None and queued.trigger == "auto" and queued.status == "pending"
    assert act(engine, shop, ids[3], Action.CORRECT, launch_retrain=False).retrain_run is None
    with session_scope(shop.admin, engine=engine) as s:
        assert len(s.exec(select(TrainingRun)).all()) == 1
