"""The Memory page's data path for one customer with 1,000 memories, in a shop of 1,000,000
memories, on PostgreSQL (app role, RLS on) and on SQLite.

Prints one JSON object. The measured shop holds 100,000 regular customers with 10 memory rows
each (7 current, 3 superseded by a newer value on the same key), one customer with 1,000
current memories and 500 superseded ones ("big") and one with 10 current and 5 superseded
("small"): 1,001,515 memory rows in all. Each regular customer has 2 conversations of 2
customer messages (the big one 200); 12 % of conversations have no known outcome, 15 % ended
unresolved, 12 % were escalated. Each memory has its source message, conversation and rule, as
extraction writes them; values come from small vocabularies (50 names, flowers, allergens,
dates), so patterns exist and a value search matches about 2 % of the customers. A second shop
holds a tenth as many (noise the tenant filter must skip). Rows are written as the database
owner (COPY on PostgreSQL, executemany on SQLite), then VACUUM ANALYZE on PostgreSQL, as
autovacuum would leave it; SQLite as Trellis leaves it (no ANALYZE).

Measured through db.engine.session_scope as the app role (one session per call, as the page
does), after 3 warm-ups over 30 repetitions (p50/p95 ms), for the big customer and, side by
side, the small one: what the Customers tab reads with the customer open (only the open tab of
the page runs) -- find_customers by the customer's id (the search box), customer_memories (the
live list), customer_memories with history=True (the pickers, and the list with "Show
history"), conversation_messages of one of their conversations (View a conversation) -- and
"customer_open", the four in sequence (searching for the customer and opening them), and
"customer_click", what each later click in the tab reads (the page keeps the search result
until the next search): the two memory lists. Reference: the customer's memory rows read by a plain
SELECT * (no joins, no ordering), the floor any provenance-carrying read sits on.
Goal (issue 9): p95 <= 500 ms for the big customer, judged for both paths.
Also, 5 repetitions each: the page's other reads (the customer list before a search, a search
by a remembered value, the Patterns, Knowledge and Rules tabs, and the Customer analytics tab:
overview, customer_stats' first page, distributions -- also all a manager sees). Trellis's
PostgreSQL connections run with JIT off (db.engine). `memory_page.py postgresql` (or sqlite)
measures one backend. Aggregation ("Aggregate now") is measured by
benchmarks/memory_aggregate.py. The JSON carries the 1-minute load
average before and after (latency on a shared machine follows its load).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, text

if TYPE_CHECKING:
    from core.access import Actor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fresh_database, pg_server_url

CUSTOMERS = 100_000
ROWS_PER_CUSTOMER = 10  # 7 current, 3 superseded
NOISE_SHARE = 0.1
BIG_CURRENT, BIG_HISTORY, BIG_CONVERSATIONS = 1_000, 500, 200
SMALL_CURRENT, SMALL_HISTORY = 10, 5
WARMUPS = 3
REPETITIONS = 30
ONCE_REPETITIONS = 5
GOAL_P95_MS = 500.0
BIG, SMALL = "cust-big", "cust-small"
SEARCHED_NAME = "zelda"  # one of NAMES: about 1 customer in 50 holds it

NAMES = (
    "Anna", "Ben", "Chloe", "Daniel", "Emma", "Farid", "Grace", "Hiro", "Isla", "Jonas",
    "Kira", "Liam", "Maya", "Noah", "Olga", "Pedro", "Quinn", "Rosa", "Sami", "Tara",
    "Uma", "Victor", "Wren", "Xavi", "Yara", "Zelda", "Aiko", "Bruno", "Cleo", "Dario",
    "Elif", "Felix", "Gia", "Hugo", "Ines", "Jules", "Kofi", "Lena", "Milo", "Nora",
    "Omar", "Pia", "Rafa", "Sofia", "Theo", "Ugo", "Vera", "Wim", "Yusuf", "Zoe",
)  # fmt: skip
FLOWERS = (
    "roses", "tulips", "peonies", "sunflowers", "ranunculus", "lilies", "orchids", "dahlias",
    "hydrangeas", "freesias", "anemones", "carnations", "daisies", "irises", "gerberas",
)  # fmt: skip
ALLERGENS = ("lilies", "pollen", "chrysanthemums", "daisies", "ragweed", "mimosa")
PREFERENCES = ("pastel colours", "white flowers", "wildflowers", "bright colours", "roses")
RECIPIENTS = ("mother", "wife", "husband", "sister", "grandmother", "best friend", "boss")
INTERESTS = ("a wedding", "a garden party", "an office refit", "a funeral", "a shop opening")
MONTHS = ("January", "March", "May", "June", "September", "October", "December")


@dataclass(frozen=True)
class Shop:
    tenant_id: int
    admin_id: int
    rules: dict[str, int]  # kind -> the id of a rule of that kind


@dataclass(frozen=True)
class Slot:
    kind: str
    key: str
    value: str
    sentence: str


def _slots(customer: int) -> list[Slot]:
    """A regular customer's 10 facts: 7 keys held now, 3 of them said differently before."""
    pick = lambda items, salt: items[(customer * 2654435761 + salt * 40503) % len(items)]  # noqa: E731
    allergen, name = pick(ALLERGENS, 1), pick(NAMES, 2)
    day = f"--{1 + customer % 12:02d}-{1 + customer % 28:02d}"
    current = [
        Slot("personal_info", "name", name, f"My name is {name}."),
        Slot("preference", "prefers", pick(PREFERENCES, 3), f"I prefer {pick(PREFERENCES, 3)}."),
        Slot("favorite", "favorite flower", pick(FLOWERS, 4), "My favorite flowers are those."),
        Slot("allergy", allergen, allergen, f"I'm allergic to {allergen}."),
        Slot("recipient", pick(RECIPIENTS, 5), pick(RECIPIENTS, 5), "It's for my family."),
        Slot("important_date", "birthday", day, "My birthday is coming."),
        Slot("interest", "working on", pick(INTERESTS, 6), "We're working on an event."),
    ]
    before = [
        Slot(s.kind, s.key, pick(vocab, 7 + i), f"Earlier: {pick(vocab, 7 + i)}.")
        for i, (s, vocab) in enumerate(
            zip(current[1:4], (PREFERENCES, FLOWERS, ALLERGENS), strict=True)
        )
    ]
    return current + before


