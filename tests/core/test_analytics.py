"""Analytics: every metric against a fixture small enough to count by hand, on both backends;
period comparison, day/week buckets across a month boundary, model markers, per-intent F1 of
the serving run, model history, the empty shop, roles and shop isolation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, text

from core import analytics, registry
from core.access import Actor
from core.analytics import Headline, IntentRow, Marker, TrendPoint
from core.errors import InvalidInput, PermissionDenied
from core.text import text_hash
from db.engine import is_postgres, session_scope
from db.models import Correction, Example, ModelVersion, TrainingRun
from tests.factories import Shop, make_shop

NOV, DEC = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)
OCT_2 = datetime(2026, 10, 2, tzinfo=UTC)  # November has 30 days: the previous period starts here

# (created at, predicted intent, confidence, reviewed intent, escalated). intent_correct is
# derived as a review would set it: set when there is a reviewed intent and a prediction.
NOVEMBER = [
    ("2026-11-01 00:00", "order_status", 1.0, "order_status", False),  # at `since`: counts
    ("2026-11-02 09:00", "order_status", 1.0, "delivery_time", False),  # relabelled
    ("2026-11-02 10:00", "order_status", 0.5, "refund", False),  # relabelled twice
    ("2026-11-08 10:00", "refund", 0.5, "refund", True),
    ("2026-11-09 10:00", "delivery_time", 0.5, None, False),
    ("2026-11-15 10:00", "delivery_time", 1.0, None, False),
    ("2026-11-20 10:00", "delivery_time", 0.5, None, True),
    ("2026-11-30 23:59", "order_status", 1.0, None, False),
    ("2026-11-30 23:59", None, None, None, False),  # no prediction
    ("2026-11-30 23:59", None, None, None, False),
]
# 10 messages; 2 escalated; confidence 6.0 over 8 predictions; 4 judged, 2 right (rows 0, 3);
# rows 1 and 2 relabelled -> correction rate 2/10.
NOVEMBER_HEADLINE = Headline(
    total_messages=10,
    ai_resolved=8,
    escalated=2,
    escalation_rate=0.2,
    avg_confidence=0.75,
    intent_accuracy=0.5,
    correction_rate=0.2,
)
OCTOBER = [
    ("2026-10-01 23:59", "refund", 0.5, None, True),  # before the previous period: nowhere
    ("2026-10-02 00:00", "refund", 0.5, "refund", True),
    ("2026-10-15 10:00", "refund", 0.5, "order_status", True),  # relabelled
    ("2026-10-31 23:59", "order_status", 0.5, None, False),
    ("2026-10-31 23:59", "order_status", 0.5, None, False),
]
LATER = [("2026-12-01 00:00", "refund", 0.5, "order_status", True)]  # at `until`: excluded
OCTOBER_HEADLINE = Headline(
    total_messages=4,
    ai_resolved=2,
    escalated=2,
    escalation_rate=0.5,
    avg_confidence=0.5,
    intent_accuracy=0.5,
    correction_rate=0.25,
)


def at(moment: str) -> datetime:
    return datetime.fromisoformat(moment).replace(tzinfo=UTC)


def add_examples(engine: Engine, shop: Shop, rows: list[tuple[Any, ...]]) -> list[int]:
    ids = []
    with session_scope(shop.admin, engine=engine) as s:
        for i, (created, predicted, confidence, truth, escalated) in enumerate(rows):
            body = f"{shop.slug} message {created} {i} {len(ids)}"
            example = Example(
                tenant_id=shop.tenant_id,
                text=body,
                text_hash=text_hash(body),
                detected_intent=predicted,
                confidence=confidence,
                correct_intent=truth,
                reviewed=truth is not None,
                intent_correct=None if truth is None or predicted is None else truth == predicted,
                escalated=escalated,
                created_at=at(created),
            )
            s.add(example)
            s.flush()
            assert example.id is not None
            ids.append(example.id)
    return ids


def add_correction(
    engine: Engine,
    shop: Shop,
    example_id: int,
    *,
    field: str = "intent",
    mismatch: bool = True,
    reverted: bool = False,
    made: str = "2026-11-25 12:00",
) -> None:
    with session_scope(shop.admin, engine=engine) as s:
        s.add(
            Correction(
                tenant_id=shop.tenant_id,
                example_id=example_id,
                field=field,
                original_value="order_status",
                corrected_value="refund",
                was_mismatch=mismatch,
                reviewer_id=shop.admin.user_id,
                created_at=at(made),
                reverted_at=at(made) + timedelta(hours=1) if reverted else None,
            )
        )


def fill_shop(engine: Engine, shop: Shop) -> None:
    """The months above, with every kind of correction that must and must not count."""
    nov = add_examples(engine, shop, NOVEMBER)
    octo = add_examples(engine, shop, OCTOBER)
    add_examples(engine, shop, LATER)
    add_correction(engine, shop, nov[1])  # counts
    add_correction(engine, shop, nov[2], made="2026-11-03 08:00")  # counts, once for two
    add_correction(engine, shop, nov[2])
    add_correction(engine, shop, nov[0], reverted=True)  # reverted: does not count
    add_correction(engine, shop, nov[3], mismatch=False)  # confirmed: does not count
    add_correction(engine, shop, nov[4], field="response")  # not an intent: does not count
    add_correction(engine, shop, octo[2])  # made in November, counts for October's message


@pytest.fixture
def shop(engine: Engine) -> Shop:
    made = make_shop(engine)
    fill_shop(engine, made)
    return made


@pytest.fixture
def noisy_neighbour(engine: Engine, shop: Shop) -> Shop:
    """Another shop with traffic in the same months, all escalated and all relabelled."""
    other = make_shop(engine, "Thorn & Sons")
    rows = [(created, "refund", 0.01, "payment", True) for created, *_ in NOVEMBER + OCTOBER]
    for example_id in add_examples(engine, other, rows):
        add_correction(engine, other, example_id)
    return other


def read(engine: Engine, actor: Actor, function: Any, **kw: Any) -> Any:
    with session_scope(actor, engine=engine) as s:
        return function(session=s, actor=actor, **kw)


# --- headline ------------------------------------------------------------------------------


def test_headline_of_a_month_matches_the_hand_count(engine, shop):
    found = read(engine, shop.manager, analytics.headline, since=NOV, until=DEC)
    assert _fields(found) == pytest.approx(_fields(NOVEMBER_HEADLINE))


def test_headline_counts_an_example_in_the_window_it_was_written_in(engine, shop):
    found = read(engine, shop.manager, analytics.headline, since=OCT_2, until=NOV)
    assert _fields(found) == pytest.approx(_fields(OCTOBER_HEADLINE))


def test_naive_times_are_taken_as_utc(engine, shop):
    naive = read(
        engine,
        shop.manager,
        analytics.headline,
        since=NOV.replace(tzinfo=None),
        until=DEC.replace(tzinfo=None),
    )
    assert naive.total_messages == 10


def test_an_empty_window_is_refused(engine, shop):
    with pytest.raises(InvalidInput):
        read(engine, shop.manager, analytics.headline, since=DEC, until=NOV)


def test_compare_sets_the_previous_period_of_the_same_length_beside_it(engine, shop):
    found = read(engine, shop.manager, analytics.compare, since=NOV, until=DEC)
    assert (found.previous_since, found.previous_until) == (OCT_2, NOV)
    assert _fields(found.current) == pytest.approx(_fields(NOVEMBER_HEADLINE))
    assert _fields(found.previous) == pytest.approx(_fields(OCTOBER_HEADLINE))
    assert found.change == pytest.approx(
        {
            "total_messages": 6,
            "ai_resolved": 6,
            "escalated": 0,
            "escalation_rate": -0.3,
            "avg_confidence": 0.25,
            "intent_accuracy": 0.0,
            "correction_rate": -0.05,
        }
    )


def test_compare_change_is_none_where_either_side_has_no_value(engine, shop):
    # The 30 days before 2 October hold one message, unjudged and with no correction.
    found = read(engine, shop.manager, analytics.compare, since=OCT_2, until=NOV)
    assert found.previous.total_messages == 1 and found.previous.intent_accuracy is None
    assert found.change["intent_accuracy"] is None
    assert found.change["total_messages"] == 3
    assert found.change["correction_rate"] == pytest.approx(0.25)


# --- trends and markers --------------------------------------------------------------------


def test_daily_trend_crosses_the_month_boundary_with_every_day_present(engine, shop):
    points = read(
        engine,
        shop.manager,
        analytics.trends,
        since=at("2026-10-30 00:00"),
        until=at("2026-11-03 00:00"),
        bucket="day",
    )
    assert points == [
        TrendPoint("2026-10-30", 0, None, None, None, 0),
        TrendPoint("2026-10-31", 2, 0.0, 0.5, None, 0),
        TrendPoint("2026-11-01", 1, 0.0, 1.0, 1.0, 0),  # its only correction was reverted
        TrendPoint("2026-11-02", 2, 0.0, 0.75, 0.0, 2),
    ]


def test_weekly_trend_starts_weeks_on_monday_across_the_month_boundary(engine, shop):
    points = read(
        engine,
        shop.manager,
        analytics.trends,
        since=at("2026-10-28 00:00"),  # a Wednesday: its week starts Monday 26 October
        until=at("2026-11-10 00:00"),
        bucket="week",
    )
    assert [p.bucket_start for p in points] == ["2026-10-26", "2026-11-02", "2026-11-09"]
    week_of_26, week_of_2, week_of_9 = points
    # 31 Oct (2 messages) and Sunday 1 Nov (1) share the week of Monday 26 October.
    assert (week_of_26.total, week_of_26.corrections) == (3, 0)
    assert week_of_26.avg_confidence == pytest.approx(2.0 / 3)
    # Monday 2 Nov (2) to Sunday 8 Nov (1, escalated); both relabelled messages are here.
    assert (week_of_2.total, week_of_2.corrections) == (3, 2)
    assert week_of_2.escalation_rate == pytest.approx(1 / 3)
    assert week_of_2.intent_accuracy == pytest.approx(1 / 3)
    assert (week_of_9.total, week_of_9.intent_accuracy) == (1, None)


def test_trend_sums_to_the_headline(engine, shop):
    points = read(engine, shop.manager, analytics.trends, since=NOV, until=DEC, bucket="day")
    assert len(points) == 30
    assert sum(p.total for p in points) == NOVEMBER_HEADLINE.total_messages
    assert sum(p.corrections for p in points) == 2  # correction_rate 0.2 of 10


def test_buckets_are_utc_days_whatever_the_database_time_zone(engine, shop):
    with session_scope(shop.manager, engine=engine) as s:
        if is_postgres(engine):  # 14 hours ahead of UTC: 23:59 on 30 Nov would read 1 Dec
            s.execute(text("SET LOCAL TIME ZONE 'Pacific/Kiritimati'"))
        points = analytics.trends(session=s, actor=shop.manager, since=NOV, until=DEC, bucket="day")
        weeks = analytics.trends(session=s, actor=shop.manager, since=NOV, until=DEC, bucket="week")
    assert points[-1].bucket_start == "2026-11-30" and points[-1].total == 3
    # Sunday 8 Nov 10:00 UTC is already Monday there; it stays in the week of 2 Nov.
    assert [(w.bucket_start, w.total) for w in weeks[:2]] == [("2026-10-26", 1), ("2026-11-02", 3)]


def test_unknown_bucket_is_refused(engine, shop):
    with pytest.raises(InvalidInput):
        read(engine, shop.manager, analytics.trends, since=NOV, until=DEC, bucket="month")


def add_versions(engine: Engine, shop: Shop, *run_ids: int | None) -> None:
    with session_scope(shop.admin, engine=engine) as s:
        for version, run_id in enumerate(run_ids, start=1):
            s.add(
                ModelVersion(
                    tenant_id=shop.tenant_id,
                    version=version,
                    run_id=run_id,
                    artifact=b"model",
                    sha256="0" * 64,
                    size_bytes=5,
                )
            )


def switch(engine: Engine, actor: Actor, version: int | None, reason: str | None = None) -> None:
    with session_scope(actor, engine=engine) as s:
        if version is None:
            registry.rollback(session=s, actor=actor, reason=reason)
        else:
            registry.activate(session=s, actor=actor, version=version, reason=reason)


def test_markers_show_deployments_and_roll_backs(engine, shop, noisy_neighbour):
    add_versions(engine, shop, None, None, None)
    add_versions(engine, noisy_neighbour, None)
    start = datetime.now(UTC)
    switch(engine, shop.admin, 1, "deploy gate: better")  # deployed
    switch(engine, shop.admin, 2, "deploy gate: better")  # deployed
    switch(engine, shop.admin, None)  # back to 1, reason 'rollback': rolled back
    switch(engine, shop.admin, 3)  # deployed
    switch(engine, shop.admin, None, "complaints")  # back to 1, own reason: still rolled back
    switch(engine, noisy_neighbour.admin, 1)  # another shop's: never shown
    markers = read(
        engine,
        shop.manager,
        analytics.model_markers,
        since=start - timedelta(minutes=1),
        until=datetime.now(UTC) + timedelta(minutes=1),
    )
    assert [(m.version, m.kind) for m in markers] == [
        (1, "deployed"),
        (2, "deployed"),
        (1, "rolled_back"),
        (3, "deployed"),
        (1, "rolled_back"),
    ]
    assert all(isinstance(m, Marker) and m.at >= start for m in markers)
    assert markers == sorted(markers, key=lambda m: m.at)
    before = read(
        engine, shop.manager, analytics.model_markers, since=start - timedelta(days=30), until=start
    )
    assert before == []


# --- intents and models --------------------------------------------------------------------


def test_top_intents_count_the_current_label(engine, shop):
    found = read(engine, shop.manager, analytics.top_intents, since=NOV, until=DEC)
    assert found == [("delivery_time", 4), ("order_status", 2), ("refund", 2)]
    assert read(engine, shop.manager, analytics.top_intents, since=NOV, until=DEC, limit=1) == [
        ("delivery_time", 4)
    ]


def test_top_misclassified_pairs_true_and_predicted(engine, shop):
    found = read(engine, shop.manager, analytics.top_misclassified, since=NOV, until=DEC)
    assert found == [("delivery_time", "order_status", 1), ("refund", "order_status", 1)]
    assert found[0].true_intent == "delivery_time" and found[0].predicted == "order_status"


def test_limits_out_of_range_are_refused(engine, shop):
    with pytest.raises(InvalidInput):
        read(engine, shop.manager, analytics.top_intents, since=NOV, until=DEC, limit=0)


def add_run(
    engine: Engine,
    shop: Shop,
    *,
    macro_f1: float | None,
    per_intent: dict[str, float] | None = None,
    created: str = "2026-11-10 12:00",
    status: str = "completed",
    deployed: bool = False,
    trigger: str = "manual",
) -> int:
    metrics = None
    if macro_f1 is not None:
        scores = {
            k: {"f1": v, "precision": v, "recall": v, "support": 5}
            for k, v in (per_intent or {}).items()
        }
        metrics = {"macro_f1": macro_f1, "accuracy": macro_f1, "per_intent": scores}
    with session_scope(shop.admin, engine=engine) as s:
        run = TrainingRun(
            tenant_id=shop.tenant_id,
            status=status,
            trigger=trigger,
            metrics=metrics,
            deployed=deployed,
            created_at=at(created),
        )
        s.add(run)
        s.flush()
        assert run.id is not None
        return run.id


def test_per_intent_rows_with_the_serving_models_f1(engine, shop):
    old = add_run(engine, shop, macro_f1=0.1, per_intent={"order_status": 0.1, "refund": 0.1})
    serving = add_run(engine, shop, macro_f1=0.85, per_intent={"order_status": 0.9, "refund": 0.8})
    add_versions(engine, shop, old, serving)
    switch(engine, shop.admin, 2)
    rows = read(engine, shop.manager, analytics.per_intent, since=NOV, until=DEC)
    assert rows == [
        IntentRow("delivery_time", 4, 0.0, 0.75, 0.25, None),  # not in the test split
        IntentRow("order_status", 2, 1.0, 1.0, 0.0, 0.9),
        IntentRow("refund", 2, 0.5, 0.5, 0.5, 0.8),
    ]


def test_per_intent_sorts_by_any_column_with_missing_values_last(engine, shop):
    serving = add_run(engine, shop, macro_f1=0.85, per_intent={"order_status": 0.9, "refund": 0.8})
    add_versions(engine, shop, serving)
    switch(engine, shop.admin, 1)

    def order(sort_by: str, descending: bool = True) -> list[str]:
        rows = read(
            engine,
            shop.manager,
            analytics.per_intent,
            since=NOV,
            until=DEC,
            sort_by=sort_by,
            descending=descending,
        )
        return [r.intent for r in rows]

    assert order("f1") == ["order_status", "refund", "delivery_time"]
    assert order("f1", descending=False) == ["refund", "order_status", "delivery_time"]
    assert order("accuracy", descending=False) == ["delivery_time", "refund", "order_status"]
    assert order("intent", descending=False) == ["delivery_time", "order_status", "refund"]
    with pytest.raises(InvalidInput):
        order("text")


def test_per_intent_without_a_serving_model_has_no_f1(engine, shop):
    rows = read(engine, shop.manager, analytics.per_intent, since=NOV, until=DEC)
    assert [r.f1 for r in rows] == [None, None, None]


def test_model_history_lists_completed_runs_oldest_first(engine, shop, noisy_neighbour):
    first = add_run(engine, shop, macro_f1=0.6, created="2026-11-01 10:00", trigger="cli")
    add_run(engine, shop, macro_f1=None, created="2026-11-02 10:00", status="failed")
    second = add_run(
        engine, shop, macro_f1=0.8, created="2026-11-03 10:00", deployed=True, trigger="auto"
    )
    add_run(engine, noisy_neighbour, macro_f1=0.99, created="2026-11-04 10:00")
    history = read(engine, shop.manager, analytics.model_history)
    assert history == [
        (first, at("2026-11-01 10:00"), pytest.approx(0.6), False, "cli"),
        (second, at("2026-11-03 10:00"), pytest.approx(0.8), True, "auto"),
    ]
    assert read(engine, shop.manager, analytics.model_history, limit=1)[0].run_id == second


# --- empty shop, roles, isolation ----------------------------------------------------------


def test_an_empty_shop_gets_zeros_and_none(engine):
    empty = make_shop(engine, "Empty Vase")
    manager = empty.manager
    assert read(engine, manager, analytics.headline, since=NOV, until=DEC) == Headline(
        0, 0, 0, None, None, None, None
    )
    compared = read(engine, manager, analytics.compare, since=NOV, until=DEC)
    assert compared.change == {
        "total_messages": 0,
        "ai_resolved": 0,
        "escalated": 0,
        "escalation_rate": None,
        "avg_confidence": None,
        "intent_accuracy": None,
        "correction_rate": None,
    }
    weeks = read(engine, manager, analytics.trends, since=NOV, until=DEC, bucket="week")
    assert weeks[0] == TrendPoint("2026-10-26", 0, None, None, None, 0) and len(weeks) == 6
    for function in (analytics.top_intents, analytics.top_misclassified, analytics.per_intent):
        assert read(engine, manager, function, since=NOV, until=DEC) == []
    assert read(engine, manager, analytics.model_markers, since=NOV, until=DEC) == []
    assert read(engine, manager, analytics.model_history) == []


WINDOWED = (
    analytics.headline,
    analytics.compare,
    analytics.model_markers,
    analytics.top_intents,
    analytics.top_misclassified,
    analytics.per_intent,
)


def test_a_florist_is_refused_every_figure(engine, shop):
    for function in WINDOWED:
        with pytest.raises(PermissionDenied):
            read(engine, shop.florist, function, since=NOV, until=DEC)
    with pytest.raises(PermissionDenied):
        read(engine, shop.florist, analytics.trends, since=NOV, until=DEC, bucket="day")
    with pytest.raises(PermissionDenied):
        read(engine, shop.florist, analytics.model_history)


def test_admins_read_the_same_figures_as_managers(engine, shop):
    as_admin = read(engine, shop.admin, analytics.headline, since=NOV, until=DEC)
    assert as_admin == read(engine, shop.manager, analytics.headline, since=NOV, until=DEC)


def test_another_shops_rows_never_count(engine, shop, noisy_neighbour):
    mine = read(engine, shop.manager, analytics.headline, since=NOV, until=DEC)
    assert _fields(mine) == pytest.approx(_fields(NOVEMBER_HEADLINE))
    weeks = read(engine, shop.manager, analytics.trends, since=NOV, until=DEC, bucket="week")
    assert sum(p.total for p in weeks) == 10 and sum(p.corrections for p in weeks) == 2
    intents = read(engine, shop.manager, analytics.top_intents, since=NOV, until=DEC)
    assert "payment" not in dict(intents)
    wrong = read(engine, shop.manager, analytics.top_misclassified, since=NOV, until=DEC)
    assert all(t != "payment" for t, _, _ in wrong)
    rows = read(engine, shop.manager, analytics.per_intent, since=NOV, until=DEC)
    assert sum(r.volume for r in rows) == 8
    theirs = read(engine, noisy_neighbour.manager, analytics.headline, since=NOV, until=DEC)
    assert (theirs.total_messages, theirs.escalated, theirs.correction_rate) == (10, 10, 1.0)


def _fields(found: Headline) -> dict[str, Any]:
    return {name: getattr(found, name) for name in analytics.METRICS}
