"""ReviewGroup stays equal to the live grouping through every product path that writes examples,
and the queue read from it is the queue grouped live."""

from __future__ import annotations

import io
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import col, select

from core import imports, ingest, label_issues, registry, review, review_groups
from core.model import fit
from core.review import Action, QueueFilter, Reason
from core.shop_settings import review_thresholds, set_review_thresholds
from db.engine import session_scope
from db.models import Correction, Example, Intent, ReviewGroup
from tests.factories import Shop, live_review_groups, make_shop, stored_review_groups

T0 = datetime(2026, 11, 1, 9, tzinfo=UTC)
PHRASES = {
    "order_status": ["where is my order", "has my order shipped", "track my order please"],
    "flower_care": ["how do I keep roses fresh", "how often to water tulips", "lilies wilting"],
    "refund": ["I want my money back", "please refund my order", "can I get a refund"],
}
LOG = (
    "conversation_id,role,text,timestamp,escalated,resolved\n"
    "log1,customer,Where is my order?,2026-11-02T10:00:00Z,,\n"
    "log1,assistant,On its way.,2026-11-02T10:01:00Z,,\n"
    "log2,customer,where is my order,2026-11-02T11:00:00Z,true,\n"
    "log3,customer,Do you sell cactus pots,2026-11-02T12:00:00Z,,\n"
)


def live(engine: Engine, shop: Shop) -> list[tuple[Any, ...]]:
    return live_review_groups(engine, shop.admin)


def stored(engine: Engine, shop: Shop) -> list[tuple[Any, ...]]:
    return stored_review_groups(engine, shop.admin)


def assert_current(engine: Engine, shop: Shop) -> None:
    """The stored groups are the live ones, and so is the queue read from them, by reason."""
    assert stored(engine, shop) == live(engine, shop)
    for reason in (None, *Reason):
        with session_scope(shop.admin, engine=engine) as s:
            limits = review_thresholds(session=s, actor=shop.admin)
            where = [col(Example.tenant_id) == shop.tenant_id]
            expected = review._ranked_groups(s, where, review.conditions(limits), reason, 1, 500)
            got = review.queue(session=s, actor=shop.admin, filters=QueueFilter(reason=reason))
        ranked, groups, messages, by_reason = expected
        assert [(i.group_size, i.example_id) for i in got.items] == [(n, e) for n, _, e in ranked]
        assert [i.priority for i in got.items] == pytest.approx([p for _, p, _ in ranked])
        assert (got.groups, got.messages, got.by_reason) == (groups, messages, by_reason)


def say(engine: Engine, shop: Shop, *texts: str, escalated: bool = False) -> None:
    with session_scope(shop.admin, engine=engine) as s:
        ingest.record_interactions(
            session=s,
            actor=shop.admin,
            items=[
                ingest.parse_interaction(
                    {
                        "text": text,
                        "conversation_id": f"c-{i}-{text}",
                        "escalated": escalated,
                        "created_at": T0 + timedelta(minutes=i),
                    }
                )
                for i, text in enumerate(texts)
            ],
        )


def waiting_ids(engine: Engine, shop: Shop, *, whole_groups: bool = False) -> list[int]:
    """The newest example of each group in the queue, or every example of every group."""
    with session_scope(shop.admin, engine=engine) as s:
        page = review.queue(session=s, actor=shop.admin, page_size=500)
        if whole_groups:
            hashes = [item.text_hash for item in page.items]
            return review.group_members(session=s, actor=shop.admin, text_hashes=hashes)
    return [item.example_id for item in page.items]


@pytest.fixture
def shop(engine: Engine) -> Shop:
    made = make_shop(engine)
    with session_scope(made.admin, engine=engine) as s:
        s.add_all(Intent(tenant_id=made.tenant_id, name=name) for name in PHRASES)
    return made


