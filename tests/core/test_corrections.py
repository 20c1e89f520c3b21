"""The corrections log: filters, SQL paging, batches and reverts, activity per UTC day and
reviewer, shop isolation, roles, and a spreadsheet-safe export."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import col, select

from core import corrections, review, users
from core.access import Actor, Role
from core.corrections import ActivityRow, CorrectionFilter
from core.errors import InvalidInput, PermissionDenied
from core.text import text_hash
from db.engine import session_scope
from db.models import Correction, Example, Intent
from tests.factories import Shop, make_shop

T0 = datetime(2026, 11, 1, 12, tzinfo=UTC)


@pytest.fixture
def shop(engine: Engine) -> Shop:
    """A shop whose intents are order_status, delivery_time and refund."""
    return _shop_with_intents(engine, "Bloom & Co.")


def _shop_with_intents(engine: Engine, name: str) -> Shop:
    made = make_shop(engine, name)
    with session_scope(made.admin, engine=engine) as s:
        for intent in ("order_status", "delivery_time", "refund"):
            s.add(Intent(tenant_id=made.tenant_id, name=intent))
    return made


def add(engine: Engine, shop: Shop, text: str, *, predicted: str = "order_status") -> int:
    with session_scope(shop.admin, engine=engine) as s:
        example = Example(
            tenant_id=shop.tenant_id,
            text=text,
            text_hash=text_hash(text),
            detected_intent=predicted,
            confidence=0.4,
            top_intents=[[predicted, 0.4], ["refund", 0.3]],
            margin=0.1,
            ai_response="Your order is on its way.",
        )
        s.add(example)
        s.flush()
        assert example.id is not None
        return example.id


def act(engine: Engine, actor: Actor, example_id: int, action: str, **kw: Any) -> Any:
    with session_scope(actor, engine=engine) as s:
        return review.act(
            session=s,
            actor=actor,
            example_id=example_id,
            action=action,
            launch_retrain=False,
            **kw,
        )


def listed(engine: Engine, actor: Actor, **filters: Any) -> corrections.CorrectionPage:
    with session_scope(actor, engine=engine) as s:
        return corrections.list_corrections(
            session=s, actor=actor, filters=CorrectionFilter(**filters)
        )


def at(monkeypatch: pytest.MonkeyPatch, when: datetime) -> None:
    """Make the review loop's clock read `when` (corrections take their time from it)."""
    monkeypatch.setattr(review, "utcnow", lambda: when)


def second_admin(engine: Engine, shop: Shop) -> Actor:
    """The shop's florist, promoted to admin so that two people review."""
    with session_scope(shop.admin, engine=engine) as s:
        assert shop.florist.user_id is not None
        users.change_role(
            session=s,
            actor=shop.admin,
            user_id=shop.florist.user_id,
            role=Role.ADMIN,
            expected_version=1,
        )
    return replace(shop.florist, role=Role.ADMIN)


# --- the list -----------------------------------------------------------------------------


def test_each_row_shows_reviewer_example_values_and_batch(engine, shop, monkeypatch):
    single = add(engine, shop, "where are my roses")
    twin_a = add(engine, shop, "refund please")
    twin_b = add(engine, shop, "refund please")  # a repeat: one queue group with twin_a
    at(monkeypatch, T0)
    act(engine, shop.admin, single, "change_intent", intent="delivery_time", note="late order")
    at(monkeypatch, T0 + timedelta(minutes=5))
    grouped = act(engine, shop.admin, twin_a, "change_intent", intent="refund", group=True)
    got = listed(engine, shop.admin)
    assert got.total == 3 and got.pages == 1
    newest, second, oldest = got.rows
    assert {newest.example_id, second.example_id} == {twin_a, twin_b}
    assert newest.batch_id == second.batch_id == grouped.batch_id
    assert (newest.batch_size, newest.batch_standing) == (2, 2)
    assert newest.created_at == T0 + timedelta(minutes=5)
    assert (oldest.example_id, oldest.example_text) == (single, "where are my roses")
    assert (oldest.field, oldest.original_value, oldest.corrected_value) == (
        "intent",
        "order_status",
        "delivery_time",
    )
    assert oldest.was_mismatch and oldest.note == "late order"
    assert (oldest.reviewer_id, oldest.reviewer) == (shop.admin.user_id, shop.admin.display_name)
    assert (oldest.batch_size, oldest.reverted, oldest.reverted_by) == (1, False, None)


