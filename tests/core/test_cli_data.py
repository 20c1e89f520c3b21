"""`trellis import` / `trellis export` as scripts use them: JSON out, exit codes, nothing
written on refusal, and the shared BANKING77 files importing with no options."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from sqlmodel import select

from db.engine import get_engine, session_scope
from db.models import Example, ImportProfileUsage
from tests.factories import run_cli as run

BANKING77 = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "banking77"


def examples(url: str) -> list[Example]:
    with session_scope(None, engine=get_engine(url)) as s:
        return list(s.exec(select(Example)))


def sample(tmp_path: Path, name: str, rows: int) -> Path:
    """The first `rows` lines of a BANKING77 file (the real text, header `text,intent`)."""
    lines = (BANKING77 / name).read_text(encoding="utf-8").splitlines(keepends=True)
    path = tmp_path / f"sample-{name}"
    path.write_text("".join(lines[: rows + 1]), encoding="utf-8")
    return path


def test_banking77_sample_imports_with_no_options_and_reimports_nothing(cli_shop, tmp_path):
    path = sample(tmp_path, "train.csv", 400)
    first = run("import", str(path), "--tenant", "bloom", "--json")
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout) == {
        "inserted": 400,
        "duplicates": 0,
        "rejected": 0,
        "profile": None,
    }
    again = json.loads(run("import", str(path), "--tenant", "bloom", "--json").stdout)
    assert again == {"inserted": 0, "duplicates": 400, "rejected": 0, "profile": None}
    assert len(examples(cli_shop)) == 400


def test_jsonl_of_text_and_intent_imports_with_no_options(cli_shop, tmp_path):
    path = tmp_path / "examples.jsonl"
    path.write_text(
        '{"text": "Is my card on its way?", "intent": "card_arrival"}\n'
        '{"text": "I lost my card", "intent": "lost_or_stolen_card"}\n'
    )
    result = run("import", str(path), "--tenant", "bloom", "--json")
    assert json.loads(result.stdout)["inserted"] == 2


def test_bad_rows_refuse_the_file_unless_valid_only(cli_shop, tmp_path):
    path = tmp_path / "mixed.csv"
    path.write_text("text,intent\nok one,a\n,a\nok two,b\n")
    refused = run("import", str(path), "--tenant", "bloom", "--json")
    assert refused.exit_code == 1
    assert "line 3" in refused.stderr and "--valid-only" in refused.stderr
    assert examples(cli_shop) == []
    valid = run("import", str(path), "--tenant", "bloom", "--valid-only", "--json")
    assert valid.exit_code == 0
    assert json.loads(valid.stdout) == {
        "inserted": 2,
        "duplicates": 0,
        "rejected": 1,
        "profile": None,
    }


def test_structurally_broken_file_exits_1_and_writes_nothing(cli_shop, tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text('{"text": "fine", "intent": "a"}\n{"text": "broken"\n')
    result = run("import", str(path), "--tenant", "bloom")
    assert result.exit_code == 1
    assert "line 2" in result.stderr.lower()
    assert examples(cli_shop) == []


def test_a_profile_reads_the_file_and_its_use_is_counted(cli_shop, tmp_path):
    path = tmp_path / "shopify.csv"
    path.write_text("Message;Topic\nWhere is my bouquet?;order_status\n")
    from core import profiles
    from core.access import Actor

    with session_scope(Actor.cli(1), engine=get_engine(cli_shop)) as s:
        data = profiles.parse_profile_input(
            name="Shop CSV",
            source="Shop",
            mapping={"text": "Message", "intent": "Topic"},
            delimiter=";",
        )
        profile_id = profiles.create_profile(session=s, actor=Actor.cli(1), data=data).id
    result = run("import", str(path), "--tenant", "bloom", "--profile", "Shop CSV", "--json")
    assert json.loads(result.stdout) == {
        "inserted": 1,
        "duplicates": 0,
        "rejected": 0,
        "profile": "Shop CSV",
    }
    with session_scope(Actor.cli(1), engine=get_engine(cli_shop)) as s:
        usage = s.exec(
            select(ImportProfileUsage).where(ImportProfileUsage.profile_id == profile_id)
        ).one()
    assert (usage.success_count, usage.failure_count) == (1, 0)


def test_export_writes_csv_to_stdout_and_jsonl_to_a_file(cli_shop, tmp_path):
    path = tmp_path / "in.csv"
    path.write_text("text,intent\n=1+2 is my order total?,pricing\nhello,greeting\n")
    run("import", str(path), "--tenant", "bloom")
    out = run("export", "--tenant", "bloom", "--format", "csv")
    assert out.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert {r["text"] for r in rows} == {"'=1+2 is my order total?", "hello"}
    target = tmp_path / "out.jsonl"
    assert (
        run(
            "export",
            "--tenant",
            "bloom",
            "--format",
            "jsonl",
            "--intent",
            "greeting",
            "--out",
            str(target),
        ).exit_code
        == 0
    )
    assert [json.loads(x)["text"] for x in target.read_text().splitlines()] == ["hello"]
    # the exported CSV imports back as the same examples: nothing new
    back = tmp_path / "back.csv"
    back.write_text(out.stdout)
    again = json.loads(run("import", str(back), "--tenant", "bloom", "--json").stdout)
    assert again["inserted"] == 0 and again["duplicates"] == 2


def test_unknown_shop_exits_2(cli_shop, tmp_path):
    path = tmp_path / "in.csv"
    path.write_text("text,intent\nhello,greeting\n")
    assert run("import", str(path), "--tenant", "nope").exit_code == 2


def test_the_full_banking77_files_import_through_the_console_script(tmp_path):
    """The real `trellis` executable on both shared files, as a user would run it."""
    import os
    import shutil
    import subprocess

    trellis = shutil.which("trellis", path=str(Path(__file__).resolve().parents[2] / ".venv/bin"))
    assert trellis, "the trellis console script is not installed in .venv"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'b77.db'}"}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [trellis, *args], env=env, capture_output=True, text=True, timeout=300, check=False
        )

    assert cli("init-db").returncode == 0
    assert cli("tenant", "create", "--name", "Bank").returncode == 0
    counts = {}
    for name in ("train.csv", "test.csv"):
        done = cli("import", str(BANKING77 / name), "--tenant", "bank", "--json")
        assert done.returncode == 0, done.stderr
        counts[name] = json.loads(done.stdout)
    assert counts["train.csv"]["rejected"] == counts["test.csv"]["rejected"] == 0
    assert counts["train.csv"]["inserted"] + counts["train.csv"]["duplicates"] == 10003
    assert counts["test.csv"]["inserted"] + counts["test.csv"]["duplicates"] == 3080


def test_imported_conversation_messages_get_the_serving_models_predictions(cli_shop, tmp_path):
    from core import registry
    from core.access import Actor
    from tests.core.test_registry import tiny_model

    actor = Actor.cli(1)
    with session_scope(actor, engine=get_engine(cli_shop)) as s:
        registry.store_version(session=s, actor=actor, model=tiny_model(), run_id=None, metrics={})
        registry.activate(session=s, actor=actor, version=1)
    path = tmp_path / "log.csv"
    path.write_text(
        "conversation_id,role,text\nc1,customer,please refund my order\nc1,assistant,Of course.\n"
    )
    assert run("import", str(path), "--tenant", "bloom", "--format", "conversations").exit_code == 0
    (example,) = examples(cli_shop)
    assert (example.detected_intent, example.status) == ("refund_request", "pending")
    assert 0 < example.confidence <= 1
