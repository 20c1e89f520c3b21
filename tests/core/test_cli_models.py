"""`trellis predict` and `trellis models …`: the JSON contract scripts rely on."""

from __future__ import annotations

import json

from core import registry
from core.access import Actor
from db.engine import get_engine, session_scope
from tests.core.test_registry import tiny_model
from tests.factories import run_cli as run


def _store_two(url: str) -> None:
    actor = Actor.cli(1)
    with session_scope(actor, engine=get_engine(url)) as s:
        for _ in range(2):
            registry.store_version(
                session=s,
                actor=actor,
                model=tiny_model(),
                run_id=None,
                metrics={"macro_f1": 0.9, "accuracy": 0.9},
            )


def test_predict_without_a_serving_model_says_what_to_do(cli_shop):
    result = run("predict", "where is my order", "--tenant", "bloom")
    assert result.exit_code == 2 and "trellis train" in result.stderr


def test_activate_predict_list_and_rollback(cli_shop):
    _store_two(cli_shop)
    assert (
        json.loads(run("models", "activate", "1", "--tenant", "bloom", "--json").stdout)["version"]
        == 1
    )
    assert run("models", "activate", "2", "--tenant", "bloom").exit_code == 0
    found = json.loads(
        run("predict", "please refund my order", "--tenant", "bloom", "--json").stdout
    )
    assert set(found) == {"intent", "confidence", "top", "model_version"}
    assert found["intent"] == "refund_request" and found["model_version"] == 2
    assert found["top"][0] == [found["intent"], found["confidence"]]
    listed = json.loads(run("models", "list", "--tenant", "bloom", "--json").stdout)["models"]
    assert [(m["version"], m["active"]) for m in listed] == [(2, True), (1, False)]
    back = json.loads(run("models", "rollback", "--tenant", "bloom", "--json").stdout)
    assert back["version"] == 1 and back["active"]


def test_unknown_version_exits_2(cli_shop):
    assert run("models", "activate", "7", "--tenant", "bloom").exit_code == 2
