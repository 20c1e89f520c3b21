"""Memory page through app.py: find a customer and their memories with the source message,
correct, delete, forget; patterns and knowledge; rules; what a manager and a florist see; the
memory thresholds on Settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import col, select

from core import memory, memory_patterns
from core.ingest import record_interaction
from db.engine import session_scope
from db.models import (
    AuditEvent,
    Conversation,
    CustomerMemory,
    GlobalKnowledge,
    MemoryPattern,
    MemoryRule,
    Message,
)

ANN = "Hi, my name is Zelda. I'm allergic to lilies."
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _say(engine, shop, text, *, conversation="c1", customer="cust-zq-1", at=None, resolved=True):
    with session_scope(shop.admin, engine=engine) as s:
        record_interaction(
            session=s,
            actor=shop.admin,
            text=text,
            conversation_id=conversation,
            customer_id=customer,
            resolved=resolved,
            created_at=at,
        )


def _page(app, actor, tab=None):
    """The Memory page; `tab` opens one of its tabs (only the open tab runs)."""
    at = app(actor)
    at.switch_page("pages/memory.py")
    at = at.run()
    if tab is not None:
        at.session_state["memory_tab"] = tab
        at = at.run()
    return at


def _button(at, label):
    return next(b for b in at.button if b.label == label)


def _table(at, column):
    """The first table on the page that has `column`."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def _current(engine, shop, customer="cust-zq-1", history=False):
    with session_scope(shop.admin, engine=engine) as s:
        return memory.customer_memories(
            session=s, actor=shop.admin, customer_id=customer, history=history
        )


def _said(at) -> str:
    """The success note, without the escapes that keep its quoted text literal."""
    return at.success[0].value.replace("\\", "")


def _search(at, query):
    at.text_input(key="memory_query").input(query)
    _button(at, "Search").click()
    return at.run()


# --- customers -------------------------------------------------------------------------------


def test_admin_finds_a_customer_by_a_remembered_value_and_sees_the_source(app, shops, app_db):
    bloom, fern = shops
    _say(app_db, bloom, ANN, at=T0)
    _say(app_db, bloom, "My name is Bruno.", conversation="c2", customer="cust-zq-2", at=T0)
    _say(app_db, fern, "My name is Zelda too.", conversation="f1", customer="fern-1", at=T0)
    at = _page(app, bloom.admin)
    assert not at.exception
    at = _search(at, "zeLDa")
    assert not at.exception
    assert list(_table(at, "last seen")["customer"]) == ["cust-zq-1"]  # not Bruno, not Fern's
    memories = _table(at, "source message")
    assert set(zip(memories["kind"], memories["key"], memories["value"], strict=True)) == {
        ("personal info", "name", "Zelda"),
        ("allergy", "lilies", "lilies"),
    }
    assert set(memories["source message"]) == {ANN}
    assert set(memories["conversation"]) == {"c1"}
    # the conversation the memories came from, message by message
    at.selectbox(key="memory_conversation_cust-zq-1").set_value("c1")
    at = at.run()
    assert ANN in [t.value for t in at.text]


def test_search_without_a_match_and_an_empty_shop_say_what_to_do(app, shops, app_db):
    bloom, _ = shops
    at = _page(app, bloom.admin)
    assert not at.exception
    assert any("Extract from stored messages" in i.value for i in at.info)  # how memories come
    for tab, advice in (("Patterns", "Aggregate now"), ("Knowledge", "Aggregate now")):
        at.session_state["memory_tab"] = tab
        at = at.run()
        assert any(advice in i.value for i in at.info), tab
    at.session_state["memory_tab"] = "Customers"
    at = at.run()
    _say(app_db, bloom, ANN)
    at = _search(at, "nobody-like-this")
    assert any("No customer id, and no remembered value" in i.value for i in at.info)


def test_the_customer_list_is_kept_between_clicks_and_read_again_on_search(app, shops, app_db):
    bloom, _ = shops
    _say(app_db, bloom, ANN, at=T0)
    at = _page(app, bloom.admin)
    _say(app_db, bloom, "My name is Bruno.", conversation="c2", customer="cust-zq-2", at=T0)
    at.toggle(key="memory_history").set_value(True)  # a click: the list found stays as it was
    at = at.run()
    assert list(_table(at, "last seen")["customer"]) == ["cust-zq-1"]
    _button(at, "Search").click()  # searching again reads it again
    at = at.run()
    assert list(_table(at, "last seen")["customer"]) == ["cust-zq-1", "cust-zq-2"]


