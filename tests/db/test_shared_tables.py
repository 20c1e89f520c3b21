"""Shared tables: every shop reads a row, only the shop in owner_tenant_id changes it.

The tables come from db.models.shared_tables() and their rows from the generic builder in
tests/db/rows.py, so a shared table added later is covered with no edit here. Shop A owns one
row and shop B one; B then tries to change or delete A's row, or create one in A's name:
- through the ORM on both backends, where the tenant guard in db.engine is the line;
- in raw SQL as the app role on PostgreSQL, where row-level security is.
Counter tables hang off a shared row without an owner column of their own (import_profile_usage):
any shop counts, only the parent's owner creates the row, and it goes only with its parent.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from sqlalchemy import Connection, Engine, Table, delete, func, insert, text, update
from sqlalchemy import select as core_select
from sqlalchemy.exc import ProgrammingError
from sqlmodel import SQLModel, select

from db.engine import TenantViolation, session_scope
from db.models import ImportProfileUsage, SharedOwned, shared_tables
from tests.conftest import PgDatabase, catalog, truncate_all
from tests.db.rows import Row, build_values, changeable_column, column_value, insert_row, pk_column
from tests.factories import Shop, make_shop

TABLES = shared_tables()
OWNER = "owner_tenant_id"


def shared_models() -> dict[str, type[SharedOwned]]:
    """Every mapped class of a shared table, by table name."""

    def walk(cls: type[SharedOwned]) -> list[type[SharedOwned]]:
        found = [cls] if hasattr(cls, "__table__") else []
        return found + [m for sub in cls.__subclasses__() for m in walk(sub)]

    return {m.__table__.name: m for m in walk(SharedOwned)}  # type: ignore[attr-defined]


def counter_tables() -> list[str]:
    """Tables that belong to a shared row but carry no owner (or tenant) column themselves."""
    return sorted(
        t.name
        for t in SQLModel.metadata.sorted_tables
        if OWNER not in t.c
        and "tenant_id" not in t.c
        and any(fk.column.table.name in TABLES for fk in t.foreign_keys)
    )


COUNTERS = counter_tables()


def test_shared_tables_are_discovered():
    """The checks below must never silently run over nothing."""
    assert "import_profile" in TABLES
    assert "import_profile_usage" in COUNTERS


def test_every_shared_table_is_mapped_by_a_shared_owned_model():
    assert sorted(shared_models()) == TABLES, "a shared table needs a model inheriting SharedOwned"


@pytest.mark.parametrize("table_name", TABLES)
def test_every_shared_table_indexes_its_owner(table_name):
    table = SQLModel.metadata.tables[table_name]
    assert any(next(iter(ix.columns)).name == OWNER for ix in table.indexes)


# ---------------------------------------------------------------- the world of two shops


@dataclass
class World:
    engine: Engine
    table: Table
    model: type[SharedOwned]
    a: Shop
    b: Shop
    a_row: Row
    b_row: Row

    @property
    def pk(self) -> Any:
        return getattr(self.model, pk_column(self.table).name)

    def snapshot(self) -> dict[Any, dict[str, Any]]:
        """Every row of the table (any shop reads them all), by primary key."""
        pk = pk_column(self.table)
        with session_scope(self.a.admin, engine=self.engine) as s:
            rows = s.execute(core_select(self.table)).mappings()
            return {r[pk.name]: dict(r) for r in rows}

    def new_values_of_b_owned_by_a(self) -> dict[str, Any]:
        """A new row B would create in A's name (its parents, if any, are B's)."""
        with session_scope(self.b.admin, engine=self.engine) as s:
            values = build_values(s, self.table, self.b.tenant_id)
        values[OWNER] = self.a.tenant_id
        return values


def make_world(engine: Engine, table_name: str) -> World:
    table = SQLModel.metadata.tables[table_name]
    a, b = make_shop(engine, "Shop A"), make_shop(engine, "Shop B")
    with session_scope(a.admin, engine=engine) as s:
        a_row = insert_row(s, table, a.tenant_id)
    with session_scope(b.admin, engine=engine) as s:
        b_row = insert_row(s, table, b.tenant_id)
    world = World(engine, table, shared_models()[table_name], a, b, a_row, b_row)
    snap = world.snapshot()
    assert snap[a_row.pk][OWNER] == a.tenant_id and snap[b_row.pk][OWNER] == b.tenant_id
    return world


shared = pytest.mark.parametrize("table_name", TABLES)


# ---------------------------------------------------------------- ORM, both backends


@shared
def test_other_shop_reads_a_shared_row(engine, table_name):
    w = make_world(engine, table_name)
    with session_scope(w.b.florist, engine=engine) as s:
        seen = {getattr(r, w.pk.key) for r in s.exec(select(w.model)).all()}
        assert s.get(w.model, w.a_row.pk) is not None
    assert seen == {w.a_row.pk, w.b_row.pk}


@shared
def test_other_shops_bulk_update_changes_nothing(engine, table_name):
    w = make_world(engine, table_name)
    column = changeable_column(w.table)
    before = w.snapshot()
    statement = (
        update(w.model).where(w.pk == w.a_row.pk).values({column.name: column_value(column)})
    )
    with session_scope(w.b.admin, engine=engine) as s:
        assert s.execute(statement).rowcount == 0
    assert w.snapshot() == before
    # The positive control: the same statement by the owner does change the row.
    with session_scope(w.a.admin, engine=engine) as s:
        assert s.execute(statement).rowcount == 1
    assert w.snapshot()[w.a_row.pk][column.name] != before[w.a_row.pk][column.name]


@shared
def test_other_shops_bulk_delete_deletes_nothing(engine, table_name):
    w = make_world(engine, table_name)
    before = w.snapshot()
    statement = delete(w.model).where(w.pk == w.a_row.pk)
    with session_scope(w.b.admin, engine=engine) as s:
        assert s.execute(statement).rowcount == 0
    assert w.snapshot() == before
    with session_scope(w.a.admin, engine=engine) as s:
        assert s.execute(statement).rowcount == 1
    assert w.a_row.pk not in w.snapshot()


@shared
def test_other_shop_flushing_a_change_to_a_loaded_row_is_refused(engine, table_name):
    w = make_world(engine, table_name)
    column = changeable_column(w.table)
    before = w.snapshot()
    with pytest.raises(TenantViolation), session_scope(w.b.admin, engine=engine) as s:
        obj = s.get(w.model, w.a_row.pk)
        assert obj is not None
        setattr(obj, column.name, column_value(column))
    assert w.snapshot() == before


@shared
def test_other_shop_deleting_a_loaded_row_is_refused(engine, table_name):
    w = make_world(engine, table_name)
    before = w.snapshot()
    with pytest.raises(TenantViolation), session_scope(w.b.admin, engine=engine) as s:
        obj = s.get(w.model, w.a_row.pk)
        assert obj is not None
        s.delete(obj)
    assert w.snapshot() == before


@shared
def test_other_shop_cannot_add_a_row_in_the_owners_name(engine, table_name):
    w = make_world(engine, table_name)
    values = w.new_values_of_b_owned_by_a()
    before = w.snapshot()
    with pytest.raises(TenantViolation), session_scope(w.b.admin, engine=engine) as s:
        s.add(w.model(**values))
    with pytest.raises(TenantViolation), session_scope(w.b.admin, engine=engine) as s:
        s.execute(insert(w.model).values(**values))
    assert w.snapshot() == before


@shared
def test_a_shop_cannot_give_its_row_to_another(engine, table_name):
    w = make_world(engine, table_name)
    before = w.snapshot()
    with pytest.raises(TenantViolation), session_scope(w.b.admin, engine=engine) as s:
        obj = s.get(w.model, w.b_row.pk)
        assert obj is not None
        setattr(obj, OWNER, w.a.tenant_id)
    with pytest.raises(TenantViolation), session_scope(w.b.admin, engine=engine) as s:
        s.execute(update(w.model).where(w.pk == w.b_row.pk).values({OWNER: w.a.tenant_id}))
    assert w.snapshot() == before


# ---------------------------------------------------------------- counters, both backends


@pytest.fixture
def counted(engine) -> tuple[World, Row]:
    """A's import_profile row with its counter row (as core.profiles creates them)."""
    w = make_world(engine, "import_profile")
    usage = SQLModel.metadata.tables["import_profile_usage"]
    with session_scope(w.a.admin, engine=engine) as s:
        s.execute(insert(usage).values(profile_id=w.a_row.pk, success_count=0, failure_count=0))
    return w, Row(usage, w.a_row.pk, {})


