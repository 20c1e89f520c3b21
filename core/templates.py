"""Style and prompt templates: immutable versions, diffs, the production label, previews.

A template (DesignTemplate) is a style (color palette, flowers, mood, arrangement style, flair
elements, example images) or a prompt (a `{name}` text with its declared variables). Every save
writes a new DesignTemplateVersion with a note; versions are never changed. One version may be
labelled production: florists draft, admins promote, and a rollback moves the label back. The
generator renders the production version (`render_prompt`); the studio previews any version
with values picked from the chosen style and the catalog (`preview`). Prompt text goes through
core.placeholders only: a placeholder is a declared name, and nothing is ever `str.format`ted.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from core import audit, placeholders
from core.access import Actor, Role, require_role
from core.catalog import CatalogLists, catalog_lists
from core.errors import InvalidInput, NotFound, StaleEdit
from core.placeholders import Variable, VariableSource, VariableType
from core.studio import EDITORS, READERS, input_error, label, text_list, url_list, words
from db.models import DesignTemplate, DesignTemplateVersion, TemplateKind, utcnow

if TYPE_CHECKING:
    from core.responses import Suggestion

ENTITY = "design_template"
MAX_NOTE = 500
LIST_PICKS = 2  # a list variable picked for a preview gets this many items ("a and b")

# The variables a prompt may use without declaring its own (and what `trellis prompt check`
# allows): where each takes its value from when none is given.
STANDARD_VARIABLES: tuple[Variable, ...] = (
    Variable("style", VariableType.TEXT, VariableSource.STYLE_PARAMETER, parameter="mood"),
    Variable("mood", VariableType.TEXT, VariableSource.STYLE_PARAMETER, parameter="mood"),
    Variable("flowers", VariableType.LIST, VariableSource.STYLE_PARAMETER, parameter="flowers"),
    Variable(
        "colors", VariableType.LIST, VariableSource.STYLE_PARAMETER, parameter="color_palette"
    ),
    Variable(
        "arrangement_style",
        VariableType.TEXT,
        VariableSource.STYLE_PARAMETER,
        parameter="arrangement_style",
    ),
    Variable(
        "flair", VariableType.LIST, VariableSource.STYLE_PARAMETER, parameter="flair_elements"
    ),
    Variable("occasion", VariableType.TEXT, VariableSource.CATALOG, catalog="occasions"),
    Variable("arrangement", VariableType.TEXT, VariableSource.CATALOG, catalog="arrangement_types"),
    Variable("budget", VariableType.TEXT, VariableSource.CATALOG, catalog="budget_tiers"),
    Variable("container", VariableType.TEXT),
    Variable("recipient", VariableType.TEXT),
    Variable("season", VariableType.TEXT),
)
STANDARD_NAMES: tuple[str, ...] = tuple(v.name for v in STANDARD_VARIABLES)


def standard_variable(name: str) -> Variable | None:
    return next((v for v in STANDARD_VARIABLES if v.name == name), None)


# --------------------------------------------------------------------------------------------
# Content
# --------------------------------------------------------------------------------------------


class StyleContent(BaseModel):
    """A style's parameters (a version's content for kind 'style')."""

    model_config = ConfigDict(extra="forbid")

    color_palette: list[str]
    flowers: list[str]
    mood: str
    arrangement_style: str
    flair_elements: list[str] = []
    example_images: list[str] = []

    @field_validator("color_palette", "flowers", "flair_elements", mode="before")
    @classmethod
    def _lists(cls, value: object) -> list[str]:
        return text_list(value, field="the list", max_items=12)

    @field_validator("color_palette", "flowers")
    @classmethod
    def _not_empty(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("name at least one")
        return value

    @field_validator("mood")
    @classmethod
    def _mood(cls, value: object) -> str:
        return label(value, field="the mood", max_length=60)

    @field_validator("arrangement_style")
    @classmethod
    def _arrangement(cls, value: object) -> str:
        return label(value, field="the arrangement style", max_length=200)

    @field_validator("example_images", mode="before")
    @classmethod
    def _images(cls, value: object) -> list[str]:
        return url_list(value)


def parse_style(content: Mapping[str, Any]) -> dict[str, Any]:
    """A style's content, validated and normalised (InvalidInput naming each problem)."""
    try:
        return StyleContent.model_validate(dict(content)).model_dump()
    except ValidationError as exc:
        raise input_error(exc) from exc


def parse_prompt(content: Mapping[str, Any]) -> dict[str, Any]:
    """A prompt's content: its text and declared variables. An unknown or malformed
    placeholder raises placeholders.TemplateError (an InvalidInput) with every position."""
    unknown = sorted(set(content) - {"text", "variables"})
    if unknown:
        raise InvalidInput(f"A prompt template has a text and variables, not {', '.join(unknown)}.")
    text = content.get("text")
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("A prompt template needs its text.")
    declared = placeholders.parse_variables(content.get("variables", []))
    placeholders.parse(text, [v.name for v in declared])
    return {"text": text, "variables": [v.to_dict() for v in declared]}


