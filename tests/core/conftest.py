"""Fixtures for command-line tests: a migrated SQLite file with one shop, slug `bloom`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from core.access import Actor
from core.tenants import get_by_slug
from db.engine import get_engine, make_engine, session_scope
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


@pytest.fixture
def cli_engine(cli_shop: str) -> Iterator[Engine]:
    """An engine on the cli_shop database, for setting up and checking what the CLI did."""
    engine = make_engine(cli_shop)
    yield engine
    engine.dispose()


@pytest.fixture
def admin(cli_engine: Engine) -> Actor:
    """The command line's actor in the shop 'Bloom'."""
    with session_scope(None, engine=cli_engine) as s:
        shop = get_by_slug(session=s, slug="bloom")
        assert shop.id is not None
        return Actor.cli(shop.id, shop.name)
