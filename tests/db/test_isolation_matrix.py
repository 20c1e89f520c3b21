"""Tenant isolation matrix: every tenant table x operation x role x backend.

The tables are discovered from SQLModel.metadata (db.models.tenant_tables()), and their rows are
built generically (tests/db/rows.py), so a table added later is covered with no edit here.
Two shops A and B each get one row per table; an actor of A then tries to read, change, delete,
create or capture B's rows through the ORM, and must see or touch nothing of B. On PostgreSQL
the same attempts in raw SQL over the app role's connection prove that row-level security holds
even when the application filter is bypassed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from sqlalchemy import Connection, Engine, Table, delete, insert, text, update
from sqlalchemy import select as core_select
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.orm.exc import StaleDataError
from sqlmodel import SQLModel, select

from core.access import ALL_ROLES, Role
from db.engine import TenantViolation, session_scope, tenant_models
from db.models import TenantOwned, tenant_tables
from tests.conftest import PgDatabase, SavedShops
from tests.db.rows import (
    Row,
    build_values,
    changeable_column,
    column_value,
    insert_row,
    model_of,
    pk_column,
)
from tests.factories import Shop

TABLES = tenant_tables()


def test_tables_are_discovered():
    """The matrix must never silently run over nothing."""
    assert "example" in TABLES and "app_user" in TABLES


def test_every_tenant_table_is_mapped_by_a_guarded_model():
    guarded = {m.__table__.name for m in tenant_models()}  # type: ignore[attr-defined]
    assert set(TABLES) == guarded, (
        "every table with tenant_id needs a model inheriting TenantOwned (the guard's list): "
        f"unguarded {sorted(set(TABLES) - guarded)}"
    )


@pytest.mark.parametrize("model", tenant_models(), ids=lambda m: m.__tablename__)
def test_every_tenant_model_has_an_index_led_by_tenant_id(model: type[TenantOwned]):
    table: Table = model.__table__  # type: ignore[attr-defined]
    leading = [ix.name for ix in table.indexes if next(iter(ix.columns)).name == "tenant_id"]
    assert leading, f"{table.name} has no index whose first column is tenant_id"


# ---------------------------------------------------------------- the world of two shops


@dataclass
class World:
    engine: Engine
    table: Table
    model: type[TenantOwned]
    a: Shop
    b: Shop
    a_row: Row
    b_row: Row
    b_new: dict[str, Any]  # values of a new row of B (its parents exist), not inserted

    @property
    def pk(self) -> Any:
        return getattr(self.model, pk_column(self.table).name)

    def snapshot(self) -> dict[int, dict[Any, dict[str, Any]]]:
        """Every row of the table, per shop, each read in that shop's own session."""
        out: dict[int, dict[Any, dict[str, Any]]] = {}
        pk = pk_column(self.table)
        for shop in (self.a, self.b):
            with session_scope(shop.admin, engine=self.engine) as s:
                rows = s.execute(
                    core_select(self.table).where(self.table.c.tenant_id == shop.tenant_id)
                ).mappings()
                out[shop.tenant_id] = {r[pk.name]: dict(r) for r in rows}
        return out


def make_world(engine: Engine, table_name: str, shops: tuple[Shop, ...]) -> World:
    """Shops A and B (made by make_shop, `shops`) and one row of the table for each."""
    table = SQLModel.metadata.tables[table_name]
    a, b = shops
    with session_scope(a.admin, engine=engine) as s:
        a_row = insert_row(s, table, a.tenant_id)
    with session_scope(b.admin, engine=engine) as s:
        b_row = insert_row(s, table, b.tenant_id)
        b_new = build_values(s, table, b.tenant_id)
    world = World(engine, table, model_of(table_name), a, b, a_row, b_row, b_new)
    snap = world.snapshot()
    assert a_row.pk in snap[a.tenant_id] and b_row.pk in snap[b.tenant_id]
    return world


@pytest.fixture
def world(
    engine: Engine, start_with_shops: Callable[..., tuple[Shop, ...]]
) -> Callable[[str], World]:
    """make_world on the test's database (the two shops are put back from a copy)."""
    return lambda table_name: make_world(engine, table_name, start_with_shops("Shop A", "Shop B"))


matrix = pytest.mark.parametrize(
    ("table_name", "role"),
    [pytest.param(t, r, id=f"{t}-{r.value}") for t in TABLES for r in ALL_ROLES],
)


# ---------------------------------------------------------------- ORM, both backends


@matrix
def test_select_without_filter_returns_only_own_rows(world, engine, table_name: str, role: Role):
    w = world(table_name)
    own = set(w.snapshot()[w.a.tenant_id])
    with session_scope(w.a.actor(role), engine=engine) as s:
        rows = s.exec(select(w.model)).all()
        seen = {getattr(r, w.pk.key) for r in rows}
        assert {r.tenant_id for r in rows} == {w.a.tenant_id}
    assert w.b_row.pk not in seen
    assert seen == own and w.a_row.pk in seen