def with_standard_variables(text: str, variables: Sequence[Variable] = ()) -> list[Variable]:
    """The declared variables plus the standard ones the text uses and does not declare: what
    a page offers when a florist writes `{occasion}` without declaring it first."""
    declared = {v.name: v for v in variables}
    for name in placeholders.parse(text, [*declared, *STANDARD_NAMES]).names:
        if name not in declared:
            found = standard_variable(name)
            assert found is not None
            declared[name] = found
    return list(declared.values())


def parse_content(kind: TemplateKind | str, content: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a version's content for its kind."""
    if not isinstance(content, Mapping):
        raise InvalidInput("A template's content must be an object.")
    if _kind(kind) is TemplateKind.RESPONSE:
        from core.responses import parse_response  # response templates: core/responses.py

        return parse_response(content)
    return parse_style(content) if _kind(kind) is TemplateKind.STYLE else parse_prompt(content)


def _kind(kind: TemplateKind | str) -> TemplateKind:
    try:
        return TemplateKind(kind)
    except ValueError:
        raise InvalidInput(
            f"{kind!r} is not a template kind; use style, prompt or response."
        ) from None


def content_lines(kind: TemplateKind | str, content: Mapping[str, Any]) -> list[str]:
    """A stable line rendering of a version's content, for diffs: one line per value."""
    if _kind(kind) is TemplateKind.RESPONSE:
        from core.responses import content_lines as response_lines

        return response_lines(content)
    if _kind(kind) is TemplateKind.PROMPT:
        lines = ["text:", *(f"  {line}" for line in str(content.get("text", "")).splitlines())]
        lines.append("variables:")
        for var in content.get("variables", []):
            where = var.get("catalog") or var.get("parameter") or ""
            source = f"{var.get('source')}" + (f" {where}" if where else "")
            lines.append(f"  - {var.get('name')} ({var.get('type')}, {source})")
        return lines
    lines = []
    for name in StyleContent.model_fields:
        value = content.get(name)
        if isinstance(value, list):
            lines.append(f"{name}:")
            lines.extend(f"  - {item}" for item in value)
        else:
            lines.append(f"{name}: {'' if value is None else value}")
    return lines


# --------------------------------------------------------------------------------------------
# Views
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TemplateView:
    """A template with its latest content; `version` guards edits of it."""

    id: int
    kind: TemplateKind
    name: str
    description: str
    active: bool
    latest_number: int
    production_number: int | None
    usage_count: int
    adopted_from_library: bool
    content: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    version: int

    @property
    def has_draft(self) -> bool:
        """Whether the latest version is not the production one."""
        return self.production_number != self.latest_number

    @classmethod
    def of(cls, template: DesignTemplate, content: dict[str, Any]) -> TemplateView:
        assert template.id is not None
        return cls(
            id=template.id,
            kind=TemplateKind(template.kind),
            name=template.name,
            description=template.description,
            active=template.active,
            latest_number=template.latest_number,
            production_number=template.production_number,
            usage_count=template.usage_count,
            adopted_from_library=template.library_item_id is not None,
            content=content,
            created_at=template.created_at,
            updated_at=template.updated_at,
            version=template.version,
        )


@dataclass(frozen=True)
class VersionView:
    id: int
    template_id: int
    number: int
    content: dict[str, Any]
    note: str
    author_name: str
    created_at: datetime
    is_production: bool

    @classmethod
    def of(cls, row: DesignTemplateVersion, production: int | None) -> VersionView:
        assert row.id is not None
        return cls(
            row.id,
            row.template_id,
            row.number,
            row.content,
            row.note,
            row.author_name,
            row.created_at,
            row.number == production,
        )


@dataclass(frozen=True)
class VersionDiff:
    old: int
    new: int
    lines: list[str]  # a unified diff ("--- version 1", "+++ version 2", "@@ …", "-…", "+…")

    @property
    def changed(self) -> bool:
        return bool(self.lines)


# --------------------------------------------------------------------------------------------
# Reading (every role)
# --------------------------------------------------------------------------------------------


def _missing(template_id: int) -> NotFound:
    return NotFound(f"There is no template with id {template_id}; it may have been deleted.")


def _load(session: Session, actor: Actor, template_id: int) -> DesignTemplate:
    template = session.exec(
        select(DesignTemplate).where(
            DesignTemplate.tenant_id == actor.tenant_id, DesignTemplate.id == template_id
        )
    ).first()
    if template is None:
        raise _missing(template_id)
    return template


def _version_row(
    session: Session, actor: Actor, template: DesignTemplate, number: int
) -> DesignTemplateVersion:
    row = session.exec(
        select(DesignTemplateVersion).where(
            DesignTemplateVersion.tenant_id == actor.tenant_id,
            DesignTemplateVersion.template_id == template.id,
            DesignTemplateVersion.number == number,
        )
    ).first()
    if row is None:
        raise NotFound(f"{template.name!r} has no version {number}.")
    return row


def _view(session: Session, actor: Actor, template: DesignTemplate) -> TemplateView:
    latest = _version_row(session, actor, template, template.latest_number)
    return TemplateView.of(template, latest.content)


def list_templates(
    *,
    session: Session,
    actor: Actor,
    kind: TemplateKind | str,
    include_inactive: bool = False,
) -> list[TemplateView]:
    """The shop's styles or prompt templates by name, each with its latest content."""
    require_role(actor, *READERS)
    query = (
        select(DesignTemplate, DesignTemplateVersion.content)
        .join(
            DesignTemplateVersion,
            (col(DesignTemplateVersion.tenant_id) == col(DesignTemplate.tenant_id))
            & (col(DesignTemplateVersion.template_id) == col(DesignTemplate.id))
            & (col(DesignTemplateVersion.number) == col(DesignTemplate.latest_number)),
        )
        .where(DesignTemplate.tenant_id == actor.tenant_id, DesignTemplate.kind == _kind(kind))
    )
    if not include_inactive:
        query = query.where(col(DesignTemplate.active))
    rows = session.exec(query.order_by(col(DesignTemplate.name))).all()
    return [TemplateView.of(template, dict(content)) for template, content in rows]


def get_template(*, session: Session, actor: Actor, template_id: int) -> TemplateView:
    """One template with its latest content; NotFound when it is not the shop's."""
    require_role(actor, *READERS)
    return _view(session, actor, _load(session, actor, template_id))


def find_template(
    *, session: Session, actor: Actor, kind: TemplateKind | str, name: str
) -> TemplateView:
    """The shop's template of this kind called `name` (any case)."""
    require_role(actor, *READERS)
    return _view(session, actor, _by_name(session, actor, _kind(kind), name))


def _by_name(session: Session, actor: Actor, kind: TemplateKind, name: str) -> DesignTemplate:
    wanted = " ".join(name.split()).casefold()
    rows = session.exec(
        select(DesignTemplate).where(
            DesignTemplate.tenant_id == actor.tenant_id, DesignTemplate.kind == kind
        )
    ).all()
    found = next((t for t in rows if t.name.casefold() == wanted), None)
    if found is None:
        raise NotFound(f"There is no {_noun(kind)} named {name!r} in this shop.")
    return found


def list_versions(*, session: Session, actor: Actor, template_id: int) -> list[VersionView]:
    """Every version of a template, newest first."""
    require_role(actor, *READERS)
    template = _load(session, actor, template_id)
    rows = session.exec(
        select(DesignTemplateVersion)
        .where(
            DesignTemplateVersion.tenant_id == actor.tenant_id,
            DesignTemplateVersion.template_id == template_id,
        )
        .order_by(col(DesignTemplateVersion.number).desc())
    ).all()
    return [VersionView.of(row, template.production_number) for row in rows]


def get_version(*, session: Session, actor: Actor, template_id: int, number: int) -> VersionView:
    """One version of a template."""
    require_role(actor, *READERS)
    template = _load(session, actor, template_id)
    return VersionView.of(
        _version_row(session, actor, template, number), template.production_number
    )


def diff_versions(
    *, session: Session, actor: Actor, template_id: int, old: int, new: int
) -> VersionDiff:
    """What changed from version `old` to version `new`, as a unified diff of their lines."""
    require_role(actor, *READERS)
    template = _load(session, actor, template_id)
    before = _version_row(session, actor, template, old).content
    after = _version_row(session, actor, template, new).content
    lines = difflib.unified_diff(
        content_lines(template.kind, before),
        content_lines(template.kind, after),
        fromfile=f"version {old}",
        tofile=f"version {new}",
        lineterm="",
    )
    return VersionDiff(old, new, list(lines))


# --------------------------------------------------------------------------------------------
# Changing (florists and admins draft; admins promote)
# --------------------------------------------------------------------------------------------


def _note(note: str) -> str:
    note = note.strip()
    if len(note) > MAX_NOTE:
        raise InvalidInput(f"A version note has at most {MAX_NOTE} characters.")
    return note


def _name(name: str) -> str:
    try:
        return label(name, field="A template's name", min_length=2)
    except ValueError as exc:
        raise InvalidInput(f"{exc}.") from None


def _description(description: str) -> str:
    description = description.strip()
    if len(description) > 500:
        raise InvalidInput("A template's description has at most 500 characters.")
    return description


def _noun(kind: TemplateKind) -> str:
    return "style" if kind is TemplateKind.STYLE else f"{kind.value} template"


def _taken(kind: TemplateKind, name: str) -> InvalidInput:
    return InvalidInput(
        f"Your shop already has a {_noun(kind)} named {name!r}; choose another name."
    )


def _check_name_free(
    session: Session, actor: Actor, kind: TemplateKind, name: str, own_id: int | None = None
) -> None:
    try:
        found = _by_name(session, actor, kind, name)
    except NotFound:
        return
    if found.id != own_id:
        raise _taken(kind, name)


def create_template(
    *,
    session: Session,
    actor: Actor,
    kind: TemplateKind | str,
    name: str,
    content: Mapping[str, Any],
    description: str = "",
    note: str = "",
) -> TemplateView:
    """A new style or prompt template with its version 1, not yet production (florist, admin)."""
    require_role(actor, *EDITORS)
    template = new_template(
        session=session,
        actor=actor,
        kind=_kind(kind),
        name=name,
        content=content,
        description=description,
        note=note or "First version",
    )
    _audit(session, actor, "template.create", template, after=_audited(template, content))
    return get_template(session=session, actor=actor, template_id=template.id or 0)


def new_template(
    *,
    session: Session,
    actor: Actor,
    kind: TemplateKind,
    name: str,
    content: Mapping[str, Any],
    description: str = "",
    note: str = "",
    production: bool = False,
    library_item_id: int | None = None,
) -> DesignTemplate:
    """Write a template and its version 1 (for create_template, the defaults and adoption)."""
    checked = parse_content(kind, content)
    name, note, description = _name(name), _note(note), _description(description)
    _check_name_free(session, actor, kind, name)
    template = DesignTemplate(
        tenant_id=actor.tenant_id,
        kind=kind.value,
        name=name,
        description=description,
        latest_number=1,
        production_number=1 if production else None,
        library_item_id=library_item_id,
    )
    try:
        with session.begin_nested():
            session.add(template)
            session.flush()
    except IntegrityError as exc:
        raise _taken(kind, name) from exc
    session.add(_version(actor, template, 1, checked, note))
    session.flush()
    _reindex(session, actor, template)
    return template


def _version(
    actor: Actor, template: DesignTemplate, number: int, content: dict[str, Any], note: str
) -> DesignTemplateVersion:
    assert template.id is not None
    return DesignTemplateVersion(
        tenant_id=actor.tenant_id,
        template_id=template.id,
        number=number,
        content=content,
        note=note,
        author_id=actor.user_id,
        author_name=actor.label,
    )


def _audited(template: DesignTemplate, content: Mapping[str, Any]) -> dict[str, Any]:
    return {"kind": template.kind, "name": template.name, "content": dict(content)}


def save_version(
    *,
    session: Session,
    actor: Actor,
    template_id: int,
    content: Mapping[str, Any],
    note: str,
    expected_version: int,
) -> VersionView:
    """Save new content as the template's next version, with a note (florist, admin). Refuses
    a stale edit (someone saved since `expected_version`) and content equal to the latest."""
    require_role(actor, *EDITORS)
    template = _load(session, actor, template_id)
    checked, note = parse_content(template.kind, content), _note(note)
    if template.version != expected_version:
        raise _stale(template)
    latest = _version_row(session, actor, template, template.latest_number)
    if latest.content == checked:
        raise InvalidInput(
            f"This is the same as version {latest.number}; there is nothing to save."
        )
    number = template.latest_number + 1
    _bump(session, template, latest_number=number)
    row = _version(actor, template, number, checked, note)
    session.add(row)
    session.flush()
    _reindex(session, actor, template)
    _audit(
        session,
        actor,
        "template.save",
        template,
        after={"number": number, "note": note},
        reason=note,
    )
    return VersionView.of(row, template.production_number)


def update_details(
    *,
    session: Session,
    actor: Actor,
    template_id: int,
    expected_version: int,
    name: str | None = None,
    description: str | None = None,
    active: bool | None = None,
) -> TemplateView:
    """Rename, describe, or (de)activate a template (florist, admin; not a new version)."""
    require_role(actor, *EDITORS)
    template = _load(session, actor, template_id)
    if template.version != expected_version:
        raise _stale(template)
    wanted: dict[str, Any] = {}
    if name is not None:
        wanted["name"] = _name(name)
        _check_name_free(session, actor, TemplateKind(template.kind), wanted["name"], template.id)
    if description is not None:
        wanted["description"] = _description(description)
    if active is not None:
        wanted["active"] = active
    changed = {k: v for k, v in wanted.items() if getattr(template, k) != v}
    if changed:
        before = {k: getattr(template, k) for k in changed}
        _bump(session, template, **changed)
        _audit(session, actor, "template.update", template, before=before, after=changed)
        _reindex(session, actor, template)
    return _view(session, actor, template)


def _bump(session: Session, template: DesignTemplate, **changes: Any) -> None:
    """One conditional UPDATE: a concurrent edit that committed first makes it match no row."""
    statement = (
        update(DesignTemplate)
        .where(
            col(DesignTemplate.id) == template.id,
            col(DesignTemplate.version) == template.version,
        )
        .values(**changes, version=template.version + 1, updated_at=utcnow())
    )
    try:
        with session.begin_nested():
            matched = session.exec(statement).rowcount  # type: ignore[call-overload]
    except IntegrityError as exc:
        raise _taken(TemplateKind(template.kind), str(changes.get("name"))) from exc
    if matched != 1:
        raise _stale(template)
    session.refresh(template)


def _stale(template: DesignTemplate) -> StaleEdit:
    return StaleEdit(
        f"{template.name!r} was changed by someone else since you loaded it; "
        "load it again to see the current version.",
        current=template.latest_number,
    )


def promote(
    *, session: Session, actor: Actor, template_id: int, number: int, reason: str | None = None
) -> TemplateView:
    """Label version `number` production (admin; audited)."""
    require_role(actor, Role.ADMIN)
    template = _load(session, actor, template_id)
    _version_row(session, actor, template, number)  # it must exist
    if template.production_number == number:
        return _view(session, actor, template)
    _move_label(session, actor, template, number, "template.promote", reason)
    return _view(session, actor, template)


def rollback(
    *,
    session: Session,
    actor: Actor,
    template_id: int,
    to_number: int | None = None,
    reason: str | None = None,
) -> TemplateView:
    """Move the production label back: to `to_number`, or where it was before (admin)."""
    require_role(actor, Role.ADMIN)
    template = _load(session, actor, template_id)
    target = to_number if to_number is not None else template.previous_production_number
    if target is None:
        raise InvalidInput(f"{template.name!r} has no earlier production version to roll back to.")
    if target == template.production_number:
        raise InvalidInput(f"Version {target} of {template.name!r} is production already.")
    _version_row(session, actor, template, target)
    _move_label(session, actor, template, target, "template.rollback", reason or "rollback")
    return _view(session, actor, template)


def _move_label(
    session: Session,
    actor: Actor,
    template: DesignTemplate,
    number: int,
    action: str,
    reason: str | None,
) -> None:
    """Move the label with a conditional UPDATE: two admins moving it at once cannot both
    win from the same starting point."""
    current = template.production_number
    where_current = (
        col(DesignTemplate.production_number) == current
        if current is not None
        else col(DesignTemplate.production_number).is_(None)
    )
    statement = (
        update(DesignTemplate)
        .where(col(DesignTemplate.id) == template.id, where_current)
        .values(production_number=number, previous_production_number=current, updated_at=utcnow())
    )
    if session.exec(statement).rowcount != 1:  # type: ignore[call-overload]
        raise StaleEdit(f"Another admin moved the production label of {template.name!r} just now.")
    session.refresh(template)
    _audit(
        session,
        actor,
        action,
        template,
        before={"production": current},
        after={"production": number},
        reason=reason,
    )


def _audit(
    session: Session,
    actor: Actor,
    action: str,
    template: DesignTemplate,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    reason: str | None = None,
) -> None:
    audit.record(
        session=session,
        actor=actor,
        action=action,
        entity_type=f"{template.kind}_template",
        entity_id=template.id,
        before=before,
        after=after,
        reason=reason,
    )


# --------------------------------------------------------------------------------------------
# Rendering: previews (any version, values picked) and the generator's prompt (production)
# --------------------------------------------------------------------------------------------


class MissingValues(InvalidInput):
    """Rendering for the generator found variables that no value and no source could fill."""

    def __init__(self, template: str, names: Sequence[str]) -> None:
        self.names = tuple(names)
        shown = ", ".join("{" + n + "}" for n in self.names)
        super().__init__(
            f"{template!r} needs a value for {shown}, and no style or catalog has one."
        )


@dataclass(frozen=True)
class Preview:
    """A rendered prompt and where each of its values came from."""

    text: str
    template_id: int
    template_name: str
    number: int
    style_name: str | None
    values: dict[str, str] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)  # given | style | catalog
    missing: tuple[str, ...] = ()  # free-text variables nobody gave (kept as {name})