# --- seeding ---------------------------------------------------------------------------------


def _make_shop(app: Engine, name: str) -> Shop:
    """A shop and its admin, made as the app makes them (default rules included)."""
    from sqlmodel import col, select

    from core.access import Role
    from core.tenants import create_tenant
    from db.engine import session_scope, set_tenant
    from db.models import MemoryRule, User

    with session_scope(None, engine=app) as session:
        tenant = create_tenant(session=session, name=name)
        assert tenant.id is not None
        set_tenant(session, tenant.id)
        user = User(
            tenant_id=tenant.id,
            username=f"{tenant.slug}.admin",
            role=Role.ADMIN.value,
            password_hash="!",  # nobody logs in: the benchmark acts as the Actor directly
        )
        session.add(user)
        session.flush()
        assert user.id is not None
        rules: dict[str, int] = {}
        for kind, rule_id in session.exec(
            select(MemoryRule.kind, MemoryRule.id)
            .where(MemoryRule.tenant_id == tenant.id)
            .order_by(col(MemoryRule.id))
        ).all():
            assert rule_id is not None
            rules.setdefault(kind, rule_id)
        return Shop(tenant.id, user.id, rules)


class Rows:
    """The rows of one shop, with explicit ids, as tuples in table column order."""

    CONVERSATION = ("id", "tenant_id", "external_id", "customer_id", "channel", "started_at",
                    "ended_at", "escalated", "resolved")  # fmt: skip
    MESSAGE = ("id", "tenant_id", "conversation_id", "role", "text", "created_at")
    MEMORY = ("tenant_id", "customer_id", "kind", "key", "value", "confidence", "mentions",
              "state", "rule_id", "message_id", "conversation_id", "observed_at", "since",
              "created_at", "updated_at", "ended_at", "version")  # fmt: skip

    def __init__(self, shop: Shop, first_conversation: int, first_message: int) -> None:
        self.shop = shop
        self.conversations: list[tuple[Any, ...]] = []
        self.messages: list[tuple[Any, ...]] = []
        self.memories: list[tuple[Any, ...]] = []
        self.current = 0  # current memories among `memories`
        self.next_conversation, self.next_message = first_conversation, first_message
        self.now = datetime.now(UTC).replace(microsecond=0)

    def conversation(self, customer: str, number: int, at: datetime, texts: list[str]) -> list[int]:
        """A conversation of `customer` with one customer message per text; their ids."""
        cid = self.next_conversation
        self.next_conversation += 1
        draw = zlib.crc32(f"{customer}-{number}".encode()) % 100
        resolved = None if draw < 12 else draw >= 27  # 12 % unknown, 15 % not resolved
        self.conversations.append(
            (
                cid,
                self.shop.tenant_id,
                f"{customer}-c{number}",
                customer,
                "chat",
                at,
                at + timedelta(minutes=9),
                draw < 6 or 12 <= draw < 18,
                resolved,
            )
        )
        ids = []
        for i, body in enumerate(texts):
            mid = self.next_message
            self.next_message += 1
            self.messages.append(
                (mid, self.shop.tenant_id, cid, "customer", body, at + timedelta(minutes=i))
            )
            ids.append(mid)
        return ids

    def memory(
        self, customer: str, slot: Slot, message: tuple[int, int], at: datetime, current: bool
    ) -> None:
        mid, cid = message
        ended = None if current else at + timedelta(days=30)
        self.current += current
        self.memories.append(
            (
                self.shop.tenant_id,
                customer,
                slot.kind,
                slot.key,
                slot.value,
                0.9,
                1,
                "current" if current else "superseded",
                self.shop.rules.get(slot.kind),
                mid,
                cid,
                at,
                at,
                at,
                ended or at,
                ended,
                1 if current else 2,
            )
        )

    def regular(self, number: int) -> None:
        customer = f"cust-{number:06d}"
        slots = _slots(number)
        start = self.now - timedelta(days=200 - number % 150)
        early = self.conversation(customer, 0, start, [s.sentence for s in slots[7:]][:2])
        late = self.conversation(
            customer, 1, start + timedelta(days=40), [s.sentence for s in slots[:7]][:2]
        )
        early_cid, late_cid = self.next_conversation - 2, self.next_conversation - 1
        for i, slot in enumerate(slots[:7]):
            self.memory(customer, slot, (late[i % 2], late_cid), start + timedelta(days=40), True)
        for i, slot in enumerate(slots[7:]):
            self.memory(customer, slot, (early[i % 2], early_cid), start, False)

    def heavy(self, customer: str, current: int, history: int, conversations: int) -> None:
        """A customer with `current` memories on distinct keys and `history` older ones."""
        start = self.now - timedelta(days=300)
        sources = []
        for n in range(conversations):
            at = start + timedelta(hours=n * 30)
            ids = self.conversation(
                customer, n, at, [f"About topic {n}: I prefer {FLOWERS[n % 15]}.", "Thanks!"]
            )
            sources += [(mid, self.next_conversation - 1, at) for mid in ids]
        half = len(sources) // 2
        kinds = ("preference", "favorite", "interest", "recipient", "negative_preference")
        for n in range(current):
            mid, cid, at = sources[half + n % half]
            slot = Slot(kinds[n % 5], f"topic {n:04d}", FLOWERS[n % 15], "")
            self.memory(customer, slot, (mid, cid), at, True)
        for n in range(history):
            mid, cid, at = sources[n % half]
            slot = Slot(kinds[n % 5], f"topic {n:04d}", FLOWERS[(n + 7) % 15], "")
            self.memory(customer, slot, (mid, cid), at, False)


