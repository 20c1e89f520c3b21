"""The demo workspace: two isolated demo shops, working logins, realistic and honest traffic."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from sqlalchemy import text
from sqlmodel import SQLModel, select

from core import demo
from core.access import ALL_ROLES, Actor, Role
from core.auth import authenticate
from core.config import Settings
from core.errors import InvalidInput
from core.tenants import list_tenants
from core.text import text_hash
from db.engine import login_scope, make_engine, session_scope
from db.models import AuditEvent, Conversation, Example, Intent, Message, User
from tests import factories
from tests.factories import make_shop

# Nine days after Mother's Day 2025 (11 May), so the default 60 days include its rush.
NOW = datetime(2025, 5, 20, 15, 30, tzinfo=UTC)
BLOOM, FERN = "Bloom & Co.", "Fern & Thistle"


@pytest.fixture
def cheap_passwords(monkeypatch):
    """Skip argon2 for tests that never log in (the login test pays for the real thing)."""
    monkeypatch.setattr(
        "core.users.hash_password", lambda *_a, **_k: factories.test_password_hash()
    )


def _demo(engine, days=7, seed=7):
    return demo.create_demo_workspace(engine=engine, seed=seed, days=days, now=NOW)


def _shops(engine) -> dict[str, Actor]:
    """A reading actor inside each shop, by shop name."""
    with session_scope(None, engine=engine) as s:
        return {
            t.name: Actor(None, t.id, Role.ADMIN, "test", tenant_name=t.name)
            for t in list_tenants(session=s)
        }


def _rows(engine, actor, model):
    with session_scope(actor, engine=engine) as s:
        return list(s.exec(select(model).order_by(model.id)).all())


def test_demo_creates_two_demo_shops_whose_logins_work(engine):
    _demo(engine, days=1)
    with session_scope(None, engine=engine) as s:
        tenants = list_tenants(session=s)
    assert [(t.name, t.is_demo) for t in tenants] == [(BLOOM, True), (FERN, True)]
    logins = demo.demo_credentials()
    assert sorted((d.shop, d.role) for d in logins) == sorted(
        (shop, role) for shop in (BLOOM, FERN) for role in ALL_ROLES
    )
    for login in logins:
        with login_scope(engine=engine) as s:
            actor = authenticate(
                session=s, username=login.username, password=login.password, settings=Settings()
            )
        assert (actor.username, actor.role, actor.tenant_name) == (
            login.username,
            login.role,
            login.shop,
        )
        assert actor.display_name


def test_demo_passwords_are_long_and_all_different():
    passwords = [d.password for d in demo.demo_credentials()]
    assert len(set(passwords)) == len(passwords) == 6
    assert min(len(p) for p in passwords) >= 12


def test_each_demo_shop_has_exactly_one_user_per_role(engine, cheap_passwords):
    _demo(engine, days=1)
    for name, actor in _shops(engine).items():
        users = _rows(engine, actor, User)
        assert sorted(u.role for u in users) == sorted(r.value for r in ALL_ROLES), name
        assert {u.username.split(".")[0] for u in users} == {name.split()[0].lower()}


def test_full_demo_has_realistic_volume(engine, cheap_passwords):
    summary = demo.create_demo_workspace(engine=engine, now=NOW)
    bloom, fern = summary.shops
    assert (bloom.name, bloom.intents, fern.name) == (BLOOM, 25, FERN)
    assert 15 <= fern.intents < 25
    assert 1200 <= bloom.conversations <= 1600 and 300 <= fern.conversations <= 500
    assert 2000 <= bloom.examples <= 4 * bloom.conversations
    for shop in summary.shops:
        assert 0.08 <= shop.escalated / shop.conversations <= 0.16, shop
        assert 0.30 <= shop.labelled / shop.examples <= 0.40, shop
    actors = _shops(engine)
    with session_scope(actors[BLOOM], engine=engine) as s:
        assert len(s.exec(select(Intent)).all()) == bloom.intents
        assert len(s.exec(select(Conversation)).all()) == bloom.conversations
        assert len(s.exec(select(Message)).all()) == bloom.messages
        assert len(s.exec(select(Example)).all()) == bloom.examples
        customers = Counter(s.exec(select(Conversation.customer_id)).all())
    assert max(customers.values()) >= 5  # regulars come back


def test_traffic_follows_the_week_and_the_mothers_day_rush(engine, cheap_passwords):
    _demo(engine, days=60)
    starts = [c.started_at for c in _rows(engine, _shops(engine)[BLOOM], Conversation)]
    per_day = Counter(at.date() for at in starts)
    mean = len(starts) / 60
    rush = [per_day[datetime(2025, 5, d).date()] for d in (9, 10, 11)]  # Fri-Sun before
    assert min(rush) > 1.4 * mean
    sundays = [n for day, n in per_day.items() if day.weekday() == 6 and day.month != 5]
    assert max(sundays) < mean
    assert sum(1 for at in starts if 1 <= at.hour < 6) < 0.02 * len(starts)


def test_every_timestamp_lies_in_the_last_days_before_now(engine, cheap_passwords):
    days = 5
    _demo(engine, days=days)
    start = NOW - timedelta(days=days)
    for actor in _shops(engine).values():
        stamps = [c.started_at for c in _rows(engine, actor, Conversation)]
        stamps += [c.ended_at for c in _rows(engine, actor, Conversation)]
        stamps += [m.created_at for m in _rows(engine, actor, Message)]
        for e in _rows(engine, actor, Example):
            stamps += [e.created_at, e.updated_at] + ([e.reviewed_at] if e.reviewed_at else [])
        assert stamps and all(start <= at <= NOW for at in stamps)
        assert all(at.utcoffset() == timedelta(0) for at in stamps)


def test_examples_mirror_their_customer_message_and_its_reply(engine, cheap_passwords):
    _demo(engine, days=3)
    for actor in _shops(engine).values():
        messages = _rows(engine, actor, Message)
        conversations = {c.id: c for c in _rows(engine, actor, Conversation)}
        following = {m.id: n for m, n in pairwise(messages)}
        examples = _rows(engine, actor, Example)
        assert len(examples) == sum(1 for m in messages if m.role == "customer")
        for e in examples:
            asked = next(m for m in messages if m.id == e.message_id)
            reply = following[asked.id]
            assert (asked.role, asked.text, asked.created_at) == ("customer", e.text, e.created_at)
            assert asked.conversation_id == reply.conversation_id == e.conversation_id
            assert (reply.role, reply.text) == ("assistant", e.ai_response)
            assert reply.created_at > asked.created_at
            assert e.escalated == conversations[e.conversation_id].escalated
            assert (e.text_hash, e.content_hash, e.source) == (text_hash(e.text), None, "synthetic")


def test_escalated_conversations_end_with_a_person_and_others_never_reach_one(
    engine, cheap_passwords
):
    _demo(engine, days=10)
    actor = _shops(engine)[BLOOM]
    roles: dict[int, list[str]] = {}
    for m in _rows(engine, actor, Message):
        roles.setdefault(m.conversation_id, []).append(m.role)
    conversations = _rows(engine, actor, Conversation)
    assert any(c.escalated for c in conversations) and not all(c.escalated for c in conversations)
    for c in conversations:
        turns = roles[c.id]
        exchanges = ["customer", "assistant"] * ((len(turns) - c.escalated) // 2)
        assert turns == exchanges + (["agent"] if c.escalated else []), c.external_id
        assert 1 <= len(exchanges) // 2 <= 4
        assert c.ended_at >= c.started_at


def test_every_prediction_comes_from_the_first_model_the_demo_trained(engine, cheap_passwords):
    from core import registry
    from db.models import TrainingRun

    _demo(engine, days=10)
    for name, actor in _shops(engine).items():
        intents = {i.name for i in _rows(engine, actor, Intent)}
        admin = next(u for u in _rows(engine, actor, User) if u.role == Role.ADMIN.value)
        examples = _rows(engine, actor, Example)
        (run,) = _rows(engine, actor, TrainingRun)
        assert (run.status, run.trigger, run.deployed) == ("completed", "auto", True), name
        with session_scope(actor, engine=engine) as s:
            _, model = registry.serving_model(session=s, actor=actor)
            predicted = model.predict_many([e.text for e in examples], k=3)
        for e, top in zip(examples, predicted, strict=True):
            assert e.detected_intent == top[0][0] and e.confidence == pytest.approx(top[0][1])
            assert e.top_intents == [list(pair) for pair in top]
            if e.correct_intent is not None:
                assert e.intent_correct == (e.correct_intent == e.detected_intent)
            if e.reviewed:
                assert (e.status, e.reviewer_id) == ("reviewed", admin.id)
                assert e.correct_intent in intents and e.reviewed_at >= e.created_at
            else:
                assert (e.status, e.correct_intent, e.reviewer_id) == ("pending", None, None)
        labelled = {e.correct_intent for e in examples if e.reviewed}
        assert len(labelled) >= 10, name  # labels spread over many intents
        queue = factories.stored_review_groups(engine, actor)
        assert queue == factories.live_review_groups(engine, actor) != [], name


def _texts(seed):
    engine = make_engine("sqlite://")
    SQLModel.metadata.create_all(engine)
    try:
        demo.create_demo_workspace(engine=engine, seed=seed, days=3, now=NOW)
        return [
            (e.text, e.correct_intent, e.created_at)
            for actor in _shops(engine).values()
            for e in _rows(engine, actor, Example)
        ]
    finally:
        engine.dispose()


def test_same_seed_and_now_give_the_same_traffic_and_another_seed_does_not(cheap_passwords):
    first, again, other = _texts(7), _texts(7), _texts(8)
    assert first == again
    assert [t for t, _, _ in first] != [t for t, _, _ in other]


def test_each_shops_rows_carry_its_own_tenant_and_stay_out_of_the_other(engine, cheap_passwords):
    summary = _demo(engine, days=3)
    actors = _shops(engine)
    bloom_ids = [e.id for e in _rows(engine, actors[BLOOM], Example)]
    with session_scope(actors[FERN], engine=engine) as s:
        examples = s.exec(select(Example)).all()
        assert len(examples) == summary.shops[1].examples
        assert {e.tenant_id for e in examples} == {actors[FERN].tenant_id}
        assert all(c.startswith("fern-") for c in s.exec(select(Conversation.external_id)))
        assert s.get(Example, bloom_ids[0]) is None
    for actor in actors.values():
        with session_scope(actor, engine=engine) as s:
            assert _links_to_other_shops(s, actor.tenant_id) == 0


def _links_to_other_shops(session, tenant_id):
    """Examples and messages of this shop that point at a row outside it (raw SQL: no guard)."""
    checks = (
        ("example", "message", "message_id"),
        ("example", "conversation", "conversation_id"),
        ("example", "app_user", "reviewer_id"),
        ("message", "conversation", "conversation_id"),
    )
    total = 0
    for child, parent, key in checks:
        sql = (
            f"SELECT count(*) FROM {child} c LEFT JOIN {parent} p "
            f"ON p.id = c.{key} AND p.tenant_id = :t "
            f"WHERE c.tenant_id = :t AND c.{key} IS NOT NULL AND p.id IS NULL"
        )
        total += session.exec(text(sql), params={"t": tenant_id}).one()[0]
    return total


def test_shop_checks_before_and_after_the_demo(engine, cheap_passwords):
    with session_scope(None, engine=engine) as s:
        assert not demo.database_has_shops(session=s) and not demo.demo_exists(session=s)
    make_shop(engine, "Corner Florist")
    with session_scope(None, engine=engine) as s:
        assert demo.database_has_shops(session=s) and not demo.demo_exists(session=s)
    _demo(engine, days=1)
    with session_scope(None, engine=engine) as s:
        assert demo.database_has_shops(session=s) and demo.demo_exists(session=s)


def test_demo_creation_is_audited_with_its_counts(engine, cheap_passwords):
    summary = _demo(engine, days=2)
    actors = _shops(engine)
    for shop in summary.shops:
        events = _rows(engine, actors[shop.name], AuditEvent)
        created = [e for e in events if e.action == "demo.create"]
        assert len(created) == 1 and created[0].entity_id == shop.slug
        assert created[0].after["conversations"] == shop.conversations
        assert created[0].after["examples"] == shop.examples
        users = sorted(e.entity_id for e in events if e.action == "user.create")
        assert users == sorted(d.username for d in demo.demo_credentials() if d.shop == shop.name)
        assert {e.actor_name for e in events} == {"demo-setup"}


def test_a_second_demo_is_refused_and_changes_nothing(engine, cheap_passwords):
    _demo(engine, days=1)
    with pytest.raises(InvalidInput, match="exists"):
        _demo(engine, days=1)
    with session_scope(None, engine=engine) as s:
        assert [t.name for t in list_tenants(session=s)] == [BLOOM, FERN]


def test_a_failure_midway_leaves_no_half_made_demo(engine, cheap_passwords, monkeypatch):
    def broken(*_a, **_k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(demo, "_record_creation", broken)
    with pytest.raises(RuntimeError):
        _demo(engine, days=1)
    with session_scope(None, engine=engine) as s:
        assert not demo.database_has_shops(session=s)


def test_no_days_and_a_naive_now_are_refused(sqlite_engine):
    with pytest.raises(InvalidInput, match="day"):
        demo.create_demo_workspace(engine=sqlite_engine, days=0, now=NOW)
    with pytest.raises(InvalidInput, match="timezone"):
        demo.create_demo_workspace(engine=sqlite_engine, now=NOW.replace(tzinfo=None))


def test_terminal_texts_name_every_login_and_the_counts():
    listing = demo.credentials_text()
    for d in demo.demo_credentials():
        line = next(line for line in listing.splitlines() if f" {d.username} " in line)
        assert d.shop in line and d.password in line and d.role.value in line
    counts = demo.ShopCounts(BLOOM, "bloom-co", 3, 25, 1394, 5323, 2582, 925, 150)
    described = demo.DemoSummary((counts,), 1.24).describe()
    assert "1.2 s" in described and BLOOM in described
    assert "1,394 conversations (11% escalated)" in described and "925 labelled" in described
