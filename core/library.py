"""The shared style library: styles and prompt templates a shop publishes for every shop.

Every shop browses the library, anonymously (a LibraryItemView never names the shop that
published it), and adopts an item as a copy: a new template of its own, version 1, that it then
edits freely. Only the publishing shop updates or withdraws an item (checked here, by the
tenant guard and, on PostgreSQL, by row-level security). Each approved or rejected design made
with an adopted copy counts a success or a failure for the original with one atomic UPDATE, and
the library ranks by the Wilson lower bound of that rate, then by recency (core.ranking, the
same ranking as the import profiles).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from core import audit
from core.access import Actor, require_role
from core.errors import InvalidInput, NotFound, PermissionDenied, StaleEdit
from core.ranking import rank_by_success, wilson_lower_bound
from core.studio import EDITORS, READERS
from core.templates import (
    TemplateView,
    get_template,
    new_template,
    parse_content,
)
from db.models import (
    DesignTemplate,
    DesignTemplateVersion,
    SharedTemplate,
    SharedTemplateUsage,
    TemplateKind,
    utcnow,
)

ENTITY = "shared_template"


@dataclass(frozen=True)
class LibraryItemView:
    """A library template as any shop sees it: no owner, only whether it is the shop's own."""

    id: int
    kind: TemplateKind
    name: str
    description: str
    content: dict[str, Any]
    adoptions: int
    success_count: int
    failure_count: int
    last_successful_use: datetime | None
    published_at: datetime
    updated_at: datetime
    version: int
    is_mine: bool

    @property
    def uses(self) -> int:
        return self.success_count + self.failure_count

    @property
    def success_rate(self) -> float | None:
        return self.success_count / self.uses if self.uses else None

    @property
    def score(self) -> float:
        """The Wilson lower bound the library ranks by."""
        return wilson_lower_bound(self.success_count, self.failure_count)

    @classmethod
    def of(
        cls, item: SharedTemplate, usage: SharedTemplateUsage | None, actor: Actor
    ) -> LibraryItemView:
        assert item.id is not None
        return cls(
            id=item.id,
            kind=TemplateKind(item.kind),
            name=item.name,
            description=item.description,
            content=item.content,
            adoptions=usage.adoptions if usage else 0,
            success_count=usage.success_count if usage else 0,
            failure_count=usage.failure_count if usage else 0,
            last_successful_use=usage.last_successful_use if usage else None,
            published_at=item.created_at,
            updated_at=item.updated_at,
            version=item.version,
            is_mine=item.owner_tenant_id == actor.tenant_id,
        )


# --------------------------------------------------------------------------------------------
# Browsing (every role of every shop)
# --------------------------------------------------------------------------------------------


def _query() -> Any:
    return select(SharedTemplate, SharedTemplateUsage).outerjoin(
        SharedTemplateUsage, col(SharedTemplateUsage.item_id) == col(SharedTemplate.id)
    )


def browse(
    *,
    session: Session,
    actor: Actor,
    kind: TemplateKind | str | None = None,
    text: str | None = None,
    limit: int | None = None,
) -> list[LibraryItemView]:
    """The library, best first: Wilson lower bound of approvals, then the latest approval,
    then the newest publication; optionally of one kind and matching `text`."""
    require_role(actor, *READERS)
    query = _query()
    if kind is not None:
        query = query.where(SharedTemplate.kind == TemplateKind(kind).value)
    if text and text.strip():
        like = f"%{text.strip()}%"
        query = query.where(
            or_(col(SharedTemplate.name).ilike(like), col(SharedTemplate.description).ilike(like))
        )
    rows = session.exec(
        query.order_by(col(SharedTemplate.created_at).desc(), col(SharedTemplate.id).desc())
    ).all()
    views = [LibraryItemView.of(item, usage, actor) for item, usage in rows]
    ranked = rank_by_success(
        views, lambda v: (v.success_count, v.failure_count), lambda v: v.last_successful_use
    )
    return ranked[:limit] if limit is not None else ranked