def test_admin_corrects_a_memory_and_the_history_keeps_the_old_value(app, shops, app_db):
    bloom, _ = shops
    _say(app_db, bloom, ANN, at=T0)
    allergy = next(m for m in _current(app_db, bloom) if m.kind == "allergy")
    at = _page(app, bloom.admin)
    at.selectbox(key="memory_pick_cust-zq-1").set_value(allergy.id)
    at = at.run()
    at.text_input(key=f"memory_value_{allergy.id}_{allergy.version}").input("lily pollen")
    _button(at, "Save the new value").click()
    at = at.run()
    assert not at.exception
    assert "is now “lily pollen”" in at.success[0].value
    now = next(m for m in _current(app_db, bloom) if m.kind == "allergy")
    assert (now.value, now.rule_name, now.confidence) == ("lily pollen", None, 1.0)
    at.toggle(key="memory_history").set_value(True)
    at = at.run()
    shown = _table(at, "source message")
    assert {(v, s) for v, s in zip(shown["value"], shown["state"], strict=True)} >= {
        ("lily pollen", "current"),
        ("lilies", "superseded"),
    }
    with session_scope(bloom.admin, engine=app_db) as s:
        assert s.exec(select(AuditEvent).where(AuditEvent.action == "memory.edit")).one()


def test_a_stale_edit_is_refused_with_a_clear_message(app, shops, app_db):
    bloom, _ = shops
    _say(app_db, bloom, ANN, at=T0)
    name = next(m for m in _current(app_db, bloom) if m.key == "name")
    at = _page(app, bloom.admin)
    at.selectbox(key="memory_pick_cust-zq-1").set_value(name.id)
    at = at.run()
    # the customer corrects themselves meanwhile: a newer memory replaces the one shown
    _say(app_db, bloom, "Sorry, my name is Zora.", at=T0 + timedelta(minutes=5))
    at.text_input(key=f"memory_value_{name.id}_{name.version}").input("Zelda Q.")
    _button(at, "Save the new value").click()
    at = at.run()
    assert not at.exception
    assert any("changed since you loaded it" in w.value for w in at.warning)
    assert not at.success
    assert next(m for m in _current(app_db, bloom) if m.key == "name").value == "Zora"


def test_delete_needs_the_confirmation(app, shops, app_db):
    bloom, _ = shops
    _say(app_db, bloom, ANN, at=T0)
    allergy = next(m for m in _current(app_db, bloom) if m.kind == "allergy")
    at = _page(app, bloom.admin)
    at.selectbox(key="memory_pick_cust-zq-1").set_value(allergy.id)
    at = at.run()
    assert at.button(key=f"memory_delete_{allergy.id}_{allergy.version}").disabled
    at.checkbox(key=f"memory_delete_sure_{allergy.id}_{allergy.version}").check()
    at = at.run()
    at.button(key=f"memory_delete_{allergy.id}_{allergy.version}").click()
    at = at.run()
    assert not at.exception
    assert "Deleted the memory" in at.success[0].value
    assert [m.kind for m in _current(app_db, bloom)] == ["personal_info"]
    states = {m.id: m.state for m in _current(app_db, bloom, history=True)}
    assert states[allergy.id] == "deleted"


def test_forget_a_customer_needs_their_id_typed_and_blanks_everything(app, shops, app_db):
    bloom, _ = shops
    _say(app_db, bloom, ANN, at=T0)
    _say(app_db, bloom, "It's for my sister.", conversation="c9", at=T0 + timedelta(days=2))
    _say(app_db, bloom, "My name is Bruno.", conversation="c2", customer="cust-zq-2", at=T0)
    at = _page(app, bloom.admin)
    at.text_input(key="memory_forget_typed_cust-zq-1").input("cust-zq-2")  # the wrong one
    _button(at, "Forget this customer").click()
    at = at.run()
    assert any("nothing was forgotten" in w.value for w in at.warning)
    assert len(_current(app_db, bloom)) == 3
    at.text_input(key="memory_forget_typed_cust-zq-1").input("cust-zq-1")
    _button(at, "Forget this customer").click()
    at = at.run()
    assert not at.exception
    assert "Forgot customer cust-zq-1: 3 memories deleted, 2 messages and 2 examples" in _said(at)
    with session_scope(bloom.admin, engine=app_db) as s:
        rows = s.exec(select(CustomerMemory).where(CustomerMemory.customer_id == "cust-zq-1")).all()
        texts = s.exec(
            select(Message.text)
            .join(Conversation, col(Conversation.id) == col(Message.conversation_id))
            .where(Conversation.customer_id == "cust-zq-1")
        ).all()
        kept = s.exec(select(CustomerMemory).where(CustomerMemory.customer_id == "cust-zq-2")).all()
    assert rows == []
    assert texts and set(texts) == {""}
    assert len(kept) == 1  # another customer keeps theirs
    assert any("Nothing remembered of this customer" in i.value for i in at.info)


