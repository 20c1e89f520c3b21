"""Login: one generic failure, lockout after repeated failures, unlock after the wait."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from core.auth import GENERIC_FAILURE, authenticate
from core.config import Settings
from core.errors import AccountLocked, LoginFailed
from db.engine import login_scope, session_scope
from db.models import User, utcnow
from tests.factories import TEST_PASSWORD, make_shop


def _login(engine, username, password, now=None):
    with login_scope(engine=engine) as s:
        return authenticate(
            session=s, username=username, password=password, now=now, settings=Settings()
        )


def test_right_password_gives_the_actor_of_the_right_shop(engine):
    make_shop(engine, "Other shop")
    shop = make_shop(engine)
    actor = _login(engine, shop.florist.username.upper(), TEST_PASSWORD)
    assert (actor.tenant_id, actor.role, actor.tenant_name) == (
        shop.tenant_id,
        shop.florist.role,
        "Bloom & Co.",
    )


def test_unknown_user_and_wrong_password_fail_alike(engine):
    shop = make_shop(engine)
    with pytest.raises(LoginFailed) as unknown:
        _login(engine, "nobody", TEST_PASSWORD)
    with pytest.raises(LoginFailed) as wrong:
        _login(engine, shop.admin.username, "wrong")
    assert str(unknown.value) == str(wrong.value) == GENERIC_FAILURE


def test_fifth_failure_locks_and_lock_lifts_after_five_minutes(engine):
    shop = make_shop(engine)
    now = utcnow()
    for _ in range(4):
        with pytest.raises(LoginFailed):
            _login(engine, shop.admin.username, "wrong", now)
    with pytest.raises(AccountLocked, match="5 minutes"):
        _login(engine, shop.admin.username, "wrong", now)
    with pytest.raises(AccountLocked):
        _login(engine, shop.admin.username, TEST_PASSWORD, now + timedelta(minutes=4))
    actor = _login(engine, shop.admin.username, TEST_PASSWORD, now + timedelta(minutes=6))
    assert actor.user_id == shop.admin.user_id
    with session_scope(shop.admin, engine=engine) as s:
        user = s.exec(select(User).where(User.id == shop.admin.user_id)).one()
        assert (user.failed_logins, user.locked_until) == (0, None)


def test_a_success_resets_the_failure_count(engine):
    shop = make_shop(engine)
    for _ in range(4):
        with pytest.raises(LoginFailed):
            _login(engine, shop.admin.username, "wrong")
    _login(engine, shop.admin.username, TEST_PASSWORD)
    for _ in range(4):
        with pytest.raises(LoginFailed):
            _login(engine, shop.admin.username, "wrong")


def test_logins_log_no_username_or_password(engine, caplog):
    import logging

    shop = make_shop(engine)
    with caplog.at_level(logging.DEBUG):
        _login(engine, shop.admin.username, TEST_PASSWORD)
        with pytest.raises(LoginFailed):
            _login(engine, shop.admin.username, "wrong-secret-guess")
    assert "login ok" in caplog.text
    for secret in (TEST_PASSWORD, "wrong-secret-guess", shop.admin.username):
        assert secret not in caplog.text
