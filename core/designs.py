"""Designs the outside generator made, what florists think of them, and what they cost.

The generator reports each design with `record_design` (or a batch, or `trellis design record
FILE`): its own design id, the prompt, the template version and style it used, the image URL,
model type, tokens and cost. Reporting a design id again adds nothing. Florists then rate (0-5),
comment, approve or reject and favorite designs in a gallery paged and filtered in SQL. Approving
or rejecting a design made with a template adopted from the library counts a success or failure
for the library original (core.library.count_outcome, atomic). Usage per day and model type and
results per template or style are SQL aggregates.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator
from sqlalchemy import and_, case, func, update
from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from core import audit, sql
from core.access import Actor, Role, require_role
from core.config import get_settings
from core.errors import InvalidInput, NotFound, StaleEdit
from core.library import count_outcome
from core.studio import (
    EDITORS,
    READERS,
    http_url,
    input_error,
    label,
    nothing_recorded,
    read_jsonl,
)
from db.models import (
    Design,
    DesignTemplate,
    DesignTemplateVersion,
    ModelType,
    TemplateKind,
    utcnow,
)

MAX_TOKENS = 10_000_000
MAX_COST = 100_000.0
MAX_COMMENT = 2000
MAX_PAGE_SIZE = 200
Decision = Literal["approved", "rejected", "undecided"]


# --------------------------------------------------------------------------------------------
# What the generator reports
# --------------------------------------------------------------------------------------------


class DesignIn(BaseModel):
    """One design as the generator reports it."""

    model_config = ConfigDict(extra="forbid")

    design_id: str
    prompt: str
    image_url: str
    model_type: ModelType
    template: str | None = None
    template_version: int | None = None
    style: str | None = None
    occasion: str | None = None
    tokens: int = 0
    cost: float = 0.0
    created_at: datetime | None = None

    @field_validator("design_id", mode="before")
    @classmethod
    def _design_id(cls, value: object) -> str:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        text = label(value, field="the design id", max_length=128)
        if text != str(value).strip() or not text.isprintable():
            raise ValueError("the design id must be one line of printable text")
        return text

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, value: str) -> str:
        value = value.strip()
        limit = get_settings().max_text_length
        if not value:
            raise ValueError("is empty")
        if len(value) > limit:
            raise ValueError(f"is longer than {limit} characters")
        return value

    @field_validator("image_url", mode="before")
    @classmethod
    def _image(cls, value: object) -> str:
        return http_url(value)

    @field_validator("template", "style", "occasion", mode="before")
    @classmethod
    def _names(cls, value: object) -> str | None:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        return label(value, field="the name")

    @field_validator("template_version")
    @classmethod
    def _number(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise ValueError("versions are numbered from 1")
        return value

    @field_validator("tokens")
    @classmethod
    def _tokens(cls, value: int) -> int:
        if not 0 <= value <= MAX_TOKENS:
            raise ValueError(f"must lie between 0 and {MAX_TOKENS:,}")
        return value

    @field_validator("cost")
    @classmethod
    def _cost(cls, value: float) -> float:
        if not math.isfinite(value) or not 0 <= value <= MAX_COST:
            raise ValueError(f"must lie between 0 and {MAX_COST:,.0f}")
        return value

    @field_validator("created_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value

    @model_validator(mode="after")
    def _version_needs_template(self) -> DesignIn:
        if self.template_version is not None and self.template is None:
            raise ValueError("a template_version needs the template's name")
        return self


def parse_design(fields: Mapping[str, Any], *, where: str = "") -> DesignIn:
    """Validate one reported design, with every problem in one InvalidInput."""
    try:
        return DesignIn.model_validate(dict(fields))
    except ValidationError as exc:
        raise input_error(exc, where=where) from exc


def read_designs(lines: Iterable[str]) -> list[tuple[int, DesignIn]]:
    """A JSONL file of designs as (line number, design); any bad line refuses the whole file,
    naming every bad line (the first SHOWN_ERRORS of them)."""
    return read_jsonl(lines, lambda fields, where: parse_design(fields, where=where))


# --------------------------------------------------------------------------------------------
# Recording
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordSummary:
    added: int
    known: int  # design ids reported before (or twice in this batch): nothing added for them


@dataclass(frozen=True)
class _Refs:
    template_id: int | None
    version_id: int | None
    style_id: int | None


class _Resolver:
    """Names in reports -> the shop's templates and versions, each looked up once per batch."""

    def __init__(self, session: Session, actor: Actor) -> None:
        self.session, self.actor = session, actor
        self.templates: dict[tuple[str, str], DesignTemplate | None] = {}

    def template(self, kind: TemplateKind, name: str) -> DesignTemplate:
        key = (kind.value, name.casefold())
        if key not in self.templates:
            rows = self.session.exec(
                select(DesignTemplate).where(
                    DesignTemplate.tenant_id == self.actor.tenant_id, DesignTemplate.kind == kind
                )
            ).all()
            self.templates[key] = next((t for t in rows if t.name.casefold() == key[1]), None)
        found = self.templates[key]
        if found is None:
            noun = "style" if kind is TemplateKind.STYLE else "prompt template"
            raise InvalidInput(f"there is no {noun} named {name!r} in this shop")
        return found

    def refs(self, item: DesignIn) -> _Refs:
        template_id = version_id = style_id = None
        if item.template is not None:
            template = self.template(TemplateKind.PROMPT, item.template)
            number = item.template_version or template.production_number or template.latest_number
            version_id = self._version(template, number)
            template_id = template.id
        if item.style is not None:
            style_id = self.template(TemplateKind.STYLE, item.style).id
        return _Refs(template_id, version_id, style_id)

    def _version(self, template: DesignTemplate, number: int) -> int:
        found = self.session.exec(
            select(DesignTemplateVersion.id).where(
                DesignTemplateVersion.tenant_id == self.actor.tenant_id,
                DesignTemplateVersion.template_id == template.id,
                DesignTemplateVersion.number == number,
            )
        ).first()
        if found is None:
            raise InvalidInput(f"{template.name!r} has no version {number}")
        return found