# --- patterns and knowledge ------------------------------------------------------------------


def test_aggregate_now_creates_the_patterns(app, shops, app_db):
    bloom, _ = shops
    for n in range(3):
        _say(app_db, bloom, "I'm allergic to lilies.", conversation=f"a{n}", customer=f"p{n}")
    at = _page(app, bloom.admin, tab="Patterns")
    assert any("No patterns" in i.value for i in at.info)
    _button(at, "Aggregate now").click()
    at = at.run()
    assert not at.exception
    assert "Aggregated: 1 patterns" in at.success[0].value
    shown = _table(at, "later conversations")
    assert list(zip(shown["key"], shown["customers"], strict=True)) == [("lilies", 3)]
    at.session_state["memory_tab"] = "Customer analytics"
    at = at.run()
    assert {m.label: m.value for m in at.metric}["Patterns"] == "1"
    with session_scope(bloom.admin, engine=app_db) as s:
        assert s.exec(select(MemoryPattern.value)).all() == ["lilies"]


def _knowledge_ready(engine, shop):
    """Five customers allergic to lilies whose later conversations all went well."""
    for n in range(5):
        customer = f"k{n}"
        later = T0 + timedelta(days=3)
        _say(
            engine,
            shop,
            "I'm allergic to lilies.",
            conversation=f"{customer}-a",
            customer=customer,
            at=T0,
        )
        _say(
            engine,
            shop,
            "Thanks, it arrived.",
            conversation=f"{customer}-b",
            customer=customer,
            at=later,
        )
    with session_scope(shop.admin, engine=engine) as s:
        done = memory_patterns.aggregate(session=s, actor=shop.admin)
    assert done.proposed_knowledge == 1


def test_admin_approves_proposed_knowledge_with_a_note(app, shops, app_db):
    bloom, _ = shops
    _knowledge_ready(app_db, bloom)
    at = _page(app, bloom.admin, tab="Knowledge")
    shown = _table(at, "note")
    assert list(zip(shown["status"], shown["value"], shown["customers"], strict=True)) == [
        ("proposed", "lilies", 5)
    ]
    assert list(shown["success rate"]) == [1.0]
    assert [b.label for b in at.button if b.label in ("Approve", "Reject", "Withdraw")] == [
        "Approve",
        "Reject",
    ]
    [item] = _knowledge(app_db, bloom)
    at.text_input(key=f"memory_knowledge_note_{item.id}_{item.version}").input("ask about it")
    _button(at, "Approve").click()
    at = at.run()
    assert not at.exception
    assert "Approved “allergy · lilies: lilies”" in _said(at)
    [item] = _knowledge(app_db, bloom)
    assert (item.status, item.note) == ("approved", "ask about it")
    assert [b.label for b in at.button if b.label in ("Approve", "Reject", "Withdraw")] == [
        "Withdraw"
    ]


def _knowledge(engine, shop):
    with session_scope(shop.admin, engine=engine) as s:
        return s.exec(select(GlobalKnowledge)).all()


def test_a_stale_knowledge_decision_is_refused(app, shops, app_db):
    bloom, _ = shops
    _knowledge_ready(app_db, bloom)
    at = _page(app, bloom.admin, tab="Knowledge")
    [item] = _knowledge(app_db, bloom)
    with session_scope(bloom.admin, engine=app_db) as s:  # another admin rejects it meanwhile
        memory_patterns.decide(
            session=s,
            actor=bloom.admin,
            knowledge_id=item.id,
            decision="reject",
            expected_version=item.version,
        )
    _button(at, "Approve").click()
    at = at.run()
    assert any("Another admin decided" in w.value for w in at.warning)
    assert _knowledge(app_db, bloom)[0].status == "rejected"


# --- rules -----------------------------------------------------------------------------------


