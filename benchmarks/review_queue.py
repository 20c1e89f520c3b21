"""Review queue latency: the first page with 1,000,000 examples on PostgreSQL (app role, RLS on).

Prints one JSON object. One shop holds 1,000,000 examples over 180 days and two other shops
100,000 each (noise the tenant filter must skip). The rows are generated in SQL as the database
owner, with these distributions:
- text: 60 % drawn from 100,000 message templates with a Zipf-like (log-uniform) popularity, so
  the commonest near-identical message repeats tens of thousands of times; 40 % one-off texts.
  text_hash is the SHA-256 of the template (what core.text.text_hash gives near-identical texts);
- live messages (95 %): confidence from a skewed curve around a per-template value (about 24 %
  below 0.6), top-1/top-2 margin below it, about 5 % escalated (likelier when unsure);
- reviewed: about 30 %, likelier the older the message (the backlog is recent); imported
  examples (5 %) are reviewed and unscored;
- about 3,000 reviewed examples flagged as label issues (issue_score).
The rows bypass Trellis's writers, so each shop's review groups (core.review_groups) are then
built as a change of thresholds builds them, timed. Then VACUUM ANALYZE, as autovacuum would
leave the tables.

Measured, connected as the non-superuser app role through db.engine.session_scope, each after 3
warm-ups over 30 repetitions (p50/p95 ms): core.review.queue's first page with the default
filters, filtered by each reason, by predicted intent, by the last 30 days, and page 10; the
seconds of each statement of the default first page (ranked groups, group and message totals,
counts per reason, the page's rows; labelled by their SQL). Reference, side by side in the same
run: the same first page as a naive ungrouped query (the needs-review condition, ORDER BY
confidence LIMIT 25). Goal (the review-queue-at-scale issue): first page p95 <= 300 ms.
Also the seconds of one review action (reject the first item), which refreshes its group as
every writer does. Latency on a shared machine follows its load, so the JSON carries the
1-minute load average before and after, and the indexes the example table had.

`--explain` also writes EXPLAIN (ANALYZE, BUFFERS) of each statement of the default first page
to stderr.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, event, text

if TYPE_CHECKING:
    from core.access import Actor
    from core.review import QueueFilter, QueuePage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fresh_database, pg_server_url

EXAMPLES = 1_000_000
NOISE_SHOPS = 2
NOISE_EXAMPLES = 100_000
DAYS = 180
TEMPLATES = 100_000  # distinct near-identical messages in the repeated share
REPEATED_SHARE = 0.6
WARMUPS = 3
REPETITIONS = 30
GOAL_P95_MS = 300.0
ACTIONS = 21
FILTERED_INTENT = "order_status"

INTENTS = (
    "order_status", "delivery_time", "delivery_area", "opening_hours", "bouquet_price",
    "wedding_flowers", "funeral_flowers", "cancel_order", "change_address", "payment_failed",
    "refund", "flower_care", "plant_care", "subscription", "gift_card", "same_day_delivery",
    "custom_bouquet", "allergy_question", "vase_included", "wilted_complaint", "card_message",
    "corporate_order", "store_pickup", "discount_code", "roses_in_stock", "tulips_in_stock",
    "sympathy_card", "delivery_photo", "track_driver", "talk_to_person",
)  # fmt: skip

# One INSERT ... SELECT per shop. `t` draws the per-row randomness, `b` derives what a template
# fixes (its intent and how sure the model tends to be about it), `c` the row's confidence.
GENERATE = """
WITH t AS (
    SELECT g,
           CASE WHEN random() < :repeated THEN floor(exp(random() * ln(:templates)))::int
                ELSE :templates + g END AS bucket,
           random() AS r_conf, random() AS r_second, random() AS r_esc, random() AS r_rev,
           random() AS r_status, random() AS r_issue, random() AS r_fix, random() AS r_source,
           random() AS age
    FROM generate_series(1, :rows) AS g
), b AS (
    SELECT t.*,
           ('x' || substr(md5(bucket::text), 1, 7))::bit(28)::int / 268435456.0 AS b_conf,
           (CAST(:intents AS text[]))[1 + abs(hashint4(bucket)) % :n_intents] AS intent,
           (CAST(:intents AS text[]))[1 + abs(hashint4(bucket + 7)) % :n_intents] AS other,
           r_rev < 0.05 + 0.5 * age AS reviewed,
           r_source < 0.16 AS imported
    FROM t
), c AS (
    SELECT b.*,
           0.15 + 0.85 * power(least(1.0, greatest(0.0, b_conf + (r_conf - 0.5) * 0.2)), 0.45)
               AS conf
    FROM b
)
INSERT INTO example (
    tenant_id, text, detected_intent, confidence, top_intents, margin, correct_intent,
    ai_response, response_source, escalated, reviewed, intent_correct, status, source,
    text_hash, content_hash, reviewer_id, reviewed_at, issue_score, issue_suggestion,
    issue_found_at, created_at, updated_at, version
)
SELECT :tenant,
       'Hello, about ' || replace(intent, '_', ' ') || ': message ' || bucket
           || CASE WHEN bucket > :templates THEN ' for my order, thank you' ELSE '' END,
       CASE WHEN NOT (reviewed AND imported) THEN intent END,
       CASE WHEN NOT (reviewed AND imported) THEN conf END,
       CASE WHEN NOT (reviewed AND imported) THEN json_build_array(
           json_build_array(intent, round(conf::numeric, 4)),
           json_build_array(other, round((r_second * least(conf, 1 - conf))::numeric, 4))) END,
       CASE WHEN NOT (reviewed AND imported) THEN conf - r_second * least(conf, 1 - conf) END,
       CASE WHEN reviewed THEN CASE WHEN r_fix < 0.12 THEN other ELSE intent END END,
       CASE WHEN NOT (reviewed AND imported)
            THEN 'Thank you for your message about ' || replace(intent, '_', ' ')
                 || '. A florist from our shop will get back to you within the hour.' END,
       CASE WHEN NOT (reviewed AND imported) THEN 'model' END,
       r_esc < 0.02 + 0.12 * (conf < 0.6)::int,
       reviewed,
       CASE WHEN reviewed AND NOT imported THEN r_fix >= 0.12 END,
       CASE WHEN NOT reviewed THEN 'pending'
            WHEN r_status < 0.5 THEN 'approved'
            WHEN r_status < 0.8 THEN 'used_in_training'
            WHEN r_status < 0.95 THEN 'reviewed'
            ELSE 'rejected' END,
       CASE WHEN reviewed AND imported THEN 'imported'
            WHEN r_source > 0.98 THEN 'synthetic' ELSE 'live' END,
       encode(sha256(('template ' || bucket)::bytea), 'hex'),
       CASE WHEN reviewed AND imported
            THEN encode(sha256(('content ' || :tenant || ' ' || g)::bytea), 'hex') END,
       CASE WHEN reviewed THEN :reviewer END,
       CASE WHEN reviewed
            THEN least(now(), now() - age * interval ':days days' + interval '2 days') END,
       CASE WHEN reviewed AND r_issue < 0.01 THEN 0.4 + 0.6 * r_conf END,
       CASE WHEN reviewed AND r_issue < 0.01 THEN other END,
       CASE WHEN reviewed AND r_issue < 0.01 THEN now() - interval '3 days' END,
       now() - age * interval ':days days',
       now() - age * interval ':days days',
       1
