"""PostgreSQL security posture: RLS on every tenant table, and an app role that owns nothing.

These read the catalog of the run's migrated database (the `pg` fixture) and try, as the app
role, the things it must not be able to do. They skip without TEST_DATABASE_URL (via `pg`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from sqlalchemy import Connection, text
from sqlalchemy.exc import ProgrammingError
from sqlmodel import SQLModel

from db.engine import session_scope
from db.models import tenant_tables
from tests.conftest import PgDatabase, catalog, truncate_all
from tests.db.rows import insert_row
from tests.factories import make_shop

TABLES = tenant_tables()


# ---------------------------------------------------------------- RLS on every tenant table


def test_tables_with_tenant_id_in_the_database_are_the_tenant_tables(pg):
    """Nothing with a tenant_id exists in the database that the metadata (and so RLS) misses."""
    rows = catalog(
        pg,
        "SELECT table_name FROM information_schema.columns "
        "WHERE table_schema = 'public' AND column_name = 'tenant_id'",
    )
    assert sorted(r[0] for r in rows) == TABLES


@pytest.mark.parametrize("table", TABLES)
def test_table_has_forced_rls_and_tenant_isolation_policy(pg, table):
    ((enabled, forced),) = catalog(
        pg,
        "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = to_regclass(:t)",
        t=f"public.{table}",
    )
    assert enabled, f"{table}: ROW LEVEL SECURITY is not enabled"
    assert forced, f"{table}: ROW LEVEL SECURITY is not FORCEd (the owner would bypass it)"
    policies = catalog(
        pg,
        "SELECT cmd, permissive, qual, with_check FROM pg_policies "
        "WHERE schemaname = 'public' AND tablename = :t AND policyname = 'tenant_isolation'",
        t=table,
    )
    assert len(policies) == 1, f"{table}: no tenant_isolation policy"
    ((cmd, permissive, qual, with_check),) = policies
    assert cmd == "ALL" and permissive == "PERMISSIVE"
    assert "app.tenant_id" in qual and "tenant_id" in qual.replace("app.tenant_id", "")
    assert with_check and "app.tenant_id" in with_check


@pytest.mark.parametrize("table", TABLES)
def test_no_other_policy_opens_a_tenant_table(pg, table):
    """Permissive policies OR together: any extra one would widen what a shop sees."""
    rows = catalog(
        pg,
        "SELECT policyname, cmd FROM pg_policies WHERE schemaname = 'public' AND tablename = :t",
        t=table,
    )
    expected = {("tenant_isolation", "ALL")}
    if table == "app_user":
        expected.add(("login_lookup", "SELECT"))
    assert set(rows) == expected


# ---------------------------------------------------------------- the app role


def _role(pg: PgDatabase) -> tuple:
    ((row),) = catalog(
        pg,
        "SELECT oid, rolsuper, rolbypassrls, rolcreaterole, rolcreatedb FROM pg_roles "
        "WHERE rolname = :r",
        r=pg.app_role,
    )
    return row


def test_app_role_is_not_superuser_and_cannot_bypass_rls(pg):
    _oid, superuser, bypassrls, createrole, _createdb = _role(pg)
    assert not superuser and not bypassrls and not createrole


def test_app_role_is_what_the_app_connects_as(pg):
    with pg.app.connect() as conn:
        assert conn.execute(text("SELECT current_user")).scalar() == pg.app_role


def test_app_role_owns_nothing(pg):
    oid = _role(pg)[0]
    owned = {
        "relations": "SELECT relname FROM pg_class WHERE relowner = :o",
        "schemas": "SELECT nspname FROM pg_namespace WHERE nspowner = :o",
        "functions": "SELECT proname FROM pg_proc WHERE proowner = :o",
        "types": "SELECT typname FROM pg_type WHERE typowner = :o",
        "database": "SELECT datname FROM pg_database WHERE datdba = :o",
    }
    for kind, sql in owned.items():
        assert catalog(pg, sql, o=oid) == [], f"the app role owns {kind}"


def test_app_role_is_not_a_member_of_a_table_owner(pg):
    """Membership in the owner's role would let it ALTER the tables (and turn RLS off)."""
    owners = catalog(
        pg,
        "SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class "
        "WHERE relnamespace = 'public'::regnamespace",
    )
    assert owners
    for (owner,) in owners:
        ((member,),) = catalog(pg, "SELECT pg_has_role(:r, :o, 'MEMBER')", r=pg.app_role, o=owner)
        assert not member, f"the app role is a member of {owner}"


@contextmanager
def _as_app(pg: PgDatabase) -> Iterator[Connection]:
    """One transaction as the app role, always rolled back."""
    with pg.app.connect() as conn:
        tx = conn.begin()
        try:
            yield conn
        finally:
            tx.rollback()


def _refused(pg: PgDatabase, sql: str) -> ProgrammingError:
    with pytest.raises(ProgrammingError) as caught, _as_app(pg) as conn:
        conn.execute(text(sql))
    assert isinstance(caught.value.orig, psycopg.errors.InsufficientPrivilege), caught.value
    return caught.value


