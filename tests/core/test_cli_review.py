"""`trellis review next|correct|undo`: the JSON contract, stale refusal, foreground retrain."""

from __future__ import annotations

import json

import pytest

from core import review_groups
from core.access import Actor
from core.text import text_hash
from db.engine import get_engine, session_scope
from db.models import Example, Intent
from tests.factories import run_cli as run

SHOP = Actor.cli(1)


def add(url: str, text: str, *, confidence: float = 0.3, correct: str | None = None) -> int:
    with session_scope(SHOP, engine=get_engine(url)) as s:
        example = Example(
            tenant_id=1,
            text=text,
            text_hash=text_hash(text),
            detected_intent="order_status",
            confidence=confidence,
            top_intents=[["order_status", confidence], ["delivery_time", 0.1]],
            margin=confidence - 0.1,
            reviewed=correct is not None,
            status="reviewed" if correct else "pending",
            correct_intent=correct,
        )
        s.add(example)
        s.flush()
        # Written directly: keep the queue's groups as the product's writers do.
        review_groups.refresh(session=s, actor=SHOP, text_hashes={example.text_hash})
        assert example.id is not None
        return example.id


def intents(url: str, *names: str) -> None:
    with session_scope(SHOP, engine=get_engine(url)) as s:
        for name in names:
            s.add(Intent(tenant_id=1, name=name))


def test_next_correct_and_undo(cli_shop):
    intents(cli_shop, "order_status", "delivery_time")
    assert json.loads(run("review", "next", "--tenant", "bloom", "--json").stdout) == {
        "item": None,
        "waiting": {
            "groups": 0,
            "messages": 0,
            "by_reason": {"low_confidence": 0, "low_margin": 0, "escalated": 0, "label_issue": 0},
        },
    }
    add(cli_shop, "where is my order 12", confidence=0.2)
    first = add(cli_shop, "Where is my order #13?", confidence=0.4)  # the group's newest
    add(cli_shop, "when do you deliver", confidence=0.5)
    shown = json.loads(run("review", "next", "--tenant", "bloom", "--json").stdout)
    item = shown["item"]
    assert item["example_id"] == first and item["group_size"] == 2
    assert item["reasons"] == ["low_confidence"] and item["top"][0] == ["order_status", 0.4]
    assert shown["waiting"]["groups"] == 2 and shown["waiting"]["messages"] == 3
    done = json.loads(
        run(
            "review",
            "correct",
            str(first),
            "--tenant",
            "bloom",
            "--intent",
            "delivery_time",
            "--version",
            "1",
            "--group",
            "--json",
        ).stdout
    )
    assert done["intent"] == "delivery_time" and done["changed"] == 2 and done["version"] == 2
    stale = run("review", "correct", str(first), "--tenant", "bloom", "--version", "1")
    assert stale.exit_code == 2 and "changed" in stale.stderr
    undone = run("review", "undo", done["batch_id"], "--tenant", "bloom", "--json")
    assert json.loads(undone.stdout) == {"restored": 2}
    assert (
        json.loads(run("review", "next", "--tenant", "bloom", "--json").stdout)["item"][
            "example_id"
        ]
        == first
    )


def test_unknown_intent_and_example_exit_2(cli_shop):
    eid = add(cli_shop, "hello", confidence=0.2)
    unknown = run("review", "correct", str(eid), "--tenant", "bloom", "--intent", "nope")
    assert unknown.exit_code == 2 and "--create-intent" not in unknown.stdout
    assert "no intent 'nope'" in unknown.stderr
    created = run(
        "review",
        "correct",
        str(eid),
        "--tenant",
        "bloom",
        "--intent",
        "nope",
        "--create-intent",
        "--json",
    )
    assert json.loads(created.stdout)["intent"] == "nope"
    assert run("review", "correct", "999", "--tenant", "bloom").exit_code == 2


def test_enough_reviews_retrain_in_the_foreground(cli_shop, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TRELLIS_AUTO_RETRAIN_AFTER", "2")
    for n in range(15):
        add(cli_shop, f"where is my parcel number {n} now", correct="order_status")
        add(cli_shop, f"what time will the van come on day {n}", correct="delivery_time")
    a = add(cli_shop, "is my order shipped", confidence=0.2)
    b = add(cli_shop, "delivery slot tomorrow?", confidence=0.2)
    run("review", "correct", str(a), "--tenant", "bloom")
    done = json.loads(
        run(
            "review", "correct", str(b), "--tenant", "bloom", "--intent", "delivery_time", "--json"
        ).stdout
    )
    assert done["retrain_run_id"] is not None
    assert done["retrain_status"] == "completed" and done["retrain_deployed"] is True


def test_label_issues_contract(cli_shop):
    for n in range(20):
        add(cli_shop, f"where is my parcel number {n} now", correct="order_status")
        add(cli_shop, f"what time will the van come on day {n}", correct="delivery_time")
    wrong = add(cli_shop, "where is my parcel number 99 now", correct="delivery_time")
    listed = json.loads(run("label-issues", "--tenant", "bloom", "--json").stdout)
    assert listed == {"issues": []}  # nothing detected yet
    found = json.loads(
        run("label-issues", "--tenant", "bloom", "--detect", "--limit", "5", "--json").stdout
    )["issues"]
    assert found and set(found[0]) == {
        "example_id",
        "text",
        "given_intent",
        "suggested_intent",
        "score",
    }
    assert found[0]["example_id"] == wrong
    assert (found[0]["given_intent"], found[0]["suggested_intent"]) == (
        "delivery_time",
        "order_status",
    )
    assert len(found) <= 5 and [f["score"] for f in found] == sorted(
        (f["score"] for f in found), reverse=True
    )


def test_gaps_contract(cli_shop):
    assert json.loads(run("gaps", "--tenant", "bloom", "--json").stdout) == {"gaps": []}
    for n, topic in enumerate(["same day delivery to the hospital"] * 6):
        add(cli_shop, f"can you do {topic} today, ward {n}", confidence=0.2)
    gaps = json.loads(run("gaps", "--tenant", "bloom", "--json").stdout)["gaps"]
    assert len(gaps) == 1
    assert {"size", "severity", "examples", "nearest_intents"} <= set(gaps[0])
    assert gaps[0]["size"] == 6 and all("hospital" in t for t in gaps[0]["examples"])
