"""`trellis template create` and `trellis suggest`: output, the JSON contract and exit codes
(0 done, 2 bad input and nothing written)."""

from __future__ import annotations

import json
import re

from sqlmodel import select

from core import responses
from core.access import Actor
from db.engine import get_engine, session_scope
from db.models import Tenant
from tests.factories import run_cli


def bloom(url: str) -> Actor:
    with session_scope(None, engine=get_engine(url)) as s:
        tenant = s.exec(select(Tenant).where(Tenant.slug == "bloom")).one()
    return Actor.cli(tenant.id or 0)


def response_names(url: str) -> list[str]:
    from core import templates

    actor = bloom(url)
    with session_scope(actor, engine=get_engine(url)) as s:
        found = templates.list_templates(session=s, actor=actor, kind="response")
    return [t.name for t in found]


CREATE = (
    "template",
    "create",
    "--tenant",
    "bloom",
    "--name",
    "Late delivery",
    "--content",
    "Sorry {customer_name}, your flowers are {minutes} minutes late.",
    "--intent",
    "delivery_time",
    "--trigger",
    "running late",
    "--trigger",
    "delivery is late",
)


def test_template_create_makes_a_production_response_template(cli_shop):
    typed = '[{"name": "minutes", "type": "number", "default": 15}]'
    result = run_cli(*CREATE, "--variables", typed, "--category", "Delivery", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload == {
        "id": payload["id"],
        "name": "Late delivery",
        "category": "Delivery",
        "version": 1,
        "production": 1,
        "variables": ["minutes", "customer_name"],
        "triggers": {"phrases": ["running late", "delivery is late"], "intents": ["delivery_time"]},
    }
    actor = bloom(cli_shop)
    with session_scope(actor, engine=get_engine(cli_shop)) as s:
        done = responses.render_response(
            session=s, actor=actor, template_id=payload["id"], values={"customer_name": "Ada"}
        )
    assert done.text == "Sorry Ada, your flowers are 15 minutes late."


def test_template_create_as_a_draft_and_in_plain_text(cli_shop):
    result = run_cli(*CREATE, "--draft")
    assert result.exit_code == 0, result.output
    assert (
        result.stdout.strip()
        == "Created the response template 'Late delivery': version 1, a draft."
    )


def test_template_create_refuses_bad_input_and_writes_nothing(cli_shop):
    before = response_names(cli_shop)
    bad = [
        (("--content", "Hi {who.name}"), "Attribute access in placeholder {who.name} at line 1"),
        (("--variables", "[{"), "--variables is not valid JSON"),
        (("--variables", '[{"name": "minutes", "type": "select"}]'), "needs at least one option"),
        (("--name", "Order Status Inquiry"), "already has a response template named"),
    ]
    for change, message in bad:
        args = list(CREATE)
        for flag, value in zip(change[::2], change[1::2], strict=True):
            if flag in args:
                args[args.index(flag) + 1] = value
            else:
                args += [flag, value]
        result = run_cli(*args, "--json")
        assert result.exit_code == 2, (change, result.output)
        assert message in result.stderr and result.stdout == ""
    assert response_names(cli_shop) == before


def test_template_create_needs_an_intent(cli_shop):
    args = [a for a in CREATE if a not in ("--intent", "delivery_time")]
    result = run_cli(*args)
    assert result.exit_code == 2 and "Missing option '--intent'" in result.output


def test_suggest_prints_the_json_contract(cli_shop):
    assert run_cli(*CREATE).exit_code == 0
    result = run_cli("suggest", "Hi, my delivery is late!", "--tenant", "bloom", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert list(payload) == ["suggestions"]
    first = payload["suggestions"][0]
    assert list(first) == ["template", "score", "reason"]
    assert first["template"] == "Late delivery"
    assert first["reason"].startswith("trigger 'delivery is late'; text similarity ")
    assert 0 < first["score"] <= 1
    assert "no model serves in bloom yet" in result.stderr


def test_suggest_top_and_plain_text(cli_shop):
    assert run_cli(*CREATE).exit_code == 0
    result = run_cli("suggest", "where is my order, it is running late", "--tenant", "bloom")
    assert result.exit_code == 0
    lines = result.stdout.strip().splitlines()
    assert [line.split("  ")[1] for line in lines[:2]] == ["Order Status Inquiry", "Late delivery"]
    assert re.match(r"0\.\d\d  Order Status Inquiry  \(trigger 'where is my order'; ", lines[0])
    one = run_cli("suggest", "where is my order", "--tenant", "bloom", "--top", "1", "--json")
    assert len(json.loads(one.stdout)["suggestions"]) == 1
    nothing = run_cli("suggest", "zzz", "--tenant", "bloom")
    assert nothing.stdout.strip() == "No response template fits this message."


def test_suggest_refuses_an_unknown_shop_and_a_bad_top(cli_shop):
    unknown = run_cli("suggest", "hello", "--tenant", "nope")
    assert unknown.exit_code == 2 and "No shop with the slug 'nope'" in unknown.stderr
    assert run_cli("suggest", "hello", "--tenant", "bloom", "--top", "0").exit_code == 2
