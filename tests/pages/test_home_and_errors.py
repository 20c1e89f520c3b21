"""Home's empty state, and the app's error pages for a database it cannot use."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from tests.factories import add_messages
from tests.pages.conftest import APP


def test_empty_shop_home_says_what_to_do(app, shops):
    bloom, _ = shops
    at = app(bloom.admin)
    assert not at.exception
    assert "No customer messages yet" in at.info[0].value
    assert not at.metric


def test_home_numbers_come_from_the_shop(app, shops, app_db):
    bloom, fern = shops
    add_messages(app_db, bloom, 3, escalated=1)
    add_messages(app_db, fern, 5, escalated=5)
    at = app(bloom.admin)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Customer messages, last 7 days"] == "3"
    assert metrics["Escalated to a person"] == "33%"
    assert metrics["Messages awaiting review"] == "3"


def test_unreachable_database_shows_an_error_page_without_traceback(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    assert not at.exception
    assert "DATABASE_URL" in at.error[0].value
    assert not at.text_input  # no login form on a database it cannot use


def test_database_behind_the_code_says_run_init_db(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    assert not at.exception
    assert "trellis init-db" in at.error[0].value