def preview(
    *,
    session: Session,
    actor: Actor,
    template_id: int,
    values: Mapping[str, str] | None = None,
    style_id: int | None = None,
    number: int | None = None,
) -> Preview:
    """Render a version (default: the latest) of a prompt template: given values first, the
    others picked from the style (default: the shop's most used) and the catalog entries that
    suit it best. Free-text variables nobody gave stay as `{name}` and are listed in missing."""
    require_role(actor, *READERS)
    template = _prompt(session, actor, template_id)
    version = _version_row(session, actor, template, number or template.latest_number)
    style = _style_for(session, actor, style_id, production=False)
    return _render(session, actor, template, version, style, values or {}, strict=False)


def render_prompt(
    *,
    session: Session,
    actor: Actor,
    template: str,
    values: Mapping[str, str] | None = None,
    style: str | None = None,
    number: int | None = None,
) -> Preview:
    """The generator's prompt: the production version (or `number`) of the prompt template
    called `template`, with the production version of the style; a value nobody gave and no
    source can supply refuses it (MissingValues naming them)."""
    require_role(actor, *READERS)
    found = _by_name(session, actor, TemplateKind.PROMPT, template)
    chosen = number or found.production_number
    if chosen is None:
        raise InvalidInput(
            f"{found.name!r} has no production version yet: an admin promotes one "
            "(or name a version)."
        )
    version = _version_row(session, actor, found, chosen)
    style_row = _by_name(session, actor, TemplateKind.STYLE, style).id if style else None
    chosen_style = _style_for(session, actor, style_row, production=True)
    return _render(session, actor, found, version, chosen_style, values or {}, strict=True)


