"""The numbers managers watch, for one shop and a window [since, until) of UTC time.

Every figure is an SQL aggregate (GROUP BY, CASE, portable UTC date buckets from core.sql)
over the actor's shop, never a table read into Python: the page stays fast at a million
examples. A shop with no traffic gets zeros and None, never a division by zero.

Which example counts where: an example belongs to the window its `created_at` falls in (when the
customer wrote), including what reviewers later learnt about it (accuracy, corrections).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal, NamedTuple

from sqlalchemy import and_, case, func, literal_column
from sqlalchemy import select as sa_select
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from core.access import Actor, Role, require_role
from core.errors import InvalidInput
from core.sql import day, week
from db.models import AuditEvent, Correction, Example, ModelVersion, RunStatus, TrainingRun

READERS = (Role.MANAGER, Role.ADMIN)
MAX_LIMIT = 500
ACTIVATE = "model.activate"  # the audit action core.registry records on every switch
ROLLBACK_REASON = "rollback"  # the reason registry.rollback records when none is given

Bucket = Literal["day", "week"]
BUCKETS: dict[str, Callable[[Any], ColumnElement[str]]] = {"day": day, "week": week}
MarkerKind = Literal["deployed", "rolled_back"]


@dataclass(frozen=True)
class Headline:
    """The headline metrics of the examples created in [since, until):

    - total_messages: examples created in the window (live, imported and demo traffic alike);
    - ai_resolved: those not escalated to a person;
    - escalated: those escalated;
    - escalation_rate: escalated / total_messages (None when there are no messages);
    - avg_confidence: mean model confidence over those with a prediction (None if none has);
    - intent_accuracy: among those whose prediction was judged (intent_correct set, by a review
      or by scoring a labelled example), the share judged right (None if none was judged);
    - correction_rate: those a reviewer relabelled -- an intent correction that changed the
      predicted intent (was_mismatch) and is not reverted, counted once per example -- divided
      by total_messages (None when there are no messages).
    """

    total_messages: int
    ai_resolved: int
    escalated: int
    escalation_rate: float | None
    avg_confidence: float | None
    intent_accuracy: float | None
    correction_rate: float | None


METRICS = tuple(f.name for f in fields(Headline))


@dataclass(frozen=True)
class Comparison:
    """A window's headline beside the window of the same length just before it."""

    current: Headline
    previous: Headline
    previous_since: datetime
    previous_until: datetime
    change: dict[str, float | None]  # metric -> current minus previous (None if either is None)


@dataclass(frozen=True)
class TrendPoint:
    bucket_start: str  # 'YYYY-MM-DD', UTC: the day, or the Monday that starts the ISO week
    total: int
    escalation_rate: float | None
    avg_confidence: float | None
    intent_accuracy: float | None
    corrections: int  # messages of this bucket a reviewer relabelled (as in correction_rate)


@dataclass(frozen=True)
class Marker:
    at: datetime
    version: int
    kind: MarkerKind


class IntentCount(NamedTuple):
    intent: str
    messages: int


class Misclassification(NamedTuple):
    true_intent: str
    predicted: str
    messages: int


@dataclass(frozen=True)
class IntentRow:
    intent: str
    volume: int
    accuracy: float | None
    avg_confidence: float | None
    escalation_rate: float | None
    f1: float | None  # on the serving model's test split; None if it was not scored there


INTENT_SORTS = tuple(f.name for f in fields(IntentRow))


class RunPoint(NamedTuple):
    run_id: int
    created_at: datetime
    macro_f1: float | None
    deployed: bool
    trigger: str


# --- headline ------------------------------------------------------------------------------


