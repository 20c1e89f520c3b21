"""The users of a shop: create, change role, deactivate, reset password. Admins only, audited."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ValidationError, field_validator
from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from core import audit
from core.access import Actor, Role, require_role
from core.config import get_settings
from core.errors import InvalidInput, NotFound, PermissionDenied, StaleEdit, validation_message
from core.passwords import hash_password, verify_password
from db.models import User, utcnow

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")


@dataclass(frozen=True)
class UserView:
    """What pages and the CLI see of a user (never the password hash)."""

    id: int
    username: str
    display_name: str
    role: Role
    is_active: bool
    locked_until: datetime | None
    last_login_at: datetime | None
    created_at: datetime
    version: int

    @classmethod
    def of(cls, user: User) -> UserView:
        assert user.id is not None
        return cls(
            user.id,
            user.username,
            user.display_name,
            Role(user.role),
            user.is_active,
            user.locked_until,
            user.last_login_at,
            user.created_at,
            user.version,
        )


class UserCreate(BaseModel):
    username: str
    role: Role
    password: str
    display_name: str = ""

    @field_validator("username")
    @classmethod
    def _username(cls, value: str) -> str:
        value = value.strip().lower()
        if not USERNAME_RE.match(value):
            raise ValueError(
                "use 3 to 64 characters: lowercase letters, digits, dot, dash, underscore"
            )
        return value

    @field_validator("display_name")
    @classmethod
    def _display_name(cls, value: str) -> str:
        value = " ".join(value.split())
        if len(value) > 120:
            raise ValueError("at most 120 characters")
        return value


def parse_user_create(**fields: object) -> UserCreate:
    """Validate raw input into UserCreate, turning pydantic's errors into one clear message."""
    try:
        return UserCreate.model_validate(fields)
    except ValidationError as exc:
        raise InvalidInput(validation_message(exc)) from exc


def list_users(*, session: Session, actor: Actor) -> list[UserView]:
    """Every user of the actor's shop (admin only)."""
    require_role(actor, Role.ADMIN)
    rows = session.exec(
        select(User).where(User.tenant_id == actor.tenant_id).order_by(col(User.username))
    ).all()
    return [UserView.of(u) for u in rows]


def create_user(*, session: Session, actor: Actor, data: UserCreate) -> UserView:
    """Add a user to the actor's shop (admin only). Usernames are unique across Trellis."""
    require_role(actor, Role.ADMIN)
    user = User(
        tenant_id=actor.tenant_id,
        username=data.username,
        display_name=data.display_name,
        role=data.role.value,
        password_hash=hash_password(data.password, min_length=get_settings().min_password_length),
    )
    # Usernames are unique across shops, whose rows this session cannot see (tenant guard,
    # RLS): the unique index is the one place that knows, so ask it inside a savepoint.
    try:
        with session.begin_nested():
            session.add(user)
    except IntegrityError as exc:
        raise InvalidInput(f"The username '{data.username}' is taken; choose another.") from exc
    audit.record(
        session=session,
        actor=actor,
        action="user.create",
        entity_type="user",
        entity_id=user.username,
        after={"role": user.role, "display_name": user.display_name},
    )
    return UserView.of(user)


def _load(session: Session, actor: Actor, user_id: int, expected_version: int) -> User:
    user = session.exec(
        select(User).where(User.tenant_id == actor.tenant_id, User.id == user_id)
    ).first()
    if user is None:
        raise NotFound("No such user in your shop.")
    if user.version != expected_version:
        raise StaleEdit(
            f"{user.username} was changed by someone else since you loaded it; "
            "the page now shows the current values."
        )
    return user


def _active_admins(session: Session, actor: Actor) -> int:
    return session.exec(
        select(func.count()).where(
            User.tenant_id == actor.tenant_id, User.role == Role.ADMIN.value, User.is_active
        )
    ).one()


def _save(
    session: Session,
    actor: Actor,
    user: User,
    action: str,
    before: Mapping[str, object],
    after: Mapping[str, object],
    reason: str | None,
) -> UserView:
    user.version += 1
    user.updated_at = utcnow()
    session.add(user)
    audit.record(
        session=session,
        actor=actor,
        action=action,
        entity_type="user",
        entity_id=user.username,
        before=dict(before),
        after=dict(after),
        reason=reason,
    )
    session.flush()
    return UserView.of(user)


def change_role(
    *,
    session: Session,
    actor: Actor,
    user_id: int,
    role: Role,
    expected_version: int,
    reason: str | None = None,
) -> UserView:
    """Give a user another role (admin only); the shop always keeps one active admin."""
    require_role(actor, Role.ADMIN)
    user = _load(session, actor, user_id, expected_version)
    if user.role == role.value:
        return UserView.of(user)
    if user.role == Role.ADMIN.value and user.is_active and _active_admins(session, actor) <= 1:
        raise InvalidInput("This is the shop's last active admin; make someone else admin first.")
    before = {"role": user.role}
    user.role = role.value
    return _save(session, actor, user, "user.role", before, {"role": user.role}, reason)


def set_active(
    *,
    session: Session,
    actor: Actor,
    user_id: int,
    active: bool,
    expected_version: int,
    reason: str | None = None,
) -> UserView:
    """Deactivate (they can no longer log in) or reactivate a user (admin only)."""
    require_role(actor, Role.ADMIN)
    user = _load(session, actor, user_id, expected_version)
    if user.is_active == active:
        return UserView.of(user)
    if not active and user.id == actor.user_id:
        raise InvalidInput("You cannot deactivate yourself.")
    if not active and user.role == Role.ADMIN.value and _active_admins(session, actor) <= 1:
        raise InvalidInput("This is the shop's last active admin; make someone else admin first.")
    before = {"is_active": user.is_active}
    user.is_active = active
    action = "user.activate" if active else "user.deactivate"
    return _save(session, actor, user, action, before, {"is_active": active}, reason)


def reset_password(
    *,
    session: Session,
    actor: Actor,
    user_id: int,
    new_password: str,
    expected_version: int,
    reason: str | None = None,
) -> UserView:
    """Set a new password for a user and lift any lockout (admin only)."""
    require_role(actor, Role.ADMIN)
    user = _load(session, actor, user_id, expected_version)
    user.password_hash = hash_password(new_password, min_length=get_settings().min_password_length)
    before = {"locked_until": user.locked_until.isoformat() if user.locked_until else None}
    user.failed_logins, user.locked_until = 0, None
    return _save(
        session, actor, user, "user.password_reset", before, {"locked_until": None}, reason
    )


def change_own_password(
    *, session: Session, actor: Actor, current_password: str, new_password: str
) -> None:
    """Any user changes their own password, proving the current one first."""
    if actor.user_id is None:
        raise PermissionDenied("Only a person can change their own password.")
    user = session.exec(
        select(User).where(User.tenant_id == actor.tenant_id, User.id == actor.user_id)
    ).first()
    if user is None:
        raise NotFound("Your user no longer exists.")
    if not verify_password(user.password_hash, current_password):
        raise InvalidInput("The current password is wrong.")
    if current_password == new_password:
        raise InvalidInput("The new password must differ from the current one.")
    user.password_hash = hash_password(new_password, min_length=get_settings().min_password_length)
    _save(session, actor, user, "user.password_change", {}, {}, None)
