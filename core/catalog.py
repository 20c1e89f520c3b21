"""The shop's catalog: flowers, arrangement types, occasions and budget tiers.

Florists and admins edit it (the page does so in tables, many rows at once: `apply_edits` takes
them all or nothing); every role reads it. A row in use (a style names the flower, a design was
made for the occasion) is deactivated instead of deleted, so nothing that points at it breaks.
Every edit names the version it started from and is refused as stale when someone saved since.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias, cast, get_args

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator
from sqlalchemy import delete, func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, col, select

from core import audit
from core.access import Actor, require_role
from core.errors import InvalidInput, NotFound, StaleEdit
from core.studio import EDITORS, READERS, http_url, input_error, label, text_list, words
from db.models import (
    ArrangementType,
    BudgetTier,
    Design,
    DesignTemplate,
    DesignTemplateVersion,
    Flower,
    Occasion,
    TemplateKind,
    utcnow,
)

CatalogKind = Literal["flower", "arrangement_type", "occasion", "budget_tier"]
CATALOG_KINDS: tuple[CatalogKind, ...] = get_args(CatalogKind)
Season = Literal["spring", "summer", "autumn", "winter", "all_year"]
SEASONS: tuple[str, ...] = get_args(Season)
PriceTier = Literal["budget", "standard", "premium", "luxury"]
PRICE_TIERS: tuple[str, ...] = get_args(PriceTier)
Sensitivity = Literal["low", "medium", "high"]
SENSITIVITIES: tuple[str, ...] = get_args(Sensitivity)
CatalogItem: TypeAlias = Flower | ArrangementType | Occasion | BudgetTier
MAX_PRICE = 1_000_000.0


# --------------------------------------------------------------------------------------------
# Input
# --------------------------------------------------------------------------------------------


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    active: bool = True

    @field_validator("name")
    @classmethod
    def _name(cls, value: object) -> str:
        return label(value, field="the name")

    @field_validator("description", mode="before")
    @classmethod
    def _description(cls, value: object) -> str:
        text = "" if value is None else str(value).strip()
        if len(text) > 500:
            raise ValueError("at most 500 characters")
        return text


class FlowerInput(_Input):
    variety: str = ""
    color: str
    season: Season = "all_year"
    in_stock: bool = True
    price_tier: PriceTier = "standard"
    image_url: str | None = None

    @field_validator("variety", mode="before")
    @classmethod
    def _variety(cls, value: object) -> str:
        return "" if value is None else label(value, field="the variety", min_length=0)

    @field_validator("color")
    @classmethod
    def _color(cls, value: object) -> str:
        return label(value, field="the color", max_length=50)

    @field_validator("image_url", mode="before")
    @classmethod
    def _image(cls, value: object) -> str | None:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        return http_url(value)


class ArrangementTypeInput(_Input):
    pass


class OccasionInput(_Input):
    typical_flowers: list[str] = []
    typical_colors: list[str] = []
    seasonal_preferences: dict[str, list[str]] = {}
    price_sensitivity: Sensitivity = "medium"

    @field_validator("typical_flowers", "typical_colors", mode="before")
    @classmethod
    def _lists(cls, value: object) -> list[str]:
        return text_list(value, field="the list")

    @field_validator("seasonal_preferences", mode="before")
    @classmethod
    def _seasonal(cls, value: object) -> dict[str, list[str]]:
        return seasonal_preferences(value)


class BudgetTierInput(_Input):
    min_price: float = 0.0
    max_price: float | None = None

    @field_validator("min_price", "max_price", mode="before")
    @classmethod
    def _price(cls, value: object) -> object:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if isinstance(value, float) and math.isnan(value):  # an empty data_editor cell
            return None
        return value

    @model_validator(mode="after")
    def _range(self) -> BudgetTierInput:
        if self.min_price is None:
            self.min_price = 0.0
        if not 0 <= self.min_price <= MAX_PRICE:
            raise ValueError(f"the minimum price must lie between 0 and {MAX_PRICE:,.0f}")
        if self.max_price is not None and not self.min_price <= self.max_price <= MAX_PRICE:
            raise ValueError("the maximum price must be at least the minimum (or left empty)")
        return self


def seasonal_preferences(value: object) -> dict[str, list[str]]:
    """Season -> preferred flowers, from a mapping or text such as
    'spring: tulips, peonies; winter: amaryllis'."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        pairs: list[tuple[str, object]] = []
        for part in value.split(";"):
            if not part.strip():
                continue
            season, sep, flowers = part.partition(":")
            if not sep:
                raise ValueError(f"write 'season: flower, flower' (got {part.strip()!r})")
            pairs.append((season.strip().lower(), flowers))
        value = dict(pairs)
    if not isinstance(value, Mapping):
        raise ValueError("seasonal preferences map a season to a list of flowers")
    out: dict[str, list[str]] = {}
    for season, flowers in value.items():
        if season not in SEASONS:
            raise ValueError(f"{season!r} is not a season; use {', '.join(SEASONS)}")
        out[season] = text_list(flowers, field=f"the {season} flowers")
    return {s: out[s] for s in SEASONS if out.get(s)}


