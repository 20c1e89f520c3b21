"""PostgreSQL: a transaction's tenant never leaks to the next user of a pooled connection.

`session_scope` sets `app.tenant_id` with `set_config(..., true)` (transaction local) at every
transaction start. Here two pooled connections serve 500 transactions that alternate between two
shops; every count is raw SQL (`session.execute(text(...))`), so row-level security, not the ORM
guard, is what filters.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlmodel import Session, SQLModel

from db.engine import session_scope
from tests.conftest import PgDatabase, truncate_all
from tests.db.rows import insert_row
from tests.factories import Shop, make_shop

TRANSACTIONS = 500
ROWS = {"A": 3, "B": 5}  # different counts, so a swapped tenant cannot pass as the right one

COUNT_OTHER = "SELECT count(*) FROM example WHERE tenant_id = :t"
COUNT_ALL = "SELECT count(*) FROM example"
BACKEND = "SELECT pg_backend_pid()"


@pytest.fixture
def pooled(pg: PgDatabase) -> Iterator[Engine]:
    # LIFO: a connection just returned is the next one handed out, so "the same pooled
    # connection" below is deterministic (checked with pg_backend_pid all the same).
    eng = create_engine(pg.app_url, pool_size=2, max_overflow=0, pool_use_lifo=True)
    yield eng
    eng.dispose()


@pytest.fixture
def shops(pg: PgDatabase) -> dict[str, Shop]:
    truncate_all(pg.owner)
    out = {"A": make_shop(pg.app, "Shop A"), "B": make_shop(pg.app, "Shop B")}
    example = SQLModel.metadata.tables["example"]
    for key, shop in out.items():
        with session_scope(shop.admin, engine=pg.app) as s:
            for _ in range(ROWS[key]):
                insert_row(s, example, shop.tenant_id)
    with pg.owner.connect() as conn:  # ground truth, as the superuser owner
        per_tenant = dict(
            conn.execute(text("SELECT tenant_id, count(*) FROM example GROUP BY 1")).all()
        )
    assert per_tenant == {out[k].tenant_id: n for k, n in ROWS.items()}
    return out


def _counts(s: Session, other: Shop) -> tuple[int, int, int, str | None]:
    other_n = s.execute(text(COUNT_OTHER), {"t": other.tenant_id}).scalar_one()
    all_n = s.execute(text(COUNT_ALL)).scalar_one()
    pid = s.execute(text(BACKEND)).scalar_one()
    setting = s.execute(text("SELECT current_setting('app.tenant_id', true)")).scalar_one()
    return other_n, all_n, pid, setting


def test_alternating_tenants_over_a_small_pool_never_leak(pooled, shops):
    tenants_per_backend: dict[int, set[str]] = defaultdict(set)
    done = 0
    for i in range(TRANSACTIONS // 2):
        # Two sessions open at once hold both pooled connections; the order alternates, so
        # every connection serves both shops in turn.
        first, second = ("A", "B") if i % 2 == 0 else ("B", "A")
        with (
            session_scope(shops[first].admin, engine=pooled) as s1,
            session_scope(shops[second].admin, engine=pooled) as s2,
        ):
            for key, s in ((first, s1), (second, s2)):
                other = shops["B" if key == "A" else "A"]
                other_n, all_n, pid, setting = _counts(s, other)
                assert other_n == 0, f"transaction {done}: {key} saw {other_n} rows of the other"
                assert all_n == ROWS[key], f"transaction {done}: {key} counted {all_n}"
                assert setting == str(shops[key].tenant_id)
                tenants_per_backend[pid].add(key)
                done += 1
    assert done == TRANSACTIONS
    assert len(tenants_per_backend) == 2, "the pool should have used exactly its 2 connections"
    assert all(keys == {"A", "B"} for keys in tenants_per_backend.values()), tenants_per_backend


def test_no_tenant_scope_sees_nothing_right_after_a_tenant_scope(pooled, shops):
    for key in ("A", "B"):
        with session_scope(shops[key].admin, engine=pooled) as s:
            assert s.execute(text(COUNT_ALL)).scalar_one() == ROWS[key]
            tenant_pid = s.execute(text(BACKEND)).scalar_one()
        with session_scope(None, engine=pooled) as s:
            assert s.execute(text(BACKEND)).scalar_one() == tenant_pid, "not the same connection"
            assert s.execute(text(COUNT_ALL)).scalar_one() == 0
            assert not s.execute(text("SELECT current_setting('app.tenant_id', true)")).scalar()
        # A plain connection from the pool (no session, so nothing sets the context) too.
        with pooled.connect() as conn:
            assert conn.execute(text(BACKEND)).scalar_one() == tenant_pid
            assert conn.execute(text(COUNT_ALL)).scalar_one() == 0
            assert not conn.execute(text("SELECT current_setting('app.tenant_id', true)")).scalar()