def _prompt(session: Session, actor: Actor, template_id: int) -> DesignTemplate:
    template = _load(session, actor, template_id)
    if template.kind != TemplateKind.PROMPT:
        raise InvalidInput(f"{template.name!r} is a style; only prompt templates render.")
    return template


@dataclass(frozen=True)
class _Style:
    name: str
    content: dict[str, Any]


def _style_for(
    session: Session, actor: Actor, style_id: int | None, *, production: bool
) -> _Style | None:
    """The chosen style (its production version, or its latest for a preview); without a
    choice, the shop's most used active style."""
    if style_id is not None:
        template = _load(session, actor, style_id)
        if template.kind != TemplateKind.STYLE:
            raise InvalidInput(f"{template.name!r} is a prompt template, not a style.")
    else:
        found = session.exec(
            select(DesignTemplate)
            .where(
                DesignTemplate.tenant_id == actor.tenant_id,
                DesignTemplate.kind == TemplateKind.STYLE,
                col(DesignTemplate.active),
            )
            .order_by(col(DesignTemplate.usage_count).desc(), col(DesignTemplate.id))
        ).first()
        if found is None:
            return None
        template = found
    number = template.production_number if production else template.latest_number
    if number is None:
        if style_id is None:
            return None
        raise InvalidInput(f"The style {template.name!r} has no production version yet.")
    return _Style(template.name, _version_row(session, actor, template, number).content)