CHUNK = 10_000  # customers generated and written at a time


def _stamp(value: Any) -> Any:
    """A UTC time as SQLAlchemy stores it in SQLite."""
    return value.strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(value, datetime) else value


class Writer:
    """Writes Rows chunk by chunk as the owner: COPY on PostgreSQL, executemany on SQLite; one
    transaction for the shop."""

    TABLES = (
        ("conversation", Rows.CONVERSATION, "conversations"),
        ("message", Rows.MESSAGE, "messages"),
        ("customer_memory", Rows.MEMORY, "memories"),
    )

    def __init__(self, owner: Engine) -> None:
        self.sqlite = owner.dialect.name == "sqlite"
        self.raw = owner.raw_connection()
        self.counts = {"conversations": 0, "messages": 0, "memories": 0, "current_memories": 0}

    def write(self, rows: Rows) -> None:
        cursor = self.raw.cursor()
        for table, columns, field in self.TABLES:
            data: list[tuple[Any, ...]] = getattr(rows, field)
            self.counts[field] += len(data)
            if self.sqlite:
                marks = ", ".join("?" * len(columns))
                sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
                cursor.executemany(sql, [tuple(map(_stamp, row)) for row in data])
            else:
                with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                    for row in data:
                        copy.write_row(row)
            data.clear()
        self.counts["current_memories"] += rows.current
        rows.current = 0
        cursor.close()

    def close(self) -> None:
        self.raw.commit()
        self.raw.close()


