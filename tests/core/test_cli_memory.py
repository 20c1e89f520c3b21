"""`trellis memory extract|show|aggregate|forget` on a migrated SQLite file (the CLI contract)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, func, select

from core.access import Actor
from core.ingest import record_interaction
from db.engine import session_scope
from db.models import Conversation, CustomerMemory, Message
from tests.factories import run_cli

T0 = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)


def say(engine: Engine, actor: Actor, text: str, customer: str, at: datetime, conv: str) -> int:
    with session_scope(actor, engine=engine) as s:
        return record_interaction(
            session=s,
            actor=actor,
            text=text,
            conversation_id=conv,
            customer_id=customer,
            created_at=at,
            resolved=True,
        ).message_id


def test_memory_show_prints_the_contracts_json(cli_engine, admin):
    first = say(cli_engine, admin, "I prefer roses.", "cust-1", T0, "c1")
    second = say(
        cli_engine,
        admin,
        "I prefer tulips. I'm allergic to lilies.",
        "cust-1",
        T0 + timedelta(days=1),
        "c2",
    )

    shown = run_cli("memory", "show", "cust-1", "--tenant", "bloom", "--json")
    assert shown.exit_code == 0, shown.output
    payload = json.loads(shown.output)
    assert sorted(
        (m["kind"], m["key"], m["value"], m["message_id"]) for m in payload["memories"]
    ) == [
        ("allergy", "lilies", "lilies", second),
        ("preference", "prefers", "tulips", second),
    ]
    assert all(
        {"kind", "key", "value", "confidence", "message_id"} <= set(m) for m in payload["memories"]
    )

    history = json.loads(
        run_cli("memory", "show", "cust-1", "--tenant", "bloom", "--json", "--history").output
    )
    old = [m for m in history["memories"] if m["value"] == "roses"]
    assert [(m["state"], m["message_id"]) for m in old] == [("superseded", first)]


def test_memory_extract_backfills_and_aggregate_reports_counts(cli_engine, admin):
    with session_scope(admin, engine=cli_engine) as s:  # stored before extraction existed
        for i in range(3):
            conv = Conversation(
                tenant_id=admin.tenant_id, external_id=f"old-{i}", customer_id=f"k{i}"
            )
            s.add(conv)
            s.flush()
            s.add(
                Message(
                    tenant_id=admin.tenant_id,
                    conversation_id=conv.id,
                    role="customer",
                    text="I'm allergic to lilies.",
                )
            )

    extracted = run_cli("memory", "extract", "--tenant", "bloom", "--json")
    assert extracted.exit_code == 0, extracted.output
    assert json.loads(extracted.output.splitlines()[-1]) == {"messages": 3, "memories": 3}

    aggregated = run_cli("memory", "aggregate", "--tenant", "bloom", "--json")
    assert json.loads(aggregated.output) == {"patterns": 1, "proposed_knowledge": 0}
    text = run_cli("memory", "aggregate", "--tenant", "bloom")
    assert "1 patterns" in text.output


def test_memory_forget_asks_first_then_forgets(cli_engine, admin):
    say(cli_engine, admin, "My name is Ann.", "cust-1", T0, "c1")
    declined = run_cli("memory", "forget", "cust-1", "--tenant", "bloom")
    assert declined.exit_code != 0
    with session_scope(admin, engine=cli_engine) as s:
        assert s.exec(select(func.count()).select_from(CustomerMemory)).one() == (1,)

    done = run_cli("memory", "forget", "cust-1", "--tenant", "bloom", "--yes", "--json")
    assert json.loads(done.output) == {
        "customer": "cust-1",
        "memories": 1,
        "messages": 1,
        "examples": 1,
    }
    with session_scope(admin, engine=cli_engine) as s:
        assert s.exec(select(func.count()).select_from(CustomerMemory)).one() == (0,)
        assert s.exec(select(Message.text)).scalars().all() == [""]


def test_memory_commands_refuse_an_unknown_customer_or_shop(cli_engine, admin):
    missing = run_cli("memory", "forget", "nobody", "--tenant", "bloom", "--yes")
    assert missing.exit_code == 2 and "No customer" in missing.output
    unknown = run_cli("memory", "aggregate", "--tenant", "nope")
    assert unknown.exit_code == 2
