"""SQL expressions that read the same on SQLite and PostgreSQL.

Times are stored as UTC: SQLite keeps them as text without an offset, PostgreSQL as
timestamptz, whose text form follows the connection's TimeZone -- so buckets convert to UTC
there explicitly and never depend on the server's setting.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import String
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement


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
