"""Engines, the per-action session scope, and the tenant guard.

The guard is the application's line of tenant isolation on every backend:
- every ORM SELECT/UPDATE/DELETE in a tenant session gets `tenant_id = <tenant>` added
  (`with_loader_criteria`), so a forgotten filter cannot leak another shop's rows;
- a flush that would write a row of another tenant is refused.
On PostgreSQL each transaction also runs `set_config('app.tenant_id', …, true)` (transaction
local, so it never leaks through the pool) for the row-level security policies.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, false, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import ORMExecuteState, SessionTransaction, with_loader_criteria
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql.elements import BindParameter, ClauseElement
from sqlmodel import Session, create_engine, select

from core.access import Actor
from core.config import get_settings
from core.errors import DatabaseUnavailable, TrellisError
from db.models import SharedCounter, SharedOwned, TenantOwned

log = logging.getLogger(__name__)

TENANT_KEY = "tenant_id"
OWNER_KEYS = ("tenant_id", "owner_tenant_id")
LOGIN_LOOKUP_KEY = "login_lookup"


class TenantViolation(TrellisError):
    """A write would have touched another shop's row."""


def is_postgres(engine: Engine | Connection) -> bool:
    return engine.dialect.name == "postgresql"


def describe_url(url: str) -> str:
    """The URL without its password, fit for an error message or a log line."""
    return make_url(url).render_as_string(hide_password=True)


def get_engine(url: str | None = None) -> Engine:
    """One engine per database URL (cached for the life of the process)."""
    return _cached_engine(url or get_settings().database_url)


@functools.cache
def _cached_engine(url: str) -> Engine:
    return make_engine(url)