def _render(
    session: Session,
    actor: Actor,
    template: DesignTemplate,
    version: DesignTemplateVersion,
    style: _Style | None,
    given: Mapping[str, str],
    *,
    strict: bool,
) -> Preview:
    declared = placeholders.parse_variables(version.content["variables"])
    unknown = sorted(set(given) - {v.name for v in declared})
    if unknown:
        raise InvalidInput(
            f"{template.name!r} has no variable {', '.join(unknown)}; "
            f"it declares {', '.join(v.name for v in declared) or 'none'}."
        )
    parsed, picked, origins, missing = _fill(
        session, actor, version.content["text"], declared, given, style.content if style else None
    )
    if strict and missing:
        raise MissingValues(template.name, missing)
    text = placeholders.render(parsed, picked, missing="keep")
    assert template.id is not None
    return Preview(
        text=text,
        template_id=template.id,
        template_name=template.name,
        number=version.number,
        style_name=style.name if style else None,
        values={
            name: placeholders.join_list(v) if isinstance(v, list) else v
            for name, v in picked.items()
        },
        origins=origins,
        missing=missing,
    )


def _fill(
    session: Session,
    actor: Actor,
    text: str,
    declared: Sequence[Variable],
    given: Mapping[str, str],
    style: Mapping[str, Any] | None,
) -> tuple[placeholders.Template, dict[str, str | list[str]], dict[str, str], tuple[str, ...]]:
    """The parsed text, a value for each variable that can get one and where it came from,
    and the placeholders left without a value."""
    picked, origins = pick_values(
        declared, given, style, catalog_lists(session=session, actor=actor)
    )
    parsed = placeholders.parse(text, [v.name for v in declared])
    return parsed, picked, origins, tuple(n for n in parsed.names if n not in picked)