INPUTS: Mapping[CatalogKind, type[_Input]] = {
    "flower": FlowerInput,
    "arrangement_type": ArrangementTypeInput,
    "occasion": OccasionInput,
    "budget_tier": BudgetTierInput,
}
MODELS: Mapping[CatalogKind, type[CatalogItem]] = {
    "flower": Flower,
    "arrangement_type": ArrangementType,
    "occasion": Occasion,
    "budget_tier": BudgetTier,
}
NOUNS: Mapping[CatalogKind, str] = {
    "flower": "flower",
    "arrangement_type": "arrangement type",
    "occasion": "occasion",
    "budget_tier": "budget tier",
}


def _kind(kind: str) -> CatalogKind:
    if kind not in CATALOG_KINDS:
        raise InvalidInput(f"{kind!r} is not a catalog; use one of {', '.join(CATALOG_KINDS)}.")
    return kind  # type: ignore[return-value]


def editable_fields(kind: str) -> tuple[str, ...]:
    """The columns an edit may set for this catalog, in table order."""
    return tuple(INPUTS[_kind(kind)].model_fields)


def parse_item(kind: str, values: Mapping[str, Any], *, where: str = "") -> _Input:
    """Validate one row's values, with every problem in one InvalidInput."""
    try:
        return INPUTS[_kind(kind)].model_validate(dict(values))
    except ValidationError as exc:
        raise input_error(exc, where=where) from exc


# --------------------------------------------------------------------------------------------
# Reading (every role)
# --------------------------------------------------------------------------------------------


def list_items(
    *, session: Session, actor: Actor, kind: str, include_inactive: bool = True
) -> list[CatalogItem]:
    """The shop's rows of one catalog, by name."""
    require_role(actor, *READERS)
    model = MODELS[_kind(kind)]
    query = select(model).where(model.tenant_id == actor.tenant_id)
    if not include_inactive:
        query = query.where(col(model.active))
    order = [col(model.name), col(model.id)]
    return cast(list[CatalogItem], list(session.exec(query.order_by(*order)).all()))


def get_item(*, session: Session, actor: Actor, kind: str, item_id: int) -> CatalogItem:
    """One row of the shop's catalog; NotFound when it does not exist (any longer)."""
    require_role(actor, *READERS)
    return _load(session, actor, _kind(kind), item_id)


def _load(session: Session, actor: Actor, kind: CatalogKind, item_id: int) -> CatalogItem:
    model = MODELS[kind]
    item = session.exec(
        select(model).where(model.tenant_id == actor.tenant_id, model.id == item_id)
    ).first()
    if item is None:
        raise NotFound(f"There is no {NOUNS[kind]} with id {item_id}; it may have been deleted.")
    return cast(CatalogItem, item)


@dataclass(frozen=True)
class CatalogLists:
    """The active catalog as the pickers and the prompt preview use it."""

    flowers: list[str] = field(default_factory=list)  # in stock
    colors: list[str] = field(default_factory=list)  # of the flowers in stock
    occasions: list[str] = field(default_factory=list)
    arrangement_types: list[str] = field(default_factory=list)
    budget_tiers: list[str] = field(default_factory=list)
    # what each entry is about, to pick the ones that suit a style (core.templates)
    about: dict[str, dict[str, set[str]]] = field(default_factory=dict)

    def values(self, catalog: str) -> list[str]:
        return list(getattr(self, catalog))


