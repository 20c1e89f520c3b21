"""Shops (tenants). Creating one is an operator action: the CLI and the demo set-up."""

from __future__ import annotations

import re
import unicodedata

from sqlmodel import Session, col, select

from core.access import Actor, Role
from core.errors import InvalidInput, NotFound
from db.engine import TENANT_KEY, set_tenant
from db.models import Tenant


def slugify(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    return slug[:48] or "shop"


def create_tenant(*, session: Session, name: str, is_demo: bool = False) -> Tenant:
    """Create a shop with a unique slug derived from its name (operator scope)."""
    name = " ".join(name.split())
    if not 2 <= len(name) <= 120:
        raise InvalidInput("A shop name needs 2 to 120 characters.")
    base = slugify(name)
    taken = set(session.exec(select(Tenant.slug).where(Tenant.slug.startswith(base))).all())  # type: ignore[attr-defined]
    slug, n = base, 2
    while slug in taken:
        slug, n = f"{base}-{n}", n + 1
    tenant = Tenant(name=name, slug=slug, is_demo=is_demo)
    session.add(tenant)
    session.flush()
    _give_starting_content(session, tenant)
    return tenant


def _give_starting_content(session: Session, tenant: Tenant) -> None:
    """The florist studio's starter catalog, default styles, prompt and response templates and
    the default memory rules, written
    inside the new shop (so the tenant guard and RLS accept them), then back to the caller's."""
    from core.catalog import seed_starter_catalog
    from core.memory import ensure_default_rules
    from core.responses import seed_default_responses
    from core.templates import seed_default_templates

    assert tenant.id is not None
    caller = session.info.get(TENANT_KEY)
    setup = Actor(None, tenant.id, Role.ADMIN, "trellis", "Trellis", tenant.name)
    set_tenant(session, tenant.id)
    try:
        seed_starter_catalog(session=session, actor=setup)
        seed_default_templates(session=session, actor=setup)
        seed_default_responses(session=session, actor=setup)
        ensure_default_rules(session=session, actor=setup)
        session.flush()
    finally:
        set_tenant(session, caller)


def get_by_slug(*, session: Session, slug: str) -> Tenant:
    """The shop with this slug (operator scope), or NotFound naming it."""
    tenant = session.exec(select(Tenant).where(Tenant.slug == slug)).first()
    if tenant is None:
        raise NotFound(f"No shop with the slug '{slug}'. `trellis tenant list` shows them.")
    return tenant


def list_tenants(*, session: Session) -> list[Tenant]:
    """Every shop (operator scope)."""
    return list(session.exec(select(Tenant).order_by(col(Tenant.id))).all())


def current_tenant(*, session: Session, actor: Actor) -> Tenant:
    """The actor's own shop."""
    tenant = session.get(Tenant, actor.tenant_id)
    if tenant is None:
        raise NotFound("Your shop no longer exists.")
    return tenant
