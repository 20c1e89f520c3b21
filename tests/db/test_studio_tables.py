"""The florist studio's tables: covered by the isolation, shared-table and RLS tests (which
discover tables), given to existing shops by migration 0009 exactly as to new shops, and unable
to point into another shop."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from core import catalog, templates
from core.access import Actor, Role
from db.engine import session_scope
from db.migrate import upgrade
from db.models import Design, shared_tables, tenant_tables
from tests.db.test_migrations import empty_db, upgrade_to  # noqa: F401 (a fixture)
from tests.db.test_shared_tables import COUNTERS
from tests.factories import make_shop

STUDIO_TENANT_TABLES = {
    "flower",
    "arrangement_type",
    "occasion",
    "budget_tier",
    "generator_config",
    "design_template",
    "design_template_version",
    "design",
}
SEED_EXAMPLE = (
    "Create a beautiful romantic bouquet with roses and peonies in pink and white colors "
    "for wedding"
)


def test_the_isolation_tests_cover_every_studio_table():
    assert set(tenant_tables()) >= STUDIO_TENANT_TABLES
    assert "shared_template" in shared_tables()
    assert "shared_template_usage" in COUNTERS


def _studio(engine: Engine, actor: Actor) -> dict[str, Any]:
    """What a shop has in its studio, in a form two shops can be compared by."""
    with session_scope(actor, engine=engine) as s:
        found: dict[str, Any] = {
            kind: sorted(
                (i.name, getattr(i, "variety", ""))
                for i in catalog.list_items(session=s, actor=actor, kind=kind)
            )
            for kind in catalog.CATALOG_KINDS
        }
        for kind in ("style", "prompt"):
            found[kind] = {
                t.name: (t.description, t.content, t.production_number, t.latest_number)
                for t in templates.list_templates(session=s, actor=actor, kind=kind)
            }
        basic = templates.find_template(session=s, actor=actor, kind="prompt", name="Basic Bouquet")
        found["preview"] = templates.preview(session=s, actor=actor, template_id=basic.id).text
        (version,) = templates.list_versions(session=s, actor=actor, template_id=basic.id)
        found["note"] = (version.note, version.author_name)
    return found


def test_0009_gives_existing_shops_what_a_new_shop_gets(empty_db):  # noqa: F811
    upgrade_to(empty_db, "0008")
    with empty_db.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO tenant (id, name, slug, is_demo, created_at) "
                "VALUES (41, 'Old Shop', 'old-shop', false, CURRENT_TIMESTAMP)"
            )
        )
    upgrade(empty_db)
    if empty_db.dialect.name == "postgresql":  # the identity sequence skipped the explicit id
        with empty_db.begin() as conn:
            conn.execute(text("SELECT setval('tenant_id_seq', 41)"))
    migrated = _studio(empty_db, Actor(None, 41, Role.MANAGER, "test"))
    new = make_shop(empty_db, "New Shop")
    assert migrated == _studio(empty_db, new.manager)
    assert migrated["preview"] == SEED_EXAMPLE
    assert len(migrated["style"]) == 5 and len(migrated["prompt"]) == 3
    for kind in ("style", "prompt"):
        for _description, content, _production, _latest in migrated[kind].values():
            assert templates.parse_content(kind, content) == content


def test_a_design_cannot_point_at_another_shops_template(engine):
    bloom, fern = make_shop(engine, "Bloom"), make_shop(engine, "Fern")
    with session_scope(fern.admin, engine=engine) as s:
        theirs = templates.find_template(
            session=s, actor=fern.admin, kind="style", name="Romantic Classic"
        )
    with pytest.raises(IntegrityError), session_scope(bloom.admin, engine=engine) as s:
        s.add(
            Design(
                tenant_id=bloom.tenant_id,
                design_id="x",
                prompt="p",
                image_url="https://img.example/x.png",
                model_type="dalle3",
                style_id=theirs.id,
            )
        )
        s.flush()