def headline(*, session: Session, actor: Actor, since: datetime, until: datetime) -> Headline:
    """The headline metrics of the messages created in [since, until) (manager, admin)."""
    require_role(actor, *READERS)
    since, until = _window(since, until)
    row = session.execute(
        _counting_relabels(*_example_aggregates(), actor=actor).where(
            *_created_in(actor, since, until)
        )
    ).one()
    total, escalated, avg_conf, judged, right, corrected = row
    total, escalated = int(total or 0), int(escalated or 0)
    return Headline(
        total_messages=total,
        ai_resolved=total - escalated,
        escalated=escalated,
        escalation_rate=_share(escalated, total),
        avg_confidence=None if avg_conf is None else float(avg_conf),
        intent_accuracy=_share(int(right or 0), int(judged or 0)),
        correction_rate=_share(int(corrected or 0), total),
    )


def compare(*, session: Session, actor: Actor, since: datetime, until: datetime) -> Comparison:
    """The headline of [since, until) against the period of the same length just before it,
    with each metric's absolute change (manager, admin)."""
    require_role(actor, *READERS)
    since, until = _window(since, until)
    before = since - (until - since)
    current = headline(session=session, actor=actor, since=since, until=until)
    previous = headline(session=session, actor=actor, since=before, until=since)
    change = {m: _difference(getattr(current, m), getattr(previous, m)) for m in METRICS}
    return Comparison(current, previous, before, since, change)


def _example_aggregates() -> list[ColumnElement[Any]]:
    """(messages, escalated, mean confidence, judged predictions, right predictions)."""
    judged = col(Example.intent_correct)
    return [
        func.count(),
        func.sum(case((col(Example.escalated), 1), else_=0)),
        func.avg(col(Example.confidence)),
        func.count(judged),
        func.sum(case((judged.is_(True), 1), else_=0)),
    ]


def _relabelled(actor: Actor) -> Any:
    """The ids of the shop's examples with a standing intent correction that changed the
    predicted intent."""
    return sa_select(col(Correction.example_id)).where(
        col(Correction.tenant_id) == actor.tenant_id,
        # Inline constants and a bare boolean (neither bound nor IS TRUE): the forms a
        # partial index's predicate can match, on both backends and in prepared statements.
        col(Correction.field) == literal_column("'intent'"),
        col(Correction.was_mismatch),
        col(Correction.reverted_at).is_(None),
    )


def _counting_relabels(*columns: ColumnElement[Any], actor: Actor) -> Any:
    """SELECT columns, then the number of relabelled examples, FROM the shop's examples: one
    pass over the window counts them alongside everything else. An IN (subquery) test, not a
    join: SQLite without statistics re-read a joined subquery for every row (8.5 s at 200k)."""
    relabelled = case((col(Example.id).in_(_relabelled(actor)), 1), else_=0)
    return sa_select(*columns, func.coalesce(func.sum(relabelled), 0)).select_from(Example)


# --- trends --------------------------------------------------------------------------------


def trends(
    *, session: Session, actor: Actor, since: datetime, until: datetime, bucket: Bucket
) -> list[TrendPoint]:
    """The metrics per UTC day or ISO week (Monday first) of [since, until), oldest first, with
    every bucket present -- empty ones as zeros and None (manager, admin)."""
    require_role(actor, *READERS)
    since, until = _window(since, until)
    if bucket not in BUCKETS:
        raise InvalidInput(f"Unknown bucket '{bucket}': use day or week.")
    key = BUCKETS[bucket](col(Example.created_at)).label("bucket")
    rows = session.execute(
        _counting_relabels(key, *_example_aggregates(), actor=actor)
        .where(*_created_in(actor, since, until))
        .group_by(key)
    ).all()
    found = {str(r[0]): r[1:] for r in rows}
    return [_trend_point(start, found.get(start)) for start in _bucket_starts(since, until, bucket)]


def _trend_point(start: str, row: Any) -> TrendPoint:
    total, escalated, avg_conf, judged, right, corrected = row or (0, 0, None, 0, 0, 0)
    return TrendPoint(
        bucket_start=start,
        total=int(total),
        escalation_rate=_share(int(escalated or 0), int(total)),
        avg_confidence=None if avg_conf is None else float(avg_conf),
        intent_accuracy=_share(int(right or 0), int(judged or 0)),
        corrections=int(corrected or 0),
    )


