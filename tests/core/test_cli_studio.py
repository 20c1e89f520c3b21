"""`trellis design record`, `trellis prompt render` and `trellis prompt check`: their output,
JSON contract and exit codes (0 done, 2 bad input, nothing written)."""

from __future__ import annotations

import json
from pathlib import Path

from sqlmodel import select

from core.access import Actor
from db.engine import get_engine, session_scope
from db.models import Design, Tenant
from tests.factories import run_cli

SEED_EXAMPLE = (
    "Create a beautiful romantic bouquet with roses and peonies in pink and white colors "
    "for wedding"
)


def design_line(n: int, **fields: object) -> str:
    item = {
        "design_id": f"gen-{n}",
        "prompt": SEED_EXAMPLE,
        "image_url": f"https://img.example/{n}.png",
        "model_type": "dalle3",
        "template": "Basic Bouquet",
        "template_version": 1,
        "style": "Romantic Classic",
        "occasion": "wedding",
        "tokens": 120,
        "cost": 0.04,
    } | fields
    return json.dumps(item)


def write(tmp_path: Path, *lines: str) -> str:
    path = tmp_path / "designs.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def stored_ids(url: str) -> list[str]:
    engine = get_engine(url)
    with session_scope(None, engine=engine) as s:
        tenant = s.exec(select(Tenant).where(Tenant.slug == "bloom")).one()
    actor = Actor.cli(tenant.id or 0)
    with session_scope(actor, engine=engine) as s:
        return [d.design_id for d in s.exec(select(Design).order_by(Design.id)).all()]


# ---------------------------------------------------------------- design record


def test_design_record_counts_new_and_known_designs(cli_shop, tmp_path):
    first = write(tmp_path, design_line(1), design_line(2))
    result = run_cli("design", "record", first, "--tenant", "bloom", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"added": 2, "already_known": 0}
    again = write(tmp_path, design_line(2), design_line(3), "")
    result = run_cli("design", "record", again, "--tenant", "bloom")
    assert result.exit_code == 0
    assert result.stdout.strip() == "Recorded 1 new designs in bloom; 1 were known already."
    assert stored_ids(cli_shop) == ["gen-1", "gen-2", "gen-3"]


def test_a_bad_line_refuses_the_file_with_its_line_number(cli_shop, tmp_path):
    path = write(
        tmp_path,
        design_line(1),
        design_line(2, image_url="javascript:alert(1)"),
        "{broken",
        design_line(4, rating=9),
    )
    result = run_cli("design", "record", path, "--tenant", "bloom")
    assert result.exit_code == 2
    assert "Line 2: image_url" in result.stderr and "Line 3: not valid JSON" in result.stderr
    assert "Line 4: rating: Extra inputs" in result.stderr
    assert stored_ids(cli_shop) == []


def test_an_unknown_template_refuses_the_file(cli_shop, tmp_path):
    path = write(tmp_path, design_line(1), design_line(2, template="Nope"))
    result = run_cli("design", "record", path, "--tenant", "bloom")
    assert result.exit_code == 2
    assert "Line 2: there is no prompt template named 'Nope'" in result.stderr
    assert stored_ids(cli_shop) == []


def test_a_file_that_is_not_utf8_is_refused(cli_shop, tmp_path):
    path = tmp_path / "designs.jsonl"
    path.write_bytes(b'{"design_id": "\xff"}\n')
    result = run_cli("design", "record", str(path), "--tenant", "bloom")
    assert result.exit_code == 2 and "not UTF-8" in result.stderr


# ---------------------------------------------------------------- prompt render


def test_prompt_render_prints_the_seed_example(cli_shop):
    result = run_cli("prompt", "render", "--tenant", "bloom", "--template", "Basic Bouquet")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == SEED_EXAMPLE


def test_prompt_render_takes_values_and_a_style(cli_shop):
    result = run_cli(
        "prompt",
        "render",
        "--tenant",
        "bloom",
        "--template",
        "basic bouquet",
        "--style",
        "Rustic Natural",
        "--set",
        "occasion=a harvest party",
        "--set",
        "flowers=wheat, thistles, asters",
        "--json",
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["prompt"] == (
        "Create a beautiful rustic bouquet with wheat, thistles and asters in cream and "
        "sage green colors for a harvest party"
    )
    assert (payload["template"], payload["version"], payload["style"]) == (
        "Basic Bouquet",
        1,
        "Rustic Natural",
    )
    assert payload["origins"] == {
        "style": "style",
        "flowers": "given",
        "colors": "style",
        "occasion": "given",
    }


def test_prompt_render_asks_for_a_value_nothing_supplies(cli_shop):
    result = run_cli("prompt", "render", "--tenant", "bloom", "--template", "Modern Arrangement")
    assert result.exit_code == 2
    assert "{container}" in result.stderr and "--set container=" in result.stderr
    done = run_cli(
        "prompt",
        "render",
        "--tenant",
        "bloom",
        "--template",
        "Modern Arrangement",
        "--set",
        "container=ceramic bowl",
    )
    assert done.exit_code == 0 and "in a ceramic bowl" in done.stdout


def test_prompt_render_refuses_bad_arguments(cli_shop):
    cases = [
        (["--template", "Nope"], "no prompt template named 'Nope'"),
        (["--template", "Basic Bouquet", "--set", "occasion"], "write NAME=VALUE"),
        (["--template", "Basic Bouquet", "--set", "budget=$50"], "has no variable budget"),
        (["--template", "Basic Bouquet", "--style", "Gothic"], "no style named 'Gothic'"),
        (["--template", "Basic Bouquet", "--version", "5"], "has no version 5"),
    ]
    for args, message in cases:
        result = run_cli("prompt", "render", "--tenant", "bloom", *args)
        assert result.exit_code == 2, args
        assert message in result.stderr, (args, result.stderr)


# ---------------------------------------------------------------- prompt check


def test_prompt_check_accepts_a_valid_template():
    result = run_cli("prompt", "check", "--text", "A {style} bouquet of {flowers} for {occasion}")
    assert result.exit_code == 0 and result.stdout.strip() == "valid"
    result = run_cli("prompt", "check", "--text", "Braces {{like this}}", "--json")
    assert json.loads(result.stdout) == {"valid": True, "problems": []}


def test_prompt_check_refuses_with_the_reason_and_position():
    cases = [
        ("A {style.__class__} bouquet", "Attribute access", "line 1, column 3"),
        ("A {flowers[0]} bouquet", "Indexing", "line 1, column 3"),
        ("Hi {colors!r}", "Conversion", "line 1, column 4"),
        ("Hi {occasion:>99999}", "Format specification", "line 1, column 4"),
        ("Line one\nfor {ocasion}", "Unknown placeholder {ocasion}", "line 2, column 5"),
        ("Open {style", "Unclosed placeholder", "line 1, column 6"),
        ("{0}", "Positional placeholder", "line 1, column 1"),
    ]
    for text, reason, position in cases:
        result = run_cli("prompt", "check", "--text", text)
        assert result.exit_code == 2, text
        assert reason in result.stderr and position in result.stderr, (text, result.stderr)
    result = run_cli("prompt", "check", "--text", "{a.b} and {c}", "--json")
    assert result.exit_code == 2
    problems = json.loads(result.stdout)["problems"]
    assert [(p["line"], p["column"]) for p in problems] == [(1, 1), (1, 11)]
