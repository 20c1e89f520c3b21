"""The `trellis` command line: its JSON contract, exit codes and clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlmodel import select

from core.cli import main
from db.engine import get_engine, session_scope
from db.models import User


@pytest.fixture
def db_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    return url


def run(*args: str, stdin: str | None = None):
    return CliRunner().invoke(main, list(args), input=stdin, catch_exceptions=False)


def test_help_lists_the_commands():
    result = run("--help")
    assert result.exit_code == 0
    for command in ("init-db", "demo", "tenant", "user"):
        assert command in result.output


def test_tenant_and_user_create_print_the_contract_json(db_url):
    assert run("init-db").exit_code == 0
    made = run("tenant", "create", "--name", "Bloom & Co.", "--json")
    assert made.exit_code == 0
    shop = json.loads(made.stdout)
    assert shop == {"slug": "bloom-co", "id": shop["id"]} and isinstance(shop["id"], int)
    user = run(
        "user",
        "create",
        "--tenant",
        "bloom-co",
        "--username",
        "ada",
        "--role",
        "admin",
        "--password-stdin",
        "--json",
        stdin="a-long-password\n",
    )
    assert user.exit_code == 0, user.output
    assert json.loads(user.stdout) == {"username": "ada", "role": "admin", "tenant": "bloom-co"}
    with session_scope(None, engine=get_engine(db_url)) as s:
        stored = s.exec(select(User).where(User.username == "ada")).one()
    assert (
        stored.password_hash.startswith("$argon2") and "a-long-password" not in stored.password_hash
    )


def test_unknown_role_and_duplicate_username_exit_2_and_write_nothing(db_url):
    run("init-db")
    run("tenant", "create", "--name", "Bloom")
    bad_role = run(
        "user",
        "create",
        "--tenant",
        "bloom",
        "--username",
        "ada",
        "--role",
        "owner",
        "--password-stdin",
        stdin="a-long-password\n",
    )
    assert bad_role.exit_code == 2
    ok = run(
        "user",
        "create",
        "--tenant",
        "bloom",
        "--username",
        "ada",
        "--role",
        "admin",
        "--password-stdin",
        stdin="a-long-password\n",
    )
    assert ok.exit_code == 0
    dup = run(
        "user",
        "create",
        "--tenant",
        "bloom",
        "--username",
        "ada",
        "--role",
        "florist",
        "--password-stdin",
        stdin="another-password\n",
    )
    assert dup.exit_code == 2
    assert "taken" in dup.stderr
    with session_scope(None, engine=get_engine(db_url)) as s:
        assert [(u.username, u.role) for u in s.exec(select(User))] == [("ada", "admin")]
    unknown_shop = run(
        "user",
        "create",
        "--tenant",
        "nope",
        "--username",
        "bob",
        "--role",
        "admin",
        "--password-stdin",
        stdin="a-long-password\n",
    )
    assert unknown_shop.exit_code == 2 and "nope" in unknown_shop.stderr


def test_schema_behind_says_run_init_db(db_url):
    result = run("tenant", "create", "--name", "Bloom")
    assert result.exit_code == 1
    assert "trellis init-db" in result.stderr


def test_unreachable_database_is_one_clear_line_and_exit_1(tmp_path):
    env = {"DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none", "PATH": "/usr/bin"}
    proc = subprocess.run(
        [sys.executable, "-m", "core.cli", "tenant", "create", "--name", "X"],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        timeout=60,
    )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "DATABASE_URL" in lines[0] and "Traceback" not in proc.stderr
