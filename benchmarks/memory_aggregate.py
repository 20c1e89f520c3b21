"""Memory aggregation at scale: patterns and knowledge over 1,000,000 memories on PostgreSQL.

Prints one JSON object. One shop holds 200,000 customers with five current memories each
(1,000,000 rows: a preference, an allergy, a favorite flower, a recipient and a name, each value
drawn with a Zipf-like popularity from 2,000 values, confidence 0.5-1.0) and three
conversations per customer (600,000: about 80 % resolved, 10 % escalated, the rest unknown).
The rows are generated in SQL as the database owner, then VACUUM ANALYZE.

Measured, as the non-superuser app role with RLS on: `core.memory_patterns.aggregate` (rebuild
the shop's patterns with their holders' later conversations, propose knowledge), three runs.
Reference, side by side in the same run: the naive way, every current memory and conversation
read into pandas and grouped there. Goal (the memory issue): aggregation <= 10 s.
Also: `core.memory.extract_stored` (the backfill) over 20,000 stored customer messages, a fifth
of them telling something (two lines of ten), in messages per second, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fresh_database, pg_server_url

CUSTOMERS = 200_000
CONVERSATIONS_PER_CUSTOMER = 3
VALUES = 2_000
RUNS = 3
BACKFILL_MESSAGES = 20_000
GOAL_SECONDS = 10.0

SEED_SQL = """
INSERT INTO customer_memory (tenant_id, customer_id, kind, key, value, confidence, mentions,
    state, observed_at, since, created_at, updated_at, version)
SELECT :tenant, 'cust-' || c, k.kind, k.key,
       k.prefix || floor(exp(random() * ln(:values)))::int,
       0.5 + random() / 2, 1, 'current', t, t, t, t, 1
FROM (SELECT c, now() - random() * interval '180 days' AS t
      FROM generate_series(1, :customers) AS c) AS w
CROSS JOIN (VALUES ('preference', 'prefers', 'flower-'), ('allergy', 'a', 'allergen-'),
                   ('favorite', 'favorite flower', 'bloom-'), ('recipient', 'r', 'person-'),
                   ('personal_info', 'name', 'name-')) AS k(kind, key, prefix)
"""
CONVERSATIONS_SQL = """
INSERT INTO conversation (tenant_id, external_id, customer_id, channel, started_at, ended_at,
    escalated, resolved)
SELECT :tenant, 'conv-' || c || '-' || n, 'cust-' || c, 'chat', t, t + interval '10 minutes',
       r < 0.1, CASE WHEN r < 0.1 THEN false WHEN r < 0.9 THEN true ELSE NULL END
FROM (SELECT c, n, now() - random() * interval '180 days' AS t, random() AS r
      FROM generate_series(1, :customers) AS c CROSS JOIN generate_series(1, :per) AS n) AS w