def test_paging_is_newest_first_and_counts_every_match(engine, shop, monkeypatch):
    ids = [add(engine, shop, f"message {n}") for n in range(7)]
    for n, eid in enumerate(ids):
        at(monkeypatch, T0 + timedelta(minutes=n))
        act(engine, shop.admin, eid, "correct")
    with session_scope(shop.admin, engine=engine) as s:

        def page(number: int) -> corrections.CorrectionPage:
            return corrections.list_corrections(
                session=s, actor=shop.admin, page=number, page_size=3
            )

        pages = [page(1), page(2), page(3), page(4)]
    assert [len(p.rows) for p in pages] == [3, 3, 1, 0]
    assert {(p.total, p.pages) for p in pages} == {(7, 3)}
    assert [r.example_id for p in pages for r in p.rows] == ids[::-1]


@pytest.mark.parametrize("bad", [{"page": 0}, {"page_size": 0}, {"page_size": 501}])
def test_nonsense_paging_is_refused(engine, shop, bad):
    with session_scope(shop.admin, engine=engine) as s, pytest.raises(InvalidInput):
        corrections.list_corrections(session=s, actor=shop.admin, **bad)


def test_filters_by_reviewer_intent_dates_mismatch_field_and_reverted(engine, shop, monkeypatch):
    other = second_admin(engine, shop)
    confirmed, relabelled, fixed, rejected = (add(engine, shop, f"msg {n}") for n in range(4))
    at(monkeypatch, T0)
    act(engine, shop.admin, confirmed, "correct")  # order_status -> order_status, no mismatch
    at(monkeypatch, T0 + timedelta(days=1))
    act(engine, other, relabelled, "change_intent", intent="refund")  # mismatch
    at(monkeypatch, T0 + timedelta(days=2))
    act(engine, shop.admin, fixed, "fix_response", response="It ships today.")
    undone = act(engine, other, rejected, "reject")
    with session_scope(shop.admin, engine=engine) as s:
        review.undo_batch(session=s, actor=shop.admin, batch_id=undone.batch_id)

    def ids(**filters: Any) -> set[int]:
        return {r.example_id for r in listed(engine, shop.admin, **filters).rows}

    assert ids() == {confirmed, relabelled, fixed, rejected}
    assert ids(reviewer_id=other.user_id) == {relabelled, rejected}
    assert ids(intent="refund") == {relabelled}
    assert ids(intent="order_status") == {confirmed, relabelled}  # either side
    assert ids(intent="It ships today.") == set()  # responses are not intents
    assert ids(since=T0 + timedelta(days=1)) == {relabelled, fixed, rejected}
    assert ids(until=T0 + timedelta(days=1)) == {confirmed}
    assert ids(since=T0 + timedelta(hours=1), until=T0 + timedelta(days=2)) == {relabelled}
    assert ids(mismatch_only=True) == {relabelled, fixed}  # a changed response is a mismatch
    assert ids(field="status") == {rejected}
    assert ids(include_reverted=False) == {confirmed, relabelled, fixed}
    assert ids(reviewer_id=other.user_id, include_reverted=False) == {relabelled}
    with pytest.raises(InvalidInput, match="Unknown field"):
        listed(engine, shop.admin, field="colour")


