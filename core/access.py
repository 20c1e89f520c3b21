"""Who is acting: the actor passed to every core function, and the role checks."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from core.errors import PermissionDenied


class Role(StrEnum):
    ADMIN = "admin"
    FLORIST = "florist"
    MANAGER = "manager"


ALL_ROLES: tuple[Role, ...] = (Role.ADMIN, Role.FLORIST, Role.MANAGER)


@dataclass(frozen=True, slots=True)
class Actor:
    """A person (or the CLI) acting inside one shop. Plain data: safe in session state."""

    user_id: int | None
    tenant_id: int
    role: Role
    username: str
    display_name: str = ""
    tenant_name: str = ""

    @classmethod
    def cli(cls, tenant_id: int, tenant_name: str = "") -> Actor:
        """The command line acting with admin rights inside a shop."""
        return cls(None, tenant_id, Role.ADMIN, "cli", "Command line", tenant_name)

    @property
    def label(self) -> str:
        return self.display_name or self.username


def require_role(actor: Actor, *roles: Role) -> None:
    """Raise PermissionDenied unless the actor has one of `roles`."""
    if actor.role not in roles:
        allowed = ", ".join(r.value for r in roles)
        raise PermissionDenied(f"This needs the {allowed} role; you are {actor.role.value}.")