FROM c
"""


@dataclass(frozen=True)
class Seeded:
    tenant_id: int
    admin_user_id: int
    examples: int
    noise_examples: int
    seconds: float


def _make_shop(app: Engine, name: str) -> tuple[int, int]:
    """A shop and its admin, made as the app makes them (operator scope, RLS on)."""
    from core.access import Role
    from core.tenants import create_tenant
    from db.engine import session_scope, set_tenant
    from db.models import User

    with session_scope(None, engine=app) as session:
        tenant = create_tenant(session=session, name=name)
        assert tenant.id is not None
        set_tenant(session, tenant.id)
        # A password hash nobody logs in with: the benchmark acts as the Actor directly.
        user = User(
            tenant_id=tenant.id,
            username=f"{tenant.slug}.admin",
            role=Role.ADMIN.value,
            password_hash="!",
        )
        session.add(user)
        session.flush()
        assert user.id is not None
        return tenant.id, user.id


def seed(app_url: str, owner_url: str) -> tuple[Seeded, dict[str, Any]]:
    """The benchmark's shops and examples; returns the measured shop and the queue's size."""
    from db.engine import make_engine

    app, owner = make_engine(app_url), make_engine(owner_url)
    start = time.perf_counter()
    shops = [_make_shop(app, "Bench Bloom")]
    shops += [_make_shop(app, f"Noise shop {i + 1}") for i in range(NOISE_SHOPS)]
    for i, (tenant_id, admin_id) in enumerate(shops):
        with owner.begin() as conn:
            conn.execute(
                text(GENERATE.replace(":days", str(DAYS))),
                {
                    "tenant": tenant_id,
                    "reviewer": admin_id,
                    "rows": EXAMPLES if i == 0 else NOISE_EXAMPLES,
                    "repeated": REPEATED_SHARE,
                    "templates": TEMPLATES,
                    "intents": list(INTENTS),
                    "n_intents": len(INTENTS),
                },
            )
    grouping = [_group(app, tenant_id, admin_id) for tenant_id, admin_id in shops]
    with owner.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE example"))
        conn.execute(text("VACUUM ANALYZE review_group"))
    seconds = time.perf_counter() - start
    shape = _shape(owner, shops[0][0])
    app.dispose()
    owner.dispose()
    seeded = Seeded(
        shops[0][0], shops[0][1], EXAMPLES, NOISE_SHOPS * NOISE_EXAMPLES, round(seconds, 1)
    )
    return seeded, {**shape, "review_groups_rebuild_seconds": round(grouping[0], 2)}


def _group(app: Engine, tenant_id: int, admin_id: int) -> float:
    """Build the shop's review groups as a threshold change does (the rows were generated in
    SQL, past every writer); returns the seconds it took."""
    from core import review_groups
    from core.access import Actor, Role
    from db.engine import session_scope

    actor = Actor(admin_id, tenant_id, Role.ADMIN, "bench.admin")
    start = time.perf_counter()
    with session_scope(actor, engine=app) as session:
        review_groups.refresh(session=session, actor=actor, text_hashes=None)
    return time.perf_counter() - start


def _shape(owner: Engine, tenant_id: int) -> dict[str, Any]:
    """What the generated shop looks like at the default thresholds (confidence 0.6, margin
    0.1), so the numbers can be read against a real shop's."""
    waiting = "status = 'pending' AND NOT reviewed"
    needs = (
        f"(({waiting}) AND (confidence IS NULL OR confidence < 0.6 OR margin < 0.1 OR escalated))"
        " OR issue_score IS NOT NULL"
    )
    sql = f"""
        SELECT count(*) FILTER (WHERE {waiting}),
               count(*) FILTER (WHERE reviewed),
               count(*) FILTER (WHERE source = 'live' AND confidence < 0.6)::float
                   / nullif(count(*) FILTER (WHERE source = 'live'), 0),
               count(*) FILTER (WHERE escalated)::float / count(*),
               count(*) FILTER (WHERE issue_score IS NOT NULL),
               count(DISTINCT text_hash),
               count(*) FILTER (WHERE {needs}),
               count(DISTINCT text_hash) FILTER (WHERE {needs}),
               pg_total_relation_size('example')
        FROM example WHERE tenant_id = :tenant
    """
    indexes = "SELECT indexname FROM pg_indexes WHERE tablename = 'example' ORDER BY 1"
    with owner.connect() as conn:
        row = conn.execute(text(sql), {"tenant": tenant_id}).one()
        index_names = list(conn.execute(text(indexes)).scalars())
    return {
        "waiting": row[0],
        "reviewed": row[1],
        "live_confidence_below_0_6_share": round(row[2], 3),
        "escalated_share": round(row[3], 3),
        "label_issues": row[4],
        "distinct_text_hashes": row[5],
        "queue_examples": row[6],
        "queue_groups": row[7],
        "example_table_mib_all_shops": round(row[8] / 2**20),
        "example_indexes": index_names,
    }