def _counts(engine: Engine, actor: Any, profile_id: int) -> tuple[int, int] | None:
    with session_scope(actor, engine=engine) as s:
        usage = s.get(ImportProfileUsage, profile_id)
        return (usage.success_count, usage.failure_count) if usage else None


def test_other_shop_counts_a_use_of_a_shared_row(engine, counted):
    w, row = counted
    with session_scope(w.b.admin, engine=engine) as s:
        statement = (
            update(ImportProfileUsage)
            .where(ImportProfileUsage.profile_id == row.pk)
            .values(success_count=ImportProfileUsage.success_count + 1)
        )
        assert s.execute(statement).rowcount == 1
    assert _counts(engine, w.a.admin, row.pk) == (1, 0)


def test_other_shop_cannot_delete_the_counters_of_a_shared_row(engine, counted):
    w, row = counted
    with session_scope(w.b.admin, engine=engine) as s:
        s.execute(delete(ImportProfileUsage).where(ImportProfileUsage.profile_id == row.pk))
    assert _counts(engine, w.a.admin, row.pk) == (0, 0)


def test_other_shop_cannot_create_counters_of_a_row_it_does_not_own(engine):
    w = make_world(engine, "import_profile")  # A's row has no counter row yet
    # PostgreSQL: RLS (counter_create) refuses it; SQLite: only the guard could.
    with (
        pytest.raises((TenantViolation, ProgrammingError)),
        session_scope(w.b.admin, engine=engine) as s,
    ):
        s.add(ImportProfileUsage(profile_id=w.a_row.pk, success_count=500))
    assert _counts(engine, w.a.admin, w.a_row.pk) is None


