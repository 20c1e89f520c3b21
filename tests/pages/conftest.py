"""Page tests drive the real app (app.py) with AppTest on a migrated SQLite file."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from streamlit.testing.v1 import AppTest

from core.access import Actor
from db.engine import get_engine
from tests.conftest import copy_sqlite
from tests.factories import Shop, make_shop

APP = Path(__file__).resolve().parents[2] / "app.py"


@pytest.fixture
def app_db(
    migrated_sqlite: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Engine]:
    """A migrated SQLite file that the app under test uses through DATABASE_URL."""
    copy_sqlite(migrated_sqlite, tmp_path / "trellis.db")
    url = f"sqlite:///{tmp_path / 'trellis.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    engine = get_engine(url)
    yield engine
    engine.dispose()


@pytest.fixture
def shops(app_db: Engine) -> tuple[Shop, Shop]:
    return make_shop(app_db, "Bloom & Co."), make_shop(app_db, "Fern & Thistle")


@pytest.fixture
def app() -> Callable[..., AppTest]:
    """A fresh app; pass an actor to start signed in, as the login form would leave it."""

    def start(actor: Actor | None = None) -> AppTest:
        at = AppTest.from_file(str(APP), default_timeout=60)
        if actor is not None:
            at.session_state["actor"] = actor
        return at.run()

    return start