def record_design(
    *,
    session: Session,
    actor: Actor,
    design_id: str,
    prompt: str,
    image_url: str,
    model_type: str,
    template: str | None = None,
    template_version: int | None = None,
    style: str | None = None,
    occasion: str | None = None,
    tokens: int = 0,
    cost: float = 0.0,
    created_at: datetime | None = None,
) -> RecordSummary:
    """Record one design the generator made (admin: the generator acts as the shop's admin);
    a design id reported before adds nothing (`known` is then 1)."""
    item = parse_design(
        {
            "design_id": design_id,
            "prompt": prompt,
            "image_url": image_url,
            "model_type": model_type,
            "template": template,
            "template_version": template_version,
            "style": style,
            "occasion": occasion,
            "tokens": tokens,
            "cost": cost,
            "created_at": created_at,
        }
    )
    return record_designs(session=session, actor=actor, items=[item])


def record_designs(
    *,
    session: Session,
    actor: Actor,
    items: Sequence[DesignIn],
    lines: Sequence[int] | None = None,
) -> RecordSummary:
    """Record a batch in the caller's transaction, all or nothing: every reference is resolved
    first and any unknown one refuses the batch (named by its line when `lines` are given)."""
    require_role(actor, Role.ADMIN)
    resolver, refs, errors = _Resolver(session, actor), [], []
    for n, item in enumerate(items):
        where = f"Line {lines[n]}" if lines else f"Design {item.design_id!r}"
        try:
            refs.append(resolver.refs(item))
        except InvalidInput as exc:
            errors.append(f"{where}: {exc}.")
    if errors:
        raise nothing_recorded(errors)
    known = _known_ids(session, actor, [item.design_id for item in items])
    added: list[tuple[DesignIn, _Refs]] = []
    for item, ref in zip(items, refs, strict=True):
        if item.design_id in known:
            continue
        known.add(item.design_id)
        if _insert(session, actor, item, ref):
            added.append((item, ref))
    _count_uses(session, actor, [ref for _item, ref in added])
    return RecordSummary(added=len(added), known=len(items) - len(added))