def test_counters_go_with_their_shared_row(engine, counted):
    """ON DELETE CASCADE, on SQLite too (db.engine turns foreign_keys on)."""
    w, row = counted
    with session_scope(w.a.admin, engine=engine) as s:
        assert s.execute(delete(w.model).where(w.pk == w.a_row.pk)).rowcount == 1
    assert _counts(engine, w.a.admin, row.pk) is None


# ---------------------------------------------------------------- raw SQL as the app role


@contextmanager
def as_app(pg: PgDatabase, tenant: int | None, *, commit: bool = False) -> Iterator[Connection]:
    """One transaction as the app role, bound to `tenant` like db.engine does.

    Rolled back unless `commit` (then committed when the block ends without an error).
    """
    with pg.app.connect() as conn:
        tx = conn.begin()
        try:
            conn.execute(
                text("SELECT set_config('app.tenant_id', :t, true)"),
                {"t": "" if tenant is None else str(tenant)},
            )
            yield conn
            if commit:
                tx.commit()
        finally:
            if tx.is_active:
                tx.rollback()


def refused_by_rls(pg: PgDatabase, tenant: int | None, statement: Any) -> None:
    with pytest.raises(ProgrammingError) as caught, as_app(pg, tenant) as conn:
        conn.execute(statement)
    assert isinstance(caught.value.orig, psycopg.errors.InsufficientPrivilege), caught.value
    assert "row-level security" in str(caught.value)


def _count(conn: Connection, table: Table, where: Any = None) -> int:
    query = core_select(func.count()).select_from(table)
    return conn.execute(query if where is None else query.where(where)).scalar_one()


@pytest.fixture
def raw_world(pg, request) -> World:
    truncate_all(pg.owner)
    return make_world(pg.app, request.param)


raw = pytest.mark.parametrize("raw_world", TABLES, indirect=True)


@raw
def test_raw_select_sees_other_shops_row(pg, raw_world):
    w = raw_world
    with as_app(pg, w.b.tenant_id) as conn:
        assert _count(conn, w.table, pk_column(w.table) == w.a_row.pk) == 1
        assert _count(conn, w.table) == 2


