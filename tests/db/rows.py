"""Generic rows for any table, built from SQLModel.metadata alone.

The isolation tests use this to put one row per shop into every tenant table, so a table added
later is covered without editing a test. Every non-nullable column without a default gets a
value by type; every foreign key gets a parent row of the same shop (created recursively), except
`tenant_id`, which is the shop itself. Every generated value carries a process-wide counter, so
unique columns always get unique values.
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
    Enum,
    Float,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Table,
    TypeDecorator,
    Uuid,
    insert,
    select,
)
from sqlalchemy.types import TypeEngine
from sqlmodel import Session

from db.engine import tenant_models
from db.models import TenantOwned

_counter = itertools.count(1)


def model_of(table_name: str) -> type[TenantOwned]:
    """The ORM class the tenant guard knows for a tenant table."""
    by_name = {m.__table__.name: m for m in tenant_models()}  # type: ignore[attr-defined]
    if table_name not in by_name:
        raise AssertionError(f"table {table_name} has tenant_id but no class in tenant_models()")
    return by_name[table_name]


def pk_column(table: Table) -> Column[Any]:
    cols = list(table.primary_key.columns)
    if len(cols) != 1:
        raise AssertionError(f"row builder: {table.name} needs a single-column primary key")
    return cols[0]


def _is_generated_pk(col: Column[Any]) -> bool:
    return bool(col.primary_key and not col.foreign_keys and col.autoincrement in (True, "auto"))


def base_type(col: Column[Any]) -> TypeEngine[Any]:
    """The column's type with any TypeDecorator (AutoString, UTCDateTime...) unwrapped."""
    t: TypeEngine[Any] = col.type
    while isinstance(t, TypeDecorator):
        t = t.impl_instance
    return t


def column_value(col: Column[Any], n: int | None = None) -> Any:
    """A value fit for `col`, distinct for every call (so unique columns stay unique)."""
    n = next(_counter) if n is None else n
    t = base_type(col)
    if isinstance(t, Enum) and t.enums:
        return t.enums[0]
    if isinstance(t, Boolean):
        return True
    if isinstance(t, Integer):
        return n
    if isinstance(t, Float):
        return n / (n + 1)  # in [0, 1): fits probabilities such as confidence
    if isinstance(t, Numeric):
        return Decimal(n)
    if isinstance(t, DateTime):
        return datetime.now(UTC) + timedelta(microseconds=n)  # aware UTC on both backends
    if isinstance(t, Date):
        return date(2000, 1, 1) + timedelta(days=n)
    if isinstance(t, JSON):
        return {"n": n}
    if isinstance(t, Uuid):
        return uuid.uuid4()
    if isinstance(t, LargeBinary):
        return str(n).encode()
    if isinstance(t, String):  # String, AutoString, Text, Unicode
        value = f"{col.name}-{n}"
        if t.length and len(value) > t.length:
            value = str(n)[-t.length :]
        return value
    raise AssertionError(
        f"row builder: teach tests/db/rows.py the type {col.type!r} of {col.table}.{col.name}"
    )


@dataclass(frozen=True)
class Row:
    table: Table
    pk: Any
    values: dict[str, Any]


# Values the builder cannot guess from the metadata: partial unique indexes allow only one
# row per shop in some states (one active training run), so generated rows avoid those states.
TABLE_VALUES: dict[str, dict[str, Any]] = {"training_run": {"status": "completed"}}


def build_values(
    session: Session, table: Table, tenant_id: int, *, _chain: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Column values for a new row of `table` in shop `tenant_id` (not inserted).

    Parent rows its foreign keys need are inserted (in `session`, as that shop), recursively.
    """
    chain = (*_chain, table.name)
    values: dict[str, Any] = dict(TABLE_VALUES.get(table.name, {}))
    for col in table.columns:
        if col.name in values:
            continue
        if col.name == "tenant_id":
            values[col.name] = tenant_id
            continue
        if _is_generated_pk(col):
            continue
        if col.foreign_keys:
            if len(col.foreign_keys) != 1:
                raise AssertionError(f"row builder: {table.name}.{col.name} has several FKs")
            (fk,) = col.foreign_keys
            target = fk.column
            if target.table.name == "tenant":
                values[col.name] = tenant_id
            elif target.table.name in chain:
                if not col.nullable:
                    raise AssertionError(f"row builder: FK cycle through {table.name}.{col.name}")
            else:
                parent = insert_row(session, target.table, tenant_id, _chain=chain)
                values[col.name] = _referenced_value(session, target, parent)
            continue
        if not col.nullable and col.default is None and col.server_default is None:
            values[col.name] = column_value(col)
    return values


def _referenced_value(session: Session, target: Column[Any], parent: Row) -> Any:
    if target is pk_column(target.table):
        return parent.pk
    where = pk_column(target.table) == parent.pk
    return session.execute(select(target).where(where)).scalar_one()


def insert_row(
    session: Session, table: Table, tenant_id: int, *, _chain: tuple[str, ...] = ()
) -> Row:
    """Insert a generic row of `table` (and its parents) for shop `tenant_id`."""
    values = build_values(session, table, tenant_id, _chain=_chain)
    result = session.execute(insert(table).values(**values))
    (pk,) = result.inserted_primary_key or (values.get(pk_column(table).name),)
    assert pk is not None
    return Row(table, pk, values)


def changeable_column(table: Table) -> Column[Any]:
    """A plain column of `table` (no key) an UPDATE can set to a new value."""
    for col in table.columns:
        if col.primary_key or col.foreign_keys or col.name == "tenant_id":
            continue
        t = base_type(col)
        if isinstance(t, (String, Integer, DateTime)) and not isinstance(t, (Enum, Boolean)):
            return col
    raise AssertionError(f"row builder: no plain column to update in {table.name}")