"""


def seed(app_url: str, owner_url: str) -> tuple[Any, float]:
    from core.access import Actor, Role
    from core.tenants import create_tenant
    from db.engine import make_engine, session_scope

    owner = make_engine(owner_url)
    with session_scope(None, engine=owner) as session:
        tenant = create_tenant(session=session, name="Bloom & Co.")
    assert tenant.id is not None
    start = time.perf_counter()
    params = {"tenant": tenant.id, "customers": CUSTOMERS, "values": VALUES}
    with owner.begin() as conn:
        conn.execute(text(SEED_SQL), params)
        conn.execute(text(CONVERSATIONS_SQL), {**params, "per": CONVERSATIONS_PER_CUSTOMER})
    with owner.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE customer_memory"))
        conn.execute(text("VACUUM ANALYZE conversation"))
    owner.dispose()
    return Actor(None, tenant.id, Role.ADMIN, "bench"), time.perf_counter() - start


def aggregate_runs(app_url: str, actor: Any) -> dict[str, Any]:
    from core.memory_patterns import aggregate
    from db.engine import make_engine, session_scope

    engine = make_engine(app_url)
    seconds, result = [], None
    for _ in range(RUNS):
        start = time.perf_counter()
        with session_scope(actor, engine=engine) as session:
            result = aggregate(session=session, actor=actor)
        seconds.append(time.perf_counter() - start)
    engine.dispose()
    assert result is not None
    return {
        "seconds": [round(s, 2) for s in seconds],
        "median_seconds": round(statistics.median(seconds), 2),
        "patterns": result.patterns,
        "proposed_knowledge": result.proposed_knowledge,
    }


def naive_reference(owner_url: str, tenant_id: int) -> dict[str, Any]:
    """Everything into pandas: current memories, conversations, then merge and group."""
    import pandas as pd

    from db.engine import make_engine

    engine = make_engine(owner_url)
    start = time.perf_counter()
    with engine.connect() as conn:
        memories = pd.read_sql(
            text(
                "SELECT kind, key, value, customer_id, confidence, since FROM customer_memory "
                "WHERE tenant_id = :t AND state = 'current' AND confidence >= 0.7 "
                "AND kind NOT IN ('personal_info', 'important_date')"
            ),
            conn,
            params={"t": tenant_id},
        )
        conversations = pd.read_sql(
            text(
                "SELECT customer_id, started_at, escalated, resolved FROM conversation "
                "WHERE tenant_id = :t AND (resolved IS NOT NULL OR escalated)"
            ),
            conn,
            params={"t": tenant_id},
        )
    sizes = memories.groupby(["kind", "key", "value"])["customer_id"].transform("size")
    held = memories[sizes >= 2]
    joined = held.merge(conversations, on="customer_id")
    joined = joined[joined["started_at"] > joined["since"]]
    joined["success"] = (joined["resolved"] == True) & ~joined["escalated"]  # noqa: E712
    patterns = held.groupby(["kind", "key", "value"]).size()
    joined.groupby(["kind", "key", "value"])["success"].agg(["size", "sum"])
    seconds = time.perf_counter() - start
    engine.dispose()
    return {"seconds": round(seconds, 2), "patterns": len(patterns)}


def backfill(url: str) -> dict[str, Any]:
    """extract_stored over BACKFILL_MESSAGES stored customer messages of one shop."""
    from sqlalchemy import insert

    from core.access import Actor, Role
    from core.memory import extract_stored
    from core.tenants import create_tenant
    from db.engine import make_engine, session_scope, set_tenant
    from db.models import Conversation, Message

    engine = make_engine(url)
    with session_scope(None, engine=engine) as session:
        tenant = create_tenant(session=session, name="Fern")
        assert tenant.id is not None
        set_tenant(session, tenant.id)
        conversations = [
            {"tenant_id": tenant.id, "external_id": f"b-{i}", "customer_id": f"c-{i % 5000}"}
            for i in range(BACKFILL_MESSAGES)
        ]
        session.execute(insert(Conversation), conversations)
        ids = session.execute(
            text("SELECT id FROM conversation WHERE tenant_id = :t ORDER BY id"), {"t": tenant.id}
        ).scalars()
        lines = (
            "Where is my order {i}?",
            "Can I change the delivery address for order {i}?",
            "I'm allergic to lilies, please leave them out of order {i}.",
            "Do you deliver on Sundays?",
            "My name is Ann and it's for my mother.",
            "How much is a dozen red roses?",
            "Is the shop open on Saturday?",
            "The bouquet arrived wilted, order {i}.",
            "What flowers are in season now?",
            "Can you add a card saying happy birthday?",
        )
        session.execute(
            insert(Message),
            [
                {
                    "tenant_id": tenant.id,
                    "conversation_id": cid,
                    "role": "customer",
                    "text": lines[i % len(lines)].format(i=i),
                }
                for i, cid in enumerate(ids)
            ],
        )
    actor = Actor(None, tenant.id, Role.ADMIN, "bench")
    start = time.perf_counter()
    result = extract_stored(engine=engine, actor=actor)
    seconds = time.perf_counter() - start
    engine.dispose()
    return {
        "messages": result.messages,
        "memories": result.memories,
        "seconds": round(seconds, 2),
        "messages_per_s": round(result.messages / seconds),
    }


def main() -> None:
    out: dict[str, Any] = {"benchmark": "memory_aggregate", "customers": CUSTOMERS}
    with tempfile.TemporaryDirectory() as tmp:
        with fresh_database("sqlite", Path(tmp)) as db:
            out["backfill_sqlite"] = backfill(db.app_url)
        if not pg_server_url():
            out["postgresql"] = "skipped: set BENCH_DATABASE_URL (or TEST_DATABASE_URL)"
            print(json.dumps(out))
            return
        with fresh_database("postgresql", Path(tmp)) as db:
            out["backfill_postgresql"] = backfill(db.app_url)
        with fresh_database("postgresql", Path(tmp)) as db:
            actor, seed_seconds = seed(db.app_url, db.owner_url)
            load = os.getloadavg()[0]
            measured = aggregate_runs(db.app_url, actor)
            reference = naive_reference(db.owner_url, actor.tenant_id)
    out["postgresql"] = {
        "memories": CUSTOMERS * 5,
        "conversations": CUSTOMERS * CONVERSATIONS_PER_CUSTOMER,
        "seed_seconds": round(seed_seconds, 1),
        "load_average_1m": round(load, 1),
        "aggregate": measured,
        "reference_pandas": reference,
        "goal_aggregate_le_10_s": measured["median_seconds"] <= GOAL_SECONDS,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