@raw
def test_raw_update_and_delete_of_other_shops_row_affect_nothing(pg, raw_world):
    w = raw_world
    pk, column = pk_column(w.table), changeable_column(w.table)
    before = w.snapshot()
    with as_app(pg, w.b.tenant_id) as conn:
        changes = {column.name: column_value(column)}
        assert conn.execute(update(w.table).where(pk == w.a_row.pk).values(changes)).rowcount == 0
        assert conn.execute(delete(w.table).where(pk == w.a_row.pk)).rowcount == 0
        # The positive control, in the same transaction: B's own row does change.
        assert conn.execute(update(w.table).where(pk == w.b_row.pk).values(changes)).rowcount == 1
        assert conn.execute(delete(w.table).where(pk == w.b_row.pk)).rowcount == 1
    assert w.snapshot() == before


@raw
def test_raw_insert_in_other_shops_name_is_refused(pg, raw_world):
    w = raw_world
    values = w.new_values_of_b_owned_by_a()
    refused_by_rls(pg, w.b.tenant_id, insert(w.table).values(**values))
    with as_app(pg, w.b.tenant_id) as conn:  # the positive control: in its own name it works
        conn.execute(insert(w.table).values(**{**values, OWNER: w.b.tenant_id}))


@raw
def test_raw_update_giving_own_row_to_other_shop_is_refused(pg, raw_world):
    w = raw_world
    statement = (
        update(w.table).where(pk_column(w.table) == w.b_row.pk).values({OWNER: w.a.tenant_id})
    )
    refused_by_rls(pg, w.b.tenant_id, statement)


@raw
def test_raw_without_a_shop_sees_and_changes_nothing(pg, raw_world):
    w = raw_world
    pk, column = pk_column(w.table), changeable_column(w.table)
    with as_app(pg, None) as conn:
        assert _count(conn, w.table) == 0
        changes = {column.name: column_value(column)}
        assert conn.execute(update(w.table).where(pk == w.a_row.pk).values(changes)).rowcount == 0
        assert conn.execute(delete(w.table).where(pk == w.a_row.pk)).rowcount == 0
    values = w.new_values_of_b_owned_by_a()
    refused_by_rls(pg, None, insert(w.table).values(**values))


# ---------------------------------------------------------------- PostgreSQL posture


def test_tables_with_an_owner_column_in_the_database_are_the_shared_tables(pg):
    rows = catalog(
        pg,
        "SELECT table_name FROM information_schema.columns "
        "WHERE table_schema = 'public' AND column_name = :c",
        c=OWNER,
    )
    assert sorted(r[0] for r in rows) == TABLES


@pytest.mark.parametrize("table", TABLES + COUNTERS)
def test_shared_and_counter_tables_have_forced_rls(pg, table):
    ((enabled, forced),) = catalog(
        pg,
        "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = to_regclass(:t)",
        t=f"public.{table}",
    )
    assert enabled, f"{table}: ROW LEVEL SECURITY is not enabled"
    assert forced, f"{table}: ROW LEVEL SECURITY is not FORCEd (the owner would bypass it)"


def _policies(pg: PgDatabase, table: str) -> set[tuple[str, str]]:
    rows = catalog(
        pg,
        "SELECT policyname, cmd FROM pg_policies WHERE schemaname = 'public' AND tablename = :t",
        t=table,
    )
    return {(name, cmd) for name, cmd in rows}


@pytest.mark.parametrize("table", TABLES)
def test_shared_tables_have_exactly_the_owner_policies(pg, table):
    """Permissive policies OR together: any extra one would widen what a shop may do."""
    assert _policies(pg, table) == {
        ("shared_read", "SELECT"),
        ("owner_insert", "INSERT"),
        ("owner_update", "UPDATE"),
        ("owner_delete", "DELETE"),
    }


@pytest.mark.parametrize("table", COUNTERS)
def test_counter_tables_have_exactly_the_counter_policies(pg, table):
    """No DELETE policy: counters go only with their parent (ON DELETE CASCADE)."""
    assert _policies(pg, table) == {
        ("counter_read", "SELECT"),
        ("counter_count", "UPDATE"),
        ("counter_create", "INSERT"),
    }


