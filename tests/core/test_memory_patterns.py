"""Patterns and knowledge (core.memory_patterns): thresholds at their edges, the approval flow,
customer analytics with percentiles, roles and isolation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select

from core import memory, memory_patterns
from core.access import Actor
from core.errors import InvalidInput, PermissionDenied, StaleEdit
from core.memory_patterns import MemoryThresholds
from db.engine import session_scope
from db.models import AuditEvent
from tests.core.test_memory import call, say
from tests.factories import Shop, make_shop

T0 = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def shop(engine: Engine) -> Shop:
    return make_shop(engine, "Bloom & Co.")


def like_rule(engine: Engine, actor: Actor, confidence: float, name: str = "Likes X") -> None:
    """A rule whose memories carry exactly `confidence`."""
    call(
        engine,
        actor,
        memory.add_rule,
        name=name,
        kind="preference",
        phrase="I like {value}" if name == "Likes X" else "I adore {value}",
        key="likes",
        confidence=confidence,
    )


def holders(
    engine: Engine,
    actor: Actor,
    text: str,
    count: int,
    *,
    later: tuple[bool | None, ...] = (),
    first: int = 0,
) -> None:
    """`count` customers say `text`; each then has one later conversation per entry of `later`
    (its outcome: True resolved, False not, None unknown)."""
    for i in range(first, first + count):
        customer = f"cust-{i}"
        say(engine, actor, text, customer=customer, conversation=f"m-{i}", at=T0)
        for j, outcome in enumerate(later):
            say(
                engine,
                actor,
                "Where is my order?",
                customer=customer,
                conversation=f"later-{i}-{j}",
                at=T0 + timedelta(days=1 + j),
                resolved=outcome,
            )


def patterns(engine: Engine, actor: Actor) -> dict[tuple[str, str, str], Any]:
    return {(p.kind, p.key, p.value): p for p in call(engine, actor, memory_patterns.list_patterns)}


def aggregate(engine: Engine, actor: Actor) -> memory_patterns.AggregateResult:
    return call(engine, actor, memory_patterns.aggregate)


# --- patterns ---------------------------------------------------------------------------------


def test_a_pattern_needs_two_customers(engine, shop):
    holders(engine, shop.admin, "I'm allergic to lilies.", 1)
    assert aggregate(engine, shop.admin).patterns == 0
    holders(engine, shop.admin, "I'm allergic to lilies.", 1, first=1)
    result = aggregate(engine, shop.admin)
    assert result.patterns == 1
    (p,) = patterns(engine, shop.admin).values()
    assert (p.kind, p.key, p.value, p.customers) == ("allergy", "lilies", "lilies", 2)
    assert p.avg_confidence == pytest.approx(0.95, abs=0.05)


def test_a_pattern_counts_memories_at_the_confidence_threshold_not_below(engine, shop):
    like_rule(engine, shop.admin, 0.7)
    like_rule(engine, shop.admin, 0.69, name="Adores X")
    holders(engine, shop.admin, "I like orchids.", 2)
    holders(engine, shop.admin, "I adore peonies.", 2, first=2)
    aggregate(engine, shop.admin)
    found = patterns(engine, shop.admin)
    assert list(found) == [("preference", "likes", "orchids")]
    assert found["preference", "likes", "orchids"].avg_confidence == pytest.approx(0.7)


def test_names_and_dates_are_personal_and_never_a_pattern(engine, shop):
    holders(engine, shop.admin, "My name is Ann. My wife's birthday is May 3.", 3)
    assert aggregate(engine, shop.admin).patterns == 0


def test_superseded_memories_do_not_count(engine, shop):
    holders(engine, shop.admin, "I prefer roses.", 2)
    say(
        engine,
        shop.admin,
        "I prefer tulips.",
        customer="cust-0",
        conversation="x",
        at=T0 + timedelta(days=2),
    )
    aggregate(engine, shop.admin)
    assert patterns(engine, shop.admin) == {}


# --- knowledge ------------------------------------------------------------------------------


def test_knowledge_is_proposed_at_five_customers_and_eighty_percent_success(engine, shop):
    # Four customers resolve their later conversation, one does not: exactly 80 %.
    holders(engine, shop.admin, "I'm allergic to lilies.", 4, later=(True,))
    holders(engine, shop.admin, "I'm allergic to lilies.", 1, later=(False, None), first=4)
    result = aggregate(engine, shop.admin)
    assert (result.patterns, result.proposed_knowledge, result.newly_proposed) == (1, 1, 1)
    (k,) = call(engine, shop.admin, memory_patterns.list_knowledge)
    assert (k.status, k.customers, k.conversations) == ("proposed", 5, 5)
    assert k.success_rate == pytest.approx(0.8)


def test_knowledge_is_not_proposed_below_its_thresholds(engine, shop):
    holders(engine, shop.admin, "I'm allergic to lilies.", 4, later=(True,))
    assert aggregate(engine, shop.admin).proposed_knowledge == 0  # four customers
    holders(engine, shop.admin, "I'm allergic to lilies.", 1, later=(False,), first=4)
    holders(
        engine, shop.admin, "I'm allergic to pollen.", 5, later=(True, True, True, False), first=10
    )
    result = aggregate(engine, shop.admin)  # lilies 4/5 = 0.8; pollen 15/20 = 0.75
    assert (result.patterns, result.proposed_knowledge) == (2, 1)
    limits = call(engine, shop.admin, memory_patterns.memory_thresholds)
    stricter = MemoryThresholds(2, 0.7, 5, 0.81)
    call(
        engine,
        shop.admin,
        memory_patterns.set_memory_thresholds,
        new=stricter,
        expected_version=limits.version,
    )
    assert aggregate(engine, shop.admin).proposed_knowledge == 0  # the proposal is dropped


def test_conversations_before_the_memory_do_not_count_towards_success(engine, shop):
    for i in range(5):  # an escalated conversation first, then the memory, then nothing
        say(
            engine,
            shop.admin,
            "Help!",
            customer=f"cust-{i}",
            conversation=f"e-{i}",
            at=T0 - timedelta(days=5),
            escalated=True,
        )
    holders(engine, shop.admin, "I'm allergic to lilies.", 5)
    aggregate(engine, shop.admin)
    (p,) = patterns(engine, shop.admin).values()
    assert (p.conversations, p.success_rate) == (0, None)
    assert call(engine, shop.admin, memory_patterns.list_knowledge) == []


def decide(engine, actor, item, decision, note=None):
    return call(
        engine,
        actor,
        memory_patterns.decide,
        knowledge_id=item.id,
        decision=decision,
        expected_version=item.version,
        note=note,
    )


def test_an_admin_approves_then_withdraws_knowledge_and_each_step_is_audited(engine, shop):
    holders(engine, shop.admin, "I'm allergic to lilies.", 5, later=(True,))
    aggregate(engine, shop.admin)
    (k,) = call(engine, shop.admin, memory_patterns.list_knowledge)
    approved = decide(engine, shop.admin, k, "approve", note="Leave lilies out by default")
    assert (approved.status, approved.note) == ("approved", "Leave lilies out by default")
    with pytest.raises(StaleEdit):
        decide(engine, shop.admin, k, "withdraw")
    with pytest.raises(InvalidInput):
        decide(engine, shop.admin, approved, "reject")
    aggregate(engine, shop.admin)  # aggregation keeps a decision
    (still,) = call(engine, shop.admin, memory_patterns.list_knowledge)
    assert still.status == "approved"
    withdrawn = decide(engine, shop.admin, still, "withdraw")
    assert withdrawn.status == "withdrawn"
    with session_scope(shop.admin, engine=engine) as s:
        actions = s.execute(select(AuditEvent.action).order_by(AuditEvent.id)).scalars().all()
    assert [a for a in actions if a.startswith("memory.knowledge")] == [
        "memory.knowledge_approve",
        "memory.knowledge_withdraw",
    ]


def test_a_rejected_proposal_stays_rejected_and_can_still_be_approved(engine, shop):
    holders(engine, shop.admin, "I'm allergic to lilies.", 5, later=(True,))
    aggregate(engine, shop.admin)
    (k,) = call(engine, shop.admin, memory_patterns.list_knowledge)
    rejected = decide(engine, shop.admin, k, "reject")
    assert aggregate(engine, shop.admin).proposed_knowledge == 0
    with pytest.raises(InvalidInput):
        decide(engine, shop.admin, rejected, "withdraw")
    assert decide(engine, shop.admin, rejected, "approve").status == "approved"


def test_managers_and_florists_cannot_aggregate_or_decide(engine, shop):
    for actor in (shop.manager, shop.florist):
        for function, kwargs in (
            (memory_patterns.aggregate, {}),
            (memory_patterns.list_patterns, {}),
            (memory_patterns.list_knowledge, {}),
            (memory_patterns.customer_stats, {}),
            (
                memory_patterns.decide,
                {"knowledge_id": 1, "decision": "approve", "expected_version": 1},
            ),
            (
                memory_patterns.set_memory_thresholds,
                {"new": MemoryThresholds(), "expected_version": 0},
            ),
        ):
            with pytest.raises(PermissionDenied):
                call(engine, actor, function, **kwargs)
    with pytest.raises(PermissionDenied):
        call(engine, shop.florist, memory_patterns.overview)
    call(engine, shop.manager, memory_patterns.overview)


def test_knowledge_never_crosses_shops(engine, shop):
    other = make_shop(engine, "Fern & Thistle")
    holders(engine, shop.admin, "I'm allergic to lilies.", 3, later=(True,))
    holders(engine, other.admin, "I'm allergic to lilies.", 2, later=(True,), first=3)
    assert aggregate(engine, other.admin).patterns == 1
    assert aggregate(engine, shop.admin).proposed_knowledge == 0  # 3 here, 2 there: never 5
    (p,) = patterns(engine, shop.admin).values()
    (q,) = patterns(engine, other.admin).values()
    assert (p.customers, q.customers) == (3, 2)


# --- thresholds -----------------------------------------------------------------------------


def test_thresholds_refuse_bad_values_and_stale_edits(engine, shop):
    limits = call(engine, shop.admin, memory_patterns.memory_thresholds)
    assert limits == MemoryThresholds()
    for bad in (
        MemoryThresholds(1, 0.7, 5, 0.8),
        MemoryThresholds(6, 0.7, 5, 0.8),
        MemoryThresholds(2, 1.5, 5, 0.8),
    ):
        with pytest.raises(InvalidInput):
            call(
                engine,
                shop.admin,
                memory_patterns.set_memory_thresholds,
                new=bad,
                expected_version=0,
            )
    saved = call(
        engine,
        shop.admin,
        memory_patterns.set_memory_thresholds,
        new=MemoryThresholds(3, 0.8, 6, 0.9),
        expected_version=0,
    )
    assert saved.version == 1
    with pytest.raises(StaleEdit):
        call(
            engine,
            shop.admin,
            memory_patterns.set_memory_thresholds,
            new=MemoryThresholds(),
            expected_version=0,
        )
    assert call(engine, shop.manager, memory_patterns.memory_thresholds) == saved


# --- counts and customer analytics ----------------------------------------------------------


def test_customer_stats_give_counts_success_and_percentiles(engine, shop):
    say(engine, shop.admin, "Where is my order?", customer="a", conversation="a1", resolved=True)
    say(
        engine,
        shop.admin,
        "I'm allergic to lilies.",
        customer="b",
        conversation="b1",
        resolved=False,
    )
    say(
        engine,
        shop.admin,
        "My name is Cy. I prefer roses.",
        customer="c",
        conversation="c1",
        resolved=True,
    )
    say(
        engine,
        shop.admin,
        "Thanks",
        customer="c",
        conversation="c2",
        at=T0 + timedelta(days=1),
        escalated=True,
    )
    rows = {r.customer_id: r for r in call(engine, shop.admin, memory_patterns.customer_stats)}
    assert [
        (r.customer_id, r.memories, r.interactions, r.conversations) for r in rows.values()
    ] == [
        ("c", 2, 2, 2),
        ("b", 1, 1, 1),
        ("a", 0, 1, 1),
    ]
    assert (rows["a"].success_rate, rows["b"].success_rate, rows["c"].success_rate) == (
        1.0,
        0.0,
        0.5,
    )
    assert [round(rows[c].memories_percentile, 1) for c in "abc"] == [33.3, 66.7, 100.0]
    assert [round(rows[c].interactions_percentile, 1) for c in "abc"] == [66.7, 66.7, 100.0]
    assert [round(rows[c].success_percentile, 1) for c in "abc"] == [100.0, 33.3, 66.7]
    by_rate = call(engine, shop.admin, memory_patterns.customer_stats, sort="rate", limit=1)
    assert [r.customer_id for r in by_rate] == ["a"]


def test_overview_and_distributions_are_counts_only(engine, shop):
    say(
        engine,
        shop.admin,
        "I'm allergic to lilies. My name is Ann.",
        customer="a",
        conversation="a1",
        resolved=True,
    )
    say(engine, shop.admin, "I'm allergic to lilies.", customer="b", conversation="b1")
    aggregate(engine, shop.admin)
    seen = call(engine, shop.manager, memory_patterns.overview)
    assert (seen.memories, seen.customers, seen.patterns) == (3, 2, 1)
    assert seen.by_kind == {"allergy": 2, "personal_info": 1}
    spread = call(engine, shop.manager, memory_patterns.distributions)
    assert spread.memories == [(1, 1), (2, 1)]
    assert spread.interactions == [(1, 2)]
    assert spread.success == [(10, 1)]