def _write_shop(owner: Engine, shop: Shop, customers: int, *, main: bool) -> dict[str, int]:
    writer = Writer(owner)
    rows = Rows(shop, *_max_ids(owner))
    try:
        for number in range(1, customers + 1):
            rows.regular(number)
            if number % CHUNK == 0:
                writer.write(rows)
        if main:
            rows.heavy(BIG, BIG_CURRENT, BIG_HISTORY, BIG_CONVERSATIONS)
            rows.heavy(SMALL, SMALL_CURRENT, SMALL_HISTORY, 3)
        writer.write(rows)
    finally:
        writer.close()
    return writer.counts


def _max_ids(owner: Engine) -> tuple[int, int]:
    with owner.connect() as conn:
        conv = conn.execute(text("SELECT coalesce(max(id), 0) FROM conversation")).scalar_one()
        msg = conn.execute(text("SELECT coalesce(max(id), 0) FROM message")).scalar_one()
    return int(conv) + 1, int(msg) + 1


def seed(app_url: str, owner_url: str) -> tuple[Shop, dict[str, Any]]:
    from db.engine import make_engine

    app, owner = make_engine(app_url), make_engine(owner_url)
    start = time.perf_counter()
    shops = [_make_shop(app, "Bench Bloom"), _make_shop(app, "Noise shop")]
    counts: dict[str, Any] = {
        **_write_shop(owner, shops[0], CUSTOMERS, main=True),
        "customers": CUSTOMERS + 2,
    }
    noise = _write_shop(owner, shops[1], int(CUSTOMERS * NOISE_SHARE), main=False)
    counts["noise_shop_memories"] = noise["memories"]
    if owner.dialect.name == "postgresql":
        with owner.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for table in ("conversation", "message"):
                conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT max(id) FROM {table}))"
                    )
                )
            conn.execute(text("VACUUM ANALYZE"))
    counts["seed_seconds"] = round(time.perf_counter() - start, 1)
    app.dispose()
    owner.dispose()
    return shops[0], counts


# --- measurement -----------------------------------------------------------------------------


def _percentiles(seconds: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in seconds)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return {"p50_ms": round(statistics.median(ms), 1), "p95_ms": round(p95, 1)}


def _timed(call: Callable[[], Any], warmups: int = WARMUPS, reps: int = REPETITIONS) -> list[float]:
    for _ in range(warmups):
        call()
    seconds = []
    for _ in range(reps):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    return seconds


def _in_session(engine: Engine, actor: Actor, query: Callable[..., Any]) -> Callable[[], Any]:
    """One call as the page makes it: its own session, tenant context and all."""
    from db.engine import session_scope

    def call() -> Any:
        with session_scope(actor, engine=engine) as session:
            return query(session=session, actor=actor)

    return call


def _customer_calls(customer: str, conversation: str) -> dict[str, Callable[..., Any]]:
    """What the Customers tab reads with `customer` open and one conversation shown."""
    from functools import partial

    from core import memory

    return {
        "find_customers_by_id": partial(memory.find_customers, query=customer),
        "customer_memories": partial(memory.customer_memories, customer_id=customer),
        "customer_memories_history": partial(
            memory.customer_memories, customer_id=customer, history=True
        ),
        "conversation_messages": partial(memory.conversation_messages, external_id=conversation),
    }


def _naive(engine: Engine, actor: Actor, customer: str) -> Callable[[], int]:
    """The reference: the customer's rows by a plain SELECT *, no joins, no order."""
    from db.engine import session_scope

    sql = text("SELECT * FROM customer_memory WHERE tenant_id = :t AND customer_id = :c")

    def call() -> int:
        with session_scope(actor, engine=engine) as session:
            return len(session.execute(sql, {"t": actor.tenant_id, "c": customer}).all())

    return call