@dataclass(frozen=True)
class DraftPreview:
    """Prompt text not saved yet, rendered (what the editor shows before Save)."""

    text: str
    values: dict[str, str]
    origins: dict[str, str]
    missing: tuple[str, ...]
    used: tuple[str, ...]  # the variables the text uses, in order of first use


def preview_draft(
    *,
    session: Session,
    actor: Actor,
    text: str,
    variables: Sequence[Mapping[str, Any]] = (),
    values: Mapping[str, str] | None = None,
    style: Mapping[str, Any] | None = None,
) -> DraftPreview:
    """Render prompt text before it is saved, as preview() renders a version: its declared
    variables plus the standard ones it uses, values given first, the others picked from
    `style` (a style's parameters) and the catalog. Nothing is written (every role)."""
    require_role(actor, *READERS)
    declared = with_standard_variables(text, placeholders.parse_variables(list(variables)))
    names = {v.name for v in declared}
    wanted = {k: v for k, v in (values or {}).items() if k in names and v.strip()}
    parsed, picked, origins, missing = _fill(session, actor, text, declared, wanted, style)
    return DraftPreview(
        text=placeholders.render(parsed, picked, missing="keep"),
        values={
            n: placeholders.join_list(v) if isinstance(v, list) else v for n, v in picked.items()
        },
        origins=origins,
        missing=missing,
        used=parsed.names,
    )


