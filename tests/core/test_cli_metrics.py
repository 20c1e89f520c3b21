"""`trellis metrics`: the JSON contract, whole UTC days with both ends included, text output."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from core.access import Actor
from core.text import text_hash
from db.engine import get_engine, session_scope
from db.models import Correction, Example
from tests.factories import run_cli as run

SHOP = Actor.cli(1)

# (created at, predicted, confidence, reviewed intent, escalated)
ROWS = [
    ("2026-10-31 23:59:59", "refund", 0.1, None, True),  # the day before --since
    ("2026-11-01 00:00:00", "order_status", 0.9, "order_status", False),
    ("2026-11-02 12:00:00", "order_status", 0.7, "refund", False),  # relabelled
    ("2026-11-02 13:00:00", "order_status", 0.6, "refund", True),
    ("2026-11-30 23:59:59", "delivery_time", 0.4, None, True),  # last second of --until
    ("2026-12-01 00:00:00", "refund", 0.1, None, True),  # the day after --until
]


def add(url: str) -> None:
    with session_scope(SHOP, engine=get_engine(url)) as s:
        ids = []
        for i, (created, predicted, confidence, truth, escalated) in enumerate(ROWS):
            example = Example(
                tenant_id=1,
                text=f"message {i}",
                text_hash=text_hash(f"message {i}"),
                detected_intent=predicted,
                confidence=confidence,
                correct_intent=truth,
                reviewed=truth is not None,
                intent_correct=None if truth is None else truth == predicted,
                escalated=escalated,
                created_at=datetime.fromisoformat(created).replace(tzinfo=UTC),
            )
            s.add(example)
            s.flush()
            ids.append(example.id)
        s.add(Correction(tenant_id=1, example_id=ids[2], field="intent", was_mismatch=True))


def metrics(*extra: str):
    return run("metrics", "--tenant", "bloom", "--since", "2026-11-01", "--until", *extra)


def test_metrics_json_counts_whole_days_with_both_ends_included(cli_shop):
    add(cli_shop)
    result = metrics("2026-11-30", "--json")
    assert result.exit_code == 0, result.stderr
    # 4 messages: 2 escalated; confidence (0.9 + 0.7 + 0.6 + 0.4) / 4; 3 judged, 1 right;
    # 1 relabelled.
    assert json.loads(result.stdout) == {
        "total_messages": 4,
        "ai_resolved": 2,
        "escalated": 2,
        "escalation_rate": 0.5,
        "avg_confidence": 0.65,
        "intent_accuracy": 0.3333,
        "correction_rate": 0.25,
        "top_intents": {"refund": 2, "delivery_time": 1, "order_status": 1},
        "top_misclassified": [["refund", "order_status", 2]],
    }


def test_metrics_of_a_shop_without_messages_has_no_rates(cli_shop):
    result = metrics("2026-11-30", "--json")
    assert json.loads(result.stdout) == {
        "total_messages": 0,
        "ai_resolved": 0,
        "escalated": 0,
        "escalation_rate": None,
        "avg_confidence": None,
        "intent_accuracy": None,
        "correction_rate": None,
        "top_intents": {},
        "top_misclassified": [],
    }


def test_metrics_one_day_and_text_output(cli_shop):
    add(cli_shop)
    result = run("metrics", "--tenant", "bloom", "--since", "2026-11-02", "--until", "2026-11-02")
    assert result.exit_code == 0, result.stderr
    assert "2026-11-02 to 2026-11-02 (UTC, both days included)" in result.stdout
    assert "Messages          2" in result.stdout
    assert "Escalated         1 (50.0%)" in result.stdout
    assert "Intent accuracy   0.0%" in result.stdout
    assert "2  refund -> order_status" in result.stdout


def test_metrics_refuses_an_end_before_the_start(cli_shop):
    result = metrics("2026-10-31")
    assert result.exit_code == 2 and "--until" in result.stderr


def test_metrics_help_says_the_end_day_is_included():
    result = run("metrics", "--help")
    assert "included" in result.stdout
