"""Migrations: a fresh database migrates to exactly the models, down to base and up again.

Runs on a fresh SQLite file and on a throwaway PostgreSQL database created for each test with the
superuser TEST_DATABASE_URL (skips without it, like every PostgreSQL test).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text
from sqlalchemy.engine import make_url
from sqlmodel import SQLModel

from core.errors import SchemaOutdated
from db.engine import make_engine
from db.migrate import alembic_config, check_schema, current_revision, head_revision, upgrade
from db.models import tenant_tables
from tests.conftest import PG_SKIP_REASON, PG_URL


@pytest.fixture(params=["sqlite", "postgres"])
def empty_db(request: pytest.FixtureRequest, tmp_path) -> Iterator[Engine]:
    """A brand-new, empty database owned by the connecting user."""
    if request.param == "sqlite":
        eng = make_engine(f"sqlite:///{tmp_path / 'trellis.db'}")
        yield eng
        eng.dispose()
        return
    if not PG_URL:
        pytest.skip(PG_SKIP_REASON)
    name = f"trellis_mig_{secrets.token_hex(4)}"
    admin = make_engine(PG_URL).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    eng = make_engine(make_url(PG_URL).set(database=name).render_as_string(hide_password=False))
    try:
        yield eng
    finally:
        eng.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def downgrade_to_base(engine: Engine) -> None:
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")


def schema_diff(engine: Engine) -> list:
    """What Alembic autogenerate would still emit to reach SQLModel.metadata (ignores nothing).

    The settings match db/migrations/env.py (compare_type on), so a type drift counts too.
    """
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(ctx, SQLModel.metadata)


def app_tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names()) - {"alembic_version"}


def test_check_schema_on_an_empty_database_says_run_init_db(empty_db):
    with pytest.raises(SchemaOutdated, match="trellis init-db") as caught:
        check_schema(empty_db)
    assert "empty" in str(caught.value)


def test_upgrade_builds_exactly_the_models(empty_db):
    upgrade(empty_db)
    check_schema(empty_db)
    assert current_revision(empty_db) == head_revision()
    assert app_tables(empty_db) == set(SQLModel.metadata.tables)
    assert schema_diff(empty_db) == []


def test_downgrade_to_base_then_upgrade_again(empty_db):
    upgrade(empty_db)
    downgrade_to_base(empty_db)
    assert app_tables(empty_db) == set()
    assert current_revision(empty_db) is None
    with pytest.raises(SchemaOutdated, match="trellis init-db"):
        check_schema(empty_db)
    upgrade(empty_db)
    check_schema(empty_db)
    assert schema_diff(empty_db) == []
    if empty_db.dialect.name == "postgresql":  # the RLS set-up comes back with the tables
        with empty_db.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT c.relname FROM pg_class c JOIN pg_policy p ON p.polrelid = c.oid "
                    "WHERE p.polname = 'tenant_isolation' AND c.relforcerowsecurity"
                )
            )
            assert sorted(r[0] for r in rows) == tenant_tables()


def test_upgrade_is_idempotent(empty_db):
    upgrade(empty_db)
    upgrade(empty_db)
    check_schema(empty_db)
    assert schema_diff(empty_db) == []


def test_check_schema_refuses_an_unknown_revision(empty_db):
    upgrade(empty_db)
    with empty_db.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'ffffffffffff'"))
    with pytest.raises(SchemaOutdated, match="trellis init-db"):
        check_schema(empty_db)


def upgrade_to(engine: Engine, revision: str) -> None:
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def test_0004_backfills_margins_and_near_identical_hashes(empty_db):
    from core.text import text_hash

    upgrade_to(empty_db, "0003")
    top = '[["order_status", 0.7], ["delivery_time", 0.2], ["refund", 0.1]]'
    with empty_db.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO tenant (id, name, slug, is_demo, created_at) "
                "VALUES (1, 'Bloom', 'bloom', false, CURRENT_TIMESTAMP)"
            )
        )
        for i, (words, predicted) in enumerate(
            (("Where is my order #12?", top), ("where is my order 34", None))
        ):
            conn.execute(
                text(
                    "INSERT INTO example (id, tenant_id, text, top_intents, text_hash, escalated, "
                    "reviewed, status, source, created_at, updated_at, version) VALUES (:id, 1, "
                    ":t, :top, 'old', false, false, 'pending', 'live', CURRENT_TIMESTAMP, "
                    "CURRENT_TIMESTAMP, 1)"
                ),
                {"id": i + 1, "t": words, "top": predicted},
            )
    upgrade(empty_db)
    with empty_db.connect() as conn:
        rows = conn.execute(text("SELECT text_hash, margin FROM example ORDER BY id")).all()
    assert rows[0][0] == rows[1][0] == text_hash("where is my order 0")
    assert rows[0][1] == pytest.approx(0.5) and rows[1][1] is None


def test_0008_builds_the_review_groups_of_the_examples_already_there(empty_db):
    upgrade_to(empty_db, "0007")
    rows = [  # id, text_hash, confidence, escalated, reviewed, status, issue_score
        (1, "a", 0.3, False, False, "pending", None),
        (2, "a", 0.4, False, False, "pending", None),
        (3, "b", 0.9, True, False, "pending", None),
        (4, "c", 0.95, False, True, "reviewed", 0.8),
        (5, "d", 0.2, False, True, "reviewed", None),  # reviewed: not waiting
    ]
    with empty_db.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO tenant (id, name, slug, is_demo, created_at) "
                "VALUES (1, 'Bloom', 'bloom', false, CURRENT_TIMESTAMP)"
            )
        )
        for row in rows:
            conn.execute(
                text(
                    "INSERT INTO example (id, tenant_id, text, text_hash, confidence, margin, "
                    "escalated, reviewed, status, issue_score, source, created_at, updated_at, "
                    "version) VALUES (:id, 1, 'x', :h, :c, 0.5, :e, :r, :s, :i, 'live', "
                    "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 1)"
                ),
                dict(zip(("id", "h", "c", "e", "r", "s", "i"), row, strict=True)),
            )
    upgrade_to(empty_db, "0008")
    with empty_db.connect() as conn:
        groups = conn.execute(
            text(
                "SELECT reason, text_hash, size, priority, newest FROM review_group "
                "WHERE tenant_id = 1 ORDER BY reason, text_hash"
            )
        ).all()
    assert [(r, h, n, round(p, 6), newest) for r, h, n, p, newest in groups] == [
        ("all", "a", 2, 1.3, 2),
        ("all", "b", 1, 0.1, 3),
        ("all", "c", 1, 0.8, 4),
        ("escalated", "b", 1, 0.1, 3),
        ("label_issue", "c", 1, 0.8, 4),
        ("low_confidence", "a", 2, 1.3, 2),
    ]
