"""Alerts: a metric past the shop's threshold raises one, coming back within clears it.

The four kinds and how each is measured:
- intent accuracy (live): share of the window's reviewed messages whose predicted intent was
  right (core.analytics.headline); alerts *below* its threshold (seed: 0.70);
- escalation rate (live): escalated / all messages in the window; alerts *above* (seed: 0.30);
- macro-F1 (model): the serving model's macro-F1 on its training run's held-out test set
  (ModelVersion.metrics["macro_f1"]); alerts *below* (seed: 0.70);
- misclassification (model): 1 - the serving model's test-set accuracy, the share of held-out
  messages it gets wrong (ModelVersion.metrics["accuracy"]); alerts *above* (seed: 0.15).

A metric is judged only on enough volume: the live ones on at least MIN_MESSAGES messages in the
window, the model ones on at least MIN_MESSAGES test messages (when the run recorded n_test).
A metric not judged (too little volume, or no value) neither raises nor clears: an open alert
stays open until a judged value comes back within. One alert per kind is open at a time, which
the database enforces (partial unique index), so replicas evaluating at once raise it once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from core import audit, registry
from core.access import Actor, Role, require_role
from core.analytics import headline
from core.errors import InvalidInput, StaleEdit
from core.shop_settings import compare_and_set, settings_id
from core.snapshots import as_utc
from db.models import AlertEvent, AlertKind, ShopSettings, utcnow

MIN_MESSAGES = 20
DEFAULT_WINDOW = timedelta(days=7)


@dataclass(frozen=True)
class Rule:
    label: str
    above: bool  # True: alert when the value exceeds the threshold; False: when it falls below
    percent: bool  # shown as a percentage (else as a 0-1 score)
    source: str  # "live" (the window's messages) or "model" (the serving model's test set)
    advice: str


RULES: dict[AlertKind, Rule] = {
    AlertKind.INTENT_ACCURACY: Rule(
        "Intent accuracy",
        above=False,
        percent=True,
        source="live",
        advice=(
            "Work through the review queue (Review page, or `trellis review next`) and correct "
            "the wrong intents, check Label issues for mislabelled training data, then retrain."
        ),
    ),
    AlertKind.ESCALATION_RATE: Rule(
        "Escalation rate",
        above=True,
        percent=True,
        source="live",
        advice=(
            "Open Knowledge gaps to see what customers escalate, add intents or response "
            "templates for those topics, label the escalated messages and retrain."
        ),
    ),
    AlertKind.MACRO_F1: Rule(
        "Macro-F1 of the serving model",
        above=False,
        percent=False,
        source="model",
        advice=(
            "Some intents are weak: find the lowest F1 on the Training page, add or correct "
            "examples of those intents and retrain; roll back if an earlier model was better."
        ),
    ),
    AlertKind.MISCLASSIFICATION: Rule(
        "Misclassification of the serving model",
        above=True,
        percent=True,
        source="model",
        advice=(
            "The serving model gets too many test messages wrong: review Label issues and the "
            "most confused intent pairs, add examples that tell them apart and retrain; roll "
            "back if an earlier model was better."
        ),
    ),
}


@dataclass(frozen=True)
class AlertThresholds:
    """The shop's thresholds; `version` guards concurrent edits (0: never saved, seed values)."""

    intent_accuracy: float = 0.70
    escalation_rate: float = 0.30
    macro_f1: float = 0.70
    misclassification: float = 0.15
    version: int = 0

    def of(self, kind: AlertKind) -> float:
        value: float = getattr(self, kind.value)
        return value

    def values(self) -> dict[str, float]:
        return {kind.value: self.of(kind) for kind in AlertKind}


@dataclass(frozen=True)
class AlertView:
    """One alert as pages and the CLI see it, with what to do about it."""

    id: int
    kind: AlertKind
    value: float
    threshold: float
    message: str
    raised_at: datetime
    cleared_at: datetime | None
    cleared_value: float | None

    @property
    def label(self) -> str:
        return RULES[self.kind].label

    @property
    def advice(self) -> str:
        return RULES[self.kind].advice

    @property
    def is_open(self) -> bool:
        return self.cleared_at is None


class Outcome(StrEnum):
    RAISED = "raised"
    STILL_OPEN = "still_open"
    CLEARED = "cleared"
    OK = "ok"
    NOT_JUDGED = "not_judged"


@dataclass(frozen=True)
class AlertCheck:
    """What one evaluation found for one kind; `note` says why a metric was not judged."""

    kind: AlertKind
    value: float | None
    threshold: float
    volume: int | None  # messages in the window (live) or test messages (model)
    outcome: Outcome
    note: str = ""


@dataclass(frozen=True)
class _Reading:
    kind: AlertKind
    value: float | None
    volume: int | None
    scope: str  # where the value comes from, for the message
    missing: str  # why there is no value, when there is none


