"""Shared fixtures: a fresh database per test on SQLite and, when available, PostgreSQL.

PostgreSQL: TEST_DATABASE_URL names a server and a superuser (CI: root@127.0.0.1/test). Each
test run creates its own database, migrated as that owner, and a non-superuser app role that
owns nothing; tests connect as the app role, so row-level security is in force. Without
TEST_DATABASE_URL the PostgreSQL tests skip with the reason; under CI=true a skip is a failure.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlmodel import SQLModel

from db.engine import make_engine
from db.models import tenant_tables

IN_CI = os.environ.get("CI", "").lower() == "true"
PG_URL = os.environ.get("TEST_DATABASE_URL", "")
PG_SKIP_REASON = "TEST_DATABASE_URL is not set, so PostgreSQL tests skip (CI sets it)"


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
    from db.migrate import upgrade

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


def truncate_all(owner: Engine) -> None:
    names = ", ".join(["tenant", *tenant_tables()])
    with owner.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    """An empty database: in-memory SQLite, or the run's PostgreSQL as the app role."""
    if request.param == "sqlite":
        eng = make_engine("sqlite://")
        SQLModel.metadata.create_all(eng)
        yield eng
        eng.dispose()
        return
    pg = request.getfixturevalue("pg")
    truncate_all(pg.owner)
    yield pg.app


@pytest.fixture
def sqlite_engine() -> Iterator[Engine]:
    """An empty in-memory SQLite database (for tests that need only one backend)."""
    eng = make_engine("sqlite://")
    SQLModel.metadata.create_all(eng)
    yield eng
    eng.dispose()


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