# --- measurement ----------------------------------------------------------------------------


class StatementTimer:
    """Times every statement the app engine sends, labelled by what it is in queue()."""

    def __init__(self, engine: Engine) -> None:
        self.seconds: dict[str, list[float]] = {}
        self.last: list[tuple[str, str, Any]] = []  # (label, SQL, parameters) of the last call
        self.recording = False
        self._start = 0.0
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    @staticmethod
    def label(sql: str) -> str:
        if "set_config" in sql:
            return "tenant_context"
        if "shop_settings" in sql:
            return "thresholds"
        if "FROM review_group" in sql:  # the unfiltered queue reads the stored groups
            return "stored_groups_page" if "LIMIT" in sql else "stored_groups_totals"
        if " OVER (" in sql:  # one statement for the page and its totals
            return "ranked_groups_with_totals"
        if "FROM (SELECT" in sql:
            return "group_and_message_totals"
        if "GROUP BY" in sql and "LIMIT" in sql:
            return "ranked_groups"
        if "sum(CASE" in sql:
            return "counts_per_reason"
        if "example.id IN" in sql:
            return "page_rows"
        return "other"

    def _before(self, _c: Any, _cur: Any, sql: str, params: Any, _ctx: Any, _m: bool) -> None:
        self._start = time.perf_counter()

    def _after(self, _c: Any, _cur: Any, sql: str, params: Any, _ctx: Any, _m: bool) -> None:
        if not self.recording:
            return
        label = self.label(sql)
        self.seconds.setdefault(label, []).append(time.perf_counter() - self._start)
        self.last.append((label, sql, params))

    @contextmanager
    def record(self) -> Iterator[None]:
        self.recording, self.last = True, []
        try:
            yield
        finally:
            self.recording = False