def _bucket_starts(since: datetime, until: datetime, bucket: Bucket) -> list[str]:
    """Every bucket that [since, until) touches, as the SQL buckets name them."""
    first, last = since.date(), (until - timedelta(microseconds=1)).date()
    step = timedelta(days=1)
    if bucket == "week":
        first, step = first - timedelta(days=first.weekday()), timedelta(days=7)
    starts: list[date] = []
    while first <= last:
        starts.append(first)
        first += step
    return [d.isoformat() for d in starts]


def model_markers(
    *, session: Session, actor: Actor, since: datetime, until: datetime
) -> list[Marker]:
    """When a model started serving in [since, until), oldest first (manager, admin).

    A switch is a roll-back when registry.rollback made it without a reason of its own
    (reason 'rollback') or when it went back to an older version than the one serving.
    """
    require_role(actor, *READERS)
    since, until = _window(since, until)
    rows = session.exec(
        select(AuditEvent.at, AuditEvent.entity_id, AuditEvent.before, AuditEvent.reason)
        .where(
            col(AuditEvent.tenant_id) == actor.tenant_id,
            col(AuditEvent.action) == ACTIVATE,
            col(AuditEvent.at) >= since,
            col(AuditEvent.at) < until,
        )
        .order_by(col(AuditEvent.at), col(AuditEvent.id))
    ).all()
    return [
        Marker(at, int(version), _marker_kind(int(version), before, reason))
        for at, version, before, reason in rows
    ]


def _marker_kind(version: int, before: Mapping[str, Any] | None, reason: str | None) -> MarkerKind:
    replaced = (before or {}).get("serving")
    older = isinstance(replaced, int) and version < replaced
    return "rolled_back" if reason == ROLLBACK_REASON or older else "deployed"


# --- intents -------------------------------------------------------------------------------


def top_intents(
    *, session: Session, actor: Actor, since: datetime, until: datetime, limit: int = 10
) -> list[IntentCount]:
    """The intents messages of [since, until) were about most, by their current label (the
    reviewed intent, else the predicted one), most frequent first (manager, admin)."""
    require_role(actor, *READERS)
    since, until = _window(since, until)
    label = _label()
    rows = session.execute(
        sa_select(label, func.count())
        .where(*_created_in(actor, since, until), label.is_not(None))
        .group_by(label)
        .order_by(func.count().desc(), label)
        .limit(_limit(limit))
    ).all()
    return [IntentCount(str(intent), int(n)) for intent, n in rows]


def top_misclassified(
    *, session: Session, actor: Actor, since: datetime, until: datetime, limit: int = 10
) -> list[Misclassification]:
    """(true intent, predicted intent, count) for labelled messages of [since, until) the model
    got wrong, most frequent pair first (manager, admin)."""
    require_role(actor, *READERS)
    since, until = _window(since, until)
    truth, predicted = col(Example.correct_intent), col(Example.detected_intent)
    rows = session.execute(
        sa_select(truth, predicted, func.count())
        .where(*_created_in(actor, since, until), truth != predicted)
        .group_by(truth, predicted)
        .order_by(func.count().desc(), truth, predicted)
        .limit(_limit(limit))
    ).all()
    return [Misclassification(str(t), str(p), int(n)) for t, p, n in rows]


def per_intent(
    *,
    session: Session,
    actor: Actor,
    since: datetime,
    until: datetime,
    sort_by: str = "volume",
    descending: bool = True,
) -> list[IntentRow]:
    """Volume, accuracy, mean confidence and escalation rate of each intent (current label) in
    [since, until), with the serving model's F1 for it; sorted by `sort_by`, missing values
    last (manager, admin). Messages with neither a label nor a prediction are left out."""
    require_role(actor, *READERS)
    since, until = _window(since, until)
    if sort_by not in INTENT_SORTS:
        raise InvalidInput(f"Sort by one of {', '.join(INTENT_SORTS)}, not '{sort_by}'.")
    label = _label()
    rows = session.execute(
        sa_select(label, *_example_aggregates())
        .where(*_created_in(actor, since, until), label.is_not(None))
        .group_by(label)
    ).all()
    f1 = _serving_f1(session, actor)
    table = [_intent_row(str(r[0]), r[1:], f1.get(str(r[0]))) for r in rows]
    return _sorted(table, sort_by, descending)


