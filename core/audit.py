"""The audit log: who did what, when, before/after, and why."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from core.access import Actor, Role, require_role
from core.spreadsheet import safe_cell
from db.models import AuditEvent


def record(
    *,
    session: Session,
    actor: Actor,
    action: str,
    entity_type: str,
    entity_id: object = "",
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    reason: str | None = None,
) -> AuditEvent:
    """Add an audit event to the actor's transaction (it commits or rolls back with the change)."""
    event = AuditEvent(
        tenant_id=actor.tenant_id,
        actor_user_id=actor.user_id,
        actor_name=actor.username,
        action=action,
        entity_type=entity_type,
        entity_id=str(entity_id),
        before=before,
        after=after,
        reason=reason or None,
    )
    session.add(event)
    return event


@dataclass(frozen=True)
class AuditFilter:
    actor_name: str | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    text: str | None = None


@dataclass(frozen=True)
class AuditPage:
    events: list[AuditEvent]
    total: int
    page: int
    page_size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


def _filtered(actor: Actor, flt: AuditFilter) -> Any:
    query = select(AuditEvent).where(AuditEvent.tenant_id == actor.tenant_id)
    if flt.actor_name:
        query = query.where(AuditEvent.actor_name == flt.actor_name)
    if flt.action:
        query = query.where(AuditEvent.action == flt.action)
    if flt.since:
        query = query.where(AuditEvent.at >= flt.since)
    if flt.until:
        query = query.where(AuditEvent.at < flt.until)
    if flt.text:
        like = f"%{flt.text}%"
        query = query.where(
            col(AuditEvent.entity_id).ilike(like)
            | col(AuditEvent.reason).ilike(like)
            | col(AuditEvent.entity_type).ilike(like)
        )
    return query


def list_events(
    *, session: Session, actor: Actor, flt: AuditFilter, page: int = 1, page_size: int = 50
) -> AuditPage:
    """One page of the shop's audit log, newest first (admin only)."""
    require_role(actor, Role.ADMIN)
    query = _filtered(actor, flt)
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = session.exec(
        query.order_by(col(AuditEvent.at).desc(), col(AuditEvent.id).desc())
        .offset((max(page, 1) - 1) * page_size)
        .limit(page_size)
    ).all()
    return AuditPage(list(rows), int(total), max(page, 1), page_size)


def filter_choices(*, session: Session, actor: Actor) -> tuple[list[str], list[str]]:
    """Distinct actor names and actions in the shop's log, for filter pickers (admin only)."""
    require_role(actor, Role.ADMIN)
    base = AuditEvent.tenant_id == actor.tenant_id
    names = session.exec(select(AuditEvent.actor_name).where(base).distinct()).all()
    actions = session.exec(select(AuditEvent.action).where(base).distinct()).all()
    return sorted(names), sorted(actions)


CSV_COLUMNS = ("at", "actor", "action", "entity_type", "entity_id", "before", "after", "reason")


def export_csv(*, session: Session, actor: Actor, flt: AuditFilter) -> str:
    """The filtered log as spreadsheet-safe CSV text (admin only)."""
    require_role(actor, Role.ADMIN)
    query = _filtered(actor, flt).order_by(col(AuditEvent.at).desc())
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for event in session.exec(query.execution_options(yield_per=1000)):
        writer.writerow(safe_cell(v) for v in _row(event))
    return out.getvalue()


def _row(event: AuditEvent) -> Iterable[object]:
    return (
        event.at.isoformat(timespec="seconds"),
        event.actor_name,
        event.action,
        event.entity_type,
        event.entity_id,
        _compact(event.before),
        _compact(event.after),
        event.reason or "",
    )


def _compact(values: dict[str, Any] | None) -> str:
    if not values:
        return ""
    return "; ".join(f"{k}={v}" for k, v in values.items())
