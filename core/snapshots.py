"""Metric snapshots: the headline numbers of each complete hour, day, ISO week or month, kept.

A snapshot covers the last *complete* period before a moment, aligned in UTC (the hour, the
day, the ISO week from Monday, the calendar month), and is taken once: the unique key
(shop, period, start) decides, with INSERT … ON CONFLICT DO NOTHING on both backends, so cron
every minute on every replica leaves one row and the others get it back with created=False.
A snapshot is frozen when taken: reviews made later do not change it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from core.access import Actor, Role, require_role
from core.analytics import headline
from core.errors import InvalidInput, NotFound
from core.sql import insert_unless_exists
from db.models import MetricSnapshot, SnapshotPeriod, utcnow

METRICS = (
    "total_messages",
    "ai_resolved",
    "escalated",
    "escalation_rate",
    "avg_confidence",
    "intent_accuracy",
    "correction_rate",
)
UNIQUE_KEY = ("tenant_id", "period", "period_start")


@dataclass(frozen=True)
class SnapshotView:
    """One snapshot as pages and the CLI see it; `period_end` is exclusive."""

    id: int
    period: SnapshotPeriod
    period_start: datetime
    period_end: datetime
    total_messages: int
    ai_resolved: int
    escalated: int
    escalation_rate: float | None
    avg_confidence: float | None
    intent_accuracy: float | None
    correction_rate: float | None
    created_at: datetime

    def metrics(self) -> dict[str, int | float | None]:
        """The headline metrics by name, in METRICS order."""
        return {name: getattr(self, name) for name in METRICS}


@dataclass(frozen=True)
class MetricChange:
    """One metric in two snapshots: `change` is b - a (None when either lacks the value)."""

    metric: str
    a: int | float | None
    b: int | float | None

    @property
    def change(self) -> float | None:
        return None if self.a is None or self.b is None else self.b - self.a


@dataclass(frozen=True)
class SnapshotComparison:
    a: SnapshotView
    b: SnapshotView
    changes: list[MetricChange]


def as_utc(moment: datetime) -> datetime:
    """An aware UTC datetime; a naive one is taken to be UTC already."""
    if moment.utcoffset() is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def parse_period(period: str) -> SnapshotPeriod:
    """The period named `period`, or InvalidInput listing the ones there are."""
    try:
        return SnapshotPeriod(period)
    except ValueError:
        names = ", ".join(p.value for p in SnapshotPeriod)
        raise InvalidInput(f"Unknown period '{period}': use one of {names}.") from None


def period_start(period: SnapshotPeriod, moment: datetime) -> datetime:
    """The start (UTC) of the period that contains `moment`."""
    hour = as_utc(moment).replace(minute=0, second=0, microsecond=0)
    day = hour.replace(hour=0)
    return {
        SnapshotPeriod.HOURLY: hour,
        SnapshotPeriod.DAILY: day,
        SnapshotPeriod.WEEKLY: day - timedelta(days=day.weekday()),
        SnapshotPeriod.MONTHLY: day.replace(day=1),
    }[period]


def next_start(period: SnapshotPeriod, start: datetime) -> datetime:
    """The start of the period after the one starting at `start`."""
    if period is SnapshotPeriod.MONTHLY:
        return (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    step = {
        SnapshotPeriod.HOURLY: timedelta(hours=1),
        SnapshotPeriod.DAILY: timedelta(days=1),
        SnapshotPeriod.WEEKLY: timedelta(days=7),
    }[period]
    return start + step


def last_complete_period(period: SnapshotPeriod, at: datetime) -> tuple[datetime, datetime]:
    """[start, end) of the last period that had ended by `at` (a period ending at `at` has)."""
    end = period_start(period, at)
    start = period_start(period, end - timedelta(microseconds=1))
    return start, end


def _view(row: MetricSnapshot) -> SnapshotView:
    assert row.id is not None
    period = SnapshotPeriod(row.period)
    start = as_utc(row.period_start)
    return SnapshotView(
        row.id,
        period,
        start,
        next_start(period, start),
        row.total_messages,
        row.ai_resolved,
        row.escalated,
        row.escalation_rate,
        row.avg_confidence,
        row.intent_accuracy,
        row.correction_rate,
        row.created_at,
    )


def _find(
    session: Session, actor: Actor, period: SnapshotPeriod, start: datetime
) -> MetricSnapshot | None:
    return session.exec(
        select(MetricSnapshot).where(
            MetricSnapshot.tenant_id == actor.tenant_id,
            MetricSnapshot.period == period.value,
            MetricSnapshot.period_start == start,
        )
    ).first()


def _insert_once(session: Session, values: dict[str, Any]) -> bool:
    """Insert unless the period's row exists (or a concurrent one commits first): inserted?"""
    stmt = insert_unless_exists(session, MetricSnapshot, UNIQUE_KEY)
    return session.execute(stmt.values(**values).returning(MetricSnapshot.id)).first() is not None


