"""Alerts: thresholds per shop (audited, stale edits refused), raise once and clear, minimum
volume, the serving model's metrics, roles, isolation and `trellis alerts`."""

from __future__ import annotations

import functools
import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine
from sqlmodel import select

from core import registry
from core.access import Actor
from core.alerts import (
    MIN_MESSAGES,
    AlertThresholds,
    Outcome,
    alert_history,
    alert_thresholds,
    evaluate_alerts,
    open_alerts,
    set_alert_thresholds,
)
from core.errors import InvalidInput, PermissionDenied, StaleEdit
from core.model import IntentModel, fit
from core.shop_settings import review_thresholds, set_review_thresholds
from core.text import text_hash
from db.engine import get_engine, session_scope
from db.models import AlertEvent, AlertKind, AuditEvent, Example
from tests.factories import Shop, make_shop, run_cli

WEEK1 = datetime(2024, 3, 4, tzinfo=UTC)  # a Monday
WEEK2 = WEEK1 + timedelta(days=7)
WEEK3 = WEEK2 + timedelta(days=7)


def traffic(
    engine: Engine,
    who: Shop | Actor,
    since: datetime,
    *,
    total: int,
    escalated: int = 0,
    right: int = 0,
    wrong: int = 0,
) -> None:
    """`total` messages an hour apart from `since`: the first `escalated` escalated, then
    `right` judged right and `wrong` judged wrong (the rest not judged)."""
    assert escalated <= total and right + wrong <= total
    actor = who.admin if isinstance(who, Shop) else who
    judged = [True] * right + [False] * wrong
    with session_scope(actor, engine=engine) as s:
        for i in range(total):
            text = f"message {since.isoformat()} {i}"
            s.add(
                Example(
                    tenant_id=actor.tenant_id,
                    text=text,
                    text_hash=text_hash(text),
                    detected_intent="order_status",
                    confidence=0.5,
                    escalated=i < escalated,
                    intent_correct=judged[i] if i < len(judged) else None,
                    created_at=since + timedelta(hours=i),
                )
            )


def evaluate(engine: Engine, shop: Shop, since: datetime = WEEK1, until: datetime = WEEK2):
    with session_scope(shop.admin, engine=engine) as s:
        checks = evaluate_alerts(session=s, actor=shop.admin, since=since, until=until)
    return {c.kind: c for c in checks}


def opened(engine: Engine, shop: Shop):
    with session_scope(shop.manager, engine=engine) as s:
        return {a.kind: a for a in open_alerts(session=s, actor=shop.manager)}


def history(engine: Engine, shop: Shop):
    with session_scope(shop.manager, engine=engine) as s:
        return alert_history(session=s, actor=shop.manager)


def thresholds(engine: Engine, shop: Shop) -> AlertThresholds:
    with session_scope(shop.manager, engine=engine) as s:
        return alert_thresholds(session=s, actor=shop.manager)


def set_thresholds(engine: Engine, shop: Shop, version: int, **values: float) -> AlertThresholds:
    new = {**thresholds(engine, shop).values(), **values}
    with session_scope(shop.admin, engine=engine) as s:
        return set_alert_thresholds(
            session=s, actor=shop.admin, expected_version=version, **new, reason="test"
        )


@functools.cache
def tiny_model() -> IntentModel:
    texts = ["where is my order", "track my order", "refund please", "my money back"]
    return fit(texts=texts, labels=["order_status", "order_status", "refund", "refund"])


def serve(engine: Engine, shop: Shop, **metrics: float) -> None:
    """Store a model version with these test-set metrics and make it serve."""
    with session_scope(shop.admin, engine=engine) as s:
        stored = registry.store_version(
            session=s, actor=shop.admin, model=tiny_model(), run_id=None, metrics=metrics
        )
        registry.activate(session=s, actor=shop.admin, version=stored.version)


@pytest.fixture
def shop(engine: Engine) -> Shop:
    return make_shop(engine)


# --- thresholds ----------------------------------------------------------------------------


def test_thresholds_start_at_the_seed_defaults(engine, shop):
    assert thresholds(engine, shop) == AlertThresholds(0.70, 0.30, 0.70, 0.15, version=0)


