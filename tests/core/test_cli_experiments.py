"""`trellis template use record` and `trellis experiment status` on a migrated SQLite file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from core import experiments
from core.access import Actor
from db.engine import session_scope
from db.models import DesignTemplate, DesignTemplateVersion, TemplateKind
from tests.core.template_helpers import customers
from tests.factories import run_cli


@pytest.fixture
def test_id(cli_engine: Engine, admin: Actor) -> int:
    """A running A/B test of 'Delivery times': version 1 against 2, half the customers each."""
    with session_scope(admin, engine=cli_engine) as s:
        template = DesignTemplate(
            tenant_id=admin.tenant_id,
            kind=TemplateKind.RESPONSE.value,
            name="Delivery times",
            latest_number=2,
            production_number=1,
        )
        s.add(template)
        s.flush()
        assert template.id is not None
        for number in (1, 2):
            s.add(
                DesignTemplateVersion(
                    tenant_id=admin.tenant_id,
                    template_id=template.id,
                    number=number,
                    content={"text": f"wording {number}"},
                )
            )
        s.flush()
        return experiments.start_experiment(
            session=s, actor=admin, template_id=template.id, version_b=2
        ).id


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def uses(test_id: int, variant: str, version: int, outcomes: list[str]) -> list[dict[str, Any]]:
    people = customers(test_id, 0.5, variant, len(outcomes))
    return [
        {
            "use_id": f"{variant}-{n}",
            "template": "Delivery times",
            "version": version,
            "conversation_id": f"conv-{c}",
            "customer_id": c,
            "outcome": outcome,
        }
        for n, (c, outcome) in enumerate(zip(people, outcomes, strict=True))
    ]


def test_record_is_idempotent_and_status_shows_the_running_test(tmp_path, test_id):
    rows = uses(test_id, "A", 1, ["resolved"] * 30 + ["escalated"] * 10)
    rows += uses(test_id, "B", 2, ["resolved"] * 36 + ["escalated"] * 4)
    rows.append({"use_id": "A-0", "rating": 5})
    path = write_jsonl(tmp_path / "uses.jsonl", rows)
    first = run_cli("template", "use", "record", str(path), "--tenant", "bloom", "--json")
    assert first.exit_code == 0, first.output
    assert json.loads(first.output) == {
        "added": 80,
        "already_known": 0,
        "outcomes": 81,
        "stopped": [],
    }
    again = run_cli("template", "use", "record", str(path), "--tenant", "bloom", "--json")
    assert json.loads(again.output) == {
        "added": 0,
        "already_known": 80,
        "outcomes": 0,
        "stopped": [],
    }
    status = run_cli("experiment", "status", "--tenant", "bloom", "--json")
    assert status.exit_code == 0, status.output
    (found,) = json.loads(status.output)["experiments"]
    assert (found["id"], found["template"], found["status"]) == (
        test_id,
        "Delivery times",
        "running",
    )
    assert (found["a"]["outcomes"], found["a"]["resolved"], found["a"]["avg_rating"]) == (
        40,
        30,
        5.0,
    )
    assert (found["b"]["resolution_rate"], found["b"]["escalation_rate"]) == (0.9, 0.1)
    assert found["test"]["method"] == "z-test" and found["test"]["difference"] == 0.15
    assert found["guardrail"] == {
        "checked": True,
        "method": "z-test",
        "p_value": found["guardrail"]["p_value"],
        "tripped": False,
    }
    text = run_cli("experiment", "status", "--tenant", "bloom")
    assert f"#{test_id} Delivery times: A = version 1, B = version 2" in text.output
    assert "B - A: +15.0%" in text.output


def test_a_bad_line_refuses_the_file_with_exit_2(tmp_path, test_id):
    rows = uses(test_id, "A", 1, ["resolved"])
    rows.append(
        {
            "use_id": "x",
            "template": "Nope",
            "version": 1,
            "conversation_id": "c",
            "customer_id": "d",
        }
    )
    path = write_jsonl(tmp_path / "uses.jsonl", rows)
    refused = run_cli("template", "use", "record", str(path), "--tenant", "bloom")
    assert refused.exit_code == 2
    assert "Line 2: there is no response template named 'Nope'" in refused.output
    status = run_cli("experiment", "status", "--tenant", "bloom", "--json")
    assert json.loads(status.output)["experiments"][0]["a"]["uses"] == 0


def test_the_guardrail_stop_is_reported_and_status_lists_no_running_test(tmp_path, test_id):
    rows = uses(test_id, "A", 1, ["resolved"] * 27 + ["escalated"] * 3)
    rows += uses(test_id, "B", 2, ["resolved"] * 12 + ["escalated"] * 18)
    path = write_jsonl(tmp_path / "uses.jsonl", rows)
    result = run_cli("template", "use", "record", str(path), "--tenant", "bloom")
    assert result.exit_code == 0
    assert f"The guardrail stopped A/B test {test_id}." in result.output
    status = run_cli("experiment", "status", "--tenant", "bloom")
    assert status.output.strip() == "No A/B test is running."