def take_snapshot(
    *, session: Session, actor: Actor, period: str, at: datetime | None = None
) -> tuple[SnapshotView, bool]:
    """Snapshot the last complete `period` before `at` (default now), once (admin).

    Returns the snapshot and whether this call created it (False: it existed already).
    """
    require_role(actor, Role.ADMIN)
    kind, now = parse_period(period), utcnow()
    start, end = last_complete_period(kind, at or now)
    if end > now:
        raise InvalidInput(
            f"The {kind.value} period before {as_utc(at or now):%Y-%m-%d %H:%M} UTC has not "
            "ended yet; snapshots cover complete periods only."
        )
    existing = _find(session, actor, kind, start)
    if existing is not None:  # the cheap path cron takes every minute but the first
        return _view(existing), False
    numbers = headline(session=session, actor=actor, since=start, until=end)
    values: dict[str, Any] = {name: getattr(numbers, name) for name in METRICS}
    values.update(tenant_id=actor.tenant_id, period=kind.value, period_start=start)
    created = _insert_once(session, {**values, "created_at": now})
    row = _find(session, actor, kind, start)
    assert row is not None
    return _view(row), created


def list_snapshots(
    *, session: Session, actor: Actor, period: str, limit: int = 100
) -> list[SnapshotView]:
    """The shop's snapshots of one period kind, newest period first (manager, admin)."""
    require_role(actor, Role.ADMIN, Role.MANAGER)
    kind = parse_period(period)
    rows = session.exec(
        select(MetricSnapshot)
        .where(MetricSnapshot.tenant_id == actor.tenant_id, MetricSnapshot.period == kind.value)
        .order_by(col(MetricSnapshot.period_start).desc())
        .limit(max(1, limit))
    ).all()
    return [_view(row) for row in rows]


def get_snapshot(*, session: Session, actor: Actor, snapshot_id: int) -> SnapshotView:
    """One snapshot of the shop (manager, admin); NotFound otherwise."""
    require_role(actor, Role.ADMIN, Role.MANAGER)
    row = session.exec(
        select(MetricSnapshot).where(
            MetricSnapshot.tenant_id == actor.tenant_id, MetricSnapshot.id == snapshot_id
        )
    ).first()
    if row is None:
        raise NotFound(f"Your shop has no snapshot {snapshot_id}.")
    return _view(row)


def compare_snapshots(
    *, session: Session, actor: Actor, a_id: int, b_id: int
) -> SnapshotComparison:
    """Two snapshots side by side, each metric with its change from a to b (manager, admin)."""
    a = get_snapshot(session=session, actor=actor, snapshot_id=a_id)
    b = get_snapshot(session=session, actor=actor, snapshot_id=b_id)
    changes = [MetricChange(name, getattr(a, name), getattr(b, name)) for name in METRICS]
    return SnapshotComparison(a, b, changes)