def test_changing_thresholds_is_audited_and_a_stale_edit_is_refused(engine, shop):
    saved = set_thresholds(engine, shop, 0, escalation_rate=0.5)
    assert saved == AlertThresholds(0.70, 0.50, 0.70, 0.15, version=1)
    assert thresholds(engine, shop) == saved
    with pytest.raises(StaleEdit) as stale:
        set_thresholds(engine, shop, 0, escalation_rate=0.9)  # loaded before the first save
    assert stale.value.current == saved
    assert thresholds(engine, shop) == saved
    set_thresholds(engine, shop, 1, intent_accuracy=0.8)
    with session_scope(shop.admin, engine=engine) as s:
        events = s.exec(
            select(AuditEvent)
            .where(AuditEvent.action == "settings.alert_thresholds")
            .order_by(AuditEvent.id)
        ).all()
    assert [(e.before, e.after) for e in events] == [
        (
            {
                "intent_accuracy": 0.7,
                "escalation_rate": 0.3,
                "macro_f1": 0.7,
                "misclassification": 0.15,
            },
            {
                "intent_accuracy": 0.7,
                "escalation_rate": 0.5,
                "macro_f1": 0.7,
                "misclassification": 0.15,
            },
        ),
        (
            {
                "intent_accuracy": 0.7,
                "escalation_rate": 0.5,
                "macro_f1": 0.7,
                "misclassification": 0.15,
            },
            {
                "intent_accuracy": 0.8,
                "escalation_rate": 0.5,
                "macro_f1": 0.7,
                "misclassification": 0.15,
            },
        ),
    ]
    assert {e.actor_user_id for e in events} == {shop.admin.user_id}
    assert {e.reason for e in events} == {"test"}


def test_the_same_session_reads_the_thresholds_it_just_saved(engine, shop):
    with session_scope(shop.admin, engine=engine) as s:
        assert alert_thresholds(session=s, actor=shop.admin).version == 0
        set_alert_thresholds(
            session=s,
            actor=shop.admin,
            intent_accuracy=0.6,
            escalation_rate=0.4,
            macro_f1=0.5,
            misclassification=0.2,
            expected_version=0,
        )
        assert alert_thresholds(session=s, actor=shop.admin) == AlertThresholds(
            0.6, 0.4, 0.5, 0.2, version=1
        )


def test_review_and_alert_thresholds_are_edited_independently(engine, shop):
    with session_scope(shop.admin, engine=engine) as s:
        set_review_thresholds(
            session=s, actor=shop.admin, confidence=0.5, margin=0.2, expected_version=0
        )
    set_thresholds(engine, shop, 0, macro_f1=0.6)  # the review edit did not make this stale
    with session_scope(shop.admin, engine=engine) as s:
        set_review_thresholds(
            session=s, actor=shop.admin, confidence=0.4, margin=0.2, expected_version=1
        )
        assert review_thresholds(session=s, actor=shop.admin).confidence == 0.4
    assert thresholds(engine, shop).macro_f1 == 0.6


def test_alert_thresholds_saved_first_leave_the_review_thresholds_at_their_defaults(engine, shop):
    set_thresholds(engine, shop, 0, misclassification=0.25)
    with session_scope(shop.admin, engine=engine) as s:
        review = review_thresholds(session=s, actor=shop.admin)
        assert (review.confidence, review.margin, review.version) == (0.6, 0.1, 0)
        set_review_thresholds(
            session=s, actor=shop.admin, confidence=0.7, margin=0.1, expected_version=0
        )
    assert thresholds(engine, shop).misclassification == 0.25


def test_thresholds_need_an_admin_and_values_between_0_and_1(engine, shop):
    for actor in (shop.manager, shop.florist):
        with session_scope(actor, engine=engine) as s, pytest.raises(PermissionDenied):
            set_alert_thresholds(
                session=s,
                actor=actor,
                intent_accuracy=0.5,
                escalation_rate=0.5,
                macro_f1=0.5,
                misclassification=0.5,
                expected_version=0,
            )
    with pytest.raises(InvalidInput, match="escalation_rate threshold"):
        set_thresholds(engine, shop, 0, escalation_rate=1.5)
    with pytest.raises(InvalidInput, match="macro_f1 threshold"):
        set_thresholds(engine, shop, 0, macro_f1=-0.1)
    assert thresholds(engine, shop).version == 0