def _refused_privilege(pg: PgDatabase, sql: str) -> None:
    with pytest.raises(ProgrammingError) as caught, as_app(pg, None) as conn:
        conn.execute(text(sql))
    assert isinstance(caught.value.orig, psycopg.errors.InsufficientPrivilege), caught.value


@pytest.mark.parametrize("table", TABLES + COUNTERS)
@pytest.mark.parametrize(
    "ddl",
    [
        "DROP TABLE {t}",
        "ALTER TABLE {t} DISABLE ROW LEVEL SECURITY",
        "ALTER TABLE {t} NO FORCE ROW LEVEL SECURITY",
        "TRUNCATE {t}",  # TRUNCATE ignores RLS: the app role must not have it
    ],
    ids=["drop", "disable-rls", "no-force-rls", "truncate"],
)
def test_app_role_cannot_alter_shared_or_counter_table(pg, table, ddl):
    _refused_privilege(pg, ddl.format(t=table))


# ---------------------------------------------------------------- counters, raw SQL


@pytest.fixture
def raw_counted(pg) -> tuple[World, Table]:
    """A's and B's profiles; A's has a counter row, B's has none yet."""
    truncate_all(pg.owner)
    w = make_world(pg.app, "import_profile")
    usage = SQLModel.metadata.tables["import_profile_usage"]
    with as_app(pg, w.a.tenant_id, commit=True) as conn:
        conn.execute(insert(usage).values(profile_id=w.a_row.pk, success_count=0, failure_count=0))
    return w, usage


def _owner_counts(pg: PgDatabase, usage: Table) -> dict[int, tuple[int, int]]:
    with pg.owner.connect() as conn:
        rows = conn.execute(
            core_select(usage.c.profile_id, usage.c.success_count, usage.c.failure_count)
        )
        return {r[0]: (r[1], r[2]) for r in rows}


def test_raw_other_shop_counts_a_use(pg, raw_counted):
    w, usage = raw_counted
    with as_app(pg, w.b.tenant_id, commit=True) as conn:
        statement = (
            update(usage)
            .where(usage.c.profile_id == w.a_row.pk)
            .values(success_count=usage.c.success_count + 1)
        )
        assert conn.execute(statement).rowcount == 1
    assert _owner_counts(pg, usage) == {w.a_row.pk: (1, 0)}


def test_raw_other_shop_cannot_create_counters_of_a_row_it_does_not_own(pg, raw_counted):
    w, usage = raw_counted
    refused_by_rls(
        pg,
        w.a.tenant_id,
        insert(usage).values(profile_id=w.b_row.pk, success_count=5, failure_count=0),
    )
    with as_app(pg, w.b.tenant_id) as conn:  # the positive control: the owner may create them
        conn.execute(insert(usage).values(profile_id=w.b_row.pk, success_count=0, failure_count=0))


def test_raw_nobody_deletes_counters_directly(pg, raw_counted):
    w, usage = raw_counted
    for shop in (w.b, w.a):  # not another shop, and not the owner either
        with as_app(pg, shop.tenant_id) as conn:
            assert conn.execute(delete(usage)).rowcount == 0
    assert _owner_counts(pg, usage) == {w.a_row.pk: (0, 0)}


def test_raw_without_a_shop_counters_are_out_of_reach(pg, raw_counted):
    w, usage = raw_counted
    with as_app(pg, None) as conn:
        assert _count(conn, usage) == 0
        assert conn.execute(update(usage).values(success_count=99)).rowcount == 0
    assert _owner_counts(pg, usage) == {w.a_row.pk: (0, 0)}


def test_raw_deleting_a_profile_takes_its_counters_despite_rls(pg, raw_counted):
    """The cascade runs as the table owner, so the missing DELETE policy does not block it."""
    w, usage = raw_counted
    with as_app(pg, w.a.tenant_id, commit=True) as conn:
        assert conn.execute(delete(w.table).where(w.table.c.id == w.a_row.pk)).rowcount == 1
    assert _owner_counts(pg, usage) == {}


def test_every_counter_table_is_a_shared_counter():
    """The guard protects counter rows through the SharedCounter mixin: none may be missed."""
    from db.models import SharedCounter

    guarded = {m.__table__.name for m in SharedCounter.__subclasses__()}  # type: ignore[attr-defined]
    assert set(COUNTERS) <= guarded