def _intent_row(intent: str, aggregates: Any, f1: float | None) -> IntentRow:
    total, escalated, avg_conf, judged, right = aggregates
    return IntentRow(
        intent=intent,
        volume=int(total),
        accuracy=_share(int(right or 0), int(judged or 0)),
        avg_confidence=None if avg_conf is None else float(avg_conf),
        escalation_rate=_share(int(escalated or 0), int(total)),
        f1=f1,
    )


def _sorted(rows: list[IntentRow], key: str, descending: bool) -> list[IntentRow]:
    """Rows by `key` (ties by intent name), rows without a value last either way."""
    rows = sorted(rows, key=lambda r: r.intent)
    present = [r for r in rows if getattr(r, key) is not None]
    missing = [r for r in rows if getattr(r, key) is None]
    present.sort(key=lambda r: getattr(r, key), reverse=descending)  # stable: ties keep names
    return present + missing


def _serving_f1(session: Session, actor: Actor) -> dict[str, float]:
    """Per-intent F1 from the test split of the run that trained the serving model."""
    # Only the per_intent part of the run's metrics is read (not its confusion matrix etc.).
    scores = session.exec(
        select(col(TrainingRun.metrics)["per_intent"])
        .join(
            ModelVersion,
            and_(
                col(ModelVersion.tenant_id) == col(TrainingRun.tenant_id),
                col(ModelVersion.run_id) == col(TrainingRun.id),
            ),
        )
        .where(col(ModelVersion.tenant_id) == actor.tenant_id, col(ModelVersion.is_active))
    ).first()
    if not isinstance(scores, dict):
        return {}
    return {
        str(intent): float(row["f1"])
        for intent, row in scores.items()
        if isinstance(row, dict) and isinstance(row.get("f1"), int | float)
    }


def model_history(*, session: Session, actor: Actor, limit: int = 100) -> list[RunPoint]:
    """(run id, created at, macro-F1, deployed, trigger) of the shop's latest completed
    training runs, oldest first (manager, admin)."""
    require_role(actor, *READERS)
    macro_f1 = col(TrainingRun.metrics)["macro_f1"].as_float()
    rows = session.execute(
        sa_select(
            col(TrainingRun.id),
            col(TrainingRun.created_at),
            macro_f1,
            col(TrainingRun.deployed),
            col(TrainingRun.trigger),
        )
        .where(
            col(TrainingRun.tenant_id) == actor.tenant_id,
            col(TrainingRun.status) == RunStatus.COMPLETED.value,
        )
        .order_by(col(TrainingRun.created_at).desc(), col(TrainingRun.id).desc())
        .limit(_limit(limit))
    ).all()
    return [
        RunPoint(int(rid), at, None if f1 is None else float(f1), bool(deployed), str(trigger))
        for rid, at, f1, deployed, trigger in reversed(rows)
    ]


# --- helpers -------------------------------------------------------------------------------


def _window(since: datetime, until: datetime) -> tuple[datetime, datetime]:
    """The window in aware UTC (naive times are taken as UTC); refuses an empty one."""
    since, until = (_utc(t) for t in (since, until))
    if since >= until:
        raise InvalidInput("The period must end after it starts.")
    return since, until


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _created_in(actor: Actor, since: datetime, until: datetime) -> list[ColumnElement[bool]]:
    return [
        col(Example.tenant_id) == actor.tenant_id,
        col(Example.created_at) >= since,
        col(Example.created_at) < until,
    ]


def _label() -> ColumnElement[Any]:
    """An example's current intent: the reviewed one, else the predicted one."""
    return func.coalesce(col(Example.correct_intent), col(Example.detected_intent))


def _limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"List between 1 and {MAX_LIMIT} rows.")
    return limit


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _difference(now: float | None, before: float | None) -> float | None:
    return None if now is None or before is None else now - before