def _rules(engine, shop):
    with session_scope(shop.admin, engine=engine) as s:
        return memory.list_rules(session=s, actor=shop.admin)


def _rule_form(at, name, phrase, key):
    next(w for w in at.text_input if w.label == "Name").input(name)
    next(w for w in at.text_input if w.label == "Phrase").input(phrase)
    next(w for w in at.text_input if w.label == "Key").input(key)
    _button(at, "Add rule").click()
    return at.run()


def test_a_rule_with_a_bad_phrase_is_refused_and_a_good_one_added(app, shops, app_db):
    bloom, _ = shops
    before = len(_rules(app_db, bloom))
    at = _page(app, bloom.admin, tab="Rules")
    at = _rule_form(at, "Loves X", "I love {value", "loves")
    assert not at.exception
    assert any("Phrase, column" in e.value for e in at.error)
    assert "I love {value" in [c.value for c in at.code]
    with session_scope(bloom.admin, engine=app_db) as s:
        assert len(s.exec(select(MemoryRule)).all()) == before
    at = _rule_form(at, "Loves X", "I [really |]love {value}", "loves")
    assert not at.exception
    assert "Added the rule “Loves X”" in at.success[0].value
    added = next(r for r in _rules(app_db, bloom) if r.name == "Loves X")
    assert (added.kind, added.phrase, added.is_active) == (
        "preference",
        "I [really |]love {value}",
        True,
    )
    assert next(w for w in at.text_input if w.label == "Name").value == ""  # a fresh form
    _say(app_db, bloom, "I love dahlias.")
    assert [m.value for m in _current(app_db, bloom)] == ["dahlias"]


def test_admin_turns_a_rule_off_and_a_stale_switch_is_refused(app, shops, app_db):
    bloom, _ = shops
    at = _page(app, bloom.admin, tab="Rules")
    rule = next(r for r in _rules(app_db, bloom) if r.name == "I'm allergic to X")
    at.toggle(key=f"memory_rule_active_{rule.id}_{rule.version}").set_value(False)
    at = at.run()
    assert not at.exception
    assert "is off" in at.success[0].value
    off = next(r for r in _rules(app_db, bloom) if r.id == rule.id)
    assert (off.is_active, off.version) == (False, rule.version + 1)
    _say(app_db, bloom, "I'm allergic to lilies.")
    assert _current(app_db, bloom) == []  # the rule extracts nothing more
    with session_scope(bloom.admin, engine=app_db) as s:  # another admin turns it on meanwhile
        memory.set_rule_active(
            session=s, actor=bloom.admin, rule_id=rule.id, active=True, expected_version=off.version
        )
    at.toggle(key=f"memory_rule_active_{rule.id}_{off.version}").set_value(True)
    at = at.run()
    assert any("changed since you loaded it" in w.value for w in at.warning)


def test_customer_analytics_rank_customers_with_percentiles_and_only_when_open(app, shops, app_db):
    bloom, _ = shops
    _say(app_db, bloom, ANN, at=T0)
    _say(app_db, bloom, "Where is my order?", conversation="c2", customer="cust-zq-2", at=T0)
    _say(app_db, bloom, "And now?", conversation="c2", customer="cust-zq-2", at=T0, resolved=False)
    at = _page(app, bloom.admin)
    # closed tabs do not run: no figures over every customer on each click in Customers
    assert not any("memories percentile" in d.value.columns for d in at.dataframe)
    at.session_state["memory_tab"] = "Customer analytics"
    at = at.run()
    assert not at.exception
    stats = _table(at, "memories percentile")
    assert list(stats["customer"]) == ["cust-zq-1", "cust-zq-2"]  # most memories first
    assert list(stats["memories"]) == [2, 0]
    assert list(stats["memories percentile"]) == [100.0, 50.0]
    assert list(stats["success rate"]) == [1.0, 0.0]
    at.selectbox(key="memory_stats_sort").set_value("interactions")
    at = at.run()
    assert list(_table(at, "memories percentile")["customer"]) == ["cust-zq-2", "cust-zq-1"]
    assert len(at.get("vega_lite_chart")) == 4  # memories per kind, the three distributions


# --- managers and florists -------------------------------------------------------------------


def _everything_shown(at) -> str:
    """Every element's content as the browser receives it (tables and charts included)."""
    parts = []

    def walk(node):
        proto = getattr(node, "proto", None)
        if proto is not None:
            parts.append(str(proto))
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at.main)
    walk(at.sidebar)
    parts += [d.value.to_csv() for d in at.dataframe]
    return "\n".join(parts)


