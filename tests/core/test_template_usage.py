"""Uses of response templates and their outcomes: idempotent recording, all-or-nothing batches,
attribution to A/B tests, analytics as SQL aggregates, concurrent reports. Every database test
runs on SQLite and, with TEST_DATABASE_URL, on PostgreSQL as the app role (RLS on)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func
from sqlmodel import select

from core import experiments, template_usage, templates
from core.access import Actor
from core.errors import InvalidInput, NotFound, PermissionDenied
from core.template_usage import read_reports
from db.engine import session_scope
from db.models import TemplateUse, UseOutcome
from tests.core.template_helpers import arm, customers, report, response_template, use
from tests.factories import Shop, make_shop

DAY = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)  # a Monday


@pytest.fixture
def shop(engine) -> Shop:
    return make_shop(engine, "Bloom")


@pytest.fixture
def template_id(engine, shop) -> int:
    return response_template(engine, shop)


def call(engine: Engine, actor: Actor, function: str, **kwargs: Any) -> Any:
    with session_scope(actor, engine=engine) as s:
        return getattr(template_usage, function)(session=s, actor=actor, **kwargs)


def stored_uses(engine: Engine, shop: Shop) -> int:
    with session_scope(shop.admin, engine=engine) as s:
        return s.exec(select(func.count()).select_from(TemplateUse)).one()


# ---------------------------------------------------------------- recording


def test_a_use_is_recorded_once_whatever_the_number_of_reports(engine, shop, template_id):
    recorded = call(
        engine,
        shop.admin,
        "record_template_use",
        use_id="u-1",
        template_id=template_id,
        version=1,
        conversation_id="conv-9",
        customer_id="ada",
        created_at=DAY,
    )
    assert (recorded.template_id, recorded.version, recorded.customer_id) == (template_id, 1, "ada")
    assert recorded.outcome is UseOutcome.UNKNOWN and recorded.outcome_at is None
    assert recorded.created_at == DAY and recorded.experiment_id is None
    again = report(engine, shop.admin, use(template_id, 2, "ada", use_id="u-1"))
    assert (again.added, again.known, again.outcomes) == (0, 1, 0)
    assert call(engine, shop.manager, "get_use", use_id="u-1").version == 1  # the first report


def test_an_outcome_and_a_rating_are_set_and_the_last_report_wins(engine, shop, template_id):
    report(engine, shop.admin, use(template_id, 1, "ada", use_id="u-1"))
    ended = call(engine, shop.admin, "record_outcome", use_id="u-1", outcome="resolved")
    assert ended.outcome is UseOutcome.RESOLVED and ended.outcome_at is not None
    rated = call(engine, shop.admin, "record_outcome", use_id="u-1", rating=4)
    assert (rated.outcome, rated.rating, rated.outcome_at) == (
        UseOutcome.RESOLVED,
        4,
        ended.outcome_at,
    )
    same = report(engine, shop.admin, {"use_id": "u-1", "outcome": "resolved", "rating": 4})
    assert same.outcomes == 0  # nothing changed
    changed = report(engine, shop.admin, {"use_id": "u-1", "outcome": "escalated"})
    assert changed.outcomes == 1
    assert call(engine, shop.admin, "get_use", use_id="u-1").outcome is UseOutcome.ESCALATED


def test_a_batch_with_a_bad_report_records_nothing(engine, shop, template_id):
    rows = [
        use(template_id, 1, "ada", outcome="resolved"),
        use(template_id, 7, "bob"),
        {"use_id": "never-reported", "outcome": "resolved"},
        {**use(template_id, 1, "cy"), "template_id": 99_999},
    ]
    with pytest.raises(InvalidInput) as refused:
        report(engine, shop.admin, *rows)
    lines = str(refused.value).splitlines()
    assert lines[0] == "Nothing was recorded:"
    assert "has no version 7" in lines[1]
    assert "there is no template with id 99999" in lines[2]
    assert "'never-reported': no use with this id was reported" in lines[3]
    assert stored_uses(engine, shop) == 0


def test_an_outcome_may_come_before_its_use_in_one_batch(engine, shop, template_id):
    summary = report(
        engine,
        shop.admin,
        {"use_id": "u-1", "outcome": "escalated", "rating": 1},
        use(template_id, 1, "ada", use_id="u-1"),
    )
    assert (summary.added, summary.outcomes) == (1, 1)
    found = call(engine, shop.admin, "get_use", use_id="u-1")
    assert (found.outcome, found.rating) == (UseOutcome.ESCALATED, 1)


def test_reports_are_checked_line_by_line():
    lines = [
        '{"use_id": "u-1", "template": "Delivery times", "version": 2, '
        '"conversation_id": "c", "customer_id": "ada", "outcome": "resolved"}',
        "",
        '{"use_id": "u-1", "rating": 5}',
        "[1, 2]",
        '{"use_id": "u-2", "rating": 6}',
        '{"use_id": "u-3"}',
        '{"use_id": "u-4", "version": 1, "conversation_id": "c", "customer_id": "x"}',
        "{not json",
    ]
    with pytest.raises(InvalidInput) as refused:
        read_reports(lines)
    errors = str(refused.value).splitlines()[1:]
    assert [e.split(":")[0] for e in errors] == ["Line 4", "Line 5", "Line 6", "Line 7", "Line 8"]
    assert "rating is a whole number from 1 to 5" in errors[1]
    assert "needs an outcome or a rating" in errors[2]
    assert "template" in errors[3]
    good = read_reports(lines[:3])
    assert [n for n, _ in good] == [1, 3]


def test_templates_are_found_by_name_and_must_be_response_templates(engine, shop, template_id):
    summary = report(
        engine,
        shop.admin,
        {**use(template_id, 2, "ada"), "template_id": None, "template": "delivery TIMES"},
    )
    assert summary.added == 1
    with session_scope(shop.admin, engine=engine) as s:
        prompt = templates.find_template(
            session=s, actor=shop.admin, kind="prompt", name="Basic Bouquet"
        )
    with pytest.raises(InvalidInput, match="response templates"):
        report(engine, shop.admin, use(prompt.id, 1, "ada"))
    with pytest.raises(InvalidInput, match="no response template named 'Basic Bouquet'"):
        report(
            engine,
            shop.admin,
            {**use(0, 1, "ada"), "template_id": None, "template": "Basic Bouquet"},
        )


def test_only_admins_record_and_every_role_reads(engine, shop, template_id):
    for actor in (shop.florist, shop.manager):
        with pytest.raises(PermissionDenied):
            report(engine, actor, use(template_id, 1, "ada"))
    report(engine, shop.admin, use(template_id, 1, "ada", use_id="u-1"))
    assert call(engine, shop.manager, "get_use", use_id="u-1").customer_id == "ada"
    assert call(engine, shop.florist, "template_usage")[0].counts.uses == 1


def test_shops_record_uses_apart(engine, shop, template_id):
    other = make_shop(engine, "Fern")
    theirs = response_template(engine, other)
    report(engine, shop.admin, use(template_id, 1, "ada", use_id="same-id"))
    assert report(engine, other.admin, use(theirs, 1, "ada", use_id="same-id")).added == 1
    with pytest.raises(InvalidInput, match="no template with id"):
        report(engine, other.admin, use(template_id, 1, "ada"))
    with pytest.raises(InvalidInput, match="no use with this id"):
        report(engine, other.admin, {"use_id": "only-bloom", "outcome": "resolved"})
    report(engine, shop.admin, {"use_id": "same-id", "outcome": "resolved"})
    assert call(engine, other.admin, "get_use", use_id="same-id").outcome is UseOutcome.UNKNOWN
    with pytest.raises(NotFound):
        call(engine, other.admin, "version_usage", template_id=template_id)


# ---------------------------------------------------------------- attribution to A/B tests


def test_a_use_counts_for_the_variant_its_customer_is_assigned(engine, shop, template_id):
    with session_scope(shop.florist, engine=engine) as s:
        test = experiments.start_experiment(
            session=s, actor=shop.florist, template_id=template_id, version_b=2, split=0.5
        )
    a_customer, b_customer = customers(test.id, 0.5, "A", 1)[0], customers(test.id, 0.5, "B", 1)[0]
    report(
        engine,
        shop.admin,
        use(template_id, 1, a_customer, use_id="a"),
        use(template_id, 2, b_customer, use_id="b"),
        use(template_id, 1, b_customer, use_id="b-served-a"),  # not what the test assigned
        use(template_id, 2, b_customer, use_id="before", created_at=test.started_at - timedelta(1)),
    )
    counted = {
        u: (found.experiment_id, found.variant)
        for u in ("a", "b", "b-served-a", "before")
        for found in [call(engine, shop.admin, "get_use", use_id=u)]
    }
    assert counted == {
        "a": (test.id, "A"),
        "b": (test.id, "B"),
        "b-served-a": (None, None),
        "before": (None, None),
    }


# ---------------------------------------------------------------- analytics


def test_template_analytics_count_uses_rates_and_ratings(engine, shop, template_id):
    quiet = response_template(engine, shop, "Opening hours")
    people = [f"c{n}" for n in range(10)]
    report(
        engine,
        shop.admin,
        *arm(template_id, 1, people[:6], resolved=3, escalated=1, created_at=DAY),
        *arm(template_id, 2, people[6:], resolved=2, escalated=0, created_at=DAY),
        use(template_id, 2, "late", created_at=DAY),  # no outcome yet
        {"use_id": "extra-rating", "rating": 5},
        use(template_id, 1, "x", use_id="extra-rating", created_at=DAY + timedelta(days=30)),
    )
    rows = call(engine, shop.manager, "template_usage", until=DAY + timedelta(days=1))
    assert (rows[0].template_id, rows[0].name, rows[0].counts.uses) == (
        template_id,
        "Delivery times",
        11,
    )  # most used first; every other response template of the shop follows with none
    assert all(r.counts.uses == 0 for r in rows[1:]) and quiet in {r.template_id for r in rows}
    counts = rows[0].counts
    assert (counts.reported, counts.resolved, counts.escalated) == (10, 5, 1)
    assert counts.resolution_rate == 0.5 and counts.escalation_rate == 0.1
    assert rows[1].counts.resolution_rate is None and rows[1].counts.avg_rating is None
    everything = call(engine, shop.manager, "template_usage")[0].counts
    assert (everything.uses, everything.rated, everything.avg_rating) == (12, 1, 5.0)
    by_version = call(engine, shop.manager, "version_usage", template_id=template_id)
    assert [(v.number, v.counts.uses, v.counts.resolved) for v in by_version] == [
        (2, 5, 2),
        (1, 7, 3),
    ]


def test_the_trend_buckets_by_utc_day_and_iso_week(engine, shop, template_id):
    late = datetime(2026, 11, 8, 23, 30, tzinfo=UTC)  # Sunday night
    report(
        engine,
        shop.admin,
        use(template_id, 1, "a", outcome="resolved", rating=4, created_at=DAY),
        use(template_id, 1, "b", outcome="escalated", rating=2, created_at=DAY),
        use(template_id, 1, "c", outcome="resolved", created_at=late),
        use(template_id, 1, "d", created_at=late + timedelta(hours=1)),  # Monday 00:30
    )
    window = {"since": DAY - timedelta(days=1), "until": DAY + timedelta(days=14)}
    days = call(engine, shop.manager, "usage_trend", template_id=template_id, **window)
    assert [(p.bucket_start, p.counts.uses, p.counts.resolved) for p in days] == [
        ("2026-11-02", 2, 1),
        ("2026-11-08", 1, 1),
        ("2026-11-09", 1, 0),
    ]
    assert days[0].counts.avg_rating == 3.0
    weeks = call(engine, shop.manager, "usage_trend", bucket="week", **window)
    assert [(p.bucket_start, p.counts.uses) for p in weeks] == [
        ("2026-11-02", 3),
        ("2026-11-09", 1),
    ]
    with pytest.raises(InvalidInput):
        call(engine, shop.manager, "usage_trend", bucket="month", **window)


# ---------------------------------------------------------------- concurrency


def test_concurrent_reports_of_the_same_uses_add_each_once_and_lose_no_outcome(
    threaded_engine,
):
    engine = threaded_engine
    shop = make_shop(engine, "Bloom")
    template_id = response_template(engine, shop)
    with session_scope(shop.florist, engine=engine) as s:
        test = experiments.start_experiment(
            session=s, actor=shop.florist, template_id=template_id, version_b=2
        )
    people = customers(test.id, 0.5, "A", 40)
    rows = [
        use(template_id, 1, c, use_id=f"u{n}", outcome="resolved") for n, c in enumerate(people)
    ]
    added: list[int] = []
    errors: list[BaseException] = []

    def assistant(worker: int) -> None:
        # Every worker reports every use, in its own order, in batches of ten.
        mine = rows[worker * 10 :] + rows[: worker * 10]
        try:
            for start in range(0, 40, 10):
                added.append(report(engine, shop.admin, *mine[start : start + 10]).added)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=assistant, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(added) == 40
    with session_scope(shop.manager, engine=engine) as s:
        found = experiments.experiment_results(session=s, actor=shop.manager, experiment_id=test.id)
    assert (found.a.counts.uses, found.a.counts.reported, found.a.counts.resolved) == (40, 40, 40)