def test_a_revert_shows_who_reverted_and_shrinks_what_the_batch_undo_restores(
    engine, shop, monkeypatch
):
    first, second = add(engine, shop, "tulips"), add(engine, shop, "lilies")
    with session_scope(shop.admin, engine=engine) as s:
        batch = review.bulk_relabel(
            session=s, actor=shop.admin, example_ids=[first, second], intent="refund"
        )
    other = second_admin(engine, shop)
    with session_scope(other, engine=engine) as s:
        one = s.exec(select(Correction).where(col(Correction.example_id) == first)).one()
        assert one.id is not None
        review.revert_correction(session=s, actor=other, correction_id=one.id)
    rows = {r.example_id: r for r in listed(engine, shop.admin).rows}
    assert rows[first].reverted and rows[first].reverted_by == other.display_name
    assert rows[first].reverted_at is not None
    assert (rows[second].batch_id, rows[second].batch_size) == (batch.batch_id, 2)
    assert rows[second].batch_standing == rows[first].batch_standing == 1
    assert rows[second].reverted_by is None


def test_filter_choices_are_the_reviewers_and_intents_in_the_log(engine, shop):
    other = second_admin(engine, shop)
    assert listed(engine, shop.admin).total == 0
    with session_scope(shop.admin, engine=engine) as s:
        assert corrections.reviewers(session=s, actor=shop.admin) == []
        assert corrections.any_corrections(session=s, actor=shop.admin) is False
    act(engine, other, add(engine, shop, "a"), "change_intent", intent="refund")
    act(engine, shop.admin, add(engine, shop, "b", predicted="delivery_time"), "correct")
    act(engine, shop.admin, add(engine, shop, "c"), "reject")
    with session_scope(shop.admin, engine=engine) as s:
        choices = corrections.reviewers(session=s, actor=shop.admin)
        intents = corrections.intents(session=s, actor=shop.admin)
        assert corrections.any_corrections(session=s, actor=shop.admin) is True
    assert sorted((c.id, c.name) for c in choices) == sorted(
        [(shop.admin.user_id, shop.admin.display_name), (other.user_id, other.display_name)]
    )
    assert intents == ["delivery_time", "order_status", "refund"]  # not the status values


# --- reviewer activity --------------------------------------------------------------------


def test_activity_counts_per_utc_day_and_reviewer(engine, shop, monkeypatch):
    other = second_admin(engine, shop)
    late = datetime(2026, 11, 1, 23, 59, tzinfo=UTC)
    # 00:30 on Nov 2 in UTC is still Nov 1 in New York: the bucket must follow UTC.
    early = datetime(2026, 11, 2, 0, 30, tzinfo=UTC)
    plan = [
        (late, shop.admin, "change_intent"),
        (late, shop.admin, "correct"),
        (late, other, "correct"),
        (early, shop.admin, "change_intent"),
        (early + timedelta(days=2), other, "change_intent"),
    ]
    for n, (when, who, action) in enumerate(plan):
        at(monkeypatch, when)
        extra = {"intent": "refund"} if action == "change_intent" else {}
        act(engine, who, add(engine, shop, f"message {n}"), action, **extra)
    since, until = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 4, tzinfo=UTC)
    with session_scope(shop.admin, engine=engine) as s:
        if engine.dialect.name == "postgresql":
            # A connection in another time zone must not move a correction to another day.
            s.connection().exec_driver_sql("SET LOCAL TIME ZONE 'America/New_York'")
        got = corrections.reviewer_activity(session=s, actor=shop.admin, since=since, until=until)
        narrow = corrections.reviewer_activity(
            session=s, actor=shop.admin, since=early, until=until
        )
    admin, florist = shop.admin.display_name, other.display_name
    assert sorted(got, key=lambda r: (r.day, r.reviewer)) == sorted(
        [
            ActivityRow("2026-11-01", admin, 2, 1, shop.admin.user_id),
            ActivityRow("2026-11-01", florist, 1, 0, other.user_id),
            ActivityRow("2026-11-02", admin, 1, 1, shop.admin.user_id),
        ],
        key=lambda r: (r.day, r.reviewer),
    )
    assert [(r.day, r.corrections) for r in narrow] == [("2026-11-02", 1)]