def _known_ids(session: Session, actor: Actor, ids: Sequence[str]) -> set[str]:
    found: set[str] = set()
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), 500):
        chunk = unique[start : start + 500]
        found.update(
            session.exec(
                select(Design.design_id).where(
                    Design.tenant_id == actor.tenant_id, col(Design.design_id).in_(chunk)
                )
            ).all()
        )
    return found


def _insert(session: Session, actor: Actor, item: DesignIn, ref: _Refs) -> bool:
    """Insert one design; False when another writer recorded its id first (the unique key)."""
    design = Design(
        tenant_id=actor.tenant_id,
        design_id=item.design_id,
        prompt=item.prompt,
        image_url=item.image_url,
        model_type=item.model_type.value,
        template_id=ref.template_id,
        template_version_id=ref.version_id,
        style_id=ref.style_id,
        occasion=item.occasion,
        tokens=item.tokens,
        cost=item.cost,
        created_at=item.created_at or utcnow(),
    )
    try:
        with session.begin_nested():
            session.add(design)
            session.flush()
    except IntegrityError:
        return False
    return True


def _count_uses(session: Session, actor: Actor, refs: Sequence[_Refs]) -> None:
    """usage_count += the designs made with each template and style, atomically in SQL."""
    uses: dict[int, int] = {}
    for ref in refs:
        for template_id in {ref.template_id, ref.style_id} - {None}:
            assert template_id is not None
            uses[template_id] = uses.get(template_id, 0) + 1
    for template_id, n in uses.items():
        session.exec(
            update(DesignTemplate)
            .where(
                col(DesignTemplate.tenant_id) == actor.tenant_id,
                col(DesignTemplate.id) == template_id,
            )
            .values(usage_count=col(DesignTemplate.usage_count) + n)
            .execution_options(synchronize_session=False)
        )


# --------------------------------------------------------------------------------------------
# The gallery
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DesignView:
    id: int
    design_id: str
    prompt: str
    image_url: str
    model_type: str
    template_id: int | None
    template_name: str | None
    template_number: int | None
    style_id: int | None
    style_name: str | None
    occasion: str | None
    tokens: int
    cost: float
    rating: int | None
    approved: bool | None
    favorite: bool
    comment: str | None
    created_at: datetime
    reviewed_at: datetime | None

    @property
    def decision(self) -> Decision:
        return {True: "approved", False: "rejected", None: "undecided"}[self.approved]  # type: ignore[return-value]


@dataclass(frozen=True)
class GalleryFilter:
    style_id: int | None = None
    template_id: int | None = None
    occasion: str | None = None
    model_type: str | None = None
    min_rating: int | None = None  # designs rated at least this
    unrated: bool = False  # only designs nobody rated yet
    decision: Decision | None = None
    favorites: bool = False
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class GalleryPage:
    items: list[DesignView]
    total: int
    page: int
    page_size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


_Template = aliased(DesignTemplate, name="prompt_template")
_Style = aliased(DesignTemplate, name="style_template")


def _base_query() -> Any:
    return (
        select(Design, _Template.name, DesignTemplateVersion.number, _Style.name)
        .outerjoin(_Template, col(_Template.id) == col(Design.template_id))
        .outerjoin(
            DesignTemplateVersion,
            col(DesignTemplateVersion.id) == col(Design.template_version_id),
        )
        .outerjoin(_Style, col(_Style.id) == col(Design.style_id))
    )