def catalog_lists(*, session: Session, actor: Actor) -> CatalogLists:
    """Names of the active rows of every catalog (flowers and colors: in stock only)."""
    require_role(actor, *READERS)
    lists = CatalogLists()
    flowers = [f for f in _active(session, actor, Flower) if isinstance(f, Flower) and f.in_stock]
    for flower in flowers:
        lists.flowers.append(flower.name)
        lists.about.setdefault("flowers", {})[flower.name] = words(
            [flower.name, flower.variety, flower.color]
        )
    lists.colors.extend(dict.fromkeys(f.color for f in flowers))
    lists.about["colors"] = {color: words([color]) for color in lists.colors}
    for occasion in _active(session, actor, Occasion):
        assert isinstance(occasion, Occasion)
        lists.occasions.append(occasion.name)
        seasonal = [f for fs in occasion.seasonal_preferences.values() for f in fs]
        lists.about.setdefault("occasions", {})[occasion.name] = words(
            [*occasion.typical_flowers, *occasion.typical_colors, *seasonal]
        )
    pairs: tuple[tuple[CatalogKind, str], ...] = (
        ("arrangement_type", "arrangement_types"),
        ("budget_tier", "budget_tiers"),
    )
    for kind, target in pairs:
        for item in _active(session, actor, MODELS[kind]):
            getattr(lists, target).append(item.name)
            lists.about.setdefault(target, {})[item.name] = words([item.name, item.description])
    return lists


def _active(session: Session, actor: Actor, model: type[CatalogItem]) -> Sequence[CatalogItem]:
    return session.exec(  # type: ignore[return-value]
        select(model)
        .where(model.tenant_id == actor.tenant_id, col(model.active))
        .order_by(col(model.name), col(model.id))
    ).all()


# --------------------------------------------------------------------------------------------
# Changing (florists and admins)
# --------------------------------------------------------------------------------------------


def _values(data: _Input) -> dict[str, Any]:
    return data.model_dump()


def _snapshot(kind: CatalogKind, item: CatalogItem) -> dict[str, Any]:
    return {name: getattr(item, name) for name in editable_fields(kind)}


def _identity(kind: CatalogKind, values: Mapping[str, Any]) -> tuple[str, ...]:
    key = (str(values["name"]).casefold(),)
    return (*key, str(values.get("variety", "")).casefold()) if kind == "flower" else key


def _describe(kind: CatalogKind, values: Mapping[str, Any]) -> str:
    variety = values.get("variety") if kind == "flower" else ""
    return f"{values['name']!r}" + (f" ({variety})" if variety else "")


def _check_unique(
    session: Session, actor: Actor, kind: CatalogKind, values: Mapping[str, Any], own_id: int | None
) -> None:
    """Names are unique per shop ignoring case (the database's key is exact, so check here)."""
    model = MODELS[kind]
    rows = session.exec(select(model).where(model.tenant_id == actor.tenant_id)).all()
    for item in cast(Sequence[CatalogItem], rows):
        if item.id != own_id and _identity(kind, _snapshot(kind, item)) == _identity(kind, values):
            raise _taken(kind, values)


def _taken(kind: CatalogKind, values: Mapping[str, Any]) -> InvalidInput:
    return InvalidInput(f"The catalog already has a {NOUNS[kind]} named {_describe(kind, values)}.")


def create_item(
    *, session: Session, actor: Actor, kind: str, values: Mapping[str, Any]
) -> CatalogItem:
    """Add a row to one of the shop's catalogs (florist, admin; audited)."""
    require_role(actor, *EDITORS)
    checked = _kind(kind)
    data = _values(parse_item(checked, values))
    _check_unique(session, actor, checked, data, None)
    item = MODELS[checked](tenant_id=actor.tenant_id, **data)
    try:
        with session.begin_nested():
            session.add(item)
            session.flush()
    except IntegrityError as exc:
        raise _taken(checked, data) from exc
    _audit(session, actor, checked, "create", item.id, after=data)
    return item


def update_item(
    *,
    session: Session,
    actor: Actor,
    kind: str,
    item_id: int,
    values: Mapping[str, Any],
    expected_version: int,
) -> CatalogItem:
    """Change some fields of a row (the others keep their value); refuses a stale edit."""
    require_role(actor, *EDITORS)
    checked = _kind(kind)
    item = _load(session, actor, checked, item_id)
    if item.version != expected_version:
        raise _stale(checked, item)
    before = _snapshot(checked, item)
    after = _values(parse_item(checked, {**before, **values}))
    changed = {name: after[name] for name in after if after[name] != before[name]}
    if not changed:
        return item
    _check_unique(session, actor, checked, after, item_id)
    _write(session, checked, item, changed)
    _audit(
        session,
        actor,
        checked,
        "update",
        item_id,
        before={name: before[name] for name in changed},
        after=changed,
    )
    return item