def pick_values(
    variables: Sequence[Variable],
    given: Mapping[str, str],
    style: Mapping[str, Any] | None,
    catalog: CatalogLists,
) -> tuple[dict[str, str | list[str]], dict[str, str]]:
    """A value for each variable that can get one: as given (a list variable's given text is
    split at commas), else from the style's parameter, else the catalog entries that share the
    most words with the style (ties: catalog order). Returns the values and their origins."""
    values: dict[str, str | list[str]] = {}
    origins: dict[str, str] = {}
    style_words = words(_style_texts(style)) if style else set()
    for var in variables:
        if var.name in given:
            values[var.name] = _given(var, given[var.name])
            origins[var.name] = "given"
        elif var.source is VariableSource.STYLE_PARAMETER and style and var.parameter:
            value = style.get(var.parameter)
            if value:
                values[var.name] = _shaped(var, value)
                origins[var.name] = "style"
        elif var.source is VariableSource.CATALOG and var.catalog:
            entries = _best(catalog, var.catalog, style_words)
            if entries:
                values[var.name] = _shaped(var, entries)
                origins[var.name] = "catalog"
    return values, origins


def _given(var: Variable, value: str) -> str | list[str]:
    if var.type is VariableType.LIST and "," in value:
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _shaped(var: Variable, value: object) -> str | list[str]:
    items = [str(v) for v in value] if isinstance(value, list) else [str(value)]
    if var.type is VariableType.LIST:
        return items[:LIST_PICKS]
    return items[0]


def _style_texts(style: Mapping[str, Any]) -> list[str]:
    texts: list[str] = []
    for name in ("color_palette", "flowers", "mood", "arrangement_style", "flair_elements"):
        value = style.get(name)
        texts.extend(value if isinstance(value, list) else [str(value or "")])
    return texts


def _best(catalog: CatalogLists, name: str, style_words: set[str]) -> list[str]:
    entries = catalog.values(name)
    about = catalog.about.get(name, {})
    order = {entry: i for i, entry in enumerate(entries)}
    return sorted(entries, key=lambda e: (-len(about.get(e, set()) & style_words), order[e]))


def variable_choices(
    *, session: Session, actor: Actor, template_id: int, style_id: int | None = None
) -> dict[str, list[str]]:
    """For each declared variable of the latest version, the values its source offers (the
    style's parameter items, or the catalog list, best suited first); free text offers none."""
    require_role(actor, *READERS)
    template = _prompt(session, actor, template_id)
    version = _version_row(session, actor, template, template.latest_number)
    style = _style_for(session, actor, style_id, production=False)
    lists = catalog_lists(session=session, actor=actor)
    style_words = words(_style_texts(style.content)) if style else set()
    choices: dict[str, list[str]] = {}
    for var in placeholders.parse_variables(version.content["variables"]):
        options: list[str] = []
        if var.source is VariableSource.STYLE_PARAMETER and style and var.parameter:
            value = style.content.get(var.parameter) or []
            options = [str(v) for v in value] if isinstance(value, list) else [str(value)]
        elif var.source is VariableSource.CATALOG and var.catalog:
            options = _best(lists, var.catalog, style_words)
        choices[var.name] = options
    return choices


# --------------------------------------------------------------------------------------------
# A new shop's starting styles and prompt templates
# --------------------------------------------------------------------------------------------


def _var(name: str) -> dict[str, str]:
    found = standard_variable(name)
    assert found is not None
    return found.to_dict()