class ActionTimer(StatementTimer):
    """Times the statements of review actions, labelled by what they do."""

    @staticmethod
    def label(sql: str) -> str:
        if "set_config" in sql:
            return "tenant_context"
        if "pg_advisory_xact_lock" in sql:
            return "group_refresh_lock"
        if "review_group" in sql:
            return "group_refresh_" + sql.split(None, 1)[0].lower()
        if "reviewed_at IS NOT NULL" in sql:
            return "auto_retrain_check"
        words = re.findall(r"\b(?:FROM|INTO|UPDATE)\s+(\w+)", sql)
        return f"{sql.split(None, 1)[0].lower()}_{words[0] if words else 'other'}"


def _percentiles(seconds: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in seconds)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return {"p50_ms": round(statistics.median(ms), 1), "p95_ms": round(p95, 1)}


def _timed(call: Callable[[], Any], timer: StatementTimer | None = None) -> list[float]:
    """Seconds of each of REPETITIONS calls after WARMUPS (the timer records only those)."""
    for _ in range(WARMUPS):
        call()
    seconds = []
    with timer.record() if timer else nullcontext():
        for _ in range(REPETITIONS):
            start = time.perf_counter()
            call()
            seconds.append(time.perf_counter() - start)
    return seconds


def _needs_review_sql() -> str:
    """The queue's condition at the shop's thresholds, as plain SQL (the naive reference)."""
    waiting = "status = 'pending' AND NOT reviewed"
    return (
        f"tenant_id = :tenant AND ((({waiting}) AND (confidence IS NULL OR confidence < :conf"
        f" OR margin < :margin OR escalated)) OR issue_score IS NOT NULL)"
    )


def _cases() -> dict[str, tuple[QueueFilter, int]]:
    """What is measured: (filters, page) by name."""
    from core.review import QueueFilter, Reason

    since = datetime.now(UTC) - timedelta(days=30)
    return {
        "first_page": (QueueFilter(), 1),
        **{f"first_page_reason_{r.value}": (QueueFilter(reason=r), 1) for r in Reason},
        "first_page_predicted_intent": (QueueFilter(predicted=FILTERED_INTENT), 1),
        "first_page_last_30_days": (QueueFilter(since=since), 1),
        "page_10": (QueueFilter(), 10),
    }


def _page_of(
    engine: Engine, actor: Actor, filters: QueueFilter, page: int = 1
) -> Callable[[], QueuePage]:
    """One review-queue page as the app shows it: its own session, tenant context and all."""
    from core.review import queue
    from db.engine import session_scope

    def call() -> QueuePage:
        with session_scope(actor, engine=engine) as session:
            result = queue(session=session, actor=actor, filters=filters, page=page)
        assert result.items, f"the queue is empty for {filters} page {page}"
        return result

    return call


def _naive_first_page(engine: Engine, actor: Actor) -> Callable[[], None]:
    """The reference: the same examples, ungrouped, least confident first, 25 of them."""
    from core.shop_settings import review_thresholds
    from db.engine import session_scope

    with session_scope(actor, engine=engine) as session:
        limits = review_thresholds(session=session, actor=actor)
    naive = text(f"SELECT * FROM example WHERE {_needs_review_sql()} ORDER BY confidence LIMIT 25")
    params = {"tenant": actor.tenant_id, "conf": limits.confidence, "margin": limits.margin}

    def call() -> None:
        with session_scope(actor, engine=engine) as session:
            assert len(session.execute(naive, params).all()) == 25

    return call