def _filtered(query: Any, actor: Actor, flt: GalleryFilter) -> Any:
    equal = {
        Design.style_id: flt.style_id,
        Design.template_id: flt.template_id,
        Design.occasion: flt.occasion,
        Design.model_type: flt.model_type,
    }
    query = query.where(Design.tenant_id == actor.tenant_id)
    for column, value in equal.items():
        if value is not None:
            query = query.where(col(column) == value)
    if flt.min_rating is not None:
        query = query.where(col(Design.rating) >= flt.min_rating)
    if flt.unrated:
        query = query.where(col(Design.rating).is_(None))
    if flt.favorites:
        query = query.where(col(Design.favorite))
    if flt.since is not None:
        query = query.where(col(Design.created_at) >= flt.since)
    if flt.until is not None:
        query = query.where(col(Design.created_at) < flt.until)
    if flt.decision == "undecided":
        query = query.where(col(Design.approved).is_(None))
    elif flt.decision is not None:
        query = query.where(col(Design.approved) == (flt.decision == "approved"))
    return query


def _view(row: Any) -> DesignView:
    design, template_name, number, style_name = row
    assert design.id is not None
    return DesignView(
        id=design.id,
        design_id=design.design_id,
        prompt=design.prompt,
        image_url=design.image_url,
        model_type=design.model_type,
        template_id=design.template_id,
        template_name=template_name,
        template_number=number,
        style_id=design.style_id,
        style_name=style_name,
        occasion=design.occasion,
        tokens=design.tokens,
        cost=design.cost,
        rating=design.rating,
        approved=design.approved,
        favorite=design.favorite,
        comment=design.comment,
        created_at=design.created_at,
        reviewed_at=design.reviewed_at,
    )


def gallery(
    *,
    session: Session,
    actor: Actor,
    filters: GalleryFilter | None = None,
    page: int = 1,
    page_size: int = 24,
) -> GalleryPage:
    """One page of the shop's designs, newest first, filtered and paged in SQL (every role)."""
    require_role(actor, *READERS)
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidInput(f"A gallery page holds 1 to {MAX_PAGE_SIZE} designs.")
    flt = filters or GalleryFilter()
    count_query = _filtered(select(func.count()).select_from(Design), actor, flt)
    total = int(session.exec(count_query).one())
    rows = session.exec(
        _filtered(_base_query(), actor, flt)
        .order_by(col(Design.created_at).desc(), col(Design.id).desc())
        .offset((max(page, 1) - 1) * page_size)
        .limit(page_size)
    ).all()
    return GalleryPage([_view(r) for r in rows], total, max(page, 1), page_size)


def get_design(*, session: Session, actor: Actor, design_id: int) -> DesignView:
    """One design of the shop by its Trellis id."""
    require_role(actor, *READERS)
    row = session.exec(
        _base_query().where(Design.tenant_id == actor.tenant_id, Design.id == design_id)
    ).first()
    if row is None:
        raise NotFound(f"There is no design with id {design_id}.")
    return _view(row)


@dataclass(frozen=True)
class GalleryOptions:
    """What the gallery's filters offer: only values some design has."""

    styles: list[tuple[int, str]]
    templates: list[tuple[int, str]]
    occasions: list[str]
    model_types: list[str]


def gallery_options(*, session: Session, actor: Actor) -> GalleryOptions:
    """The styles, templates, occasions and model types the shop's designs use."""
    require_role(actor, *READERS)
    mine = Design.tenant_id == actor.tenant_id

    def used(column: Any) -> list[tuple[int, str]]:
        rows = session.exec(
            select(DesignTemplate.id, DesignTemplate.name)
            .where(
                DesignTemplate.tenant_id == actor.tenant_id,
                col(DesignTemplate.id).in_(select(column).where(mine, column.is_not(None))),
            )
            .order_by(col(DesignTemplate.name))
        ).all()
        return [(int(i or 0), str(n)) for i, n in rows]

    occasions = session.exec(
        select(Design.occasion).where(mine, col(Design.occasion).is_not(None)).distinct()
    ).all()
    types = session.exec(select(Design.model_type).where(mine).distinct()).all()
    return GalleryOptions(
        used(col(Design.style_id)),
        used(col(Design.template_id)),
        sorted(o for o in occasions if o),
        sorted(types),
    )