DEFAULT_STYLES: tuple[dict[str, Any], ...] = (
    {
        "name": "Romantic Classic",
        "description": "Soft, lush and timeless: garden roses and peonies in blush tones.",
        "content": {
            "color_palette": ["pink", "white", "blush"],
            "flowers": ["roses", "peonies", "ranunculus", "sweet peas"],
            "mood": "romantic",
            "arrangement_style": "soft, rounded hand-tied bouquet",
            "flair_elements": ["satin ribbon", "pearl pins", "trailing greenery"],
            "example_images": [],
        },
    },
    {
        "name": "Modern Minimalist",
        "description": "Few stems, strong lines and plenty of space.",
        "content": {
            "color_palette": ["white", "green", "black"],
            "flowers": ["calla lilies", "orchids", "anthuriums"],
            "mood": "modern",
            "arrangement_style": "sparse, architectural arrangement with negative space",
            "flair_elements": ["geometric vase", "single monstera leaf"],
            "example_images": [],
        },
    },
    {
        "name": "Rustic Natural",
        "description": "Just-picked and relaxed, with seasonal wildflowers.",
        "content": {
            "color_palette": ["cream", "sage green", "burnt orange"],
            "flowers": ["sunflowers", "wildflowers", "eucalyptus", "wheat"],
            "mood": "rustic",
            "arrangement_style": "loose, garden-gathered bouquet",
            "flair_elements": ["twine", "burlap wrap", "mason jar"],
            "example_images": [],
        },
    },
    {
        "name": "Elegant Formal",
        "description": "Tall, symmetrical and refined for grand occasions.",
        "content": {
            "color_palette": ["ivory", "gold", "burgundy"],
            "flowers": ["roses", "orchids", "hydrangeas", "calla lilies"],
            "mood": "elegant",
            "arrangement_style": "tall, symmetrical formal arrangement",
            "flair_elements": ["gold accents", "crystal vase", "velvet ribbon"],
            "example_images": [],
        },
    },
    {
        "name": "Tropical Vibrant",
        "description": "Bold color and big leaves from warmer places.",
        "content": {
            "color_palette": ["orange", "hot pink", "yellow"],
            "flowers": ["birds of paradise", "anthuriums", "proteas", "heliconias"],
            "mood": "tropical",
            "arrangement_style": "bold, layered arrangement with large leaves",
            "flair_elements": ["monstera leaves", "palm fronds", "bamboo accents"],
            "example_images": [],
        },
    },
)

DEFAULT_PROMPTS: tuple[dict[str, Any], ...] = (
    {
        "name": "Basic Bouquet",
        "description": "A bouquet in a style, for an occasion.",
        "content": {
            "text": "Create a beautiful {style} bouquet with {flowers} in {colors} colors "
            "for {occasion}",
            "variables": [_var(n) for n in ("style", "flowers", "colors", "occasion")],
        },
    },
    {
        "name": "Modern Arrangement",
        "description": "A contemporary arrangement in a container you name.",
        "content": {
            "text": "A modern {arrangement} in a {container}, featuring {flowers} in a {colors} "
            "palette, with clean lines and negative space, for {occasion}",
            "variables": [
                _var("arrangement"),
                _var("container"),
                Variable(
                    "flowers", VariableType.LIST, VariableSource.CATALOG, catalog="flowers"
                ).to_dict(),
                Variable(
                    "colors", VariableType.LIST, VariableSource.CATALOG, catalog="colors"
                ).to_dict(),
                _var("occasion"),
            ],
        },
    },
    {
        "name": "Style Specific",
        "description": "Everything a style says: mood, arrangement, flowers, colors and flair.",
        "content": {
            "text": "A {style} floral design: {arrangement_style} of {flowers} in {colors}, "
            "finished with {flair}, for {occasion}",
            "variables": [
                _var(n)
                for n in ("style", "arrangement_style", "flowers", "colors", "flair", "occasion")
            ],
        },
    },
)


def seed_default_templates(*, session: Session, actor: Actor) -> int:
    """Give the shop the default styles and prompt templates it lacks (by name), each with a
    production version 1; not audited (part of creating the shop). Returns how many."""
    require_role(actor, *EDITORS)
    # In bulk (one read, two writes): every new shop runs this.
    have = {
        (kind, name.casefold())
        for kind, name in session.exec(
            select(DesignTemplate.kind, DesignTemplate.name).where(
                DesignTemplate.tenant_id == actor.tenant_id
            )
        ).all()
    }
    wanted = [
        (kind, item)
        for kind, defaults in (
            (TemplateKind.STYLE, DEFAULT_STYLES),
            (TemplateKind.PROMPT, DEFAULT_PROMPTS),
        )
        for item in defaults
        if (kind.value, item["name"].casefold()) not in have
    ]
    made = [
        DesignTemplate(
            tenant_id=actor.tenant_id,
            kind=kind.value,
            name=item["name"],
            description=item["description"],
            production_number=1,
        )
        for kind, item in wanted
    ]
    session.add_all(made)
    session.flush()
    session.add_all(
        _version(actor, template, 1, parse_content(kind, item["content"]), "Starting template")
        for template, (kind, item) in zip(made, wanted, strict=True)
    )
    session.flush()
    return len(made)


# --------------------------------------------------------------------------------------------
# Response templates (core/responses.py): their search rows follow every write above, and
# suggestions for a customer message
# --------------------------------------------------------------------------------------------


def _reindex(session: Session, actor: Actor, template: DesignTemplate) -> None:
    if template.kind == TemplateKind.RESPONSE:
        from core.responses import reindex

        reindex(session=session, actor=actor, template=template)


def suggest(*, session: Session, actor: Actor, text: str, k: int = 3) -> list[Suggestion]:
    """The response templates that fit a customer message, best first (core.responses.suggest)."""
    from core.responses import suggest as suggest_responses

    return suggest_responses(session=session, actor=actor, text=text, k=k)