def make_engine(url: str) -> Engine:
    """A new engine (tests use this for a private in-memory database)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, parsed.database)
    # No just-in-time compilation: the planner over-estimates some shop-wide joins and spends
    # longer compiling them than running them (memory's customer search: 1.15 of 1.30 s).
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=10,
        connect_args={"options": "-c jit=off"},
    )


def _sqlite_engine(url: str, database: str | None) -> Engine:
    in_memory = database in (None, "", ":memory:")
    if not in_memory:
        Path(str(database)).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 30},
        poolclass=StaticPool if in_memory else None,
    )

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        if not in_memory:
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    return engine


def set_tenant(session: Session, tenant_id: int | None) -> None:
    """Bind the session to one shop: the ORM guard now and the RLS context on PostgreSQL."""
    session.info[TENANT_KEY] = tenant_id
    if session.in_transaction():
        _apply_db_context(session.connection(), session.info)


def _apply_db_context(conn: Connection, info: dict[str, Any]) -> None:
    if not is_postgres(conn):
        return
    tenant = info.get(TENANT_KEY)
    login = "on" if info.get(LOGIN_LOOKUP_KEY) else ""
    conn.execute(
        text("SELECT set_config('app.tenant_id', :t, true), set_config('app.login', :l, true)"),
        {"t": "" if tenant is None else str(tenant), "l": login},
    )


@event.listens_for(Session, "after_begin")
def _on_begin(session: Session, _tx: SessionTransaction, conn: Connection) -> None:
    _apply_db_context(conn, session.info)


@event.listens_for(Session, "do_orm_execute")
def _scope_to_tenant(state: ORMExecuteState) -> None:
    tenant = state.session.info.get(TENANT_KEY)
    if tenant is None:
        return
    if state.is_insert or state.is_update:
        _refuse_other_tenant_values(state, tenant)
    if not (state.is_select or state.is_update or state.is_delete):
        return
    statement = state.statement
    model = state.bind_mapper.class_ if state.bind_mapper else None
    if (state.is_update or state.is_delete) and model and issubclass(model, SharedOwned):
        # Shared rows: every shop reads them, but bulk changes reach only the shop's own.
        statement = statement.where(model.owner_tenant_id == tenant)  # type: ignore[attr-defined]
        state.update_execution_options(synchronize_session=None)
    if state.is_delete and model and issubclass(model, SharedCounter):
        # Counters go only with their shared row (ON DELETE CASCADE), never on their own.
        statement = statement.where(false())  # type: ignore[attr-defined]
        state.update_execution_options(synchronize_session=None)
    # Bulk UPDATE by primary key ignores loader criteria: add the tenant filter itself
    # (SQLAlchemy allows extra WHERE criteria there only without session synchronization).
    bulk_by_pk = state.is_update and isinstance(state.parameters, list)
    if bulk_by_pk and model is not None and issubclass(model, TenantOwned):
        statement = statement.where(model.tenant_id == tenant)  # type: ignore[attr-defined]
        state.update_execution_options(synchronize_session=None)
    state.statement = statement.options(
        *(
            with_loader_criteria(owned, lambda cls: cls.tenant_id == tenant, include_aliases=True)
            for owned in tenant_models()
        )
    )


def _written_rows(state: ORMExecuteState) -> list[Mapping[Any, Any]]:
    """Every row of values an INSERT/UPDATE writes: execute-time parameters and .values()."""
    params = state.parameters
    rows: list[Mapping[Any, Any]] = (
        list(params) if isinstance(params, list) else [params] if params else []  # type: ignore[list-item]
    )
    # SQLAlchemy keeps .values(...) on these attributes; there is no public accessor.
    statement = state.statement
    rows.append(getattr(statement, "_values", None) or {})
    rows.extend(row for group in getattr(statement, "_multi_values", ()) or () for row in group)
    return rows


def _refuse_other_tenant_values(state: ORMExecuteState, tenant: int) -> None:
    """Bulk insert()/update() skip the flush check: check the tenant_id they write here."""
    for row in _written_rows(state):
        for key, value in row.items():
            if (key if isinstance(key, str) else getattr(key, "key", None)) not in OWNER_KEYS:
                continue
            if isinstance(value, BindParameter):
                value = value.effective_value
            elif isinstance(value, ClauseElement):
                raise TenantViolation("Refused to set tenant_id from an SQL expression.")
            if value != tenant:
                raise TenantViolation(
                    f"Refused to write a row of another shop (row tenant {value}, "
                    f"session tenant {tenant})."
                )


@functools.cache
def tenant_models() -> tuple[type[TenantOwned], ...]:
    """Every mapped table class that belongs to a shop."""

    def walk(cls: type[TenantOwned]) -> list[type[TenantOwned]]:
        found = [cls] if hasattr(cls, "__table__") else []
        return found + [m for sub in cls.__subclasses__() for m in walk(sub)]

    return tuple(walk(TenantOwned))


@event.listens_for(Session, "before_flush")
def _refuse_other_tenant_writes(session: Session, _ctx: Any, _instances: Any) -> None:
    tenant = session.info.get(TENANT_KEY)
    if tenant is None:
        return
    for obj in list(session.new) + list(session.deleted):
        if isinstance(obj, SharedCounter):
            _refuse_foreign_counter(session, obj, tenant)
    for obj in list(session.new) + list(session.dirty) + list(session.deleted):
        owner = (
            obj.tenant_id
            if isinstance(obj, TenantOwned)
            else obj.owner_tenant_id
            if isinstance(obj, SharedOwned)
            else tenant
        )
        if owner != tenant:
            raise TenantViolation(
                f"Refused to write a {type(obj).__name__} of another shop "
                f"(row shop {owner}, session shop {tenant})."
            )


def _refuse_foreign_counter(session: Session, counter: SharedCounter, tenant: int) -> None:
    """Only the shared row's shop creates its counter row; nobody deletes one (it cascades)."""
    if counter in session.deleted:
        raise TenantViolation("Use counters go only with their shared row; delete that instead.")
    shared, key = type(counter).counted
    with session.no_autoflush:
        owner = session.exec(
            select(shared.owner_tenant_id).where(shared.id == getattr(counter, key))  # type: ignore[attr-defined]
        ).first()
    if owner != tenant:
        raise TenantViolation(
            f"Refused to create use counters of another shop's row (session shop {tenant})."
        )


@contextmanager
def session_scope(actor: Actor | None, *, engine: Engine | None = None) -> Iterator[Session]:
    """One session per action, bound to the actor's shop; commits on success, else rolls back.

    `actor=None` is the operator scope (migrations, demo set-up, tenant creation), which binds
    no shop: on PostgreSQL RLS then shows it no tenant rows until it calls `set_tenant`.
    """
    engine = engine or get_engine()
    session = Session(engine, expire_on_commit=False)
    session.info[TENANT_KEY] = actor.tenant_id if actor else None
    try:
        yield session
        session.commit()
    except OperationalError as exc:
        session.rollback()
        raise _unavailable(engine, exc) from exc
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@contextmanager
def login_scope(*, engine: Engine | None = None) -> Iterator[Session]:
    """A session that may look users up by username before their shop is known.

    On PostgreSQL this turns on the SELECT-only `login_lookup` policy of app_user for this one
    transaction; once the user is found, call `set_tenant` to act inside their shop.
    """
    engine = engine or get_engine()
    with session_scope(None, engine=engine) as session:
        session.info[LOGIN_LOOKUP_KEY] = True
        yield session


def _unavailable(engine: Engine, exc: OperationalError) -> TrellisError:
    reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
    return DatabaseUnavailable(
        f"Cannot use the database set by DATABASE_URL ({describe_url(str(engine.url))}): {reason}"
    )


def ping(engine: Engine) -> None:
    """Raise DatabaseUnavailable unless the database answers."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        raise _unavailable(engine, exc) from exc