def get_item(*, session: Session, actor: Actor, item_id: int) -> LibraryItemView:
    """One library item; NotFound when it does not exist (any longer)."""
    require_role(actor, *READERS)
    row = session.exec(_query().where(SharedTemplate.id == item_id)).first()
    if row is None:
        raise _missing(item_id)
    return LibraryItemView.of(row[0], row[1], actor)


def _missing(item_id: int) -> NotFound:
    return NotFound(f"There is no library template with id {item_id}; it may have been withdrawn.")


# --------------------------------------------------------------------------------------------
# Publishing, updating, withdrawing (the publishing shop's florists and admins)
# --------------------------------------------------------------------------------------------


def _source(
    session: Session, actor: Actor, template_id: int, number: int | None
) -> tuple[DesignTemplate, DesignTemplateVersion]:
    template = session.exec(
        select(DesignTemplate).where(
            DesignTemplate.tenant_id == actor.tenant_id, DesignTemplate.id == template_id
        )
    ).first()
    if template is None:
        raise NotFound(f"There is no template with id {template_id} in your shop.")
    wanted = number or template.production_number or template.latest_number
    version = session.exec(
        select(DesignTemplateVersion).where(
            DesignTemplateVersion.tenant_id == actor.tenant_id,
            DesignTemplateVersion.template_id == template_id,
            DesignTemplateVersion.number == wanted,
        )
    ).first()
    if version is None:
        raise NotFound(f"{template.name!r} has no version {wanted}.")
    return template, version


def _taken(name: str) -> InvalidInput:
    return InvalidInput(f"Your shop already published a template named {name!r} of that kind.")


def publish(
    *,
    session: Session,
    actor: Actor,
    template_id: int,
    number: int | None = None,
    description: str | None = None,
) -> LibraryItemView:
    """Publish a version (default: production, else the latest) of one of the shop's
    templates to the library, anonymously (florist, admin; audited)."""
    require_role(actor, *EDITORS)
    template, version = _source(session, actor, template_id, number)
    item = SharedTemplate(
        owner_tenant_id=actor.tenant_id,
        kind=template.kind,
        name=template.name,
        description=_description(template.description if description is None else description),
        content=parse_content(template.kind, version.content),
        source_template_id=template.id,
        source_number=version.number,
    )
    try:
        with session.begin_nested():
            session.add(item)
            session.flush()
    except IntegrityError as exc:
        raise _taken(template.name) from exc
    assert item.id is not None
    usage = SharedTemplateUsage(item_id=item.id)
    session.add(usage)
    _audit(session, actor, "library.publish", item, after=_snapshot(item))
    session.flush()
    return LibraryItemView.of(item, usage, actor)


def _description(text: str) -> str:
    text = text.strip()
    if len(text) > 500:
        raise InvalidInput("A description has at most 500 characters.")
    return text


def _snapshot(item: SharedTemplate) -> dict[str, Any]:
    return {
        "kind": item.kind,
        "name": item.name,
        "description": item.description,
        "source_number": item.source_number,
    }


def _load_own(session: Session, actor: Actor, item_id: int) -> SharedTemplate:
    """The item, if it exists and the actor's shop published it."""
    require_role(actor, *EDITORS)
    item = session.get(SharedTemplate, item_id)
    if item is None:
        raise _missing(item_id)
    if item.owner_tenant_id != actor.tenant_id:
        raise PermissionDenied("Only the shop that published a library template can change it.")
    return item


def _stale(item: SharedTemplate) -> StaleEdit:
    return StaleEdit(
        f"The library template {item.name!r} was changed since you loaded it; load it again."
    )