def test_activity_is_empty_without_corrections(engine, shop):
    with session_scope(shop.admin, engine=engine) as s:
        assert (
            corrections.reviewer_activity(session=s, actor=shop.admin, since=None, until=None) == []
        )


# --- isolation, roles, export -------------------------------------------------------------


def test_another_shops_corrections_never_show(engine, shop, monkeypatch):
    fern = _shop_with_intents(engine, "Fern & Thistle")
    at(monkeypatch, T0)
    act(engine, shop.admin, add(engine, shop, "bloom message"), "change_intent", intent="refund")
    act(engine, fern.admin, add(engine, fern, "fern secret"), "change_intent", intent="refund")
    bloom_rows = listed(engine, shop.admin).rows
    assert [r.example_text for r in bloom_rows] == ["bloom message"]
    assert listed(engine, shop.admin, reviewer_id=fern.admin.user_id).total == 0
    with session_scope(shop.admin, engine=engine) as s:
        names = [c.name for c in corrections.reviewers(session=s, actor=shop.admin)]
        activity = corrections.reviewer_activity(
            session=s, actor=shop.admin, since=None, until=None
        )
        exported = corrections.export_csv(session=s, actor=shop.admin)
    assert names == [shop.admin.display_name]
    assert [(r.reviewer, r.corrections) for r in activity] == [(shop.admin.display_name, 1)]
    assert "fern secret" not in exported and "bloom message" in exported


@pytest.mark.parametrize("role", [Role.FLORIST, Role.MANAGER])
def test_only_admins_read_the_corrections_log(engine, shop, role):
    """Managers see only the reviewer activity (Analytics), not the log itself."""
    actor = shop.actor(role)
    calls = [
        lambda s: corrections.list_corrections(session=s, actor=actor),
        lambda s: corrections.export_csv(session=s, actor=actor),
        lambda s: corrections.reviewers(session=s, actor=actor),
        lambda s: corrections.intents(session=s, actor=actor),
        lambda s: corrections.any_corrections(session=s, actor=actor),
    ]
    if role is Role.FLORIST:
        calls.append(
            lambda s: corrections.reviewer_activity(session=s, actor=actor, since=None, until=None)
        )
    for call in calls:
        with session_scope(actor, engine=engine) as s, pytest.raises(PermissionDenied):
            call(s)


def test_csv_export_is_filtered_complete_and_spreadsheet_safe(engine, shop, monkeypatch):
    at(monkeypatch, T0)
    formula = add(engine, shop, '=HYPERLINK("http://evil.example","click")')
    act(engine, shop.admin, formula, "change_intent", intent="refund", note="+1 looks wrong")
    act(engine, shop.admin, add(engine, shop, "plain"), "reject")
    with session_scope(shop.admin, engine=engine) as s:
        everything = corrections.export_csv(session=s, actor=shop.admin)
        intents_only = corrections.export_csv(
            session=s, actor=shop.admin, filters=CorrectionFilter(field="intent")
        )
    rows = list(csv.reader(io.StringIO(everything)))
    assert rows[0] == list(corrections.CSV_COLUMNS)
    assert len(rows) == 3
    record = dict(zip(rows[0], rows[2], strict=True))  # oldest last
    assert record["example_text"] == '\'=HYPERLINK("http://evil.example","click")'
    assert record["note"] == "'+1 looks wrong"
    assert (record["original_value"], record["corrected_value"]) == ("order_status", "refund")
    assert (record["was_mismatch"], record["batch_size"], record["reverted_at"]) == ("yes", "1", "")
    assert record["created_at"] == T0.isoformat(timespec="seconds")
    assert len(list(csv.reader(io.StringIO(intents_only)))) == 2