# --------------------------------------------------------------------------------------------
# What florists think of a design
# --------------------------------------------------------------------------------------------


def _load(session: Session, actor: Actor, design_id: int) -> Design:
    design = session.exec(
        select(Design).where(Design.tenant_id == actor.tenant_id, Design.id == design_id)
    ).first()
    if design is None:
        raise NotFound(f"There is no design with id {design_id}.")
    return design


def _set(session: Session, actor: Actor, design: Design, **values: Any) -> DesignView:
    session.exec(
        update(Design)
        .where(col(Design.tenant_id) == actor.tenant_id, col(Design.id) == design.id)
        .values(**values, reviewed_by=actor.user_id, reviewed_at=utcnow())
    )
    session.refresh(design)
    return get_design(session=session, actor=actor, design_id=design.id or 0)


def rate_design(
    *, session: Session, actor: Actor, design_id: int, rating: int | None
) -> DesignView:
    """Rate a design 0 to 5 (None clears the rating) (florist, admin)."""
    require_role(actor, *EDITORS)
    if rating is not None and (
        isinstance(rating, bool) or not isinstance(rating, int) or not 0 <= rating <= 5
    ):
        raise InvalidInput(f"A rating is a whole number from 0 to 5, not {rating!r}.")
    return _set(session, actor, _load(session, actor, design_id), rating=rating)


def comment_design(
    *, session: Session, actor: Actor, design_id: int, comment: str | None
) -> DesignView:
    """Set (or, with None or blank text, clear) a design's comment (florist, admin)."""
    require_role(actor, *EDITORS)
    text = (comment or "").strip()
    if len(text) > MAX_COMMENT:
        raise InvalidInput(f"A comment has at most {MAX_COMMENT} characters.")
    return _set(session, actor, _load(session, actor, design_id), comment=text or None)


def set_favorite(*, session: Session, actor: Actor, design_id: int, favorite: bool) -> DesignView:
    """Mark or unmark a design as a favorite (florist, admin)."""
    require_role(actor, *EDITORS)
    return _set(session, actor, _load(session, actor, design_id), favorite=bool(favorite))


def decide_design(
    *, session: Session, actor: Actor, design_id: int, approved: bool | None
) -> DesignView:
    """Approve (True), reject (False) or undecide (None) a design (florist, admin; audited).
    A design made with templates adopted from the library moves their originals' success and
    failure counts by exactly the change, even when two florists decide at once."""
    require_role(actor, *EDITORS)
    design = _load(session, actor, design_id)
    before = design.approved
    if before is approved:
        return get_design(session=session, actor=actor, design_id=design_id)
    same_as_before = (
        col(Design.approved).is_(None) if before is None else col(Design.approved) == before
    )
    matched = session.exec(
        update(Design)
        .where(col(Design.tenant_id) == actor.tenant_id, col(Design.id) == design_id)
        .where(same_as_before)
        .values(approved=approved, reviewed_by=actor.user_id, reviewed_at=utcnow())
    ).rowcount  # type: ignore[attr-defined]
    if matched != 1:
        raise StaleEdit("Someone else decided on this design just now; load it again.")
    session.refresh(design)
    _count_decision(session, actor, design, before, approved)
    audit.record(
        session=session,
        actor=actor,
        action="design.decide",
        entity_type="design",
        entity_id=design_id,
        before={"approved": before},
        after={"approved": approved},
    )
    return get_design(session=session, actor=actor, design_id=design_id)


