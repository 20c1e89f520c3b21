"""The corrections log: every change reviewers made, filtered and paged, with who reverted what,
and how much each reviewer did per day (admin only).

Reverting and undoing live in core.review (revert_correction, undo_batch); this module only
reads. Everything is counted and paged in SQL, so the log stays fast at any size.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, literal_column, or_, union
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from core.access import Actor, Role, require_role
from core.errors import InvalidInput
from core.spreadsheet import safe_cell
from core.sql import day
from db.models import Correction, Example, User

FIELDS = ("intent", "response", "status")  # what a Correction.field may hold
MAX_PAGE_SIZE = 500
CLI_REVIEWER = "command line"  # corrections made without a user (the CLI actor)

# Another correction of the same batch, in the batch-size subqueries.
Batch = aliased(Correction, name="batch")


@dataclass(frozen=True)
class CorrectionFilter:
    reviewer_id: int | None = None
    intent: str | None = None  # matches either side of an intent correction
    since: datetime | None = None  # created_at >= since
    until: datetime | None = None  # created_at < until
    mismatch_only: bool = False
    include_reverted: bool = True
    field: str | None = None  # one of FIELDS


@dataclass(frozen=True)
class CorrectionRow:
    id: int
    created_at: datetime
    reviewer_id: int | None
    reviewer: str
    example_id: int
    example_text: str
    field: str
    original_value: str | None
    corrected_value: str | None
    was_mismatch: bool
    note: str | None
    batch_id: str | None
    batch_size: int  # corrections in its batch, this one included
    batch_standing: int  # of those, the ones not reverted: what undoing the batch restores
    reverted_at: datetime | None
    reverted_by: str | None  # who reverted it

    @property
    def reverted(self) -> bool:
        return self.reverted_at is not None


@dataclass(frozen=True)
class CorrectionPage:
    rows: list[CorrectionRow]
    total: int  # corrections matching the filters
    page: int
    page_size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


@dataclass(frozen=True)
class ActivityRow:
    day: str  # 'YYYY-MM-DD', UTC
    reviewer: str
    corrections: int
    mismatches: int
    reviewer_id: int | None = None


@dataclass(frozen=True)
class ReviewerChoice:
    id: int
    name: str


def _name() -> ColumnElement[str]:
    """A user's display name, else their username."""
    return func.coalesce(func.nullif(col(User.display_name), ""), col(User.username))


def _name_of(actor: Actor, user_id: Any) -> Any:
    """The name of the user whose id is in `user_id` (NULL for none), per row.

    A subquery rather than an outer join of aliased users: the session's tenant guard adds its
    criteria to an aliased join unadapted (app_user.tenant_id), which no database accepts.
    """
    return (
        select(_name())
        .where(col(User.tenant_id) == actor.tenant_id, col(User.id) == user_id)
        .scalar_subquery()
    )


def _where(actor: Actor, filters: CorrectionFilter) -> list[ColumnElement[bool]]:
    if filters.field is not None and filters.field not in FIELDS:
        raise InvalidInput(f"Unknown field '{filters.field}': use one of {', '.join(FIELDS)}.")
    where: list[ColumnElement[bool]] = [col(Correction.tenant_id) == actor.tenant_id]
    if filters.reviewer_id is not None:
        where.append(col(Correction.reviewer_id) == filters.reviewer_id)
    if filters.intent:
        where.append(
            and_(
                col(Correction.field) == "intent",
                or_(
                    col(Correction.original_value) == filters.intent,
                    col(Correction.corrected_value) == filters.intent,
                ),
            )
        )
    if filters.since is not None:
        where.append(col(Correction.created_at) >= filters.since)
    if filters.until is not None:
        where.append(col(Correction.created_at) < filters.until)
    if filters.mismatch_only:
        where.append(col(Correction.was_mismatch).is_(True))
    if not filters.include_reverted:
        where.append(col(Correction.reverted_at).is_(None))
    if filters.field:
        where.append(col(Correction.field) == filters.field)
    return where


