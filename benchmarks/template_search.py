"""Full-text search over 10,000 response templates of one shop: latency and what it finds.

Prints one JSON object. For each backend (SQLite always; PostgreSQL as the non-superuser app
role, RLS on, when BENCH_DATABASE_URL or TEST_DATABASE_URL names a server): a fresh migrated
database, one shop (with its two starting templates) and 10,000 generated florist response
templates (fixed seed; name, category, text of ~40 words, 3 trigger phrases, 1 intent) written
as production versions and indexed with core.responses.rebuild_index (timed). Then 30 queries
(one common word, rare words, two and three words, prefixes of a word being typed) run 10
rounds each through core.responses.search (limit 20, ranked, highlighted; one session per
search, as the app does), interleaved with the reference: a naive `LIKE '%term%'` over the same
columns of response_search (every term in any column, ordered by name, limit 20, no ranking or
highlights). Reported: p50/p95 milliseconds of each, the mean hits, and one save's re-index
(core.templates.save_version of one template). Goal (issue #8): search p95 <= 200 ms.
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fresh_database, pg_server_url
from sqlalchemy import text

from core import responses, templates
from core.access import Actor, Role
from core.tenants import create_tenant
from db.engine import make_engine, session_scope
from db.models import DesignTemplate, DesignTemplateVersion, TemplateKind

TEMPLATES = 10_000
ROUNDS = 10
LIMIT = 20
SEED = 7
FLOWER_NAMES = "roses peonies tulips lilies orchids sunflowers hydrangeas dahlias ranunculus"
FLOWERS = FLOWER_NAMES.split()
TOPICS = (
    "delivery",
    "refund",
    "wedding",
    "funeral",
    "subscription",
    "damaged",
    "pickup",
    "payment",
    "discount",
    "allergy",
    "vase",
    "card message",
    "same day",
    "corporate",
    "care tips",
)
FILLER_TEXT = (
    "we are sorry about the trouble and will make it right today with fresh stems from "
    "the studio our florists check every bouquet before it leaves and we keep the water "
    "topped up please reply with a photo and your order number so we can help quickly "
    "thank you for choosing us for your celebration"
)
FILLER = FILLER_TEXT.split()
QUERIES = (
    "delivery",
    "wedding",
    "refund",
    "roses",
    "peonies wedding",
    "same day delivery",
    "damaged vase",
    "card message",
    "funeral lilies",
    "subscription pause",
    "corporate orchids",
    "allergy",
    "pickup time",
    "payment failed",
    "discount code",
    "care tips sunflowers",
    "hydrangeas",
    "deliv",
    "wed",
    "refu",
    "ranunculus refund",
    "bouquet",
    "photo order",
    "fresh stems",
    "celebration",
    "tulips pickup",
    "dahlias damaged",
    "studio",
    "template 4242",
    "xylophone",
)


def generated(i: int, pick: random.Random) -> tuple[str, dict[str, Any]]:
    topic, flower = pick.choice(TOPICS), pick.choice(FLOWERS)
    words = pick.sample(FILLER, 30)
    body = f"Hi {{customer_name}}, about your {flower} and the {topic}: " + " ".join(words)
    content = responses.make_content(
        text=body,
        category=topic.title(),
        variables=[{"name": "customer_name", "type": "text"}],
        phrases=[f"{topic} {flower}", f"question about {topic}", f"my {flower} order"],
        intents=[topic.replace(" ", "_")],
    )
    return f"{topic.title()} {flower} template {i}", responses.parse_response(content)


def fill_shop(engine: Any, actor: Actor) -> float:
    """10,000 production response templates, written in bulk, then indexed (timed)."""
    pick = random.Random(SEED)
    items = [generated(i, pick) for i in range(TEMPLATES)]
    with session_scope(actor, engine=engine) as s:
        rows = [
            DesignTemplate(
                tenant_id=actor.tenant_id,
                kind=TemplateKind.RESPONSE.value,
                name=name,
                production_number=1,
            )
            for name, _ in items
        ]
        s.add_all(rows)
        s.flush()
        s.add_all(
            DesignTemplateVersion(
                tenant_id=actor.tenant_id, template_id=row.id or 0, number=1, content=content
            )
            for row, (_, content) in zip(rows, items, strict=True)
        )
    start = time.perf_counter()
    with session_scope(actor, engine=engine) as s:
        responses.rebuild_index(session=s, actor=actor)
    return time.perf_counter() - start


def trellis_search(engine: Any, actor: Actor, query: str) -> int:
    with session_scope(actor, engine=engine) as s:
        return len(responses.search(session=s, actor=actor, query=query, limit=LIMIT))


def like_search(engine: Any, actor: Actor, query: str) -> int:
    terms = responses.query_terms(query)
    columns = ("name", "category", "body", "phrases", "intents")
    where = " AND ".join(
        "(" + " OR ".join(f"lower({c}) LIKE :t{i}" for c in columns) + ")"
        for i in range(len(terms))
    )
    params: dict[str, Any] = {f"t{i}": f"%{t}%" for i, t in enumerate(terms)}
    with session_scope(actor, engine=engine) as s:
        rows = s.execute(
            text(
                "SELECT template_id, name FROM response_search WHERE tenant_id = :tenant "
                f"AND {where} ORDER BY name LIMIT {LIMIT}"
            ),
            {"tenant": actor.tenant_id, **params},
        ).all()
    return len(rows)


def one_save(engine: Any, actor: Actor) -> float:
    with session_scope(actor, engine=engine) as s:
        view = responses.find_response(session=s, actor=actor, name="Order Status Inquiry")
    changed = {**view.content, "category": "Orders and delivery"}
    start = time.perf_counter()
    with session_scope(actor, engine=engine) as s:
        templates.save_version(
            session=s,
            actor=actor,
            template_id=view.id,
            content=changed,
            note="benchmark",
            expected_version=view.version,
        )
    return time.perf_counter() - start


def percentiles(seconds: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(seconds, n=20)
    return {
        "p50_ms": round(statistics.median(seconds) * 1e3, 2),
        "p95_ms": round(cuts[18] * 1e3, 2),
        "max_ms": round(max(seconds) * 1e3, 2),
    }


def run(backend: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as work, fresh_database(backend, Path(work)) as db:
        engine = make_engine(db.app_url)
        with session_scope(None, engine=engine) as s:
            tenant = create_tenant(session=s, name="Bloom")
            assert tenant.id is not None
        actor = Actor(None, tenant.id, Role.ADMIN, "bench", "Benchmark")
        index_seconds = fill_shop(engine, actor)
        cases: dict[str, Callable[[Any, Actor, str], int]] = {
            "trellis": trellis_search,
            "reference_like": like_search,
        }
        for query in QUERIES[:3]:  # warm-up
            for fn in cases.values():
                fn(engine, actor, query)
        times: dict[str, list[float]] = {name: [] for name in cases}
        hits: dict[str, list[int]] = {name: [] for name in cases}
        for _ in range(ROUNDS):
            for query in QUERIES:
                for name, fn in cases.items():
                    start = time.perf_counter()
                    hits[name].append(fn(engine, actor, query))
                    times[name].append(time.perf_counter() - start)
        save_seconds = one_save(engine, actor)
        engine.dispose()
    return {
        "index_10k_seconds": round(index_seconds, 2),
        "save_one_with_reindex_ms": round(save_seconds * 1e3, 1),
        **{
            name: {**percentiles(times[name]), "mean_hits": round(statistics.mean(hits[name]), 1)}
            for name in cases
        },
    }


def main() -> None:
    backends = ["sqlite"] + (["postgres"] if pg_server_url() else [])
    result: dict[str, Any] = {
        "benchmark": "template_search",
        "templates": TEMPLATES,
        "queries": len(QUERIES),
        "rounds": ROUNDS,
        "limit": LIMIT,
    }
    for backend in backends:
        result[backend] = run(backend)
    result["goals"] = {
        f"{b}_p95_at_most_200ms": result[b]["trellis"]["p95_ms"] <= 200 for b in backends
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