def _write(
    session: Session, kind: CatalogKind, item: CatalogItem, changes: Mapping[str, Any]
) -> None:
    """One conditional UPDATE: a concurrent edit that committed first makes it match no row."""
    model = MODELS[kind]
    statement = (
        update(model)
        .where(col(model.id) == item.id, col(model.version) == item.version)
        .values(**changes, version=item.version + 1, updated_at=utcnow())
    )
    try:
        with session.begin_nested():
            matched = session.exec(statement).rowcount  # type: ignore[call-overload]
    except IntegrityError as exc:
        raise _taken(kind, {**_snapshot(kind, item), **changes}) from exc
    if matched != 1:
        session.refresh(item)
        raise _stale(kind, item)
    session.refresh(item)


def _stale(kind: CatalogKind, item: CatalogItem) -> StaleEdit:
    """`current` holds the row as it is now (plain values: the session is rolled back)."""
    current = {"id": item.id, "version": item.version, **_snapshot(kind, item)}
    return StaleEdit(
        f"The {NOUNS[kind]} {item.name!r} was changed by someone else since you loaded it; "
        "load the catalog again to see the current values.",
        current=current,
    )


def remove_item(
    *, session: Session, actor: Actor, kind: str, item_id: int, expected_version: int
) -> Literal["deleted", "deactivated"]:
    """Delete a row, or deactivate it when something uses it (which of the two it did)."""
    require_role(actor, *EDITORS)
    checked = _kind(kind)
    item = _load(session, actor, checked, item_id)
    if item.version != expected_version:
        raise _stale(checked, item)
    if in_use(session=session, actor=actor, kind=checked, item_id=item_id):
        if item.active:
            _write(session, checked, item, {"active": False})
            _audit(session, actor, checked, "deactivate", item_id, before={"active": True})
        return "deactivated"
    model = MODELS[checked]
    statement = delete(model).where(
        col(model.id) == item_id, col(model.version) == expected_version
    )
    if session.exec(statement).rowcount != 1:  # type: ignore[call-overload]
        raise _stale(checked, item)
    _audit(session, actor, checked, "delete", item_id, before=_snapshot(checked, item))
    session.expunge(item)
    return "deleted"


def in_use(*, session: Session, actor: Actor, kind: str, item_id: int) -> list[str]:
    """What uses a catalog row (empty when nothing does), for the page to say why it stays."""
    require_role(actor, *READERS)
    checked = _kind(kind)
    item = _load(session, actor, checked, item_id)
    if isinstance(item, Flower):
        return _flower_uses(session, actor, item)
    if isinstance(item, ArrangementType):
        return _arrangement_uses(session, actor, item)
    if isinstance(item, Occasion):
        return _occasion_uses(session, actor, item)
    return []


def _same(name: str) -> Any:
    target = words([name])
    return lambda text: words([text]) == target


def _flower_uses(session: Session, actor: Actor, flower: Flower) -> list[str]:
    same = _same(flower.name)
    uses = [
        f"style {name!r}"
        for name, content in _latest_styles(session, actor)
        if any(same(f) for f in content.get("flowers", []))
    ]
    for occasion in session.exec(select(Occasion).where(Occasion.tenant_id == actor.tenant_id)):
        seasonal = [f for fs in occasion.seasonal_preferences.values() for f in fs]
        if any(same(f) for f in [*occasion.typical_flowers, *seasonal]):
            uses.append(f"occasion {occasion.name!r}")
    return uses


def _arrangement_uses(session: Session, actor: Actor, item: ArrangementType) -> list[str]:
    wanted = words([item.name])
    return [
        f"style {name!r}"
        for name, content in _latest_styles(session, actor)
        if wanted <= words([str(content.get("arrangement_style", ""))])
    ]


def _occasion_uses(session: Session, actor: Actor, item: Occasion) -> list[str]:
    count = session.exec(
        select(func.count())
        .select_from(Design)
        .where(Design.tenant_id == actor.tenant_id, col(Design.occasion) == item.name)
    ).one()
    return [f"{count:,} designs"] if count else []