@matrix
def test_get_of_other_tenant_row_is_none(world, engine, table_name: str, role: Role):
    w = world(table_name)
    with session_scope(w.a.actor(role), engine=engine) as s:
        assert s.get(w.model, w.b_row.pk) is None
        assert s.get(w.model, w.a_row.pk) is not None


@matrix
def test_update_of_other_tenant_row_changes_nothing(world, engine, table_name: str, role: Role):
    w = world(table_name)
    col = changeable_column(w.table)
    attr = getattr(w.model, col.name)
    before = w.snapshot()
    with session_scope(w.a.actor(role), engine=engine) as s:
        result = s.execute(
            update(w.model).where(w.pk == w.b_row.pk).values({attr: column_value(col)})
        )
        assert result.rowcount == 0
    assert w.snapshot() == before
    # The same statement on A's own row does change it: the statement itself is effective.
    with session_scope(w.a.actor(role), engine=engine) as s:
        result = s.execute(
            update(w.model).where(w.pk == w.a_row.pk).values({attr: column_value(col)})
        )
        assert result.rowcount == 1
    after = w.snapshot()
    assert after[w.a.tenant_id][w.a_row.pk][col.name] != before[w.a.tenant_id][w.a_row.pk][col.name]
    assert after[w.b.tenant_id] == before[w.b.tenant_id]


@matrix
def test_delete_of_other_tenant_row_deletes_nothing(world, engine, table_name: str, role: Role):
    w = world(table_name)
    before = w.snapshot()
    with session_scope(w.a.actor(role), engine=engine) as s:
        assert s.execute(delete(w.model).where(w.pk == w.b_row.pk)).rowcount == 0
    assert w.snapshot() == before
    with session_scope(w.a.actor(role), engine=engine) as s:
        assert s.execute(delete(w.model).where(w.pk == w.a_row.pk)).rowcount == 1
    after = w.snapshot()
    assert w.a_row.pk not in after[w.a.tenant_id]
    assert after[w.b.tenant_id] == before[w.b.tenant_id]


@matrix
def test_adding_a_row_of_other_tenant_is_refused(world, engine, table_name: str, role: Role):
    w = world(table_name)
    before = w.snapshot()
    with pytest.raises(TenantViolation), session_scope(w.a.actor(role), engine=engine) as s:
        s.add(w.model(**w.b_new))
    assert w.snapshot() == before


@matrix
def test_moving_own_row_to_other_tenant_is_refused(world, engine, table_name: str, role: Role):
    w = world(table_name)
    before = w.snapshot()
    with pytest.raises(TenantViolation), session_scope(w.a.actor(role), engine=engine) as s:
        obj = s.get(w.model, w.a_row.pk)
        assert obj is not None
        obj.tenant_id = w.b.tenant_id
    assert w.snapshot() == before


@matrix
def test_bulk_update_moving_own_row_to_other_tenant_is_refused(world, engine, table_name, role):
    """`update(Model).values(tenant_id=B)` on A's own row: the ORM statement form of the move."""
    w = world(table_name)
    before = w.snapshot()
    with pytest.raises(TenantViolation), session_scope(w.a.actor(role), engine=engine) as s:
        s.execute(update(w.model).where(w.pk == w.a_row.pk).values(tenant_id=w.b.tenant_id))
    assert w.snapshot() == before


INSERT_FORMS = {
    "values": lambda model, vals: (insert(model).values(**vals), None),
    "multi-values": lambda model, vals: (insert(model).values([vals]), None),
    "params": lambda model, vals: (insert(model), [vals]),
}


@matrix
@pytest.mark.parametrize("form", list(INSERT_FORMS))
def test_insert_statement_for_other_tenant_is_refused(world, engine, table_name, role, form):
    """`session.execute(insert(Model)...)` with tenant_id = B: the ORM statement form of add."""
    w = world(table_name)
    before = w.snapshot()
    stmt, params = INSERT_FORMS[form](w.model, w.b_new)
    with pytest.raises(TenantViolation), session_scope(w.a.actor(role), engine=engine) as s:
        s.execute(stmt, params)
    assert w.snapshot() == before


@matrix
def test_bulk_update_by_primary_key_of_other_tenant_row_changes_nothing(
    world, engine, table_name, role
):
    """`session.execute(update(Model), [{pk: b_id, ...}])`: ORM bulk UPDATE by primary key."""
    w = world(table_name)
    col = changeable_column(w.table)
    before = w.snapshot()
    with (
        contextlib.suppress(TenantViolation, StaleDataError),
        session_scope(w.a.actor(role), engine=engine) as s,
    ):
        s.execute(update(w.model), [{w.pk.key: w.b_row.pk, col.name: column_value(col)}])
    assert w.snapshot() == before
    # The same statement on A's own row does change it.
    with session_scope(w.a.actor(role), engine=engine) as s:
        s.execute(update(w.model), [{w.pk.key: w.a_row.pk, col.name: column_value(col)}])
    after = w.snapshot()
    assert after[w.a.tenant_id][w.a_row.pk][col.name] != before[w.a.tenant_id][w.a_row.pk][col.name]