# --- thresholds ----------------------------------------------------------------------------


def _settings(session: Session, actor: Actor) -> ShopSettings | None:
    return session.exec(
        select(ShopSettings).where(ShopSettings.tenant_id == actor.tenant_id)
    ).first()


def alert_thresholds(*, session: Session, actor: Actor) -> AlertThresholds:
    """The shop's alert thresholds, or the seed defaults until an admin saves some (every role)."""
    row = _settings(session, actor)
    if row is None:
        return AlertThresholds()
    return AlertThresholds(
        row.alert_intent_accuracy,
        row.alert_escalation_rate,
        row.alert_macro_f1,
        row.alert_misclassification,
        row.alert_version,
    )


def set_alert_thresholds(
    *,
    session: Session,
    actor: Actor,
    intent_accuracy: float,
    escalation_rate: float,
    macro_f1: float,
    misclassification: float,
    expected_version: int,
    reason: str | None = None,
) -> AlertThresholds:
    """Change the shop's alert thresholds (admin; audited; refuses a stale edit)."""
    require_role(actor, Role.ADMIN)
    new = AlertThresholds(intent_accuracy, escalation_rate, macro_f1, misclassification)
    for kind, value in new.values().items():
        if not 0 <= value <= 1:
            raise InvalidInput(f"The {kind} threshold must lie between 0 and 1 (got {value}).")
    before = alert_thresholds(session=session, actor=actor)
    values = {
        "alert_intent_accuracy": new.intent_accuracy,
        "alert_escalation_rate": new.escalation_rate,
        "alert_macro_f1": new.macro_f1,
        "alert_misclassification": new.misclassification,
    }
    if before.version != expected_version or not compare_and_set(
        session=session,
        actor=actor,
        version_field="alert_version",
        expected_version=expected_version,
        values=values,
    ):
        raise StaleEdit(
            "Another admin changed the alert thresholds since you loaded them; "
            "the page now shows the current values.",
            current=before,
        )
    audit.record(
        session=session,
        actor=actor,
        action="settings.alert_thresholds",
        entity_type="shop_settings",
        entity_id=settings_id(session=session, actor=actor),
        before=before.values(),
        after=new.values(),
        reason=reason,
    )
    return replace(new, version=expected_version + 1)


# --- evaluating ----------------------------------------------------------------------------


def _fmt(kind: AlertKind, value: float) -> str:
    return f"{value:.0%}" if RULES[kind].percent else f"{value:.2f}"


def _live_readings(
    session: Session, actor: Actor, since: datetime, until: datetime
) -> list[_Reading]:
    numbers = headline(session=session, actor=actor, since=since, until=until)
    total = int(numbers.total_messages)
    scope = f"{since:%Y-%m-%d %H:%M} to {until:%Y-%m-%d %H:%M} UTC ({total:,} messages)"
    return [
        _Reading(
            AlertKind.INTENT_ACCURACY,
            numbers.intent_accuracy,
            total,
            scope,
            "no reviewed messages in the window",
        ),
        _Reading(AlertKind.ESCALATION_RATE, numbers.escalation_rate, total, scope, "no messages"),
    ]


def _model_readings(session: Session, actor: Actor) -> list[_Reading]:
    serving = registry.serving_version(session=session, actor=actor)
    if serving is None:
        return [
            _Reading(kind, None, None, "", "no model serves")
            for kind in (AlertKind.MACRO_F1, AlertKind.MISCLASSIFICATION)
        ]
    metrics = serving.metrics
    n_test = metrics.get("n_test")
    volume = int(n_test) if n_test is not None else None
    scope = f"model v{serving.version}'s test set" + (f" ({volume:,} messages)" if volume else "")
    f1, accuracy = metrics.get("macro_f1"), metrics.get("accuracy")
    missing = f"model v{serving.version} recorded no"
    return [
        _Reading(
            AlertKind.MACRO_F1,
            None if f1 is None else float(f1),
            volume,
            scope,
            f"{missing} macro-F1",
        ),
        _Reading(
            AlertKind.MISCLASSIFICATION,
            None if accuracy is None else 1.0 - float(accuracy),
            volume,
            scope,
            f"{missing} test accuracy",
        ),
    ]


def _open_rows(session: Session, actor: Actor) -> dict[str, AlertEvent]:
    rows = session.exec(
        select(AlertEvent).where(
            AlertEvent.tenant_id == actor.tenant_id, col(AlertEvent.cleared_at).is_(None)
        )
    ).all()
    return {row.kind: row for row in rows}


def _not_judged(reading: _Reading) -> str:
    if reading.value is None:
        return f"Not judged: {reading.missing}."
    if reading.volume is not None and reading.volume < MIN_MESSAGES:
        what = "messages in the window" if RULES[reading.kind].source == "live" else "test messages"
        return f"Not judged: only {reading.volume:,} {what}; alerts need at least {MIN_MESSAGES}."
    return ""