def update_item(
    *,
    session: Session,
    actor: Actor,
    item_id: int,
    expected_version: int,
    number: int | None = None,
    description: str | None = None,
) -> LibraryItemView:
    """Republish an item from a version of its source template (`number`; default its
    production, else latest) and/or change its description (the publishing shop only)."""
    item = _load_own(session, actor, item_id)
    if item.version != expected_version:
        raise _stale(item)
    changes: dict[str, Any] = {}
    if description is not None:
        changes["description"] = _description(description)
    if number is not None or description is None:
        if item.source_template_id is None:
            raise InvalidInput(f"The template {item.name!r} was published from is gone.")
        template, version = _source(session, actor, item.source_template_id, number)
        changes["content"] = parse_content(template.kind, version.content)
        changes["source_number"] = version.number
    before = _snapshot(item)
    matched = session.exec(
        update(SharedTemplate)
        .where(col(SharedTemplate.id) == item_id, col(SharedTemplate.version) == item.version)
        .values(**changes, version=item.version + 1, updated_at=utcnow())
    ).rowcount  # type: ignore[attr-defined]
    if matched != 1:
        raise _stale(item)
    session.refresh(item)
    _audit(session, actor, "library.update", item, before=before, after=_snapshot(item))
    return get_item(session=session, actor=actor, item_id=item_id)


def withdraw(*, session: Session, actor: Actor, item_id: int, expected_version: int) -> None:
    """Take an item out of the library (the publishing shop only). Its counters go with it;
    shops that adopted it keep their copies."""
    item = _load_own(session, actor, item_id)
    stale = item.version != expected_version
    if not stale:
        statement = delete(SharedTemplate).where(
            col(SharedTemplate.id) == item_id, col(SharedTemplate.version) == expected_version
        )
        stale = session.exec(statement).rowcount != 1  # type: ignore[attr-defined]
    if stale:
        raise _stale(item)
    # Counters follow by ON DELETE CASCADE; adopted copies lose their link by SET NULL.
    _audit(session, actor, "library.withdraw", item, before=_snapshot(item))
    session.expunge(item)
    session.flush()


def _audit(
    session: Session,
    actor: Actor,
    action: str,
    item: SharedTemplate,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    audit.record(
        session=session,
        actor=actor,
        action=action,
        entity_type=ENTITY,
        entity_id=item.id,
        before=before,
        after=after,
    )


# --------------------------------------------------------------------------------------------
# Adopting and counting (any shop)
# --------------------------------------------------------------------------------------------


def adopt(*, session: Session, actor: Actor, item_id: int, name: str | None = None) -> TemplateView:
    """Copy a library item into the shop as a new template with its own version 1 (not yet
    production), linked to the original so its designs count for it (florist, admin)."""
    require_role(actor, *EDITORS)
    found = session.get(SharedTemplate, item_id)
    if found is None:
        raise _missing(item_id)
    template = new_template(
        session=session,
        actor=actor,
        kind=TemplateKind(found.kind),
        name=name or found.name,
        content=found.content,
        description=found.description,
        note="Adopted from the shared library",
        library_item_id=item_id,
    )
    _count(session, item_id, adoptions=col(SharedTemplateUsage.adoptions) + 1)
    audit.record(
        session=session,
        actor=actor,
        action="library.adopt",
        entity_type=f"{template.kind}_template",
        entity_id=template.id,
        after={"name": template.name, "library_item": item_id},
    )
    return get_template(session=session, actor=actor, template_id=template.id or 0)


def count_outcome(
    *, session: Session, actor: Actor, item_id: int, successes: int, failures: int
) -> None:
    """Move an item's success and failure counts (by +1/-1, from core.designs' decisions),
    atomically in SQL so concurrent decisions of any shops never lose a count."""
    require_role(actor, *EDITORS)
    if not successes and not failures:
        return
    now = utcnow()
    values: dict[str, Any] = {
        "success_count": col(SharedTemplateUsage.success_count) + successes,
        "failure_count": col(SharedTemplateUsage.failure_count) + failures,
        "last_used_at": now,
    }
    if successes > 0:
        values["last_successful_use"] = now
    _count(session, item_id, **values)


def _count(session: Session, item_id: int, **values: Any) -> None:
    # Increment in the database, never read-modify-write: concurrent writers then serialize
    # on the row lock and no count is lost. A withdrawn item has no row left: nothing to count.
    session.exec(
        update(SharedTemplateUsage)
        .where(col(SharedTemplateUsage.item_id) == item_id)
        .values(values)
        .execution_options(synchronize_session=False)
    )