def test_a_manager_sees_counts_and_never_a_customer_or_a_memory(app, shops, app_db):
    bloom, _ = shops
    for n in range(3):
        _say(app_db, bloom, ANN, conversation=f"conv-zq-{n}", customer=f"cust-zq-{n}", at=T0)
    with session_scope(bloom.admin, engine=app_db) as s:
        memory_patterns.aggregate(session=s, actor=bloom.admin)
    at = _page(app, bloom.manager)
    assert not at.exception
    assert not at.tabs
    figures = {m.label: m.value for m in at.metric}
    assert figures["Current memories"] == "6"
    assert figures["Customers with memories"] == "3"
    assert figures["Patterns"] == "1"  # the allergy: names are personal, never a pattern
    shown = _everything_shown(at)
    assert "allergy" in shown  # counts per kind are there ...
    for secret in ("cust-zq", "conv-zq", "Zelda", "lilies"):  # ... but whose and what, never
        assert secret not in shown, secret
    assert not at.text_input and not at.button


def test_a_florist_cannot_open_the_memory_page(app, shops, app_db):
    bloom, _ = shops
    _say(app_db, bloom, ANN)
    at = _page(app, bloom.florist)
    assert any("Not allowed" in e.value for e in at.error)
    assert not at.dataframe and not at.tabs and not at.metric
    assert "Zelda" not in _everything_shown(at)


# --- Settings: the memory thresholds ---------------------------------------------------------


def _settings(app, actor):
    at = app(actor)
    at.switch_page("pages/settings.py")
    return at.run()


def _limits(engine, actor):
    with session_scope(actor, engine=engine) as s:
        return memory_patterns.memory_thresholds(session=s, actor=actor)


def _save_limits(at):
    _button(at, "Save memory thresholds").click()
    return at.run()


def test_admin_saves_memory_thresholds_audited_for_their_shop_only(app, shops, app_db):
    bloom, fern = shops
    at = _settings(app, bloom.admin)
    assert at.number_input(key="memory_pattern_customers_0").value == 2
    assert at.slider(key="memory_knowledge_success_0").value == 80
    at.number_input(key="memory_pattern_customers_0").set_value(3)
    at.slider(key="memory_knowledge_success_0").set_value(90)
    at = _save_limits(at)
    assert not at.exception
    assert "Saved the memory thresholds: patterns from 3 customers" in at.success[0].value
    saved = _limits(app_db, bloom.admin)
    assert (saved.pattern_customers, saved.knowledge_success, saved.version) == (3, 0.9, 1)
    assert _limits(app_db, fern.admin).version == 0
    assert at.number_input(key="memory_pattern_customers_1").value == 3  # the form shows them
    with session_scope(bloom.admin, engine=app_db) as s:
        [event] = s.exec(
            select(AuditEvent).where(AuditEvent.action == "settings.memory_thresholds")
        ).all()
    assert event.after["pattern_customers"] == 3
    # knowledge needs at least as many customers as a pattern: refused, nothing saved
    at.number_input(key="memory_knowledge_customers_1").set_value(2)
    at = _save_limits(at)
    assert any("at least as many customers" in e.value for e in at.error)
    assert _limits(app_db, bloom.admin).version == 1


def test_stale_memory_thresholds_are_refused_with_the_current_values(app, shops, app_db):
    bloom, _ = shops
    at = _settings(app, bloom.admin)
    with session_scope(bloom.admin, engine=app_db) as s:  # another admin saves meanwhile
        memory_patterns.set_memory_thresholds(
            session=s,
            actor=bloom.admin,
            new=memory_patterns.MemoryThresholds(pattern_customers=4, knowledge_customers=6),
            expected_version=0,
        )
    at.number_input(key="memory_pattern_customers_0").set_value(3)
    at = _save_limits(at)
    assert not at.exception
    assert any("Another admin changed the memory thresholds" in w.value for w in at.warning)
    assert not at.success
    assert _limits(app_db, bloom.admin).pattern_customers == 4
    assert at.number_input(key="memory_pattern_customers_1").value == 4  # the current values
    at.number_input(key="memory_pattern_customers_1").set_value(3)  # saving again works
    at = _save_limits(at)
    assert not at.warning
    assert _limits(app_db, bloom.admin).pattern_customers == 3