def _latest_styles(session: Session, actor: Actor) -> list[tuple[str, dict[str, Any]]]:
    rows = session.exec(
        select(DesignTemplate.name, DesignTemplateVersion.content)
        .join(
            DesignTemplateVersion,
            (col(DesignTemplateVersion.template_id) == col(DesignTemplate.id))
            & (col(DesignTemplateVersion.number) == col(DesignTemplate.latest_number)),
        )
        .where(
            DesignTemplate.tenant_id == actor.tenant_id,
            DesignTemplate.kind == TemplateKind.STYLE.value,
        )
    ).all()
    return [(name, dict(content)) for name, content in rows]


def _audit(
    session: Session,
    actor: Actor,
    kind: CatalogKind,
    action: str,
    item_id: int | None,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    audit.record(
        session=session,
        actor=actor,
        action=f"catalog.{action}",
        entity_type=kind,
        entity_id=item_id,
        before=before,
        after=after,
    )


# --------------------------------------------------------------------------------------------
# Table edits, all or nothing
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RowChange:
    """An edited row: its id, the version it was loaded at and the fields that changed."""

    item_id: int
    expected_version: int
    values: Mapping[str, Any]


@dataclass(frozen=True)
class RowRemoval:
    item_id: int
    expected_version: int


@dataclass(frozen=True)
class CatalogEdits:
    """What a table edit did: rows added, rows changed, rows removed."""

    added: Sequence[Mapping[str, Any]] = ()
    changed: Sequence[RowChange] = ()
    removed: Sequence[RowRemoval] = ()


@dataclass(frozen=True)
class EditOutcome:
    added: int
    changed: int
    deleted: int
    deactivated: int


def apply_edits(*, session: Session, actor: Actor, kind: str, edits: CatalogEdits) -> EditOutcome:
    """Apply a table's edits together: every row is checked first and any problem refuses them
    all (InvalidInput naming each row), so a half-applied table never happens."""
    require_role(actor, *EDITORS)
    checked = _kind(kind)
    problems = [
        f"New row {n}: {exc}"
        for n, values in enumerate(edits.added, start=1)
        if (exc := _problem(checked, values)) is not None
    ]
    problems += [
        f"Row {change.item_id}: {exc}"
        for change in edits.changed
        if (exc := _change_problem(session, actor, checked, change)) is not None
    ]
    if problems:
        raise InvalidInput(" ".join(problems))
    with session.begin_nested():  # the writes themselves can still fail (stale, duplicate)
        for change in edits.changed:
            update_item(
                session=session,
                actor=actor,
                kind=checked,
                item_id=change.item_id,
                values=change.values,
                expected_version=change.expected_version,
            )
        for values in edits.added:
            create_item(session=session, actor=actor, kind=checked, values=values)
        removed = [
            remove_item(
                session=session,
                actor=actor,
                kind=checked,
                item_id=r.item_id,
                expected_version=r.expected_version,
            )
            for r in edits.removed
        ]
    return EditOutcome(
        len(edits.added), len(edits.changed), removed.count("deleted"), removed.count("deactivated")
    )


def _problem(kind: CatalogKind, values: Mapping[str, Any]) -> str | None:
    try:
        parse_item(kind, values)
    except InvalidInput as exc:
        return str(exc)
    return None


def _change_problem(
    session: Session, actor: Actor, kind: CatalogKind, change: RowChange
) -> str | None:
    try:
        item = _load(session, actor, kind, change.item_id)
    except NotFound as exc:
        return str(exc)
    return _problem(kind, {**_snapshot(kind, item), **change.values})


# --------------------------------------------------------------------------------------------
# A new shop's starting catalog
# --------------------------------------------------------------------------------------------

STARTER_CATALOG: Mapping[CatalogKind, tuple[dict[str, Any], ...]] = {
    "flower": (
        {
            "name": "rose",
            "variety": "Garden",
            "color": "pink",
            "price_tier": "standard",
            "description": "Full, fragrant garden rose.",
        },
        {
            "name": "rose",
            "variety": "Avalanche",
            "color": "white",
            "price_tier": "premium",
            "description": "Large white rose with a long vase life.",
        },
        {
            "name": "peony",
            "variety": "Sarah Bernhardt",
            "color": "blush",
            "season": "spring",
            "price_tier": "premium",
            "description": "Lush double bloom, late spring.",
        },
        {
            "name": "ranunculus",
            "color": "peach",
            "season": "spring",
            "description": "Layered petals; pairs with roses and peonies.",
        },
        {"name": "tulip", "color": "yellow", "season": "spring", "price_tier": "budget"},
        {"name": "sunflower", "color": "yellow", "season": "summer", "price_tier": "budget"},
        {"name": "hydrangea", "color": "blue", "season": "summer"},
        {
            "name": "dahlia",
            "variety": "Café au Lait",
            "color": "blush",
            "season": "autumn",
            "price_tier": "premium",
        },
        {"name": "chrysanthemum", "color": "white", "season": "autumn", "price_tier": "budget"},
        {"name": "calla lily", "color": "white", "price_tier": "premium"},
        {"name": "orchid", "variety": "Phalaenopsis", "color": "purple", "price_tier": "luxury"},
        {"name": "protea", "variety": "King", "color": "pink", "price_tier": "luxury"},
        {"name": "bird of paradise", "color": "orange", "price_tier": "premium"},
        {"name": "anthurium", "color": "red", "price_tier": "premium"},
        {
            "name": "eucalyptus",
            "variety": "Silver dollar",
            "color": "green",
            "price_tier": "budget",
            "description": "Foliage.",
        },
    ),
    "arrangement_type": (
        {"name": "bouquet", "description": "Hand-tied, to carry or put in a vase."},
        {"name": "vase arrangement", "description": "Arranged in a vase, ready to display."},
        {"name": "centerpiece", "description": "Low arrangement for a table."},
        {"name": "flower box", "description": "Blooms packed tight in a hat box."},
        {"name": "wreath", "description": "A ring of flowers and foliage."},
        {"name": "boutonniere", "description": "A single bloom to pin on a lapel."},
    ),
    "occasion": (
        {
            "name": "wedding",
            "typical_flowers": ["rose", "peony", "ranunculus", "calla lily"],
            "typical_colors": ["white", "blush", "ivory"],
            "seasonal_preferences": {"spring": ["peony", "ranunculus"], "summer": ["hydrangea"]},
            "price_sensitivity": "low",
        },
        {
            "name": "anniversary",
            "typical_flowers": ["rose", "orchid"],
            "typical_colors": ["red", "pink"],
            "price_sensitivity": "medium",
        },
        {
            "name": "birthday",
            "typical_flowers": ["tulip", "sunflower", "dahlia"],
            "typical_colors": ["yellow", "orange", "pink"],
            "price_sensitivity": "medium",
        },
        {
            "name": "sympathy",
            "typical_flowers": ["chrysanthemum", "calla lily"],
            "typical_colors": ["white", "green"],
            "price_sensitivity": "medium",
        },
        {
            "name": "get well",
            "typical_flowers": ["sunflower", "tulip"],
            "typical_colors": ["yellow", "orange"],
            "price_sensitivity": "high",
        },
        {
            "name": "corporate event",
            "typical_flowers": ["orchid", "anthurium", "protea"],
            "typical_colors": ["white", "green", "red"],
            "price_sensitivity": "low",
        },
    ),
    "budget_tier": (
        {"name": "Budget", "min_price": 0, "max_price": 35},
        {"name": "Standard", "min_price": 35, "max_price": 75},
        {"name": "Premium", "min_price": 75, "max_price": 150},
        {"name": "Luxury", "min_price": 150, "max_price": None},
    ),
}


def seed_starter_catalog(*, session: Session, actor: Actor) -> int:
    """Give each empty catalog of the shop its starter rows (not audited: part of creating the
    shop); return how many rows were added."""
    require_role(actor, *EDITORS)
    with session.no_autoflush:  # one flush at the end: every new shop runs this
        empty = [
            kind
            for kind, model in MODELS.items()
            if session.exec(select(model.id).where(model.tenant_id == actor.tenant_id)).first()
            is None
        ]
    items: list[SQLModel] = [
        MODELS[kind](tenant_id=actor.tenant_id, **_values(parse_item(kind, row)))
        for kind in empty
        for row in STARTER_CATALOG[kind]
    ]
    session.add_all(items)
    session.flush()
    return len(items)