# ---------------------------------------------------------------- PostgreSQL RLS, raw SQL

per_table = pytest.mark.parametrize("table_name", TABLES)


@pytest.fixture
def pg_world(pg: PgDatabase, saved_shops: SavedShops) -> Callable[[str], World]:
    """The two shops and their rows, written through the app role on an emptied database."""
    return lambda table_name: make_world(
        pg.app, table_name, saved_shops.start(pg.app, pg, "Shop A", "Shop B")
    )


@contextmanager
def raw_as_tenant(pg: PgDatabase, tenant_id: int) -> Iterator[Connection]:
    """The app role's connection, no ORM, in a transaction bound to `tenant_id` (commits)."""
    with pg.app.connect() as conn, conn.begin():
        conn.execute(text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(tenant_id)})
        yield conn


def owner_counts(pg: PgDatabase, w: World) -> dict[int, int]:
    """Rows per shop as the superuser owner (RLS does not apply): the ground truth."""
    with pg.owner.connect() as conn:
        rows = conn.execute(text(f"SELECT tenant_id, count(*) FROM {_q(w.table)} GROUP BY 1"))
        return dict(rows.all())  # type: ignore[arg-type]


def _q(table: Table) -> str:
    return f'"{table.name}"'


def _assert_rls_refusal(exc: BaseException) -> None:
    assert isinstance(exc, ProgrammingError), exc
    assert isinstance(exc.orig, psycopg.errors.InsufficientPrivilege), exc
    assert "row-level security" in str(exc)


@per_table
def test_rls_hides_other_tenant_rows(pg: PgDatabase, pg_world, table_name: str):
    w = pg_world(table_name)
    with raw_as_tenant(pg, w.a.tenant_id) as conn:
        sql = f"SELECT count(*) FROM {_q(w.table)} WHERE tenant_id = :t"
        assert conn.execute(text(sql), {"t": w.b.tenant_id}).scalar() == 0
        own = conn.execute(text(sql), {"t": w.a.tenant_id}).scalar()
        total = conn.execute(text(f"SELECT count(*) FROM {_q(w.table)}")).scalar()
    counts = owner_counts(pg, w)
    assert counts[w.b.tenant_id] >= 1
    assert own == total == counts[w.a.tenant_id]


@per_table
def test_rls_update_of_other_tenant_rows_touches_nothing(pg: PgDatabase, pg_world, table_name: str):
    w = pg_world(table_name)
    before = owner_counts(pg, w)
    with raw_as_tenant(pg, w.a.tenant_id) as conn:
        sql = f"UPDATE {_q(w.table)} SET tenant_id = tenant_id WHERE tenant_id = :t"
        assert conn.execute(text(sql), {"t": w.b.tenant_id}).rowcount == 0
        assert conn.execute(text(sql), {"t": w.a.tenant_id}).rowcount == before[w.a.tenant_id]
    assert owner_counts(pg, w) == before


@per_table
def test_rls_delete_of_other_tenant_rows_deletes_nothing(pg: PgDatabase, pg_world, table_name: str):
    w = pg_world(table_name)
    before = owner_counts(pg, w)
    with raw_as_tenant(pg, w.a.tenant_id) as conn:
        sql = f"DELETE FROM {_q(w.table)} WHERE tenant_id = :t"
        assert conn.execute(text(sql), {"t": w.b.tenant_id}).rowcount == 0
    assert owner_counts(pg, w) == before


@per_table
def test_rls_insert_of_other_tenant_row_raises(pg: PgDatabase, pg_world, table_name: str):
    w = pg_world(table_name)
    before = owner_counts(pg, w)
    with pytest.raises(ProgrammingError) as caught, raw_as_tenant(pg, w.a.tenant_id) as conn:
        conn.execute(insert(w.table).values(**w.b_new))
    _assert_rls_refusal(caught.value)
    assert owner_counts(pg, w) == before


@per_table
def test_rls_update_moving_own_row_to_other_tenant_raises(
    pg: PgDatabase, pg_world, table_name: str
):
    w = pg_world(table_name)
    before = owner_counts(pg, w)
    pk = pk_column(w.table).name
    with pytest.raises(ProgrammingError) as caught, raw_as_tenant(pg, w.a.tenant_id) as conn:
        conn.execute(
            text(f'UPDATE {_q(w.table)} SET tenant_id = :b WHERE "{pk}" = :id'),
            {"b": w.b.tenant_id, "id": w.a_row.pk},
        )
    _assert_rls_refusal(caught.value)
    assert owner_counts(pg, w) == before
