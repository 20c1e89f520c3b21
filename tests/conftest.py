"""Shared fixtures: a fresh database per test on SQLite and, when available, PostgreSQL.

PostgreSQL: TEST_DATABASE_URL names a server and a superuser (CI: root@127.0.0.1/test). Each
test run creates its own database, migrated as that owner, and a non-superuser app role that
owns nothing; tests connect as the app role, so row-level security is in force. Without
TEST_DATABASE_URL the PostgreSQL tests skip with the reason; under CI=true a skip is a failure.
"""

from __future__ import annotations

import functools
import os
import secrets
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, select, text
from sqlalchemy.engine import make_url
from sqlmodel import SQLModel

from db.engine import make_engine
from db.migrate import upgrade
from db.models import tenant_tables
from tests.factories import Shop, make_shop

IN_CI = os.environ.get("CI", "").lower() == "true"
PG_URL = os.environ.get("TEST_DATABASE_URL", "")
PG_SKIP_REASON = "TEST_DATABASE_URL is not set, so PostgreSQL tests skip (CI sets it)"
TABLES = SQLModel.metadata.sorted_tables


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """Under CI=true a skipped test fails the run: PostgreSQL and browser tests must run."""
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"Skipped under CI=true, which counts as a failure: {reason}"


@dataclass
class PgDatabase:
    owner_url: str
    app_url: str
    owner: Engine
    app: Engine
    app_role: str


def _create_pg_database(*, migrate: bool = True) -> PgDatabase:
    server = make_url(PG_URL)
    suffix = secrets.token_hex(4)
    name, role = f"trellis_test_{suffix}", f"trellis_app_{suffix}"
    admin = make_engine(PG_URL).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
        conn.execute(text(f'CREATE ROLE "{role}" LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB'))
    admin.dispose()
    owner_url = server.set(database=name).render_as_string(hide_password=False)
    app_url = server.set(database=name, username=role, password=None).render_as_string(
        hide_password=False
    )
    owner = make_engine(owner_url)
    if migrate:
        upgrade(owner, app_role=role)
    return PgDatabase(owner_url, app_url, owner, make_engine(app_url), role)


def _drop_pg_database(pg: PgDatabase) -> None:
    pg.app.dispose()
    pg.owner.dispose()
    admin = make_engine(PG_URL).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        name = make_url(pg.owner_url).database
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'DROP ROLE IF EXISTS "{pg.app_role}"'))
    admin.dispose()


@pytest.fixture(scope="session")
def pg() -> Iterator[PgDatabase]:
    """One migrated PostgreSQL database for the run, with its app role."""
    if not PG_URL:
        pytest.skip(PG_SKIP_REASON)
    database = _create_pg_database()
    try:
        yield database
    finally:
        _drop_pg_database(database)


def catalog(pg: PgDatabase, sql: str, **params: object) -> list[tuple[object, ...]]:
    """Rows of a query on PostgreSQL's catalog, read as the owner."""
    with pg.owner.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql), params).all()]


# Both empty `tenant` and the tenant tables, and as CASCADE every table with a foreign key into
# an emptied one, in one round trip, and restart their sequences (ids start at 1 again).
# TRUNCATE gives each table fresh files, so rows come back in the order they are inserted;
# RESTART IDENTITY would give each sequence new files too, which made TRUNCATE cost ~0.3 s a
# test, while setval() is free. DELETE, with foreign key triggers off (the owner is a
# superuser), costs milliseconds but leaves dead rows whose space later inserts may take, so a
# query without ORDER BY may see rows out of insertion order: only SavedShops uses it.
_EMPTY_TABLES = """
DO $$
DECLARE
    emptied oid[];
    rel regclass;
BEGIN
    WITH RECURSIVE reach(oid) AS (
        SELECT unnest(CAST('{%(tables)s}' AS regclass[]))::oid
        UNION
        SELECT con.conrelid FROM pg_constraint con JOIN reach ON con.confrelid = reach.oid
        WHERE con.contype = 'f'
    )
    SELECT array_agg(oid) INTO emptied FROM reach;
    %(empty)s
    PERFORM setval(s.seqrelid, s.seqstart, false)
    FROM pg_sequence s JOIN pg_depend d ON d.objid = s.seqrelid
    WHERE d.classid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
        AND d.refobjid = ANY (emptied);
END $$
"""
_BY_TRUNCATE = """EXECUTE 'TRUNCATE ' || (
        SELECT string_agg(CAST(CAST(o AS regclass) AS text), ', ') FROM unnest(emptied) o
    );"""
_BY_DELETE = """PERFORM set_config('session_replication_role', 'replica', true);
    FOREACH rel IN ARRAY emptied LOOP
        EXECUTE format('DELETE FROM %s', rel);
    END LOOP;"""


def _empty_tables(conn: Connection, *, by: str) -> None:
    tables = ",".join(["tenant", *tenant_tables()])
    conn.execute(text(_EMPTY_TABLES % {"tables": tables, "empty": by}))


def truncate_all(owner: Engine) -> None:
    """Empty every shop's rows (and the tables that point at them); ids restart at 1."""
    with owner.begin() as conn:
        _empty_tables(conn, by=_BY_TRUNCATE)