def _count_decision(
    session: Session, actor: Actor, design: Design, before: bool | None, after: bool | None
) -> None:
    ids = [i for i in (design.template_id, design.style_id) if i is not None]
    if not ids:
        return
    items = session.exec(
        select(DesignTemplate.library_item_id).where(
            DesignTemplate.tenant_id == actor.tenant_id,
            col(DesignTemplate.id).in_(ids),
            col(DesignTemplate.library_item_id).is_not(None),
        )
    ).all()
    successes = int(after is True) - int(before is True)
    failures = int(after is False) - int(before is False)
    for item_id in set(items):
        if item_id is not None:
            count_outcome(
                session=session,
                actor=actor,
                item_id=item_id,
                successes=successes,
                failures=failures,
            )


# --------------------------------------------------------------------------------------------
# Usage analytics (SQL aggregates)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UsageRow:
    day: str  # YYYY-MM-DD (UTC)
    model_type: str
    generations: int
    tokens: int
    cost: float
    avg_rating: float | None


def usage_by_day(
    *, session: Session, actor: Actor, since: datetime, until: datetime
) -> list[UsageRow]:
    """Per UTC day and model type: designs generated, tokens, cost and average rating."""
    require_role(actor, *READERS)
    day = sql.day(col(Design.created_at))
    rows = session.execute(
        sa_select(
            day,
            col(Design.model_type),
            func.count(),
            func.coalesce(func.sum(Design.tokens), 0),
            func.coalesce(func.sum(Design.cost), 0.0),
            func.avg(Design.rating),
        )
        .where(
            col(Design.tenant_id) == actor.tenant_id,
            col(Design.created_at) >= since,
            col(Design.created_at) < until,
        )
        .group_by(day, col(Design.model_type))
        .order_by(day, col(Design.model_type))
    ).all()
    return [
        UsageRow(
            str(d),
            str(m),
            int(n),
            int(t),
            float(c),
            None if r is None else float(r),
        )
        for d, m, n, t, c, r in rows
    ]


@dataclass(frozen=True)
class TemplateStats:
    template_id: int
    name: str
    uses: int
    avg_rating: float | None
    approved: int
    rejected: int

    @property
    def approval_rate(self) -> float | None:
        """Approved among the decided designs (None until one was decided)."""
        decided = self.approved + self.rejected
        return self.approved / decided if decided else None


def template_stats(
    *,
    session: Session,
    actor: Actor,
    kind: TemplateKind | str,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[TemplateStats]:
    """For each of the shop's styles or prompt templates: designs made with it, their average
    rating and how many were approved and rejected (most used first)."""
    require_role(actor, *READERS)
    checked = TemplateKind(kind)
    column = Design.style_id if checked is TemplateKind.STYLE else Design.template_id
    joined = [col(column) == col(DesignTemplate.id), col(Design.tenant_id) == actor.tenant_id]
    if since is not None:
        joined.append(col(Design.created_at) >= since)
    if until is not None:
        joined.append(col(Design.created_at) < until)
    uses = func.count(col(Design.id))
    rows = session.execute(
        sa_select(
            col(DesignTemplate.id),
            col(DesignTemplate.name),
            uses,
            func.avg(Design.rating),
            func.sum(case((col(Design.approved).is_(True), 1), else_=0)),
            func.sum(case((col(Design.approved).is_(False), 1), else_=0)),
        )
        .outerjoin(Design, and_(*joined))
        .where(
            col(DesignTemplate.tenant_id) == actor.tenant_id,
            col(DesignTemplate.kind) == checked.value,
        )
        .group_by(col(DesignTemplate.id), col(DesignTemplate.name))
        .order_by(uses.desc(), col(DesignTemplate.name))
    ).all()
    return [
        TemplateStats(
            int(i), str(n), int(u), None if r is None else float(r), int(a or 0), int(x or 0)
        )
        for i, n, u, r, a, x in rows
    ]