def bench(app_url: str, seeded: Seeded, *, explain: bool = False) -> dict[str, Any]:
    """Every case's p50/p95, the default first page's statements, and the naive reference."""
    from core.access import Actor, Role
    from db.engine import make_engine

    engine = make_engine(app_url)
    timer = StatementTimer(engine)
    actor = Actor(seeded.admin_user_id, seeded.tenant_id, Role.ADMIN, "bench.admin")
    results: dict[str, Any] = {}
    for name, (filters, page) in _cases().items():
        call = _page_of(engine, actor, filters, page)
        seconds = _timed(call, timer if name == "first_page" else None)
        shown = call()
        results[name] = {**_percentiles(seconds), "groups": shown.groups}
        if name == "first_page":
            results[name]["messages"] = shown.messages
            results[name]["by_reason"] = {r.value: n for r, n in shown.by_reason.items()}
    statements = {
        label: _percentiles(s)
        for label, s in timer.seconds.items()
        if label not in ("tenant_context", "other")
    }
    reference = _percentiles(_timed(_naive_first_page(engine, actor)))
    if explain:
        _explain(engine, actor, _page_of(engine, actor, _cases()["first_page"][0]), timer)
    action_timer = ActionTimer(engine)
    actions = _percentiles(_actions(engine, actor, action_timer))  # last: it changes the queue
    per_statement = {
        label: round(sum(s) * 1000 / (ACTIONS - 1), 1)
        for label, s in sorted(action_timer.seconds.items(), key=lambda item: -sum(item[1]))
    }
    engine.dispose()
    return {
        "cases": results,
        "first_page_statements": statements,
        "reference": reference,
        "review_action": {**actions, "mean_ms_per_statement_kind": per_statement},
    }


def _actions(engine: Engine, actor: Actor, timer: StatementTimer) -> list[float]:
    """Seconds of core.review.act (reject) on the queue's first item, ACTIONS times: what the
    stored groups cost each write (the action refreshes its group before it commits)."""
    from core import review
    from db.engine import session_scope

    seconds = []
    for _ in range(ACTIONS):
        with session_scope(actor, engine=engine) as session:
            item = review.next_item(session=session, actor=actor)
        assert item is not None
        start = time.perf_counter()
        with (
            timer.record() if seconds else nullcontext(),
            session_scope(actor, engine=engine) as session,
        ):
            review.act(
                session=session,
                actor=actor,
                example_id=item.example_id,
                action=review.Action.REJECT,
                version=item.version,
                launch_retrain=False,
            )
        seconds.append(time.perf_counter() - start)
    return seconds[1:]  # the first also queues the automatic retraining once


def _explain(engine: Engine, actor: Actor, call: Callable[[], Any], timer: StatementTimer) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) of each statement of one call, as the app role, to stderr."""
    from db.engine import session_scope

    with timer.record():
        call()
    for label, sql, params in timer.last:
        if label in ("tenant_context", "thresholds", "other"):
            continue
        with session_scope(actor, engine=engine) as session:
            raw = session.connection().exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params)
            plan = "\n".join(row[0] for row in raw)
        print(f"--- {label}\n{sql}\n{params}\n{plan}\n", file=sys.stderr)


def main() -> None:
    result: dict[str, Any] = {
        "benchmark": "review_queue",
        "examples": EXAMPLES,
        "noise_examples": NOISE_SHOPS * NOISE_EXAMPLES,
        "days": DAYS,
        "page_size": 25,
        "repetitions": REPETITIONS,
        "warmups": WARMUPS,
    }
    if not pg_server_url():
        result["postgresql"] = "skipped: set BENCH_DATABASE_URL (or TEST_DATABASE_URL)"
        print(json.dumps(result))
        return
    with tempfile.TemporaryDirectory() as tmp, fresh_database("postgresql", Path(tmp)) as db:
        seeded, shape = seed(db.app_url, db.owner_url)
        load_before = os.getloadavg()[0]
        measured = bench(db.app_url, seeded, explain="--explain" in sys.argv[1:])
        load_after = os.getloadavg()[0]
    cases = measured["cases"]
    worst = max(case["p95_ms"] for name, case in cases.items() if name.startswith("first_page"))
    result["postgresql"] = {
        "seed_seconds": seeded.seconds,
        # Latency on a shared machine follows its load: the 1-minute load average around it.
        "load_average_1m_before_after": [round(load_before, 1), round(load_after, 1)],
        "shop": shape,
        **cases,
        "first_page_statements": measured["first_page_statements"],
        "reference_naive_ungrouped_first_page": measured["reference"],
        "review_action_with_group_refresh": measured["review_action"],
        "worst_first_page_p95_ms": worst,
        "goal_first_page_p95_ms_le_300": cases["first_page"]["p95_ms"] <= GOAL_P95_MS,
        "goal_every_first_page_p95_ms_le_300": worst <= GOAL_P95_MS,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