def test_every_writer_keeps_the_groups_current(engine, shop):
    other = make_shop(engine, "Other shop")
    say(engine, other, "where is my order")  # another shop's groups are its own

    # New messages with no model serving: every one is unsure.
    say(engine, shop, "Where is my order?", "where is my order", "WHERE IS MY ORDER!!")
    say(engine, shop, "I want to speak to a person", escalated=True)
    with session_scope(shop.admin, engine=engine) as s:
        ingest.record_interaction(
            session=s, actor=shop.admin, text="roses for a funeral", conversation_id="one"
        )
    assert_current(engine, shop)
    assert len([g for g in stored(engine, shop) if g[0] == "all"]) == 3

    # A conversation log with no model serving, then one with a model: the import predicts
    # every message still without a prediction.
    with session_scope(shop.admin, engine=engine) as s:
        imports.import_upload(
            session=s, actor=shop.admin, stream=io.BytesIO(LOG.encode()), filename="log.csv"
        )
    assert_current(engine, shop)
    texts = [t for phrases in PHRASES.values() for t in phrases]
    labels = [intent for intent, phrases in PHRASES.items() for _ in phrases]
    with session_scope(shop.admin, engine=engine) as s:
        version = registry.store_version(
            session=s,
            actor=shop.admin,
            model=fit(texts=texts, labels=labels),
            run_id=None,
            metrics={},
        )
        registry.activate(session=s, actor=shop.admin, version=version.version)
    with session_scope(shop.admin, engine=engine) as s:
        log = LOG.replace("log", "later").replace("2026-11-02", "2026-11-03")
        outcome = imports.import_upload(
            session=s, actor=shop.admin, stream=io.BytesIO(log.encode()), filename="later.csv"
        )
    assert outcome.report is not None and outcome.report.inserted == 4
    with session_scope(shop.admin, engine=engine) as s:
        unpredicted = select(Example).where(col(Example.detected_intent).is_(None))
        assert s.exec(unpredicted).first() is None
    assert_current(engine, shop)

    # Review actions, one and a whole group, then undo and revert.
    first, second, *_ = waiting_ids(engine, shop)
    with session_scope(shop.admin, engine=engine) as s:
        done = review.act(
            session=s,
            actor=shop.admin,
            example_id=first,
            action=Action.CHANGE_INTENT,
            intent="order_status",
            group=True,
            launch_retrain=False,
        )
    assert_current(engine, shop)
    with session_scope(shop.admin, engine=engine) as s:
        review.act(
            session=s,
            actor=shop.admin,
            example_id=second,
            action=Action.ESCALATE,
            launch_retrain=False,
        )
    assert_current(engine, shop)
    with session_scope(shop.admin, engine=engine) as s:
        review.undo_batch(session=s, actor=shop.admin, batch_id=done.batch_id)
    assert_current(engine, shop)
    with session_scope(shop.admin, engine=engine) as s:
        bulk = review.bulk_relabel(
            session=s,
            actor=shop.admin,
            example_ids=waiting_ids(engine, shop, whole_groups=True),
            intent="refund",
        )
    assert_current(engine, shop)
    assert stored(engine, shop) == []
    with session_scope(shop.admin, engine=engine) as s:
        correction = s.exec(
            select(Correction).where(
                Correction.batch_id == bulk.batch_id, Correction.example_id == first
            )
        ).one()
        review.revert_correction(session=s, actor=shop.admin, correction_id=correction.id)
    assert_current(engine, shop)
    assert len([g for g in stored(engine, shop) if g[0] == "all"]) == 1

    # Label-issue detection replaces the flags of an earlier detection.
    with session_scope(shop.admin, engine=engine) as s:
        flagged = s.exec(select(Example).where(col(Example.reviewed))).first()
        assert flagged is not None
        flagged.issue_score, flagged.issue_suggestion = 0.9, "flower_care"
        s.add(flagged)
        s.flush()
        review_groups.refresh(session=s, actor=shop.admin, text_hashes={flagged.text_hash})
    before = stored(engine, shop)
    with session_scope(shop.admin, engine=engine) as s:
        label_issues.detect(session=s, actor=shop.admin)
    assert_current(engine, shop)
    assert stored(engine, shop) != before

    # New thresholds regroup everything.
    with session_scope(shop.admin, engine=engine) as s:
        set_review_thresholds(
            session=s, actor=shop.admin, confidence=0.99, margin=0.5, expected_version=0
        )
    assert_current(engine, shop)
    assert len([g for g in stored(engine, shop) if g[0] == "all"]) > 1
    assert stored(engine, other) == live(engine, other) != []


def test_the_unfiltered_queue_reads_the_stored_groups(engine, shop):
    say(engine, shop, "where is my order", "roses for a funeral")
    with session_scope(shop.admin, engine=engine) as s:
        group = s.exec(select(ReviewGroup).where(ReviewGroup.reason == "all")).first()
        assert group is not None
        group.priority = 1_000.0  # not what the examples say: only the stored groups do
        s.add(group)
    with session_scope(shop.admin, engine=engine) as s:
        first = review.queue(session=s, actor=shop.admin).items[0]
        filtered = review.queue(session=s, actor=shop.admin, filters=QueueFilter(source="live"))
    assert first.text_hash == group.text_hash and first.priority == 1_000.0
    assert max(item.priority for item in filtered.items) < 1_000.0  # grouped live


def test_reviewers_emptying_one_group_at_once_leave_it_empty(threaded_engine):
    """Two reviewers each settle one of a group's two messages at the same moment: each
    transaction recomputes the group, and the second must see the first's change."""
    engine = threaded_engine
    shop = make_shop(engine)
    for round_ in range(6):
        say(engine, shop, f"race {round_}", f"RACE {round_}!")
        ids = waiting_ids(engine, shop, whole_groups=True)
        assert len(ids) == 2
        barrier = threading.Barrier(2)
        errors: list[BaseException] = []

        def reviewer(eid: int, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            try:
                with session_scope(shop.admin, engine=engine) as s:
                    review.act(
                        session=s,
                        actor=shop.admin,
                        example_id=eid,
                        action=Action.REJECT,
                        launch_retrain=False,
                    )
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=reviewer, args=(eid,)) for eid in ids]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert stored(engine, shop) == live(engine, shop) == []
