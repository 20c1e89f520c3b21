"""Logging in and out through the real login form; lockout after repeated failures."""

from __future__ import annotations

from sqlmodel import select

from core.auth import GENERIC_FAILURE
from db.engine import session_scope
from db.models import AuditEvent, User
from tests.factories import TEST_PASSWORD


def _log_in(at, username, password):
    at.text_input[0].input(username)
    at.text_input[1].input(password)
    at.button[0].click()
    return at.run()


def test_good_credentials_sign_in_and_show_home(app, shops):
    bloom, _ = shops
    at = _log_in(app(), bloom.admin.username, TEST_PASSWORD)
    assert not at.exception
    assert at.session_state["actor"].username == bloom.admin.username
    assert at.title[0].value == "Home"
    assert "Bloom & Co." in at.caption[0].value


def test_wrong_password_and_unknown_user_get_the_same_message(app, shops):
    bloom, _ = shops
    wrong = _log_in(app(), bloom.admin.username, "not-the-password")
    unknown = _log_in(app(), "nobody.here", "not-the-password")
    assert [e.value for e in wrong.error] == [GENERIC_FAILURE]
    assert [e.value for e in unknown.error] == [GENERIC_FAILURE]
    assert "actor" not in wrong.session_state


def test_five_failures_lock_the_account_even_for_the_right_password(app, shops, app_db):
    bloom, _ = shops
    at = app()
    for _ in range(4):
        at = _log_in(at, bloom.florist.username, "wrong-password")
        assert at.error[0].value == GENERIC_FAILURE
    at = _log_in(at, bloom.florist.username, "wrong-password")
    assert "locked for 5 minutes" in at.error[0].value
    at = _log_in(at, bloom.florist.username, TEST_PASSWORD)
    assert "locked" in at.error[0].value
    assert "actor" not in at.session_state
    with session_scope(bloom.admin, engine=app_db) as s:
        user = s.exec(select(User).where(User.username == bloom.florist.username)).one()
        assert user.locked_until is not None
        assert s.exec(select(AuditEvent).where(AuditEvent.action == "user.locked")).one()


def test_deactivated_user_cannot_log_in(app, shops, app_db):
    bloom, _ = shops
    with session_scope(bloom.admin, engine=app_db) as s:
        user = s.exec(select(User).where(User.username == bloom.manager.username)).one()
        user.is_active = False
        s.add(user)
    at = _log_in(app(), bloom.manager.username, TEST_PASSWORD)
    assert at.error[0].value == GENERIC_FAILURE


def test_logout_returns_to_the_login_form(app, shops):
    bloom, _ = shops
    at = app(bloom.manager)
    at.sidebar.button(key="logout").click()
    at = at.run()
    assert "actor" not in at.session_state
    assert at.button[0].label == "Log in"


def test_deactivation_signs_out_an_open_session_at_the_next_click(app, shops, app_db):
    bloom, _ = shops
    at = app(bloom.florist)
    assert at.title[0].value == "Home"
    with session_scope(bloom.admin, engine=app_db) as s:
        user = s.exec(select(User).where(User.id == bloom.florist.user_id)).one()
        user.is_active = False
        s.add(user)
    at = at.run()
    assert "actor" not in at.session_state
    assert "deactivated" in at.warning[0].value
    assert [b.label for b in at.button] == ["Log in"]


def test_a_role_change_applies_to_an_open_session(app, shops, app_db):
    bloom, _ = shops
    at = app(bloom.florist)
    at.switch_page("pages/settings.py")
    assert "Not allowed" in at.run().error[0].value
    with session_scope(bloom.admin, engine=app_db) as s:
        user = s.exec(select(User).where(User.id == bloom.florist.user_id)).one()
        user.role = "admin"
        s.add(user)
    at = at.run()
    assert not at.error
    assert at.session_state["actor"].role.value == "admin"
    assert [t.label for t in at.tabs] == ["Users", "Review", "Alerts", "Memory", "Audit log"]