def test_app_role_reads_alembic_version(pg):
    with _as_app(pg) as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO alembic_version (version_num) VALUES ('9999')",
        "UPDATE alembic_version SET version_num = '9999'",
        "DELETE FROM alembic_version",
        "TRUNCATE alembic_version",
    ],
    ids=["insert", "update", "delete", "truncate"],
)
def test_app_role_cannot_write_alembic_version(pg, sql):
    _refused(pg, sql)


def test_app_role_cannot_create_a_table(pg):
    _refused(pg, "CREATE TABLE public.intruder (id integer)")


def test_app_role_cannot_create_a_schema(pg):
    _refused(pg, "CREATE SCHEMA intruder")


@pytest.mark.parametrize("table", TABLES)
@pytest.mark.parametrize(
    "ddl",
    [
        "DROP TABLE {t}",
        "ALTER TABLE {t} DISABLE ROW LEVEL SECURITY",
        "ALTER TABLE {t} NO FORCE ROW LEVEL SECURITY",
        "DROP POLICY tenant_isolation ON {t}",
        "TRUNCATE {t}",  # TRUNCATE ignores RLS: the app role must not have it
    ],
    ids=["drop", "disable-rls", "no-force-rls", "drop-policy", "truncate"],
)
def test_app_role_cannot_alter_tenant_table(pg, table, ddl):
    _refused(pg, ddl.format(t=table))


# ---------------------------------------------------------------- login_lookup on app_user


@pytest.fixture
def two_shops(pg):
    truncate_all(pg.owner)
    return make_shop(pg.app, "Shop A"), make_shop(pg.app, "Shop B")


def _users_seen(conn: Connection) -> set[int]:
    return set(conn.execute(text("SELECT DISTINCT tenant_id FROM app_user")).scalars())


def _bind(conn: Connection, tenant: int | None, login: bool) -> None:
    conn.execute(
        text("SELECT set_config('app.tenant_id', :t, true), set_config('app.login', :l, true)"),
        {"t": "" if tenant is None else str(tenant), "l": "on" if login else ""},
    )


def test_without_login_flag_only_own_users_are_visible(pg, two_shops):
    a, b = two_shops
    with pg.owner.connect() as conn:
        assert _users_seen(conn) == {a.tenant_id, b.tenant_id}
    with _as_app(pg) as conn:
        _bind(conn, a.tenant_id, login=False)
        assert _users_seen(conn) == {a.tenant_id}
    with _as_app(pg) as conn:
        _bind(conn, None, login=False)
        assert _users_seen(conn) == set()


def test_login_flag_shows_every_shops_users(pg, two_shops):
    """The positive control: login_lookup is the way to see other shops' users."""
    a, b = two_shops
    with _as_app(pg) as conn:
        _bind(conn, None, login=True)
        assert _users_seen(conn) == {a.tenant_id, b.tenant_id}
    with _as_app(pg) as conn:
        _bind(conn, a.tenant_id, login=True)
        assert _users_seen(conn) == {a.tenant_id, b.tenant_id}


def test_login_flag_allows_no_write_to_other_shops_users(pg, two_shops):
    a, b = two_shops
    with _as_app(pg) as conn:
        _bind(conn, a.tenant_id, login=True)
        upd = "UPDATE app_user SET display_name = 'x' WHERE tenant_id = :b"
        assert conn.execute(text(upd), {"b": b.tenant_id}).rowcount == 0
        dele = "DELETE FROM app_user WHERE tenant_id = :b"
        assert conn.execute(text(dele), {"b": b.tenant_id}).rowcount == 0
    with pytest.raises(ProgrammingError) as caught, _as_app(pg) as conn:
        _bind(conn, None, login=True)
        conn.execute(
            text(
                "INSERT INTO app_user (tenant_id, username, display_name, role, password_hash,"
                " is_active, failed_logins, created_at, updated_at, version) VALUES"
                " (:b, 'intruder', '', 'admin', 'x', true, 0, now(), now(), 1)"
            ),
            {"b": b.tenant_id},
        )
    assert "row-level security" in str(caught.value)


def test_login_flag_opens_no_other_table(pg, two_shops):
    a, b = two_shops
    with session_scope(b.admin, engine=pg.app) as s:
        for table in TABLES:
            insert_row(s, SQLModel.metadata.tables[table], b.tenant_id)
    for table in TABLES:
        sql = f'SELECT count(*) FROM "{table}" WHERE tenant_id = :b'
        with pg.owner.connect() as conn:
            assert conn.execute(text(sql), {"b": b.tenant_id}).scalar()
        with _as_app(pg) as conn:
            _bind(conn, a.tenant_id, login=True)
            seen = conn.execute(text(sql), {"b": b.tenant_id}).scalar()
        if table != "app_user":
            assert seen == 0, f"app.login opened {table}"
