"""Fixtures for command-line tests: a migrated SQLite file with one shop, slug `bloom`."""

from __future__ import annotations

from pathlib import Path

import pytest

from db.engine import get_engine
from tests.conftest import copy_sqlite
from tests.factories import run_cli


@pytest.fixture(scope="session")
def cli_shop_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database made by `trellis init-db` and `trellis tenant create --name Bloom`, once per
    worker; each test gets a copy (the commands themselves are tested in test_cli*.py)."""
    path = tmp_path_factory.mktemp("cli-shop") / "cli.db"
    url = f"sqlite:///{path}"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DATABASE_URL", url)
        assert run_cli("init-db").exit_code == 0
        assert run_cli("tenant", "create", "--name", "Bloom").exit_code == 0
    get_engine(url).dispose()
    return path


@pytest.fixture
def cli_shop(cli_shop_database: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """DATABASE_URL of a fresh database holding the shop 'Bloom' (slug `bloom`)."""
    copy_sqlite(cli_shop_database, tmp_path / "cli.db")
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    return url
