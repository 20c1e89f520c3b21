"""SQL expressions that read the same on SQLite and PostgreSQL.

Times are stored as UTC: SQLite keeps them as text without an offset, PostgreSQL as
timestamptz, whose text form follows the connection's TimeZone -- so buckets convert to UTC
there explicitly and never depend on the server's setting.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import String
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement
from sqlmodel import Session, SQLModel

from core.errors import InvalidInput


def day(column: ColumnElement[Any] | Any) -> ColumnElement[str]:
    """The UTC calendar day of a datetime column, as 'YYYY-MM-DD' text."""
    return _Day(column)


class _Day(FunctionElement[str]):
    type = String()
    inherit_cache = True
    name = "trellis_day"


@compiles(_Day)
def _day_default(element: _Day, compiler: SQLCompiler, **kw: Any) -> str:
    raise NotImplementedError(f"day() has no form for the {compiler.dialect.name} dialect.")


@compiles(_Day, "sqlite")
def _day_sqlite(element: _Day, compiler: SQLCompiler, **kw: Any) -> str:
    return f"strftime('%Y-%m-%d', {compiler.process(element.clauses, **kw)})"


@compiles(_Day, "postgresql")
def _day_postgresql(element: _Day, compiler: SQLCompiler, **kw: Any) -> str:
    return f"to_char(timezone('UTC', {compiler.process(element.clauses, **kw)}), 'YYYY-MM-DD')"


def week(column: ColumnElement[Any] | Any) -> ColumnElement[str]:
    """The Monday that starts the UTC ISO week of a datetime column, as 'YYYY-MM-DD' text."""
    return _Week(column)


class _Week(FunctionElement[str]):
    type = String()
    inherit_cache = True
    name = "trellis_week"


@compiles(_Week)
def _week_default(element: _Week, compiler: SQLCompiler, **kw: Any) -> str:
    raise NotImplementedError(f"week() has no form for the {compiler.dialect.name} dialect.")


@compiles(_Week, "sqlite")
def _week_sqlite(element: _Week, compiler: SQLCompiler, **kw: Any) -> str:
    # 'weekday 0' moves forward to the next Sunday (or stays on one); six days back is Monday.
    return (
        f"strftime('%Y-%m-%d', {compiler.process(element.clauses, **kw)}, 'weekday 0', '-6 days')"
    )


@compiles(_Week, "postgresql")
def _week_postgresql(element: _Week, compiler: SQLCompiler, **kw: Any) -> str:
    # date_trunc('week', ...) starts weeks on Monday (ISO 8601) whatever the locale.
    clause = compiler.process(element.clauses, **kw)
    return f"to_char(date_trunc('week', timezone('UTC', {clause})), 'YYYY-MM-DD')"


def insert_unless_exists(session: Session, model: type[SQLModel], keys: Sequence[str]) -> Any:
    """INSERT … ON CONFLICT (keys) DO NOTHING for this backend (add .values() and run it).

    A concurrent transaction inserting the same keys makes PostgreSQL wait for it to end, then
    do nothing if it committed: the row exists once, with no error in either transaction.
    """
    dialect = session.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite if dialect == "sqlite" else None
    if module is None:
        raise InvalidInput(f"Trellis needs PostgreSQL or SQLite, not {dialect}.")
    return module.insert(model).on_conflict_do_nothing(index_elements=list(keys))