def _batch_count(actor: Actor, *, standing: bool) -> Any:
    """Corrections sharing the row's batch (only those not reverted, with standing=True)."""
    where = [
        col(Batch.tenant_id) == actor.tenant_id,
        col(Batch.batch_id) == col(Correction.batch_id),
    ]
    if standing:
        where.append(col(Batch.reverted_at).is_(None))
    return select(func.count()).select_from(Batch).where(*where).scalar_subquery()


def _rows_query(actor: Actor, filters: CorrectionFilter) -> Any:
    """The filtered corrections with everything a row shows, newest first."""
    return (
        select(  # type: ignore[call-overload, misc]
            Correction.id,
            Correction.created_at,
            Correction.reviewer_id,
            _name_of(actor, col(Correction.reviewer_id)),
            Correction.example_id,
            Example.text,
            Correction.field,
            Correction.original_value,
            Correction.corrected_value,
            Correction.was_mismatch,
            Correction.note,
            Correction.batch_id,
            _batch_count(actor, standing=False),
            _batch_count(actor, standing=True),
            Correction.reverted_at,
            _name_of(actor, col(Correction.reverted_by)),
        )
        .select_from(Correction)
        .outerjoin(
            Example,
            and_(
                col(Example.tenant_id) == col(Correction.tenant_id),
                col(Example.id) == col(Correction.example_id),
            ),
        )
        .where(*_where(actor, filters))
        .order_by(col(Correction.created_at).desc(), col(Correction.id).desc())
    )


def _row(values: Sequence[Any]) -> CorrectionRow:
    (
        cid,
        created_at,
        reviewer_id,
        reviewer,
        example_id,
        text,
        field,
        original,
        corrected,
        mismatch,
        note,
        batch_id,
        batch_size,
        standing,
        reverted_at,
        reverter,
    ) = values
    return CorrectionRow(
        id=int(cid),
        created_at=created_at,
        reviewer_id=reviewer_id,
        reviewer=reviewer or (CLI_REVIEWER if reviewer_id is None else f"user {reviewer_id}"),
        example_id=int(example_id),
        example_text=text or "",
        field=field,
        original_value=original,
        corrected_value=corrected,
        was_mismatch=bool(mismatch),
        note=note,
        batch_id=batch_id,
        batch_size=max(int(batch_size or 0), 1),
        batch_standing=int(standing or 0),
        reverted_at=reverted_at,
        reverted_by=None if reverted_at is None else (reverter or CLI_REVIEWER),
    )


def list_corrections(
    *,
    session: Session,
    actor: Actor,
    filters: CorrectionFilter | None = None,
    page: int = 1,
    page_size: int = 50,
) -> CorrectionPage:
    """One page of the shop's corrections, newest first (admin)."""
    require_role(actor, Role.ADMIN)
    filters = filters or CorrectionFilter()
    if page < 1 or not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidInput(f"Pages start at 1 and hold 1 to {MAX_PAGE_SIZE} corrections.")
    total = session.exec(
        select(func.count()).select_from(Correction).where(*_where(actor, filters))
    ).one()
    rows = session.exec(
        _rows_query(actor, filters).offset((page - 1) * page_size).limit(page_size)
    ).all()
    return CorrectionPage([_row(r) for r in rows], int(total), page, page_size)


def any_corrections(*, session: Session, actor: Actor) -> bool:
    """Whether the shop has any correction at all (admin): tells 'none yet' from 'none match'."""
    require_role(actor, Role.ADMIN)
    found = session.exec(
        select(Correction.id).where(col(Correction.tenant_id) == actor.tenant_id).limit(1)
    ).first()
    return found is not None