def test_each_shop_has_its_own_thresholds(engine, shop):
    other = make_shop(engine, "Other Shop")
    set_thresholds(engine, shop, 0, escalation_rate=0.9)
    assert thresholds(engine, other) == AlertThresholds()
    set_thresholds(engine, other, 0, escalation_rate=0.1)  # its own version 0, not stale
    assert thresholds(engine, shop).escalation_rate == 0.9


# --- raise and clear -----------------------------------------------------------------------


def test_crossed_thresholds_raise_one_alert_each_and_clear_when_back_within(engine, shop):
    traffic(engine, shop, WEEK1, total=20, escalated=8, right=6, wrong=4)  # 40 %, 60 %
    traffic(engine, shop, WEEK2, total=20, escalated=2, right=9, wrong=1)  # 10 %, 90 %

    checks = evaluate(engine, shop)
    assert checks[AlertKind.ESCALATION_RATE].outcome is Outcome.RAISED
    assert checks[AlertKind.ESCALATION_RATE].value == pytest.approx(0.4)
    assert checks[AlertKind.INTENT_ACCURACY].outcome is Outcome.RAISED
    assert checks[AlertKind.INTENT_ACCURACY].value == pytest.approx(0.6)
    for kind in (AlertKind.MACRO_F1, AlertKind.MISCLASSIFICATION):
        assert checks[kind].outcome is Outcome.NOT_JUDGED
        assert checks[kind].note == "Not judged: no model serves."
    alerts = opened(engine, shop)
    assert set(alerts) == {AlertKind.ESCALATION_RATE, AlertKind.INTENT_ACCURACY}
    escalation = alerts[AlertKind.ESCALATION_RATE]
    assert (escalation.value, escalation.threshold) == (pytest.approx(0.4), 0.3)
    assert "Escalation rate is 40%" in escalation.message
    assert "20 messages" in escalation.message and "above the shop's threshold of 30%" in (
        escalation.message
    )
    assert "Knowledge gaps" in escalation.advice
    accuracy = alerts[AlertKind.INTENT_ACCURACY]
    assert "below the shop's threshold of 70%" in accuracy.message
    assert "review queue" in accuracy.advice and "retrain" in accuracy.advice

    again = evaluate(engine, shop)  # still crossed: nothing new
    assert again[AlertKind.ESCALATION_RATE].outcome is Outcome.STILL_OPEN
    assert len(history(engine, shop)) == 2

    within = evaluate(engine, shop, WEEK2, WEEK3)
    assert within[AlertKind.ESCALATION_RATE].outcome is Outcome.CLEARED
    assert within[AlertKind.INTENT_ACCURACY].outcome is Outcome.CLEARED
    assert opened(engine, shop) == {}
    cleared = {a.kind: a for a in history(engine, shop)}
    assert cleared[AlertKind.ESCALATION_RATE].cleared_value == pytest.approx(0.1)
    assert cleared[AlertKind.INTENT_ACCURACY].cleared_value == pytest.approx(0.9)
    assert all(a.cleared_at is not None and not a.is_open for a in cleared.values())

    assert evaluate(engine, shop, WEEK2, WEEK3)[AlertKind.ESCALATION_RATE].outcome is Outcome.OK
    evaluate(engine, shop)  # crossed again: a new alert, the old one stays in the history
    assert len(history(engine, shop)) == 4 and len(opened(engine, shop)) == 2


def test_the_same_session_sees_what_its_evaluation_raised_and_cleared(engine, shop):
    traffic(engine, shop, WEEK1, total=20, escalated=10)
    traffic(engine, shop, WEEK2, total=20)
    with session_scope(shop.admin, engine=engine) as s:
        evaluate_alerts(session=s, actor=shop.admin, since=WEEK1, until=WEEK2)
        assert [a.kind for a in open_alerts(session=s, actor=shop.admin)] == [
            AlertKind.ESCALATION_RATE
        ]
        evaluate_alerts(session=s, actor=shop.admin, since=WEEK2, until=WEEK3)
        assert open_alerts(session=s, actor=shop.admin) == []
        (cleared,) = alert_history(session=s, actor=shop.admin)
        assert cleared.cleared_at is not None and cleared.cleared_value == 0.0


