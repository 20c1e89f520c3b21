"""Snapshots: aligned UTC periods, hand-computed numbers, one row per period however often (and
however concurrently) it is taken, roles, and the `trellis snapshot` JSON contract."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, func
from sqlmodel import select

from core.access import Actor
from core.errors import InvalidInput, NotFound, PermissionDenied
from core.snapshots import (
    compare_snapshots,
    last_complete_period,
    list_snapshots,
    take_snapshot,
)
from core.text import text_hash
from db.engine import get_engine, session_scope
from db.models import Correction, Example, MetricSnapshot, SnapshotPeriod
from tests.factories import Shop, make_shop, run_cli

DAY = datetime(2024, 3, 5, tzinfo=UTC)  # a Tuesday
NEXT_DAY = DAY + timedelta(days=1)


def add(
    engine: Engine,
    shop: Shop | Actor,
    at: datetime,
    *,
    confidence: float | None = None,
    escalated: bool = False,
    right: bool | None = None,
    relabelled: bool = False,
) -> int:
    """One customer message written at `at`; `right` judges its prediction, `relabelled` adds
    a standing intent correction that changed it."""
    actor = shop.admin if isinstance(shop, Shop) else shop
    text = f"message {at.isoformat()} {confidence} {escalated} {right}"
    with session_scope(actor, engine=engine) as s:
        example = Example(
            tenant_id=actor.tenant_id,
            text=text,
            text_hash=text_hash(text),
            detected_intent="order_status",
            confidence=confidence,
            escalated=escalated,
            intent_correct=right,
            created_at=at,
        )
        s.add(example)
        s.flush()
        assert example.id is not None
        if relabelled:
            s.add(
                Correction(
                    tenant_id=actor.tenant_id,
                    example_id=example.id,
                    field="intent",
                    original_value="order_status",
                    corrected_value="delivery_time",
                    was_mismatch=True,
                )
            )
        return example.id


def snapshot(engine: Engine, shop: Shop, period: str, at: datetime):
    with session_scope(shop.admin, engine=engine) as s:
        return take_snapshot(session=s, actor=shop.admin, period=period, at=at)


def rows(engine: Engine, shop: Shop) -> int:
    with session_scope(shop.admin, engine=engine) as s:
        return s.exec(select(func.count()).select_from(MetricSnapshot)).one()


@pytest.fixture
def shop(engine: Engine) -> Shop:
    return make_shop(engine)


# --- alignment -----------------------------------------------------------------------------


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("period", "at", "start", "end"),
    [
        ("hourly", utc(2024, 3, 5, 10, 30), utc(2024, 3, 5, 9), utc(2024, 3, 5, 10)),
        ("hourly", utc(2024, 3, 5, 10), utc(2024, 3, 5, 9), utc(2024, 3, 5, 10)),
        ("hourly", utc(2024, 3, 5, 0, 5), utc(2024, 3, 4, 23), utc(2024, 3, 5)),
        ("daily", utc(2024, 3, 5, 13, 1), utc(2024, 3, 4), utc(2024, 3, 5)),
        ("daily", utc(2024, 3, 1, 0, 0, 0), utc(2024, 2, 29), utc(2024, 3, 1)),  # leap day
        ("weekly", utc(2024, 3, 6, 12), utc(2024, 2, 26), utc(2024, 3, 4)),  # Wed -> Mon..Mon
        ("weekly", utc(2024, 3, 4), utc(2024, 2, 26), utc(2024, 3, 4)),  # on the Monday
        ("weekly", utc(2024, 3, 3, 23, 59), utc(2024, 2, 19), utc(2024, 2, 26)),  # Sunday
        ("weekly", utc(2025, 1, 1), utc(2024, 12, 23), utc(2024, 12, 30)),  # ISO week 1 of 2025
        ("monthly", utc(2024, 3, 15), utc(2024, 2, 1), utc(2024, 3, 1)),
        ("monthly", utc(2024, 1, 1), utc(2023, 12, 1), utc(2024, 1, 1)),  # across the year
        ("monthly", utc(2024, 12, 31, 23, 59), utc(2024, 11, 1), utc(2024, 12, 1)),
    ],
)
def test_periods_align_to_utc_hour_day_iso_week_and_month(period, at, start, end):
    assert last_complete_period(SnapshotPeriod(period), at) == (start, end)


def test_a_moment_with_an_offset_is_aligned_in_utc():
    at = datetime(2024, 3, 5, 1, 30, tzinfo=timezone(timedelta(hours=2)))  # 23:30 UTC on the 4th
    assert last_complete_period(SnapshotPeriod.DAILY, at) == (utc(2024, 3, 3), utc(2024, 3, 4))
    naive = datetime(2024, 3, 5, 1, 30)  # taken as UTC
    assert last_complete_period(SnapshotPeriod.DAILY, naive) == (utc(2024, 3, 4), utc(2024, 3, 5))


def test_a_snapshot_counts_exactly_its_period(engine, shop):
    """The month of February 2024: its first and last microsecond in, the neighbours out."""
    for at in (utc(2024, 2, 1), utc(2024, 2, 29, 23, 59, 59, 999999), utc(2024, 2, 15, 12)):
        add(engine, shop, at)
    for at in (utc(2024, 1, 31, 23, 59, 59, 999999), utc(2024, 3, 1)):
        add(engine, shop, at)
    view, _ = snapshot(engine, shop, "monthly", utc(2024, 3, 10))
    assert (view.period_start, view.period_end) == (utc(2024, 2, 1), utc(2024, 3, 1))
    assert view.total_messages == 3
    week, _ = snapshot(engine, shop, "weekly", utc(2024, 3, 6))  # Feb 26 .. Mar 4
    assert week.total_messages == 2  # Feb 29 23:59:59.999999 and Mar 1 00:00


# --- numbers and idempotency ---------------------------------------------------------------


def test_snapshot_of_the_last_complete_day_holds_its_hand_computed_numbers(engine, shop):
    add(engine, shop, DAY + timedelta(hours=1), confidence=0.9, right=True)
    add(engine, shop, DAY + timedelta(hours=2), confidence=0.8, right=True)
    add(engine, shop, DAY + timedelta(hours=3), confidence=0.6, right=False, relabelled=True)
    add(engine, shop, DAY + timedelta(hours=23, minutes=59), confidence=0.5, escalated=True)
    add(engine, shop, DAY - timedelta(seconds=1), confidence=0.1, escalated=True)  # day before
    add(engine, shop, NEXT_DAY, confidence=0.1, escalated=True)  # the day after
    other = make_shop(engine, "Other Shop")  # another shop's traffic the same day never counts
    add(engine, other, DAY + timedelta(hours=5), confidence=0.2, escalated=True, right=False)

    view, created = snapshot(engine, shop, "daily", NEXT_DAY + timedelta(hours=10))

    assert created is True
    assert view.period is SnapshotPeriod.DAILY
    assert (view.period_start, view.period_end) == (DAY, NEXT_DAY)
    assert view.metrics() == {
        "total_messages": 4,
        "ai_resolved": 3,
        "escalated": 1,
        "escalation_rate": 0.25,
        "avg_confidence": pytest.approx((0.9 + 0.8 + 0.6 + 0.5) / 4),
        "intent_accuracy": pytest.approx(2 / 3),
        "correction_rate": 0.25,
    }


def test_taking_it_twice_gives_one_row_and_created_false_the_second_time(engine, shop):
    add(engine, shop, DAY + timedelta(hours=1), confidence=0.9)
    first, created = snapshot(engine, shop, "daily", NEXT_DAY + timedelta(minutes=1))
    again, created_again = snapshot(engine, shop, "daily", NEXT_DAY + timedelta(hours=20))
    assert (created, created_again) == (True, False)
    assert again == first
    assert rows(engine, shop) == 1


def test_a_snapshot_is_frozen_once_taken(engine, shop):
    add(engine, shop, DAY + timedelta(hours=1), confidence=0.9)
    first, _ = snapshot(engine, shop, "daily", NEXT_DAY)
    add(engine, shop, DAY + timedelta(hours=2), confidence=0.1, escalated=True)  # arrives late
    again, created = snapshot(engine, shop, "daily", NEXT_DAY)
    assert created is False and again.total_messages == first.total_messages == 1


def test_each_period_kind_has_its_own_snapshot_of_the_same_start(engine, shop):
    add(engine, shop, utc(2024, 3, 4, 0, 30))  # Monday: the first hour, day and week of it
    monday = utc(2024, 3, 4)
    hourly, _ = snapshot(engine, shop, "hourly", monday + timedelta(hours=1))
    daily, _ = snapshot(engine, shop, "daily", monday + timedelta(days=1))
    weekly, _ = snapshot(engine, shop, "weekly", monday + timedelta(days=7))
    assert hourly.period_start == daily.period_start == weekly.period_start == monday
    assert len({hourly.id, daily.id, weekly.id}) == 3
    assert rows(engine, shop) == 3


def test_an_empty_period_is_a_snapshot_of_zeros(engine, shop):
    view, created = snapshot(engine, shop, "hourly", DAY)
    assert created and view.metrics() == {
        "total_messages": 0,
        "ai_resolved": 0,
        "escalated": 0,
        "escalation_rate": None,
        "avg_confidence": None,
        "intent_accuracy": None,
        "correction_rate": None,
    }


def test_a_period_not_yet_ended_is_refused(engine, shop):
    future = datetime.now(UTC) + timedelta(days=3)
    with pytest.raises(InvalidInput, match="not ended yet"):
        snapshot(engine, shop, "daily", future)
    with pytest.raises(InvalidInput, match="Unknown period 'yearly'"):
        snapshot(engine, shop, "yearly", DAY)
    assert rows(engine, shop) == 0


def test_two_replicas_taking_the_same_snapshot_at_once_leave_one_row(threaded_engine):
    engine = threaded_engine
    shop = make_shop(engine)
    add(engine, shop, DAY + timedelta(minutes=30), confidence=0.5)
    for hour in range(1, 6):
        barrier = threading.Barrier(2)
        outcomes: list[bool] = []

        def cron(at: datetime = DAY + timedelta(hours=hour), b=barrier) -> None:
            b.wait()
            outcomes.append(snapshot(engine, shop, "hourly", at)[1])

        threads = [threading.Thread(target=cron) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(outcomes) == [False, True]
        assert rows(engine, shop) == hour


# --- reading -------------------------------------------------------------------------------


def test_list_is_newest_first_per_period_and_compare_shows_the_change(engine, shop):
    add(engine, shop, DAY + timedelta(hours=1), confidence=0.8)
    add(engine, shop, NEXT_DAY + timedelta(hours=1), confidence=0.4, escalated=True)
    add(engine, shop, NEXT_DAY + timedelta(hours=2), confidence=0.6)
    older, _ = snapshot(engine, shop, "daily", NEXT_DAY)
    newer, _ = snapshot(engine, shop, "daily", NEXT_DAY + timedelta(days=1))
    snapshot(engine, shop, "hourly", DAY + timedelta(hours=2))
    with session_scope(shop.manager, engine=engine) as s:
        listed = list_snapshots(session=s, actor=shop.manager, period="daily")
        assert [v.id for v in listed] == [newer.id, older.id]
        assert [
            v.id for v in list_snapshots(session=s, actor=shop.manager, period="daily", limit=1)
        ] == [newer.id]
        diff = compare_snapshots(session=s, actor=shop.manager, a_id=older.id, b_id=newer.id)
    changes = {c.metric: c for c in diff.changes}
    assert (diff.a, diff.b) == (older, newer)
    assert (changes["total_messages"].a, changes["total_messages"].b) == (1, 2)
    assert changes["total_messages"].change == 1
    assert changes["escalation_rate"].change == pytest.approx(0.5)
    assert changes["avg_confidence"].change == pytest.approx(0.5 - 0.8)
    assert changes["intent_accuracy"].change is None  # nothing judged in either


def test_another_shops_snapshot_cannot_be_compared(engine, shop):
    other = make_shop(engine, "Other Shop")
    mine, _ = snapshot(engine, shop, "daily", NEXT_DAY)
    theirs, _ = snapshot(engine, other, "daily", NEXT_DAY)
    with session_scope(shop.manager, engine=engine) as s:
        with pytest.raises(NotFound):
            compare_snapshots(session=s, actor=shop.manager, a_id=mine.id, b_id=theirs.id)
        assert [v.id for v in list_snapshots(session=s, actor=shop.manager, period="daily")] == [
            mine.id
        ]


def test_only_admins_take_snapshots_and_florists_do_not_read_them(engine, shop):
    view, _ = snapshot(engine, shop, "daily", NEXT_DAY)
    for actor in (shop.manager, shop.florist):
        with session_scope(actor, engine=engine) as s, pytest.raises(PermissionDenied):
            take_snapshot(session=s, actor=actor, period="daily", at=NEXT_DAY)
    with session_scope(shop.florist, engine=engine) as s:
        with pytest.raises(PermissionDenied):
            list_snapshots(session=s, actor=shop.florist, period="daily")
        with pytest.raises(PermissionDenied):
            compare_snapshots(session=s, actor=shop.florist, a_id=view.id, b_id=view.id)
    with session_scope(shop.admin, engine=engine) as s:
        assert len(list_snapshots(session=s, actor=shop.admin, period="daily")) == 1


# --- the command line ----------------------------------------------------------------------

CLI = Actor.cli(1)  # the shop `bloom` of the cli_shop fixture
CONTRACT_KEYS = {
    "period",
    "period_start",
    "total_messages",
    "ai_resolved",
    "escalated",
    "escalation_rate",
    "avg_confidence",
    "intent_accuracy",
    "correction_rate",
    "created",
}


def test_cli_snapshot_json_contract_and_rerun_from_cron(cli_shop):
    engine = get_engine(cli_shop)
    add(engine, CLI, DAY + timedelta(hours=3), confidence=0.75, escalated=True)
    add(engine, CLI, DAY + timedelta(hours=4), confidence=0.25, right=True)

    args = ("snapshot", "--tenant", "bloom", "--period", "daily", "--at", "2024-03-06T08:00")
    first = run_cli(*args, "--json")
    assert first.exit_code == 0, first.output
    got = json.loads(first.stdout)
    assert set(got) == CONTRACT_KEYS
    assert got == {
        "period": "daily",
        "period_start": "2024-03-05T00:00:00+00:00",
        "total_messages": 2,
        "ai_resolved": 1,
        "escalated": 1,
        "escalation_rate": 0.5,
        "avg_confidence": 0.5,
        "intent_accuracy": 1.0,
        "correction_rate": 0.0,
        "created": True,
    }
    again = json.loads(run_cli(*args, "--json").stdout)
    assert again == {**got, "created": False}
    offset = run_cli(*args[:-1], "2024-03-06T01:00+02:00", "--json")  # 23:00 UTC on the 5th
    assert json.loads(offset.stdout)["period_start"] == "2024-03-04T00:00:00+00:00"
    text = run_cli(*args)
    assert "already taken" in text.stdout and "2 messages" in text.stdout


def test_cli_snapshot_refuses_a_bad_moment(cli_shop):
    bad = run_cli("snapshot", "--tenant", "bloom", "--period", "daily", "--at", "tomorrowish")
    assert bad.exit_code == 2 and "not an ISO date-time" in bad.stderr
    soon = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    future = run_cli("snapshot", "--tenant", "bloom", "--period", "daily", "--at", soon)
    assert future.exit_code == 2 and "not ended yet" in future.stderr
    nope = run_cli("snapshot", "--tenant", "bloom", "--period", "yearly")
    assert nope.exit_code == 2
