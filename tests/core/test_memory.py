"""Customer memories (core.memory): extraction as messages arrive and as a backfill, provenance,
supersession with history, corrections, deletion, forgetting a customer, roles and isolation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, String, Text, func, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import SQLModel, col

from core import memory
from core.access import Actor
from core.errors import InvalidInput, NotFound, PermissionDenied, StaleEdit
from core.ingest import Recorded, record_interaction
from db.engine import session_scope
from db.models import AuditEvent, Conversation, CustomerMemory, Example, MemoryRule, Message
from tests.factories import Shop, make_shop

T0 = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def shop(engine: Engine) -> Shop:
    return make_shop(engine, "Bloom & Co.")


def say(
    engine: Engine,
    actor: Actor,
    text: str,
    *,
    customer: str = "cust-1",
    conversation: str = "c1",
    at: datetime = T0,
    resolved: bool | None = None,
    escalated: bool = False,
) -> Recorded:
    """The assistant reports one customer message, as it would through the API."""
    with session_scope(actor, engine=engine) as s:
        return record_interaction(
            session=s,
            actor=actor,
            text=text,
            conversation_id=conversation,
            customer_id=customer,
            created_at=at,
            resolved=resolved,
            escalated=escalated,
        )


def call(engine: Engine, actor: Actor, function: Any, **kwargs: Any) -> Any:
    with session_scope(actor, engine=engine) as s:
        return function(session=s, actor=actor, **kwargs)


def memories(engine: Engine, actor: Actor, customer: str = "cust-1", history: bool = False):
    return call(engine, actor, memory.customer_memories, customer_id=customer, history=history)


def current(engine: Engine, actor: Actor, customer: str = "cust-1") -> dict[tuple[str, str], str]:
    return {(m.kind, m.key): m.value for m in memories(engine, actor, customer)}


# --- extraction and provenance ---------------------------------------------------------------


def test_a_message_becomes_memories_that_point_at_it(engine, shop):
    said = say(engine, shop.admin, "Hi, my name is Ann. I'm allergic to lilies.")
    found = memories(engine, shop.admin)
    assert {(m.kind, m.key, m.value) for m in found} == {
        ("personal_info", "name", "Ann"),
        ("allergy", "lilies", "lilies"),
    }
    for m in found:
        assert m.message_id == said.message_id
        assert m.message_text == "Hi, my name is Ann. I'm allergic to lilies."
        assert m.conversation == "c1"
        assert m.rule_name and m.state == "current" and 0.7 <= m.confidence <= 1


def test_messages_without_a_customer_or_a_memory_store_nothing(engine, shop):
    say(engine, shop.admin, "My name is Ann.", customer="")
    say(engine, shop.admin, "Where is my order?", customer="cust-2")
    with session_scope(shop.admin, engine=engine) as s:
        assert s.exec(select(func.count()).select_from(CustomerMemory)).one() == (0,)


def test_a_newer_memory_on_the_same_key_supersedes_the_older_and_history_is_kept(engine, shop):
    say(engine, shop.admin, "I prefer roses.", at=T0)
    say(engine, shop.admin, "I prefer tulips.", at=T0 + timedelta(days=3), conversation="c2")
    assert current(engine, shop.admin) == {("preference", "prefers"): "tulips"}
    rows = memories(engine, shop.admin, history=True)
    new, old = rows
    assert (new.value, new.state, old.value, old.state) == (
        "tulips",
        "current",
        "roses",
        "superseded",
    )
    assert old.ended_at is not None
    with session_scope(shop.admin, engine=engine) as s:
        stored = s.get(CustomerMemory, old.id)
        assert stored is not None and stored.superseded_by == new.id


def test_an_older_message_extracted_late_goes_into_the_history(engine, shop):
    say(engine, shop.admin, "I prefer tulips.", at=T0 + timedelta(days=3))
    say(engine, shop.admin, "I prefer roses.", at=T0, conversation="c0")
    assert current(engine, shop.admin) == {("preference", "prefers"): "tulips"}
    states = [(m.value, m.state) for m in memories(engine, shop.admin, history=True)]
    assert states == [("tulips", "current"), ("roses", "superseded")]


def test_saying_the_same_again_counts_a_mention_and_keeps_since(engine, shop):
    say(engine, shop.admin, "I prefer roses.", at=T0)
    say(engine, shop.admin, "I prefer roses!", at=T0 + timedelta(days=9), conversation="c2")
    (now,) = memories(engine, shop.admin)
    assert (now.value, now.mentions) == ("roses", 2)
    assert now.since.replace(tzinfo=UTC) == T0
    assert len(memories(engine, shop.admin, history=True)) == 2  # each mention keeps its source


def test_backfill_extracts_stored_messages_once_with_progress(engine, shop):
    with session_scope(shop.admin, engine=engine) as s:  # messages stored before memory existed
        for i in range(5):
            conv = Conversation(
                tenant_id=shop.tenant_id, external_id=f"old-{i}", customer_id=f"k{i}"
            )
            s.add(conv)
            s.flush()
            s.add(
                Message(
                    tenant_id=shop.tenant_id,
                    conversation_id=conv.id,
                    role="customer",
                    text=f"I'm allergic to {('lilies', 'pollen')[i % 2]}.",
                    created_at=T0,
                )
            )
    seen: list[tuple[int, int]] = []
    first = memory.extract_stored(
        engine=engine, actor=shop.admin, progress=lambda d, t: seen.append((d, t)), batch=2
    )
    assert (first.messages, first.memories) == (5, 5)
    assert seen == [(2, 5), (4, 5), (5, 5)]
    again = memory.extract_stored(engine=engine, actor=shop.admin)
    assert (again.messages, again.memories) == (5, 0)
    assert current(engine, shop.admin, "k0") == {("allergy", "lilies"): "lilies"}


def test_the_assistant_reports_how_a_conversation_ended(engine, shop):
    say(engine, shop.admin, "Where is my order?", resolved=None)
    say(engine, shop.admin, "Thanks!", at=T0 + timedelta(minutes=2), resolved=True)
    with session_scope(shop.admin, engine=engine) as s:
        conv = s.exec(select(Conversation)).scalars().one()
        assert conv.resolved is True


# --- rules ----------------------------------------------------------------------------------


def test_a_new_shop_has_the_default_rules(engine, shop):
    rules = call(engine, shop.admin, memory.list_rules)
    assert {r.kind for r in rules} >= {
        "preference",
        "personal_info",
        "interest",
        "negative_preference",
        "allergy",
        "favorite",
        "important_date",
        "recipient",
    }
    assert all(r.builtin and r.is_active and r.memories == 0 for r in rules)


def test_an_admin_adds_a_rule_and_sees_what_it_produced(engine, shop):
    rule = call(
        engine,
        shop.admin,
        memory.add_rule,
        name="Loves X",
        kind="preference",
        phrase="I love {value}",
        key="loves",
        confidence=0.75,
    )
    say(engine, shop.admin, "I love orchids.")
    assert current(engine, shop.admin) == {("preference", "loves"): "orchids"}
    views = {r.name: r for r in call(engine, shop.admin, memory.list_rules)}
    assert views["Loves X"].memories == 1 and views["Loves X"].id == rule.id
    with session_scope(shop.admin, engine=engine) as s:
        actions = s.exec(select(AuditEvent.action)).scalars().all()
    assert "memory.rule_add" in actions


def test_a_bad_rule_is_refused_and_nothing_is_written(engine, shop):
    before = len(call(engine, shop.admin, memory.list_rules))
    with pytest.raises(InvalidInput):
        call(
            engine,
            shop.admin,
            memory.add_rule,
            name="Broken",
            kind="preference",
            phrase="I love {vlaue}",
            key="loves",
            confidence=0.8,
        )
    assert len(call(engine, shop.admin, memory.list_rules)) == before


def test_a_disabled_rule_extracts_nothing_and_a_stale_toggle_is_refused(engine, shop):
    rule = next(r for r in call(engine, shop.admin, memory.list_rules) if r.kind == "allergy")
    off = call(
        engine,
        shop.admin,
        memory.set_rule_active,
        rule_id=rule.id,
        active=False,
        expected_version=rule.version,
    )
    assert not off.is_active
    say(engine, shop.admin, "I'm allergic to lilies.")
    assert current(engine, shop.admin) == {}
    with pytest.raises(StaleEdit):
        call(
            engine,
            shop.admin,
            memory.set_rule_active,
            rule_id=rule.id,
            active=True,
            expected_version=rule.version,
        )


# --- corrections, deletion ------------------------------------------------------------------


def test_an_admin_corrects_a_memory_and_the_old_value_becomes_history(engine, shop):
    say(engine, shop.admin, "I prefer roses.")
    (m,) = memories(engine, shop.admin)
    fixed = call(
        engine,
        shop.admin,
        memory.edit_memory,
        memory_id=m.id,
        value="red roses",
        expected_version=m.version,
    )
    assert (fixed.value, fixed.confidence, fixed.message_id) == ("red roses", 1.0, None)
    assert [(x.value, x.state) for x in memories(engine, shop.admin, history=True)] == [
        ("red roses", "current"),
        ("roses", "superseded"),
    ]
    with pytest.raises(StaleEdit):  # the old one is history now
        call(
            engine,
            shop.admin,
            memory.edit_memory,
            memory_id=m.id,
            value="x y",
            expected_version=m.version,
        )
    with pytest.raises(InvalidInput):
        call(
            engine,
            shop.admin,
            memory.edit_memory,
            memory_id=fixed.id,
            value="it",
            expected_version=fixed.version,
        )


def test_an_important_date_is_corrected_to_a_real_date(engine, shop):
    say(engine, shop.admin, "My wife's birthday is May 3.")
    (m,) = memories(engine, shop.admin)
    assert (m.kind, m.key, m.value, m.date_value.isoformat()) == (
        "important_date",
        "wife's birthday",
        "--05-03",
        "2000-05-03",
    )
    with pytest.raises(InvalidInput):
        call(
            engine,
            shop.admin,
            memory.edit_memory,
            memory_id=m.id,
            value="someday",
            expected_version=m.version,
        )
    fixed = call(
        engine,
        shop.admin,
        memory.edit_memory,
        memory_id=m.id,
        value="May 4",
        expected_version=m.version,
    )
    assert (fixed.value, fixed.date_value.isoformat()) == ("--05-04", "2000-05-04")


def test_a_deleted_memory_does_not_come_back_when_extracting_again(engine, shop):
    say(engine, shop.admin, "I'm allergic to lilies.")
    (m,) = memories(engine, shop.admin)
    call(engine, shop.admin, memory.delete_memory, memory_id=m.id, expected_version=m.version)
    assert memories(engine, shop.admin) == []
    memory.extract_stored(engine=engine, actor=shop.admin)
    assert memories(engine, shop.admin) == []
    (gone,) = memories(engine, shop.admin, history=True)
    assert gone.state == "deleted"


# --- forgetting a customer ------------------------------------------------------------------

SECRET = "Zyxwquinn"


def _all_text(engine: Engine, actor: Actor) -> list[str]:
    """Every string value in every table the shop can read (JSON columns as text)."""
    found: list[str] = []
    with session_scope(actor, engine=engine) as s:
        for table in SQLModel.metadata.sorted_tables:
            columns = [
                c
                for c in table.columns
                if isinstance(c.type, String | Text) or "JSON" in str(c.type)
            ]
            if not columns:
                continue
            for row in s.execute(select(*columns)).all():
                found.extend(str(v) for v in row if v is not None)
    return found


def test_forgetting_a_customer_leaves_nothing_of_what_they_said(engine, shop):
    said = [
        f"Hi, my name is {SECRET}. I'm allergic to {SECRET.lower()}flowers.",
        f"I prefer {SECRET.lower()} roses.",
        f"It's for my {SECRET.lower()}.",
    ]
    for i, line in enumerate(said):
        say(engine, shop.admin, line, conversation=f"f{i}", at=T0 + timedelta(hours=i))
    say(engine, shop.admin, "I'm allergic to lilies.", customer="cust-2", conversation="other")
    (m,) = [x for x in memories(engine, shop.admin) if x.kind == "preference"]
    call(
        engine,
        shop.admin,
        memory.edit_memory,
        memory_id=m.id,
        value=f"{SECRET} tulips",
        expected_version=m.version,
    )
    assert any(SECRET.lower() in v.lower() for v in _all_text(engine, shop.admin))

    done = call(engine, shop.admin, memory.forget_customer, customer_id="cust-1")

    assert (done.memories, done.messages, done.examples) == (5, 3, 3)
    assert not [v for v in _all_text(engine, shop.admin) if SECRET.lower() in v.lower()]
    with session_scope(shop.admin, engine=engine) as s:
        assert s.exec(
            select(func.count())
            .select_from(CustomerMemory)
            .where(CustomerMemory.customer_id == "cust-1")
        ).one() == (0,)
        examples = s.exec(select(Example.text, Example.status)).all()
        assert sorted(examples) == [("", "rejected")] * 3 + [("I'm allergic to lilies.", "pending")]
        event = (
            s.exec(select(AuditEvent).where(AuditEvent.action == "memory.forget")).scalars().one()
        )
        assert event.entity_id == "cust-1" and event.after == {
            "memories": 5,
            "messages": 3,
            "examples": 3,
        }
    assert current(engine, shop.admin, "cust-2") == {("allergy", "lilies"): "lilies"}


def test_forgetting_an_unknown_customer_is_refused(engine, shop):
    with pytest.raises(NotFound):
        call(engine, shop.admin, memory.forget_customer, customer_id="nobody")


# --- roles and isolation --------------------------------------------------------------------


@pytest.mark.parametrize("role", ["florist", "manager"])
def test_only_admins_read_or_change_a_customers_memories(engine, shop, role):
    say(engine, shop.admin, "I'm allergic to lilies.")
    (m,) = memories(engine, shop.admin)
    actor = getattr(shop, role)
    for function, kwargs in (
        (memory.customer_memories, {"customer_id": "cust-1"}),
        (memory.find_customers, {"query": "cust"}),
        (memory.list_rules, {}),
        (memory.edit_memory, {"memory_id": m.id, "value": "pollen", "expected_version": 1}),
        (memory.delete_memory, {"memory_id": m.id, "expected_version": 1}),
        (memory.forget_customer, {"customer_id": "cust-1"}),
        (memory.conversation_messages, {"external_id": "c1"}),
    ):
        with pytest.raises(PermissionDenied):
            call(engine, actor, function, **kwargs)
    with pytest.raises(PermissionDenied):
        memory.extract_stored(engine=engine, actor=actor)


def test_one_shops_memories_are_invisible_to_another(engine, shop):
    other = make_shop(engine, "Fern & Thistle")
    say(engine, shop.admin, "My name is Ann.")
    say(engine, other.admin, "My name is Bea.")
    (mine,) = memories(engine, shop.admin)
    assert [m.value for m in memories(engine, other.admin)] == ["Bea"]
    assert [
        c.customer_id for c in call(engine, other.admin, memory.find_customers, query="Ann")
    ] == []
    with pytest.raises(NotFound):
        call(
            engine,
            other.admin,
            memory.edit_memory,
            memory_id=mine.id,
            value="Eve",
            expected_version=1,
        )
    call(engine, other.admin, memory.forget_customer, customer_id="cust-1")
    assert [m.value for m in memories(engine, shop.admin)] == ["Ann"]


def test_customers_are_found_by_id_or_by_what_they_told(engine, shop):
    say(engine, shop.admin, "My name is Ann.", customer="cust-ann", conversation="a")
    say(engine, shop.admin, "Where is my order?", customer="cust-bob", conversation="b")
    by_memory = call(engine, shop.admin, memory.find_customers, query="ann")
    assert [(c.customer_id, c.memories, c.conversations) for c in by_memory] == [("cust-ann", 1, 1)]
    assert [
        c.customer_id for c in call(engine, shop.admin, memory.find_customers, query="BOB")
    ] == ["cust-bob"]
    assert call(engine, shop.admin, memory.find_customers, query="%") == []


def test_only_one_current_memory_per_key_is_enforced_by_the_database(engine, shop):
    say(engine, shop.admin, "I prefer roses.")
    with session_scope(shop.admin, engine=engine) as s:
        (row,) = s.exec(select(CustomerMemory)).scalars().all()
        twin = CustomerMemory(
            **row.model_dump(exclude={"id", "message_id", "conversation_id"}), message_id=None
        )
        s.add(twin)
        with pytest.raises(IntegrityError):
            s.flush()
        s.rollback()


def test_rules_load_once_per_version(engine, shop):
    with session_scope(shop.admin, engine=engine) as s:
        first = memory.active_rules(session=s, actor=shop.admin)
        again = memory.active_rules(session=s, actor=shop.admin)
        assert first is again
        rule = s.exec(select(MemoryRule).where(col(MemoryRule.builtin))).scalars().first()
        rule.version += 1
        s.add(rule)
        s.flush()
        assert memory.active_rules(session=s, actor=shop.admin) is not first


def test_an_imported_conversation_log_is_remembered(engine, shop):
    import io

    from core.dataset import import_file
    from core.file_spec import ReadSpec

    log = (
        "conversation_id,customer_id,role,text\n"
        'imp-1,cust-9,customer,"Hi, I\'m allergic to lilies."\n'
        "imp-1,cust-9,assistant,Noted!\n"
        "imp-2,,customer,My name is Nobody.\n"
    )
    with session_scope(shop.admin, engine=engine) as s:
        import_file(
            session=s,
            actor=shop.admin,
            stream=io.BytesIO(log.encode()),
            filename="log.csv",
            spec=ReadSpec(kind="conversations", file_format="csv"),
        )
    assert current(engine, shop.admin, "cust-9") == {("allergy", "lilies"): "lilies"}
    with session_scope(shop.admin, engine=engine) as s:
        assert s.exec(select(func.count()).select_from(CustomerMemory)).one() == (1,)