def test_a_value_on_the_threshold_is_within(engine, shop):
    traffic(engine, shop, WEEK1, total=20, escalated=6, right=14, wrong=6)  # 30 %, 70 %
    checks = evaluate(engine, shop)
    assert checks[AlertKind.ESCALATION_RATE].outcome is Outcome.OK
    assert checks[AlertKind.INTENT_ACCURACY].outcome is Outcome.OK
    assert opened(engine, shop) == {}


def test_the_shops_own_thresholds_decide(engine, shop):
    traffic(engine, shop, WEEK1, total=20, escalated=8)  # 40 %
    set_thresholds(engine, shop, 0, escalation_rate=0.5)
    assert evaluate(engine, shop)[AlertKind.ESCALATION_RATE].outcome is Outcome.OK
    set_thresholds(engine, shop, 1, escalation_rate=0.35)
    assert evaluate(engine, shop)[AlertKind.ESCALATION_RATE].outcome is Outcome.RAISED
    assert opened(engine, shop)[AlertKind.ESCALATION_RATE].threshold == 0.35


def test_too_few_messages_raise_nothing_and_say_so(engine, shop):
    traffic(engine, shop, WEEK1, total=MIN_MESSAGES - 1, escalated=MIN_MESSAGES - 1, wrong=5)
    checks = evaluate(engine, shop)
    for kind in (AlertKind.ESCALATION_RATE, AlertKind.INTENT_ACCURACY):
        assert checks[kind].outcome is Outcome.NOT_JUDGED
        assert checks[kind].volume == 19
        assert checks[kind].note == (
            "Not judged: only 19 messages in the window; alerts need at least 20."
        )
    assert opened(engine, shop) == {}
    traffic(engine, shop, WEEK1 + timedelta(days=2), total=1, escalated=1)  # the 20th
    assert evaluate(engine, shop)[AlertKind.ESCALATION_RATE].outcome is Outcome.RAISED


def test_an_open_alert_stays_open_while_it_cannot_be_judged(engine, shop):
    traffic(engine, shop, WEEK1, total=20, escalated=10)
    evaluate(engine, shop)
    quiet = evaluate(engine, shop, WEEK2, WEEK3)  # no traffic at all
    assert quiet[AlertKind.ESCALATION_RATE].outcome is Outcome.NOT_JUDGED
    assert quiet[AlertKind.ESCALATION_RATE].note == "Not judged: no messages."
    assert quiet[AlertKind.INTENT_ACCURACY].note == (
        "Not judged: no reviewed messages in the window."
    )
    assert set(opened(engine, shop)) == {AlertKind.ESCALATION_RATE}


def test_the_serving_models_macro_f1_and_misclassification_alert(engine, shop):
    serve(engine, shop, macro_f1=0.6, accuracy=0.8, n_test=40)  # misclassification 20 %
    checks = evaluate(engine, shop)
    assert checks[AlertKind.MACRO_F1].outcome is Outcome.RAISED
    assert checks[AlertKind.MISCLASSIFICATION].outcome is Outcome.RAISED
    assert checks[AlertKind.MISCLASSIFICATION].value == pytest.approx(0.2)
    assert checks[AlertKind.MACRO_F1].volume == 40
    alerts = opened(engine, shop)
    assert alerts[AlertKind.MACRO_F1].message == (
        "Macro-F1 of the serving model is 0.60 over model v1's test set (40 messages), "
        "below the shop's threshold of 0.70."
    )
    assert "20%" in alerts[AlertKind.MISCLASSIFICATION].message
    assert "roll back" in alerts[AlertKind.MISCLASSIFICATION].advice

    serve(engine, shop, macro_f1=0.85, accuracy=0.9, n_test=40)  # v2: 10 % wrong
    checks = evaluate(engine, shop)
    assert checks[AlertKind.MACRO_F1].outcome is Outcome.CLEARED
    assert checks[AlertKind.MISCLASSIFICATION].outcome is Outcome.CLEARED
    assert opened(engine, shop) == {}


def test_a_model_scored_on_too_few_test_messages_is_not_judged(engine, shop):
    serve(engine, shop, macro_f1=0.1, accuracy=0.1, n_test=12)
    checks = evaluate(engine, shop)
    assert checks[AlertKind.MACRO_F1].outcome is Outcome.NOT_JUDGED
    assert checks[AlertKind.MACRO_F1].note == (
        "Not judged: only 12 test messages; alerts need at least 20."
    )
    assert opened(engine, shop) == {}