def _message(reading: _Reading, threshold: float) -> str:
    rule, value = RULES[reading.kind], reading.value
    assert value is not None
    side = "above" if rule.above else "below"
    return (
        f"{rule.label} is {_fmt(reading.kind, value)} over {reading.scope}, {side} the shop's "
        f"threshold of {_fmt(reading.kind, threshold)}."
    )


def _raise(session: Session, actor: Actor, reading: _Reading, threshold: float) -> bool:
    """Open an alert; False when another evaluation opened this kind at the same moment."""
    assert reading.value is not None
    row = AlertEvent(
        tenant_id=actor.tenant_id,
        kind=reading.kind.value,
        value=reading.value,
        threshold=threshold,
        message=_message(reading, threshold),
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        return False
    return True


def _clear(session: Session, actor: Actor, open_row: AlertEvent, value: float) -> None:
    session.execute(
        update(AlertEvent)
        .where(
            col(AlertEvent.tenant_id) == actor.tenant_id,
            col(AlertEvent.id) == open_row.id,
            col(AlertEvent.cleared_at).is_(None),
        )
        .values(cleared_at=utcnow(), cleared_value=value)
    )


def _judge(
    session: Session,
    actor: Actor,
    reading: _Reading,
    threshold: float,
    open_row: AlertEvent | None,
) -> AlertCheck:
    check = AlertCheck(reading.kind, reading.value, threshold, reading.volume, Outcome.OK)
    note = _not_judged(reading)
    if note:
        return replace(check, outcome=Outcome.NOT_JUDGED, note=note)
    assert reading.value is not None
    crossed = reading.value > threshold if RULES[reading.kind].above else reading.value < threshold
    if crossed and open_row is None:
        raised = _raise(session, actor, reading, threshold)
        return replace(check, outcome=Outcome.RAISED if raised else Outcome.STILL_OPEN)
    if crossed:
        return replace(check, outcome=Outcome.STILL_OPEN)
    if open_row is not None:
        _clear(session, actor, open_row, reading.value)
        return replace(check, outcome=Outcome.CLEARED)
    return check


def evaluate_alerts(
    *,
    session: Session,
    actor: Actor,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[AlertCheck]:
    """Measure every kind (live ones over [since, until), default the last 7 days), raise an
    alert for each threshold crossed and clear the open ones back within (manager, admin)."""
    # Managers too: Home and Analytics evaluate when they open, so the banner is current. It
    # stays idempotent (one open alert per kind, enforced by the database) whoever evaluates.
    require_role(actor, Role.ADMIN, Role.MANAGER)
    until = as_utc(until) if until else utcnow()
    since = as_utc(since) if since else until - DEFAULT_WINDOW
    if since >= until:
        raise InvalidInput("The window to evaluate must start before it ends.")
    limits = alert_thresholds(session=session, actor=actor)
    readings = _live_readings(session, actor, since, until) + _model_readings(session, actor)
    opened = _open_rows(session, actor)
    return [
        _judge(session, actor, r, limits.of(r.kind), opened.get(r.kind.value)) for r in readings
    ]


# --- reading -------------------------------------------------------------------------------


def _view(row: AlertEvent) -> AlertView:
    assert row.id is not None
    return AlertView(
        row.id,
        AlertKind(row.kind),
        row.value,
        row.threshold,
        row.message,
        row.raised_at,
        row.cleared_at,
        row.cleared_value,
    )


def _views(session: Session, actor: Actor, *where: Any, limit: int) -> list[AlertView]:
    rows = session.exec(
        select(AlertEvent)
        .where(AlertEvent.tenant_id == actor.tenant_id, *where)
        .order_by(col(AlertEvent.raised_at).desc(), col(AlertEvent.id).desc())
        .limit(max(1, limit))
    ).all()
    return [_view(row) for row in rows]


def open_alerts(*, session: Session, actor: Actor) -> list[AlertView]:
    """The shop's open alerts, newest first, each with what to do (manager, admin)."""
    require_role(actor, Role.ADMIN, Role.MANAGER)
    return _views(session, actor, col(AlertEvent.cleared_at).is_(None), limit=len(AlertKind))


def alert_history(
    *, session: Session, actor: Actor, kind: str | None = None, limit: int = 100
) -> list[AlertView]:
    """Alerts raised (and cleared) in the shop, newest first (manager, admin)."""
    require_role(actor, Role.ADMIN, Role.MANAGER)
    where = []
    if kind is not None:
        try:
            where.append(col(AlertEvent.kind) == AlertKind(kind).value)
        except ValueError:
            names = ", ".join(k.value for k in AlertKind)
            raise InvalidInput(f"Unknown alert kind '{kind}': use one of {names}.") from None
    return _views(session, actor, *where, limit=limit)
