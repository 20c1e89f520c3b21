"""Logging in: username + password, one generic failure message, lockout after failures."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlmodel import Session, select

from core import audit
from core.access import Actor, Role
from core.config import Settings, get_settings
from core.errors import AccountLocked, LoginFailed
from core.passwords import verify_password
from db.engine import set_tenant
from db.models import Tenant, User, utcnow

log = logging.getLogger(__name__)
GENERIC_FAILURE = "Wrong username or password."


def authenticate(
    *,
    session: Session,
    username: str,
    password: str,
    settings: Settings | None = None,
    now: datetime | None = None,
) -> Actor:
    """The actor for these credentials, or LoginFailed / AccountLocked.

    `session` comes from db.engine.login_scope. Failed attempts are committed before the error
    is raised, so they count even though the login fails.
    """
    settings = settings or get_settings()
    now = now or utcnow()
    user = session.exec(select(User).where(User.username == username.strip().lower())).first()
    if user is None or not user.is_active:
        verify_password(None, password)
        raise LoginFailed(GENERIC_FAILURE)
    set_tenant(session, user.tenant_id)
    if user.locked_until and user.locked_until > now:
        raise AccountLocked(_locked_message(user.locked_until, settings))
    if not verify_password(user.password_hash, password):
        _count_failure(session, user, settings, now)
        session.commit()
        if user.locked_until and user.locked_until > now:
            raise AccountLocked(_locked_message(user.locked_until, settings))
        raise LoginFailed(GENERIC_FAILURE)
    user.failed_logins, user.locked_until, user.last_login_at = 0, None, now
    session.add(user)
    tenant = session.get(Tenant, user.tenant_id)
    log.info("login ok user_id=%s tenant_id=%s", user.id, user.tenant_id)
    assert user.id is not None and tenant is not None
    return Actor(
        user.id, user.tenant_id, Role(user.role), user.username, user.display_name, tenant.name
    )


def _count_failure(session: Session, user: User, settings: Settings, now: datetime) -> None:
    user.failed_logins += 1
    if user.failed_logins >= settings.login_max_failures:
        user.failed_logins = 0
        user.locked_until = now + timedelta(minutes=settings.login_lockout_minutes)
        system = Actor(None, user.tenant_id, Role.ADMIN, "system")
        audit.record(
            session=session,
            actor=system,
            action="user.locked",
            entity_type="user",
            entity_id=user.username,
            after={"locked_until": user.locked_until.isoformat(timespec="seconds")},
            reason=f"{settings.login_max_failures} failed logins in a row",
        )
        log.warning("account locked user_id=%s", user.id)
    session.add(user)


def _locked_message(until: datetime, settings: Settings) -> str:
    return (
        f"This account is locked for {settings.login_lockout_minutes} minutes after "
        f"{settings.login_max_failures} failed logins in a row. "
        f"Try again after {until:%H:%M} UTC, or ask an admin to reset the password."
    )


def refresh_actor(*, session: Session, actor: Actor) -> Actor | None:
    """The signed-in actor as the database has it now: None once deactivated or removed.

    A role change or deactivation by an admin takes effect on the user's next click, not at
    their next login.
    """
    if actor.user_id is None:
        return actor
    user = session.exec(
        select(User).where(User.tenant_id == actor.tenant_id, User.id == actor.user_id)
    ).first()
    if user is None or not user.is_active:
        return None
    if user.role == actor.role.value and user.display_name == actor.display_name:
        return actor
    return Actor(
        user.id,
        user.tenant_id,
        Role(user.role),
        user.username,
        user.display_name,
        actor.tenant_name,
    )
