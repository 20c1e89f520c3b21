"""Home's empty state, each role's numbers and alert banners, and the app's error pages for a
database it cannot use."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import select
from streamlit.testing.v1 import AppTest

from core.access import Role
from db.engine import session_scope
from db.models import AlertEvent
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


def test_manager_home_shows_the_headline_against_the_week_before(app, shops, app_db):
    bloom, fern = shops
    add_messages(app_db, bloom, 4, escalated=1)
    add_messages(app_db, fern, 5, escalated=5)
    at = app(bloom.manager)
    assert not at.exception
    metrics = {m.label: (m.value, m.delta) for m in at.metric}
    assert metrics["Messages"] == ("4", "+4")
    assert metrics["Escalation rate"] == ("25.0%", "")  # no messages the week before
    assert metrics["Intent accuracy"] == ("—", "")
    assert "Messages awaiting review" not in metrics  # the admin's figures stay the admin's
    assert not at.warning  # 4 messages are too few to judge: no alert


@pytest.mark.parametrize("role", [Role.MANAGER, Role.ADMIN], ids=lambda r: r.value)
def test_home_raises_and_shows_an_alert_when_a_threshold_is_crossed(app, shops, app_db, role):
    bloom, fern = shops
    add_messages(app_db, bloom, 20, escalated=10)  # 50 % escalated, over the 30 % default
    at = app(bloom.actor(role))
    assert not at.exception
    [banner] = at.warning
    assert "Escalation rate" in banner.value and "50%" in banner.value
    assert "What to do" in banner.value and "Knowledge gaps" in banner.value
    at.run()  # opening Home again keeps one alert
    with session_scope(bloom.admin, engine=app_db) as s:
        assert [a.kind for a in s.exec(select(AlertEvent)).all()] == ["escalation_rate"]
    assert not app(fern.actor(role)).warning


def test_florist_home_shows_no_alerts(app, shops, app_db):
    bloom, _ = shops
    add_messages(app_db, bloom, 20, escalated=10)
    at = app(bloom.florist)
    assert not at.exception
    assert not at.warning
    with session_scope(bloom.admin, engine=app_db) as s:
        assert s.exec(select(AlertEvent)).all() == []  # a florist's visit checks nothing


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
