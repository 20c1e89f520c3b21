"""Live traffic: the assistant records each answered message through the API and the CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlmodel import select

from core.access import Role
from core.cli import main
from core.errors import InvalidInput, PermissionDenied
from core.ingest import InteractionIn, record_interaction, record_interactions
from db.engine import get_engine, session_scope
from db.models import Conversation, Example, Message
from tests.factories import make_shop


def test_a_recorded_interaction_becomes_a_pending_live_example(engine):
    shop = make_shop(engine)
    at = datetime(2026, 5, 1, 9, 30, tzinfo=UTC)
    with session_scope(shop.admin, engine=engine) as s:
        rec = record_interaction(
            session=s,
            actor=shop.admin,
            text="  Where is my order #123? ",
            conversation_id="c-1",
            customer_id="cust-9",
            response="It is out for delivery.",
            escalated=True,
            created_at=at,
        )
    with session_scope(shop.admin, engine=engine) as s:
        example = s.exec(select(Example).where(Example.id == rec.example_id)).one()
        conversation = s.exec(select(Conversation)).one()
        roles = [m.role for m in s.exec(select(Message).order_by(Message.id))]
    assert (example.text, example.status, example.source) == (
        "Where is my order #123?",
        "pending",
        "live",
    )
    assert example.ai_response == "It is out for delivery." and example.escalated
    assert example.detected_intent is None  # no serving model yet: nothing is invented
    assert example.created_at == at and example.content_hash is None
    assert (conversation.external_id, conversation.customer_id, conversation.escalated) == (
        "c-1",
        "cust-9",
        True,
    )
    assert roles == ["customer", "assistant"]


def test_messages_of_one_conversation_share_it_and_repeats_all_count(engine):
    shop = make_shop(engine)
    with session_scope(shop.admin, engine=engine) as s:
        for _ in range(2):
            record_interaction(session=s, actor=shop.admin, text="hi", conversation_id="c-1")
        record_interaction(session=s, actor=shop.admin, text="hi", conversation_id="c-2")
    with session_scope(shop.admin, engine=engine) as s:
        assert len(s.exec(select(Conversation)).all()) == 2
        assert len(s.exec(select(Example)).all()) == 3


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"text": "  "}, "text is empty"),
        ({"text": "x" * 2001}, "longer than 2000"),
        ({"conversation_id": ""}, "conversation_id"),
    ],
)
def test_bad_interactions_are_refused_and_write_nothing(engine, fields, message):
    shop = make_shop(engine)
    args = {"text": "hello", "conversation_id": "c-1", **fields}
    with pytest.raises(InvalidInput, match=message), session_scope(shop.admin, engine=engine) as s:
        record_interaction(session=s, actor=shop.admin, **args)
    with session_scope(shop.admin, engine=engine) as s:
        assert s.exec(select(Example)).all() == []


@pytest.mark.parametrize("role", [Role.FLORIST, Role.MANAGER])
def test_only_admins_and_the_assistant_record(engine, role):
    shop = make_shop(engine)
    actor = shop.actor(role)
    with pytest.raises(PermissionDenied), session_scope(actor, engine=engine) as s:
        record_interaction(session=s, actor=actor, text="hi", conversation_id="c")


def test_batch_is_scoped_to_the_shop(engine):
    bloom, fern = make_shop(engine, "Bloom"), make_shop(engine, "Fern")
    items = [InteractionIn(text=f"message {i}", conversation_id="same-id") for i in range(5)]
    with session_scope(bloom.admin, engine=engine) as s:
        assert record_interactions(session=s, actor=bloom.admin, items=items) == 5
    with session_scope(fern.admin, engine=engine) as s:
        record_interaction(session=s, actor=fern.admin, text="other", conversation_id="same-id")
        assert [e.text for e in s.exec(select(Example))] == ["other"]


def _cli_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'ingest.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    runner = CliRunner()
    assert runner.invoke(main, ["init-db"]).exit_code == 0
    assert runner.invoke(main, ["tenant", "create", "--name", "Bloom"]).exit_code == 0
    return url


def test_cli_ingest_records_a_jsonl_file(tmp_path, monkeypatch):
    url = _cli_db(tmp_path, monkeypatch)
    lines = [
        {
            "text": "Do you deliver on Sunday?",
            "conversation_id": "c1",
            "customer_id": "a",
            "response": "Yes, until 2pm.",
            "escalated": False,
            "created_at": "2026-05-01T10:00:00+02:00",
        },
        {
            "text": "My roses arrived wilted",
            "conversation_id": "c2",
            "customer_id": "b",
            "response": "I'm sorry!",
            "escalated": True,
        },
    ]
    path = tmp_path / "traffic.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    result = CliRunner().invoke(main, ["ingest", str(path), "--tenant", "bloom", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"recorded": 2}
    with session_scope(None, engine=get_engine(url)) as s:
        first = s.exec(select(Example).order_by(Example.id)).first()
    assert first is not None and first.created_at == datetime(2026, 5, 1, 8, tzinfo=UTC)


def test_cli_ingest_refuses_a_bad_line_and_records_nothing(tmp_path, monkeypatch):
    url = _cli_db(tmp_path, monkeypatch)
    path = tmp_path / "traffic.jsonl"
    path.write_text(
        '{"text": "ok", "conversation_id": "c1"}\n{"text": "", "conversation_id": "c2"}\n'
    )
    result = CliRunner().invoke(main, ["ingest", str(path), "--tenant", "bloom"])
    assert result.exit_code == 1
    assert "Line 2" in result.stderr and "nothing recorded" in result.stderr
    with session_scope(None, engine=get_engine(url)) as s:
        assert s.exec(select(Example)).all() == []


def test_a_retried_interaction_is_recorded_once(engine):
    shop = make_shop(engine)
    at = datetime(2026, 5, 1, 9, 30, tzinfo=UTC)
    args = {
        "text": "Where is my order?",
        "conversation_id": "c-1",
        "response": "On its way.",
        "created_at": at,
    }
    with session_scope(shop.admin, engine=engine) as s:
        first = record_interaction(session=s, actor=shop.admin, **args)
    with session_scope(shop.admin, engine=engine) as s:
        again = record_interaction(session=s, actor=shop.admin, **args)
        later = record_interaction(session=s, actor=shop.admin, **{**args, "created_at": None})
    assert again == first and later != first
    with session_scope(shop.admin, engine=engine) as s:
        assert len(s.exec(select(Example)).all()) == 2


def test_live_conversations_export_and_import_back_adding_nothing(engine):
    import io

    from core.dataset import export_conversations, import_file

    shop = make_shop(engine)
    with session_scope(shop.admin, engine=engine) as s:
        for i in range(3):
            record_interaction(
                session=s,
                actor=shop.admin,
                text=f"question {i}",
                conversation_id="c-1",
                response=f"answer {i}",
            )
    out = io.StringIO()
    with session_scope(shop.admin, engine=engine) as s:
        assert export_conversations(session=s, actor=shop.admin, out=out) == 6
    with session_scope(shop.admin, engine=engine) as s:
        report = import_file(
            session=s,
            actor=shop.admin,
            filename="back.jsonl",
            spec=None,
            stream=io.BytesIO(out.getvalue().encode()),
        )
    assert (report.inserted, report.duplicates) == (0, 6)


def test_once_a_model_serves_live_traffic_gets_its_prediction(engine):
    from core import registry
    from tests.core.test_registry import tiny_model

    shop = make_shop(engine)
    with session_scope(shop.admin, engine=engine) as s:
        registry.store_version(
            session=s, actor=shop.admin, model=tiny_model(), run_id=None, metrics={}
        )
        registry.activate(session=s, actor=shop.admin, version=1)
        rec = record_interaction(
            session=s, actor=shop.admin, text="please refund my order", conversation_id="c-9"
        )
    with session_scope(shop.admin, engine=engine) as s:
        example = s.exec(select(Example).where(Example.id == rec.example_id)).one()
    assert example.detected_intent == "refund_request"
    assert 0 < example.confidence <= 1
    assert example.top_intents[0] == ["refund_request", example.confidence]
    assert len(example.top_intents) == 3