class SavedShops:
    """Databases that hold just some shops, each made by make_shop once per worker and backend
    and then put back by copying: a shop's starting content (catalog, templates, responses)
    costs ~40 ms to make, and the isolation tests start ~2,000 times from the same two shops."""

    def __init__(self) -> None:
        self._made: dict[tuple[str, tuple[str, ...]], tuple[tuple[Shop, ...], Any]] = {}

    def start(self, engine: Engine, pg: PgDatabase | None, *names: str) -> tuple[Shop, ...]:
        """Replace everything in `engine`'s database by the shops `names`, as make_shop made
        them in that order on an empty database (the same ids, rows and sequences)."""
        key = (engine.dialect.name, names)
        if key not in self._made:
            if pg is not None:
                truncate_all(pg.owner)
            shops = tuple(make_shop(engine, name) for name in names)
            self._made[key] = (shops, _save_pg(pg) if pg else _save_sqlite(engine))
        shops, saved = self._made[key]
        if pg is not None:
            _restore_pg(pg, saved)
        else:
            _restore_sqlite(saved, engine)
        return shops


def _save_sqlite(engine: Engine) -> sqlite3.Connection:
    copy = sqlite3.connect(":memory:", check_same_thread=False)
    raw = engine.raw_connection()
    raw.driver_connection.backup(copy)
    raw.close()
    return copy


def _restore_sqlite(saved: sqlite3.Connection, engine: Engine) -> None:
    raw = engine.raw_connection()
    saved.backup(raw.driver_connection)
    raw.close()


@dataclass
class _PgRows:
    rows: dict[str, list[dict[str, Any]]]
    sequences: list[tuple[str, int]]


def _save_pg(pg: PgDatabase) -> _PgRows:
    with pg.owner.connect() as conn:  # a superuser: row-level security does not apply
        rows = {t.name: [dict(r) for r in conn.execute(select(t)).mappings()] for t in TABLES}
        sequences = conn.execute(
            text(
                "SELECT format('%I.%I', schemaname, sequencename), last_value FROM pg_sequences"
                " WHERE last_value IS NOT NULL"
            )
        ).all()
    return _PgRows({t: r for t, r in rows.items() if r}, [(n, v) for n, v in sequences])


def _restore_pg(pg: PgDatabase, saved: _PgRows) -> None:
    with pg.owner.begin() as conn:
        _empty_tables(conn, by=_BY_DELETE)  # sets session_replication_role for the transaction
        for table, rows in saved.rows.items():
            conn.execute(SQLModel.metadata.tables[table].insert(), rows)
        setval = text("SELECT setval(CAST(:s AS regclass), :v)")
        for sequence, value in saved.sequences:
            conn.execute(setval, {"s": sequence, "v": value})


@pytest.fixture(scope="session")
def saved_shops() -> SavedShops:
    return SavedShops()


@pytest.fixture
def start_with_shops(
    engine: Engine, saved_shops: SavedShops, request: pytest.FixtureRequest
) -> Callable[..., tuple[Shop, ...]]:
    """`start_with_shops("Shop A", "Shop B")`: the test's database then holds just these shops,
    as make_shop makes them (put back from a copy). Call it first: on PostgreSQL, `engine`
    leaves emptying the database to it."""
    pg = request.getfixturevalue("pg") if engine.dialect.name == "postgresql" else None
    return functools.partial(saved_shops.start, engine, pg)


@pytest.fixture(scope="session")
def sqlite_schema() -> Iterator[sqlite3.Connection]:
    """An empty in-memory SQLite database made by `create_all`, once per worker: a test's
    database is a page copy of it (`backup`), a fraction of a millisecond instead of ~20 ms."""
    eng = make_engine("sqlite://")
    SQLModel.metadata.create_all(eng)
    raw = eng.raw_connection()
    source = sqlite3.connect(":memory:", check_same_thread=False)
    raw.driver_connection.backup(source)
    raw.close()
    eng.dispose()
    yield source
    source.close()


def _empty_sqlite(schema: sqlite3.Connection) -> Engine:
    eng = make_engine("sqlite://")  # StaticPool: this one connection is the database
    raw = eng.raw_connection()
    schema.backup(raw.driver_connection)
    raw.close()
    return eng


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    """An empty database: in-memory SQLite, or the run's PostgreSQL as the app role."""
    if request.param == "sqlite":
        eng = _empty_sqlite(request.getfixturevalue("sqlite_schema"))
        yield eng
        eng.dispose()
        return
    pg = request.getfixturevalue("pg")
    if "start_with_shops" not in request.fixturenames:  # that one empties it, faster
        truncate_all(pg.owner)
    yield pg.app


@pytest.fixture
def sqlite_engine(sqlite_schema: sqlite3.Connection) -> Iterator[Engine]:
    """An empty in-memory SQLite database (for tests that need only one backend)."""
    eng = _empty_sqlite(sqlite_schema)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated by Alembic, once per worker; tests copy it (`copy_sqlite`) rather
    than run every migration again (tests/db/test_migrations.py runs them)."""
    path = tmp_path_factory.mktemp("migrated") / "trellis.db"
    eng = make_engine(f"sqlite:///{path}")
    upgrade(eng)
    eng.dispose()
    return path


def copy_sqlite(source: Path, target: Path) -> None:
    """Copy a SQLite database page by page (safe with WAL, unlike copying the file)."""
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


@pytest.fixture
def threaded_engine(engine: Engine, tmp_path: Path) -> Iterator[Engine]:
    """The backend for tests with a worker thread: in-memory SQLite shares one connection
    between threads, so SQLite runs on a file here."""
    if engine.dialect.name != "sqlite":
        yield engine
        return
    eng = make_engine(f"sqlite:///{tmp_path / 'threads.db'}")
    SQLModel.metadata.create_all(eng)
    yield eng
    eng.dispose()
