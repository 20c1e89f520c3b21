"""Builders for tests: shops with one user per role, without paying argon2 for each user."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlmodel import col, select

from core import review_groups
from core.access import Actor, Role
from core.passwords import hash_password
from core.shop_settings import review_thresholds
from core.tenants import create_tenant
from core.text import text_hash
from db.engine import session_scope, set_tenant
from db.models import Conversation, Example, Message, ReviewGroup, User

TEST_PASSWORD = "correct-horse-battery"


@functools.cache
def test_password_hash() -> str:
    return hash_password(TEST_PASSWORD, min_length=10)


@dataclass(frozen=True)
class Shop:
    tenant_id: int
    slug: str
    name: str
    admin: Actor
    florist: Actor
    manager: Actor

    def actor(self, role: Role) -> Actor:
        return {Role.ADMIN: self.admin, Role.FLORIST: self.florist, Role.MANAGER: self.manager}[
            role
        ]


def make_shop(engine: Engine, name: str = "Bloom & Co.") -> Shop:
    """A shop with an admin, a florist and a manager (password TEST_PASSWORD)."""
    with session_scope(None, engine=engine) as session:
        tenant = create_tenant(session=session, name=name)
        assert tenant.id is not None
        set_tenant(session, tenant.id)
        actors = {}
        for role in Role:
            username = f"{tenant.slug}.{role.value}"
            user = User(
                tenant_id=tenant.id,
                username=username,
                display_name=f"{role.value.title()} of {name}",
                role=role.value,
                password_hash=test_password_hash(),
            )
            session.add(user)
            session.flush()
            assert user.id is not None
            actors[role] = Actor(user.id, tenant.id, role, username, user.display_name, name)
        return Shop(
            tenant.id,
            tenant.slug,
            name,
            actors[Role.ADMIN],
            actors[Role.FLORIST],
            actors[Role.MANAGER],
        )


def add_messages(engine: Engine, shop: Shop, count: int, *, escalated: int = 0) -> None:
    """`count` customer messages in one conversation each; the first `escalated` escalated."""
    with session_scope(shop.admin, engine=engine) as session:
        for i in range(count):
            esc = i < escalated
            conv = Conversation(
                tenant_id=shop.tenant_id,
                external_id=f"{shop.slug}-{i}",
                customer_id=f"c{i}",
                escalated=esc,
            )
            session.add(conv)
            session.flush()
            text = f"where is my order {i}?"
            msg = Message(
                tenant_id=shop.tenant_id, conversation_id=conv.id, role="customer", text=text
            )
            session.add(msg)
            session.flush()
            session.add(
                Example(
                    tenant_id=shop.tenant_id,
                    text=text,
                    text_hash=text_hash(text),
                    conversation_id=conv.id,
                    message_id=msg.id,
                    escalated=esc,
                )
            )
        # Written directly: keep the queue's groups as the product's writers do.
        review_groups.refresh(session=session, actor=shop.admin, text_hashes=None)


def run_cli(*args: str) -> Any:
    """Invoke the `trellis` command in-process, as a script would (exceptions propagate)."""
    from click.testing import CliRunner

    from core.cli import main

    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def live_review_groups(engine: Engine, actor: Actor) -> list[tuple[Any, ...]]:
    """The shop's review queue groups computed from its examples now (core.review_groups):
    (reason, text_hash, size, priority, newest), sorted."""
    with session_scope(actor, engine=engine) as s:
        limits = review_thresholds(session=s, actor=actor)
        tenant = col(Example.tenant_id) == actor.tenant_id
        rows = s.execute(review_groups.grouped(limits, [tenant])).all()
    return sorted((r, h, n, round(p, 9), newest) for _, r, h, n, p, newest in rows)


def stored_review_groups(engine: Engine, actor: Actor) -> list[tuple[Any, ...]]:
    """The shop's ReviewGroup rows, in the shape live_review_groups gives."""
    with session_scope(actor, engine=engine) as s:
        rows = s.exec(select(ReviewGroup).where(ReviewGroup.tenant_id == actor.tenant_id)).all()
    return sorted((g.reason, g.text_hash, g.size, round(g.priority, 9), g.newest) for g in rows)