def reviewers(*, session: Session, actor: Actor) -> list[ReviewerChoice]:
    """The shop's users who made corrections, by name, for the reviewer filter (admin)."""
    require_role(actor, Role.ADMIN)
    made = select(Correction.reviewer_id).where(
        col(Correction.tenant_id) == actor.tenant_id, col(Correction.reviewer_id).is_not(None)
    )
    rows = session.exec(
        select(User.id, _name())  # type: ignore[call-overload]
        .where(col(User.tenant_id) == actor.tenant_id, col(User.id).in_(made))
        .order_by(_name(), col(User.id))
    ).all()
    return [ReviewerChoice(uid, str(name)) for uid, name in rows if uid is not None]


def intents(*, session: Session, actor: Actor) -> list[str]:
    """Every intent an intent correction changed from or to, for the intent filter (admin)."""
    require_role(actor, Role.ADMIN)
    scope = (col(Correction.tenant_id) == actor.tenant_id, col(Correction.field) == "intent")
    sides = union(
        select(col(Correction.original_value).label("name")).where(*scope),
        select(col(Correction.corrected_value).label("name")).where(*scope),
    ).subquery()
    names = session.exec(select(sides.c.name).where(sides.c.name.is_not(None))).all()
    return sorted(str(n) for n in names if n)


def reviewer_activity(
    *, session: Session, actor: Actor, since: datetime | None, until: datetime | None
) -> list[ActivityRow]:
    """Corrections and mismatches per UTC day and reviewer in [since, until), oldest day first
    (admin, manager: the Analytics page). Reverted corrections count: the review happened."""
    require_role(actor, Role.ADMIN, Role.MANAGER)
    bucket = day(col(Correction.created_at)).label("day")
    rows = session.exec(
        select(  # type: ignore[call-overload]
            bucket,
            Correction.reviewer_id,
            func.count(),
            func.coalesce(func.sum(case((col(Correction.was_mismatch), 1), else_=0)), 0),
        )
        .where(*_where(actor, CorrectionFilter(since=since, until=until)))
        .group_by(bucket, col(Correction.reviewer_id))
        .order_by(literal_column("day"), col(Correction.reviewer_id))
    ).all()
    names = _names(session, actor, {uid for _, uid, _, _ in rows if uid is not None})
    return [
        ActivityRow(str(d), names.get(uid, CLI_REVIEWER), int(n), int(mismatches), uid)
        for d, uid, n, mismatches in rows
    ]


def _names(session: Session, actor: Actor, user_ids: set[int]) -> dict[int | None, str]:
    if not user_ids:
        return {}
    rows = session.exec(
        select(User.id, _name()).where(  # type: ignore[call-overload]
            col(User.tenant_id) == actor.tenant_id, col(User.id).in_(sorted(user_ids))
        )
    ).all()
    return {uid: str(name) for uid, name in rows if uid is not None}


CSV_COLUMNS = (
    "id",
    "created_at",
    "reviewer",
    "example_id",
    "example_text",
    "field",
    "original_value",
    "corrected_value",
    "was_mismatch",
    "note",
    "batch_id",
    "batch_size",
    "reverted_at",
    "reverted_by",
)


def export_csv(*, session: Session, actor: Actor, filters: CorrectionFilter | None = None) -> str:
    """The filtered corrections as spreadsheet-safe CSV text, newest first (admin)."""
    require_role(actor, Role.ADMIN)
    query = _rows_query(actor, filters or CorrectionFilter())
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for values in session.exec(query.execution_options(yield_per=1000)):
        writer.writerow(safe_cell(v) for v in _csv_row(_row(values)))
    return out.getvalue()


def _csv_row(row: CorrectionRow) -> Iterable[object]:
    return (
        row.id,
        row.created_at.isoformat(timespec="seconds"),
        row.reviewer,
        row.example_id,
        row.example_text,
        row.field,
        row.original_value,
        row.corrected_value,
        "yes" if row.was_mismatch else "no",
        row.note,
        row.batch_id,
        row.batch_size,
        row.reverted_at.isoformat(timespec="seconds") if row.reverted_at else "",
        row.reverted_by,
    )