def _customer(engine: Engine, actor: Actor, customer: str, conversations: int) -> dict[str, Any]:
    calls = {
        name: _in_session(engine, actor, query)
        for name, query in _customer_calls(customer, f"{customer}-c{conversations - 1}").items()
    }
    sizes = {
        "current": len(calls["customer_memories"]()),
        "with_history": len(calls["customer_memories_history"]()),
    }
    found = {name: _percentiles(_timed(call)) for name, call in calls.items()}

    def customer_open() -> None:
        for call in calls.values():
            call()

    def customer_click() -> None:  # a rerun after the search: the page keeps what it found
        calls["customer_memories"]()
        calls["customer_memories_history"]()

    found["customer_open"] = _percentiles(_timed(customer_open))
    found["customer_click"] = _percentiles(_timed(customer_click))
    naive = _naive(engine, actor, customer)
    found["reference_plain_select_of_its_rows"] = {
        **_percentiles(_timed(naive)),
        "rows": naive(),
    }
    return {"memories": sizes, **found}


def _other_views(engine: Engine, actor: Actor) -> dict[str, Any]:
    """The page's other reads: the customer list before a search, a search by a remembered
    value, the Patterns, Knowledge and Rules tabs, the Customer analytics tab (overview,
    customer_stats' first page, distributions: also all a manager sees)."""
    from functools import partial

    from core import memory, memory_patterns

    queries = {
        "find_customers_no_query": memory.find_customers,
        "find_customers_by_value": partial(memory.find_customers, query=SEARCHED_NAME),
        "list_patterns": memory_patterns.list_patterns,
        "list_knowledge": memory_patterns.list_knowledge,
        "list_rules": memory.list_rules,
        "overview": memory_patterns.overview,
        "customer_stats_first_page": memory_patterns.customer_stats,
        "distributions": memory_patterns.distributions,
    }
    found: dict[str, Any] = {}
    for name, query in queries.items():
        call = _in_session(engine, actor, query)
        found[name] = _percentiles(_timed(call, warmups=1, reps=ONCE_REPETITIONS))
    found["find_customers_by_value"]["customers"] = len(
        _in_session(
            engine, actor, partial(memory.find_customers, query=SEARCHED_NAME, limit=10**6)
        )()
    )
    return found


def bench(app_url: str, shop: Shop) -> dict[str, Any]:
    from core.access import Actor, Role
    from db.engine import make_engine

    engine = make_engine(app_url)
    actor = Actor(shop.admin_id, shop.tenant_id, Role.ADMIN, "bench.admin")
    result: dict[str, Any] = {
        "big_customer": _customer(engine, actor, BIG, BIG_CONVERSATIONS),
        "small_customer_reference": _customer(engine, actor, SMALL, 3),
        "other_views": _other_views(engine, actor),
    }
    engine.dispose()
    for path in ("customer_open", "customer_click"):
        p95 = result["big_customer"][path]["p95_ms"]
        result[f"goal_{path}_p95_ms_le_500"] = p95 <= GOAL_P95_MS
    return result


def run(backend: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, fresh_database(backend, Path(tmp)) as db:
        shop, shape = seed(db.app_url, db.owner_url)
        load_before = os.getloadavg()[0]
        measured = bench(db.app_url, shop)
        load_after = os.getloadavg()[0]
    return {
        "shop": shape,
        "load_average_1m_before_after": [round(load_before, 1), round(load_after, 1)],
        **measured,
    }


def main() -> None:
    result: dict[str, Any] = {
        "benchmark": "memory_page",
        "repetitions": REPETITIONS,
        "warmups": WARMUPS,
        "goal": "p95 <= 500 ms for a customer with 1,000 memories (customer_open, customer_click)",
    }
    backends = sys.argv[1:] or ["postgresql", "sqlite"]  # one backend: its name as argument
    if "postgresql" in backends:
        if pg_server_url():
            result["postgresql"] = run("postgresql")
        else:
            result["postgresql"] = "skipped: set BENCH_DATABASE_URL (or TEST_DATABASE_URL)"
    if "sqlite" in backends:
        result["sqlite"] = run("sqlite")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
