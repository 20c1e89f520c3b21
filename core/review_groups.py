"""The review queue's groups kept as rows (ReviewGroup), so its first page is an index read.

The queue ranks groups of near-identical messages that need a person by the sum of their
uncertainty. Grouping every waiting example on each page view reads all of them (0.55 s at
1,000,000 examples on PostgreSQL); ReviewGroup holds that grouping per text_hash, so the
unfiltered queue, its totals and its counts per reason read the shop's groups instead. A
filtered queue still groups the examples live (core.review), because its groups depend on
the filter.

Every write that can change a group calls `refresh` in its own transaction, last: new
examples (record_interaction, imports of conversations, the demo), predictions
(fill_predictions), review actions, bulk relabels, undo and reverts, label-issue detection
and new review thresholds. tests/core/test_review_groups.py holds every one of them to the
live grouping.

Two transactions refreshing one shop at once could each recompute a group without the other's
uncommitted change. On PostgreSQL a per-shop transaction lock orders them: the second
recomputes after the first commits (READ COMMITTED gives each statement a fresh snapshot). On
SQLite one transaction writes at a time. Refreshing last keeps the lock from being held while
a transaction still waits for example rows, so it cannot deadlock with another writer.
"""

from __future__ import annotations

from collections.abc import Collection
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Integer,
    String,
    and_,
    case,
    cast,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    union_all,
)
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col

from core import shop_settings  # the module: shop_settings calls refresh on new thresholds
from core.access import Actor
from db.engine import is_postgres
from db.models import Example, ExampleStatus, ReviewGroup

CHUNK = 1_000  # text_hash values per statement
REBUILD_ABOVE = 5_000  # more changed groups than this: rebuild the shop's groups in one pass
LOCK_CLASS = 0x7472_6C73  # the first key of PostgreSQL's two-key advisory locks ("trls")


class Reason(StrEnum):
    LOW_CONFIDENCE = "low_confidence"
    LOW_MARGIN = "low_margin"
    ESCALATED = "escalated"
    LABEL_ISSUE = "label_issue"


ALL = "all"  # ReviewGroup.reason of a group's row for the whole queue


def conditions(limits: shop_settings.ReviewThresholds) -> dict[Reason, ColumnElement[bool]]:
    """Why an example needs a person, one condition per reason (any one puts it in the queue)."""
    waiting = and_(col(Example.status) == ExampleStatus.PENDING.value, ~col(Example.reviewed))
    return {
        Reason.LOW_CONFIDENCE: and_(
            waiting,
            or_(col(Example.confidence).is_(None), col(Example.confidence) < limits.confidence),
        ),
        Reason.LOW_MARGIN: and_(waiting, col(Example.margin) < limits.margin),
        Reason.ESCALATED: and_(waiting, col(Example.escalated)),
        Reason.LABEL_ISSUE: col(Example.issue_score).is_not(None),
    }


def uncertainty() -> ColumnElement[float]:
    """1 - confidence, or the label-issue score when that is higher: what a review fixes."""
    unsure = 1.0 - func.coalesce(col(Example.confidence), 0.0)
    issue = col(Example.issue_score)
    return case((issue > unsure, issue), else_=unsure)


def refresh(*, session: Session, actor: Actor, text_hashes: Collection[str] | None) -> None:
    """Recompute the shop's groups for these text_hash values (None: all of them).

    Called by the core functions that changed examples, after their own role checks, as the
    last write of their transaction."""
    _lock(session, actor)
    limits = shop_settings.review_thresholds(session=session, actor=actor)
    hashes = None if text_hashes is None else sorted(set(text_hashes))
    if hashes is None or len(hashes) > REBUILD_ABOVE:
        session.execute(delete(ReviewGroup).where(col(ReviewGroup.tenant_id) == actor.tenant_id))
        session.execute(_insert(actor, limits, None))
        return
    for start in range(0, len(hashes), CHUNK):
        chunk = hashes[start : start + CHUNK]
        session.execute(
            delete(ReviewGroup).where(
                col(ReviewGroup.tenant_id) == actor.tenant_id, col(ReviewGroup.text_hash).in_(chunk)
            )
        )
        session.execute(_insert(actor, limits, chunk))


def hashes_of(*, session: Session, actor: Actor, example_ids: Collection[int]) -> set[str]:
    """The text_hash values of these examples of the shop."""
    found: set[str] = set()
    ids = sorted(set(example_ids))
    for start in range(0, len(ids), CHUNK):
        found.update(
            session.execute(
                select(col(Example.text_hash)).where(
                    col(Example.tenant_id) == actor.tenant_id,
                    col(Example.id).in_(ids[start : start + CHUNK]),
                )
            ).scalars()
        )
    return found


def grouped(limits: shop_settings.ReviewThresholds, where: list[ColumnElement[bool]]) -> Any:
    """SELECT tenant_id, reason, text_hash, size, priority, newest: the queue's groups among
    the examples matching `where`, one row per group for the whole queue (reason "all") and
    one per reason its examples wait for -- what ReviewGroup stores, grouped live."""
    reasons = conditions(limits)
    waiting = (
        select(
            col(Example.tenant_id),
            col(Example.text_hash),
            col(Example.id),
            uncertainty().label("u"),
            *(case((cond, 1), else_=0).label(reason.value) for reason, cond in reasons.items()),
        )
        .where(*where, or_(*reasons.values()))
        .cte("waiting")  # one pass over the examples, read once per reason
    )

    def per_group(reason: str, *only: ColumnElement[bool]) -> Any:
        return (
            select(
                waiting.c.tenant_id,
                literal(reason, String).label("reason"),
                waiting.c.text_hash,
                func.count().label("size"),
                func.sum(waiting.c.u).label("priority"),
                func.max(waiting.c.id).label("newest"),
            )
            .where(*only)
            .group_by(waiting.c.tenant_id, waiting.c.text_hash)
        )

    return union_all(
        per_group(ALL), *(per_group(r.value, waiting.c[r.value] == 1) for r in reasons)
    )


def _insert(actor: Actor, limits: shop_settings.ReviewThresholds, hashes: list[str] | None) -> Any:
    where = [col(Example.tenant_id) == actor.tenant_id]
    if hashes is not None:
        where.append(col(Example.text_hash).in_(hashes))
    columns = ["tenant_id", "reason", "text_hash", "size", "priority", "newest"]
    return insert(ReviewGroup).from_select(columns, grouped(limits, where))


def _lock(session: Session, actor: Actor) -> None:
    if is_postgres(session.connection()):
        keys = (cast(literal(LOCK_CLASS), Integer), cast(literal(actor.tenant_id), Integer))
        session.execute(select(func.pg_advisory_xact_lock(*keys)))
