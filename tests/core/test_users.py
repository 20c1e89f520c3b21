"""Users of a shop: creation, roles, deactivation, password reset, all audited and scoped."""

from __future__ import annotations

import pytest
from sqlmodel import select

from core import users
from core.access import Role
from core.errors import InvalidInput, NotFound, PermissionDenied, StaleEdit
from db.engine import session_scope
from db.models import AuditEvent
from tests.factories import make_shop


def _create(engine, actor, username="rosa", role=Role.FLORIST):
    data = users.parse_user_create(username=username, role=role.value, password="long-enough-pw")
    with session_scope(actor, engine=engine) as s:
        return users.create_user(session=s, actor=actor, data=data)


def test_admin_creates_user_and_it_is_audited(engine):
    shop = make_shop(engine)
    created = _create(engine, shop.admin)
    assert created.role is Role.FLORIST and created.is_active
    with session_scope(shop.admin, engine=engine) as s:
        events = s.exec(select(AuditEvent).where(AuditEvent.action == "user.create")).all()
    assert [e.entity_id for e in events] == ["rosa"]
    assert "password" not in str(events[0].after)


@pytest.mark.parametrize("role", [Role.FLORIST, Role.MANAGER])
def test_non_admins_cannot_manage_users(engine, role):
    shop = make_shop(engine)
    with pytest.raises(PermissionDenied):
        _create(engine, shop.actor(role))
    with session_scope(shop.actor(role), engine=engine) as s, pytest.raises(PermissionDenied):
        users.list_users(session=s, actor=shop.actor(role))


def test_duplicate_username_across_shops_is_refused_and_writes_nothing(engine):
    bloom, fern = make_shop(engine, "Bloom"), make_shop(engine, "Fern")
    _create(engine, bloom.admin, "rosa")
    with pytest.raises(InvalidInput, match="taken"):
        _create(engine, fern.admin, "rosa")
    with session_scope(fern.admin, engine=engine) as s:
        names = [u.username for u in users.list_users(session=s, actor=fern.admin)]
        assert "rosa" not in names
        assert s.exec(select(AuditEvent).where(AuditEvent.action == "user.create")).all() == []


def test_bad_username_and_short_password_are_refused():
    with pytest.raises(InvalidInput, match="username"):
        users.parse_user_create(username="A b", role="admin", password="long-enough-pw")
    with pytest.raises(InvalidInput, match="role"):
        users.parse_user_create(username="abc", role="owner", password="long-enough-pw")


def test_short_password_is_refused(engine):
    shop = make_shop(engine)
    data = users.parse_user_create(username="shorty", role="florist", password="short")
    with session_scope(shop.admin, engine=engine) as s, pytest.raises(InvalidInput, match="10"):
        users.create_user(session=s, actor=shop.admin, data=data)


def test_change_role_with_stale_version_is_refused(engine):
    shop = make_shop(engine)
    rosa = _create(engine, shop.admin)
    with session_scope(shop.admin, engine=engine) as s:
        users.change_role(
            session=s,
            actor=shop.admin,
            user_id=rosa.id,
            role=Role.MANAGER,
            expected_version=rosa.version,
            reason="covering the desk",
        )
    with session_scope(shop.admin, engine=engine) as s, pytest.raises(StaleEdit):
        users.change_role(
            session=s,
            actor=shop.admin,
            user_id=rosa.id,
            role=Role.ADMIN,
            expected_version=rosa.version,
        )
    with session_scope(shop.admin, engine=engine) as s:
        event = s.exec(select(AuditEvent).where(AuditEvent.action == "user.role")).one()
    assert (event.before, event.after, event.reason) == (
        {"role": "florist"},
        {"role": "manager"},
        "covering the desk",
    )


def test_last_active_admin_cannot_be_demoted_or_deactivated(engine):
    shop = make_shop(engine)
    with session_scope(shop.admin, engine=engine) as s:
        me = next(u for u in users.list_users(session=s, actor=shop.admin) if u.role is Role.ADMIN)
    with session_scope(shop.admin, engine=engine) as s, pytest.raises(InvalidInput, match="last"):
        users.change_role(
            session=s,
            actor=shop.admin,
            user_id=me.id,
            role=Role.FLORIST,
            expected_version=me.version,
        )
    with session_scope(shop.admin, engine=engine) as s, pytest.raises(InvalidInput):
        users.set_active(
            session=s, actor=shop.admin, user_id=me.id, active=False, expected_version=me.version
        )


def test_admin_cannot_touch_a_user_of_another_shop(engine):
    bloom, fern = make_shop(engine, "Bloom"), make_shop(engine, "Fern")
    with session_scope(fern.admin, engine=engine) as s, pytest.raises(NotFound):
        users.set_active(
            session=s,
            actor=fern.admin,
            user_id=bloom.florist.user_id,
            active=False,
            expected_version=1,
        )


def test_deactivate_and_reset_password(engine):
    shop = make_shop(engine)
    rosa = _create(engine, shop.admin)
    with session_scope(shop.admin, engine=engine) as s:
        rosa = users.set_active(
            session=s,
            actor=shop.admin,
            user_id=rosa.id,
            active=False,
            expected_version=rosa.version,
        )
        rosa = users.reset_password(
            session=s,
            actor=shop.admin,
            user_id=rosa.id,
            new_password="another-long-pw",
            expected_version=rosa.version,
        )
    assert not rosa.is_active and rosa.version == 3


def test_change_own_password_needs_the_current_one(engine):
    shop = make_shop(engine)
    with (
        session_scope(shop.florist, engine=engine) as s,
        pytest.raises(InvalidInput, match="current"),
    ):
        users.change_own_password(
            session=s,
            actor=shop.florist,
            current_password="nope",
            new_password="brand-new-password",
        )
    with session_scope(shop.florist, engine=engine) as s:
        users.change_own_password(
            session=s,
            actor=shop.florist,
            current_password="correct-horse-battery",
            new_password="brand-new-password",
        )


def test_bulk_insert_of_another_shops_row_is_refused(engine):
    from sqlalchemy import insert

    from db.engine import TenantViolation
    from db.models import Intent

    bloom, fern = make_shop(engine, "Bloom"), make_shop(engine, "Fern")
    with session_scope(bloom.admin, engine=engine) as s, pytest.raises(TenantViolation):
        s.execute(
            insert(Intent),
            [
                {"tenant_id": bloom.tenant_id, "name": "a"},
                {"tenant_id": fern.tenant_id, "name": "b"},
            ],
        )
    with session_scope(fern.admin, engine=engine) as s:
        assert s.exec(select(Intent)).all() == []