def test_evaluating_at_once_on_two_replicas_raises_one_alert(threaded_engine):
    engine = threaded_engine
    shop = make_shop(engine)
    traffic(engine, shop, WEEK1, total=20, escalated=20)
    for _ in range(3):
        barrier = threading.Barrier(2)
        outcomes: list[Outcome] = []

        def replica(b: threading.Barrier = barrier) -> None:
            b.wait()
            outcomes.append(evaluate(engine, shop)[AlertKind.ESCALATION_RATE].outcome)

        threads = [threading.Thread(target=replica) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(outcomes) == [Outcome.RAISED, Outcome.STILL_OPEN]
        assert len(history(engine, shop)) == 1
        with session_scope(shop.admin, engine=engine) as s:  # start the next round afresh
            for row in s.exec(select(AlertEvent)).all():
                s.delete(row)


def test_the_window_must_start_before_it_ends(engine, shop):
    with pytest.raises(InvalidInput):
        evaluate(engine, shop, WEEK2, WEEK1)


# --- roles and shops -----------------------------------------------------------------------


def test_admins_and_managers_evaluate_florists_do_not(engine, shop):
    with session_scope(shop.florist, engine=engine) as s, pytest.raises(PermissionDenied):
        evaluate_alerts(session=s, actor=shop.florist)
    with session_scope(shop.manager, engine=engine) as s:
        assert evaluate_alerts(session=s, actor=shop.manager)  # every kind checked
    with session_scope(shop.florist, engine=engine) as s:
        with pytest.raises(PermissionDenied):
            open_alerts(session=s, actor=shop.florist)
        with pytest.raises(PermissionDenied):
            alert_history(session=s, actor=shop.florist)
    with session_scope(shop.admin, engine=engine) as s:
        assert open_alerts(session=s, actor=shop.admin) == []
        with pytest.raises(InvalidInput, match="Unknown alert kind"):
            alert_history(session=s, actor=shop.admin, kind="weather")


def test_one_shops_alerts_are_its_own(engine, shop):
    other = make_shop(engine, "Other Shop")
    traffic(engine, shop, WEEK1, total=20, escalated=10)
    traffic(engine, other, WEEK1, total=20)
    evaluate(engine, shop)
    assert evaluate(engine, other)[AlertKind.ESCALATION_RATE].outcome is Outcome.OK
    assert opened(engine, other) == {} and history(engine, other) == []
    assert set(opened(engine, shop)) == {AlertKind.ESCALATION_RATE}
    with session_scope(shop.manager, engine=engine) as s:
        only = alert_history(session=s, actor=shop.manager, kind="escalation_rate")
    assert [a.kind for a in only] == [AlertKind.ESCALATION_RATE]


# --- the command line ----------------------------------------------------------------------


def test_cli_alerts_lists_and_evaluates(cli_shop):
    empty = run_cli("alerts", "--tenant", "bloom", "--json")
    assert empty.exit_code == 0 and json.loads(empty.stdout) == {"alerts": []}
    now = datetime.now(UTC)
    traffic(get_engine(cli_shop), Actor.cli(1), now - timedelta(days=2), total=20, escalated=9)
    result = run_cli("alerts", "--tenant", "bloom", "--evaluate", "--json")
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    assert [c["kind"] for c in got["checks"]] == [k.value for k in AlertKind]
    assert {c["kind"]: c["outcome"] for c in got["checks"]}["escalation_rate"] == "raised"
    (alert,) = got["alerts"]
    assert alert["kind"] == "escalation_rate" and alert["value"] == pytest.approx(0.45)
    assert alert["threshold"] == 0.3 and "Knowledge gaps" in alert["advice"]
    assert set(alert) == {"id", "kind", "value", "threshold", "raised_at", "message", "advice"}
    listed = json.loads(run_cli("alerts", "--tenant", "bloom", "--json").stdout)
    assert listed == {"alerts": got["alerts"]}
    text = run_cli("alerts", "--tenant", "bloom").stdout
    assert "Escalation rate is 45%" in text and "What to do:" in text
