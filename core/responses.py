"""Response templates: typed variables, triggers, full-text search and suggestions.

A response template is a design template of kind 'response': core.templates keeps its
immutable versions, production label (florists draft, admins promote), diffs and audit, exactly
as for prompts. A version's content is a category, a `{name}` text, typed variables (text,
select with options, date, number; required or not; a default) and triggers (phrases and
intents). Saving checks that every placeholder is declared, every required variable is used
and every select has options; rendering checks each value against its variable's type and
names every problem. The text goes through core.placeholders, the studio's one renderer: user
text is never given to `str.format`.

Search reads response_search, one row per template with its latest version's text: PostgreSQL
ranks a weighted tsvector (GIN index) and highlights with ts_headline; SQLite uses an FTS5 table
that this module creates on first use and keeps in step with every save. Suggestions for a
customer message combine the serving intent model, trigger phrases and text similarity over
the production versions (see `suggest`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sqlalchemy import delete, literal_column, text, update
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlmodel import Session, col, select

from core import placeholders, registry, templates
from core.access import Actor, Role, require_role
from core.errors import InvalidInput
from core.studio import EDITORS, READERS, label, text_list
from core.text import normalize_text
from db.models import (
    DesignTemplate,
    DesignTemplateVersion,
    ResponseSearch,
    TemplateKind,
    utcnow,
)

KIND = TemplateKind.RESPONSE
DEFAULT_CATEGORY = "General"
MAX_CATEGORY = 60
MAX_OPTIONS, MAX_OPTION_LENGTH = 50, 100
MAX_PHRASES, MAX_PHRASE_LENGTH = 50, 200
MAX_INTENTS, MAX_INTENT_LENGTH = 20, 100
MAX_VALUE_LENGTH = 2000
_CONTENT_KEYS = ("category", "text", "variables", "triggers")
_VARIABLE_KEYS = ("name", "type", "required", "default", "options")


# --------------------------------------------------------------------------------------------
# Content: typed variables and triggers
# --------------------------------------------------------------------------------------------


class VariableType(StrEnum):
    TEXT = "text"
    SELECT = "select"
    DATE = "date"
    NUMBER = "number"


Number = int | float
Default = str | int | float | None


@dataclass(frozen=True)
class ResponseVariable:
    """A response template's variable: a select takes one of `options`; a date is written
    YYYY-MM-DD; `default` (of the variable's type) fills it when no value is given."""

    name: str
    type: VariableType = VariableType.TEXT
    required: bool = True
    default: Default = None
    options: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type.value}
        out["required"] = self.required
        if self.default is not None:
            out["default"] = self.default
        if self.type is VariableType.SELECT:
            out["options"] = list(self.options)
        return out


def parse_variable(data: object) -> ResponseVariable:
    """One variable from its JSON form; InvalidInput says what is wrong with it."""
    if not isinstance(data, Mapping):
        raise InvalidInput("it must be an object with a name and a type.")
    unknown = sorted(str(k) for k in data if k not in _VARIABLE_KEYS)
    if unknown:
        raise InvalidInput(f"it has unknown fields {', '.join(unknown)}.")
    name = data.get("name")
    problem = placeholders.variable_name_problem(name)
    if problem:
        raise InvalidInput(f"{problem}.")
    assert isinstance(name, str)
    try:
        kind = VariableType(str(data.get("type", "text")))
    except ValueError:
        raise InvalidInput(f"{name}: the type must be one of text, select, date, number.") from None
    required = data.get("required", True)
    if not isinstance(required, bool):
        raise InvalidInput(f"{name}: required must be true or false.")
    options = _options(name, kind, data.get("options"))
    variable = ResponseVariable(name, kind, required, None, options)
    raw_default = data.get("default")
    if raw_default is None or raw_default == "":
        return variable
    try:
        default = _stored_default(variable, raw_default)
    except ValueError as exc:
        raise InvalidInput(f"{name}: the default {exc}.") from None
    return ResponseVariable(name, kind, required, default, options)


def _options(name: str, kind: VariableType, value: object) -> tuple[str, ...]:
    if kind is not VariableType.SELECT:
        if value not in (None, [], ()):
            raise InvalidInput(f"{name}: only a select has options.")
        return ()
    try:
        options = text_list(
            value, field="the options", max_items=MAX_OPTIONS, max_length=MAX_OPTION_LENGTH
        )
    except ValueError as exc:
        raise InvalidInput(f"{name}: {exc}.") from None
    if not options:
        raise InvalidInput(f"{name}: a select needs at least one option.")
    return tuple(options)


def _stored_default(variable: ResponseVariable, value: object) -> str | int | float:
    """A default as stored: a date stays YYYY-MM-DD, a select its option's spelling."""
    checked = typed_value(variable, value)
    if isinstance(checked, date):
        return checked.isoformat()
    return checked


def typed_value(variable: ResponseVariable, value: object) -> str | Number | date:
    """`value` as the variable's type, or ValueError saying why it is not one."""
    if variable.type is VariableType.NUMBER:
        return _number(value)
    if variable.type is VariableType.DATE:
        return _date(value)
    if not isinstance(value, str):
        raise ValueError(f"must be text, not {type(value).__name__}")
    if len(value) > MAX_VALUE_LENGTH:
        raise ValueError(f"is longer than {MAX_VALUE_LENGTH} characters")
    if variable.type is VariableType.SELECT:
        wanted = " ".join(value.split()).casefold()
        found = next((o for o in variable.options if o.casefold() == wanted), None)
        if found is None:
            raise ValueError(f"{_quoted(value)} is not one of {', '.join(variable.options)}")
        return found
    return value


def _number(value: object) -> Number:
    if isinstance(value, bool):
        raise ValueError("must be a number, not true or false")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return int(value) if value.is_integer() else value
    if isinstance(value, str):
        try:
            return _number(int(value.strip()))
        except ValueError:
            pass
        try:
            parsed = float(value.strip())
        except ValueError:
            raise ValueError(f"{_quoted(value)} is not a number") from None
        if math.isfinite(parsed):
            return _number(parsed)
    raise ValueError(f"{_quoted(value)} is not a finite number")


def _date(value: object) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ValueError(f"{_quoted(value)} is not a date (write YYYY-MM-DD)")


def _quoted(value: object) -> str:
    shown = str(value)
    return repr(shown[:40] + ("…" if len(shown) > 40 else ""))


def parse_variables(data: object) -> tuple[ResponseVariable, ...]:
    """Variables from a JSON list; every problem is reported, numbered."""
    if data is None:
        return ()
    if not isinstance(data, list | tuple):
        raise InvalidInput("The variables must be a list of objects.")
    if len(data) > placeholders.MAX_VARIABLES:
        raise InvalidInput(f"At most {placeholders.MAX_VARIABLES} variables may be declared.")
    found: list[ResponseVariable] = []
    errors: list[str] = []
    for number, item in enumerate(data, start=1):
        try:
            variable = parse_variable(item)
        except InvalidInput as exc:
            errors.append(f"Variable {number}: {exc}")
            continue
        if any(v.name == variable.name for v in found):
            errors.append(f"Variable {number}: {variable.name} is declared twice.")
            continue
        found.append(variable)
    if errors:
        raise InvalidInput(" ".join(errors))
    return tuple(found)


@dataclass(frozen=True)
class Triggers:
    """When a template fits a customer message: phrases in it, or intents the model sees."""

    phrases: tuple[str, ...] = ()
    intents: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, list[str]]:
        return {"phrases": list(self.phrases), "intents": list(self.intents)}


def parse_triggers(data: object) -> Triggers:
    """Trigger phrases and intents (lists, or comma-separated text); blanks and repeats go."""
    if data is None:
        return Triggers()
    if not isinstance(data, Mapping):
        raise InvalidInput("The triggers are an object with phrases and intents.")
    unknown = sorted(str(k) for k in data if k not in ("phrases", "intents"))
    if unknown:
        raise InvalidInput(f"The triggers have phrases and intents, not {', '.join(unknown)}.")
    try:
        phrases = text_list(
            data.get("phrases"),
            field="Trigger phrases",
            max_items=MAX_PHRASES,
            max_length=MAX_PHRASE_LENGTH,
        )
        intents = text_list(
            data.get("intents"),
            field="Trigger intents",
            max_items=MAX_INTENTS,
            max_length=MAX_INTENT_LENGTH,
        )
    except ValueError as exc:
        raise InvalidInput(f"{exc}.") from None
    return Triggers(tuple(phrases), tuple(intents))


def parse_response(content: Mapping[str, Any]) -> dict[str, Any]:
    """A response template's content, checked and normalised: every placeholder is declared
    (placeholders.TemplateError with each position otherwise), every required variable is
    used, every select has options, every default fits its type."""
    unknown = sorted(str(k) for k in content if k not in _CONTENT_KEYS)
    if unknown:
        raise InvalidInput(
            "A response template has a category, text, variables and triggers, "
            f"not {', '.join(unknown)}."
        )
    try:
        category = label(
            content.get("category") or DEFAULT_CATEGORY,
            field="The category",
            max_length=MAX_CATEGORY,
        )
    except ValueError as exc:
        raise InvalidInput(f"{exc}.") from None
    body = content.get("text")
    if not isinstance(body, str) or not body.strip():
        raise InvalidInput("A response template needs its text.")
    variables = parse_variables(content.get("variables"))
    used = placeholders.parse(body, [v.name for v in variables]).names
    unused = [v.name for v in variables if v.required and v.name not in used]
    if unused:
        shown = ", ".join("{" + n + "}" for n in unused)
        raise InvalidInput(
            f"Required variables must appear in the text: it never uses {shown}. "
            "Use them, or make them optional."
        )
    return {
        "category": category,
        "text": body,
        "variables": [v.to_dict() for v in variables],
        "triggers": parse_triggers(content.get("triggers")).to_dict(),
    }


def make_content(
    *,
    text: str,
    category: str = DEFAULT_CATEGORY,
    variables: Iterable[ResponseVariable | Mapping[str, Any]] = (),
    phrases: Iterable[str] = (),
    intents: Iterable[str] = (),
) -> dict[str, Any]:
    """A response template's content from its parts (checked when it is saved)."""
    return {
        "category": category,
        "text": text,
        "variables": [
            v.to_dict() if isinstance(v, ResponseVariable) else dict(v) for v in variables
        ],
        "triggers": {"phrases": list(phrases), "intents": list(intents)},
    }


def text_variables(body: str, declared: object = None) -> list[dict[str, Any]]:
    """The declared variables (a JSON list, checked) plus a required text variable for every
    other `{name}` the text uses: what the command line declares when given only a text."""
    known = [v.to_dict() for v in parse_variables(declared)]
    names = {v["name"] for v in known}
    candidates = set(re.findall(r"\{([a-z][a-z0-9_]*)\}", body)) | names
    for name in placeholders.parse(body, sorted(candidates)).names:
        if name not in names:
            known.append({"name": name, "type": "text", "required": True})
    return known


def content_lines(content: Mapping[str, Any]) -> list[str]:
    """A stable line rendering of a response version, for diffs: one line per value."""
    lines = [f"category: {content.get('category', '')}", "text:"]
    lines.extend(f"  {line}" for line in str(content.get("text", "")).splitlines())
    lines.append("variables:")
    for var in content.get("variables", []):
        detail = str(var.get("type"))
        detail += ", required" if var.get("required", True) else ", optional"
        if var.get("default") is not None:
            detail += f", default {var['default']}"
        if var.get("options"):
            detail += f", options: {' | '.join(var['options'])}"
        lines.append(f"  - {var.get('name')} ({detail})")
    triggers = content.get("triggers", {})
    lines.append("trigger phrases:")
    lines.extend(f"  - {p}" for p in triggers.get("phrases", []))
    lines.append("trigger intents:")
    lines.extend(f"  - {i}" for i in triggers.get("intents", []))
    return lines


# --------------------------------------------------------------------------------------------
# Rendering with typed values
# --------------------------------------------------------------------------------------------


class ValueErrors(InvalidInput):
    """Values refused by their variables; `problems` maps each variable to what is wrong."""

    def __init__(self, template: str, problems: Mapping[str, str]) -> None:
        self.problems = dict(problems)
        listed = "; ".join(f"{name}: {why}" for name, why in self.problems.items())
        super().__init__(f"{template!r} cannot be filled in: {listed}.")


@dataclass(frozen=True)
class RenderedResponse:
    """A filled-in response and the value each variable got (as inserted)."""

    text: str
    template_id: int | None
    template_name: str
    number: int | None
    values: dict[str, str | int | float] = field(default_factory=dict)  # dates as written
    defaults_used: tuple[str, ...] = ()


def format_date(day: date) -> str:
    """How a date appears in a response: 'Friday 5 December 2026'."""
    return f"{day:%A} {day.day} {day:%B %Y}"


def fill(
    content: Mapping[str, Any], values: Mapping[str, object], *, template: str = "The template"
) -> RenderedResponse:
    """Fill a response version's text: each value is checked against its variable's type
    (ValueErrors names every variable refused and why); a value not given takes the default;
    an optional variable without either is left empty."""
    variables = parse_variables(content.get("variables"))
    problems = {
        str(name): "the template has no such variable"
        for name in values
        if name not in {v.name for v in variables}
    }
    filled: dict[str, str | int | float] = {}
    defaults: list[str] = []
    for var in variables:
        raw = values.get(var.name)
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            if var.default is None:
                if var.required:
                    problems[var.name] = "a value is required"
                else:
                    filled[var.name] = ""
                continue
            raw = var.default
            defaults.append(var.name)
        try:
            value = typed_value(var, raw)
        except ValueError as exc:
            problems[var.name] = str(exc)
            continue
        filled[var.name] = format_date(value) if isinstance(value, date) else value
    if problems:
        raise ValueErrors(template, problems)
    parsed = placeholders.parse(str(content["text"]), [v.name for v in variables])
    rendered = placeholders.render(parsed, filled)
    return RenderedResponse(rendered, None, template, None, filled, tuple(defaults))


def render_response(
    *,
    session: Session,
    actor: Actor,
    template_id: int,
    values: Mapping[str, object],
    number: int | None = None,
) -> RenderedResponse:
    """A response template filled in with `values`: its production version, or version
    `number` (a draft to preview). ValueErrors names every value refused."""
    require_role(actor, *READERS)
    view = templates.get_template(session=session, actor=actor, template_id=template_id)
    if view.kind is not KIND:
        raise InvalidInput(f"{view.name!r} is a {view.kind.value} template, not a response.")
    chosen = number or view.production_number
    if chosen is None:
        raise InvalidInput(
            f"{view.name!r} has no production version yet: an admin promotes one "
            "(or name a version)."
        )
    version = templates.get_version(
        session=session, actor=actor, template_id=template_id, number=chosen
    )
    done = fill(version.content, values, template=view.name)
    return RenderedResponse(done.text, view.id, view.name, chosen, done.values, done.defaults_used)


# --------------------------------------------------------------------------------------------
# Writing (through core.templates, which versions and audits)
# --------------------------------------------------------------------------------------------


def create_response(
    *,
    session: Session,
    actor: Actor,
    name: str,
    text: str,
    category: str = DEFAULT_CATEGORY,
    variables: Iterable[ResponseVariable | Mapping[str, Any]] = (),
    phrases: Iterable[str] = (),
    intents: Iterable[str] = (),
    description: str = "",
    note: str = "",
    production: bool = False,
) -> templates.TemplateView:
    """A new response template with its version 1 (florist, admin); `production` labels that
    version production at once (admin). Audited like every template change."""
    require_role(actor, *((Role.ADMIN,) if production else EDITORS))
    content = make_content(
        text=text, category=category, variables=variables, phrases=phrases, intents=intents
    )
    view = templates.create_template(
        session=session,
        actor=actor,
        kind=KIND,
        name=name,
        content=content,
        description=description,
        note=note,
    )
    if production:
        view = templates.promote(session=session, actor=actor, template_id=view.id, number=1)
    return view


def find_response(*, session: Session, actor: Actor, name: str) -> templates.TemplateView:
    """The shop's response template called `name` (any case)."""
    return templates.find_template(session=session, actor=actor, kind=KIND, name=name)


# --------------------------------------------------------------------------------------------
# The search index
# --------------------------------------------------------------------------------------------

FTS_TABLE = "response_search_fts"
# PostgreSQL: the name weighs most (A), then the triggers and the category (B), then the text
# (C); ts_rank's default weights for A-D are 1.0, 0.4, 0.2, 0.1.
DOCUMENT = (
    "setweight(to_tsvector('english', coalesce(name, '')), 'A') || "
    "setweight(to_tsvector('english', coalesce(phrases, '') || ' ' || coalesce(intents, '')), 'B')"
    " || setweight(to_tsvector('english', coalesce(category, '')), 'B') || "
    "setweight(to_tsvector('english', coalesce(body, '')), 'C')"
)
# SQLite: bm25 weights of the FTS5 columns (shop, name, category, triggers, body), the same order.
BM25_WEIGHTS = "0.0, 10.0, 4.0, 4.0, 1.0"
MARK_START, MARK_END, ELLIPSIS = "«", "»", "…"
SNIPPET_TOKENS = 16
MAX_QUERY_TERMS = 10


def _postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _row_values(template: DesignTemplate, content: Mapping[str, Any]) -> dict[str, Any]:
    triggers = content.get("triggers") or {}
    return {
        "name": template.name,
        "category": str(content.get("category") or ""),
        "body": str(content.get("text") or ""),
        "phrases": "\n".join(triggers.get("phrases", [])),
        "intents": "\n".join(triggers.get("intents", [])),
        "active": template.active,
        "updated_at": utcnow(),
    }


def reindex(*, session: Session, actor: Actor, template: DesignTemplate) -> None:
    """Write the search row of a response template from its latest version (core.templates
    calls this after every create, save and rename)."""
    require_role(actor, *EDITORS)
    content = session.exec(
        select(DesignTemplateVersion.content).where(
            DesignTemplateVersion.tenant_id == actor.tenant_id,
            DesignTemplateVersion.template_id == template.id,
            DesignTemplateVersion.number == template.latest_number,
        )
    ).one()
    values = _row_values(template, content)
    row = session.exec(
        select(ResponseSearch).where(
            ResponseSearch.tenant_id == actor.tenant_id,
            ResponseSearch.template_id == template.id,
        )
    ).first()
    if row is None:
        assert template.id is not None
        row = ResponseSearch(tenant_id=actor.tenant_id, template_id=template.id, **values)
    else:
        for key, value in values.items():
            setattr(row, key, value)
    session.add(row)
    session.flush()
    assert row.id is not None
    _index_rows(session, actor, [row.id])


def rebuild_index(*, session: Session, actor: Actor) -> int:
    """Rewrite the search rows of every response template of the shop from its latest
    version, in bulk (after an import, or to repair); returns how many (florist, admin)."""
    require_role(actor, *EDITORS)
    rows = session.exec(
        select(DesignTemplate, DesignTemplateVersion.content)
        .join(
            DesignTemplateVersion,
            (col(DesignTemplateVersion.tenant_id) == col(DesignTemplate.tenant_id))
            & (col(DesignTemplateVersion.template_id) == col(DesignTemplate.id))
            & (col(DesignTemplateVersion.number) == col(DesignTemplate.latest_number)),
        )
        .where(DesignTemplate.tenant_id == actor.tenant_id, DesignTemplate.kind == KIND)
    ).all()
    if not _postgres(session):
        _fts_ready(session)
        session.execute(
            text(f"DELETE FROM {FTS_TABLE} WHERE shop = :shop"),  # noqa: S608 (constant)
            {"shop": _shop_token(actor)},
        )
    session.exec(delete(ResponseSearch).where(col(ResponseSearch.tenant_id) == actor.tenant_id))
    session.add_all(
        ResponseSearch(tenant_id=actor.tenant_id, template_id=t.id or 0, **_row_values(t, content))
        for t, content in rows
    )
    session.flush()
    _index_rows(session, actor, None)
    return len(rows)


def _index_rows(session: Session, actor: Actor, ids: list[int] | None) -> None:
    """Bring the full-text index of these search rows (None: all the shop's) up to date."""
    if _postgres(session):
        statement = (
            update(ResponseSearch)
            .where(col(ResponseSearch.tenant_id) == actor.tenant_id)
            .values(document=literal_column(DOCUMENT, type_=TSVECTOR))
        )
        if ids is not None:
            statement = statement.where(col(ResponseSearch.id).in_(ids))
        session.exec(statement)
        return
    _fts_ready(session)
    if ids is not None:
        for row_id in ids:
            session.execute(
                text(f"DELETE FROM {FTS_TABLE} WHERE rowid = :id"),  # noqa: S608 (constant)
                {"id": row_id},
            )
    session.execute(
        text(
            f"INSERT INTO {FTS_TABLE} (rowid, shop, name, category, triggers, body) "  # noqa: S608 (constant)
            "SELECT id, :shop, name, category, phrases || char(10) || intents, body "
            "FROM response_search WHERE tenant_id = :tenant"
            + ("" if ids is None else " AND id IN (" + ", ".join(map(str, ids)) + ")")
        ),
        {"shop": _shop_token(actor), "tenant": actor.tenant_id},
    )


def _shop_token(actor: Actor) -> str:
    """The FTS5 token that confines a search to one shop's rows."""
    return f"shop{actor.tenant_id}"


def _fts_ready(session: Session) -> None:
    """Create SQLite's FTS5 index of response_search when missing, filled from its rows. It
    is derived data (rebuilt from response_search at any time), so it is made here rather
    than by a migration, whose autogenerate check would count its shadow tables as strays."""
    exists = session.execute(
        text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = :name"),
        {"name": FTS_TABLE},
    ).first()
    if exists:
        return
    session.execute(
        text(
            f"CREATE VIRTUAL TABLE IF NOT EXISTS {FTS_TABLE} USING fts5("
            "shop, name, category, triggers, body, "
            "tokenize = 'porter unicode61 remove_diacritics 2')"
        )
    )
    session.execute(
        text(
            f"INSERT INTO {FTS_TABLE} (rowid, shop, name, category, triggers, body) "  # noqa: S608 (constant)
            "SELECT id, 'shop' || tenant_id, name, category, phrases || char(10) || intents, "
            f"body FROM response_search WHERE id NOT IN (SELECT rowid FROM {FTS_TABLE})"
        )
    )


# --------------------------------------------------------------------------------------------
# Search
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchHit:
    """A response template that matches a search, best first. `name_highlight` and `excerpt`
    are plain text with each match between « and » (never markup: show them as text)."""

    template_id: int
    name: str
    category: str
    active: bool
    score: float
    name_highlight: str
    excerpt: str


def query_terms(query: str) -> list[str]:
    """The words of a search box's text (letters and digits; at most MAX_QUERY_TERMS)."""
    return re.findall(r"\w+", normalize_text(query))[:MAX_QUERY_TERMS]


def search(
    *,
    session: Session,
    actor: Actor,
    query: str,
    limit: int = 20,
    include_inactive: bool = False,
) -> list[SearchHit]:
    """The shop's response templates matching every word of `query` (the last one as a
    prefix) in their name, category, triggers or text, ranked by relevance (a match in the
    name counts most), each with its matches highlighted."""
    require_role(actor, *READERS)
    terms = query_terms(query)
    if not terms or limit < 1:
        return []
    if _postgres(session):
        return _search_postgres(session, actor, terms, limit, include_inactive)
    return _search_sqlite(session, actor, terms, limit, include_inactive)


def _search_sqlite(
    session: Session, actor: Actor, terms: list[str], limit: int, include_inactive: bool
) -> list[SearchHit]:
    _fts_ready(session)
    # Every term is quoted, so nothing the user typed is read as FTS5 syntax.
    words = " ".join(f'"{t}"' for t in terms) + "*"
    match = f'shop : "{_shop_token(actor)}" AND {{name category triggers body}} : ({words})'
    active = "" if include_inactive else "AND s.active "
    rows = session.execute(
        text(
            f"SELECT s.template_id, s.name, s.category, s.active, "  # noqa: S608 (constants)
            f"bm25({FTS_TABLE}, {BM25_WEIGHTS}) AS rank, "
            f"highlight({FTS_TABLE}, 1, :start, :end) AS name_hl, "
            f"snippet({FTS_TABLE}, 4, :start, :end, :more, {SNIPPET_TOKENS}) AS body_hl, "
            f"snippet({FTS_TABLE}, 3, :start, :end, :more, {SNIPPET_TOKENS}) AS triggers_hl "
            f"FROM {FTS_TABLE} JOIN response_search s ON s.id = {FTS_TABLE}.rowid "
            f"WHERE {FTS_TABLE} MATCH :match AND s.tenant_id = :tenant {active}"
            "ORDER BY rank, s.name LIMIT :limit"
        ),
        {
            "match": match,
            "tenant": actor.tenant_id,
            "limit": limit,
            "start": MARK_START,
            "end": MARK_END,
            "more": ELLIPSIS,
        },
    ).all()
    return [_hit(r[0], r[1], r[2], r[3], -float(r[4]), r[5], r[6], r[7]) for r in rows]


def _search_postgres(
    session: Session, actor: Actor, terms: list[str], limit: int, include_inactive: bool
) -> list[SearchHit]:
    # Terms are letters, digits and _ only, so they cannot carry tsquery syntax.
    query = " & ".join(terms) + ":*"
    options = f"StartSel={MARK_START}, StopSel={MARK_END}, HighlightAll=true"
    excerpt = (
        f"StartSel={MARK_START}, StopSel={MARK_END}, MaxWords=24, MinWords=10, "
        'MaxFragments=2, FragmentDelimiter=" … "'
    )
    active = "" if include_inactive else "AND s.active "
    rows = session.execute(
        text(
            "WITH q AS (SELECT to_tsquery('english', :query) AS query), "  # noqa: S608 (constants)
            "hits AS (SELECT s.template_id, s.name, s.category, s.active, s.body, "
            "s.phrases || E'\\n' || s.intents AS triggers, ts_rank(s.document, q.query) AS rank "
            "FROM response_search s, q WHERE s.tenant_id = :tenant AND s.document @@ q.query "
            f"{active}ORDER BY rank DESC, s.name LIMIT :limit) "
            "SELECT template_id, name, category, active, rank, "
            "ts_headline('english', name, q.query, :options), "
            "ts_headline('english', body, q.query, :excerpt), "
            "ts_headline('english', triggers, q.query, :excerpt) "
            "FROM hits, q ORDER BY rank DESC, name"
        ),
        {
            "query": query,
            "tenant": actor.tenant_id,
            "limit": limit,
            "options": options,
            "excerpt": excerpt,
        },
    ).all()
    return [_hit(r[0], r[1], r[2], r[3], float(r[4]), r[5], r[6], r[7]) for r in rows]


def _hit(
    template_id: int,
    name: str,
    category: str,
    active: bool,
    score: float,
    name_hl: str | None,
    body_hl: str | None,
    triggers_hl: str | None,
) -> SearchHit:
    """The excerpt shows the text where it matched, else the triggers where they matched,
    else the text's beginning."""
    body, triggers = body_hl or "", triggers_hl or ""
    if MARK_START not in body and MARK_START in triggers:
        chosen = " · ".join(line.strip() for line in triggers.splitlines() if line.strip())
    else:
        chosen = body
    return SearchHit(
        template_id=template_id,
        name=name,
        category=category,
        active=bool(active),
        score=score,
        name_highlight=name_hl or name,
        excerpt=" ".join(chosen.split()),
    )


# --------------------------------------------------------------------------------------------
# Suggestions for a customer message
# --------------------------------------------------------------------------------------------

# How the three signals add up to a suggestion's score (0-1); measured on BANKING77 by
# benchmarks/suggest_quality.py, with each signal alone beside it. The serving model's
# probability for the template's intent leads; a trigger phrase found in the message is
# strong evidence a florist wrote down; text similarity breaks ties and covers shops
# without a model.


@dataclass(frozen=True)
class Weights:
    intent: float = 0.6
    trigger: float = 0.25
    similarity: float = 0.15


WEIGHTS = Weights()
MODEL_TOP_K = 10  # intents read from the serving model per message
MIN_SCORE = 0.01  # below this a template is not suggested at all


@dataclass(frozen=True)
class Suggestion:
    """A template that fits a message: its score (0-1) and why, e.g.
    "intent order_status 0.91; trigger 'where is my order'; text similarity 0.34"."""

    template_id: int
    template: str
    category: str
    number: int  # the production version suggested
    score: float
    reason: str
    intent: str | None
    intent_probability: float
    trigger: str | None
    similarity: float


@dataclass(frozen=True)
class _Candidate:
    template_id: int
    name: str
    category: str
    number: int
    phrases: tuple[str, ...]
    intents: tuple[str, ...]
    document: str


def _words(message: str) -> str:
    """A message as space-separated lowercase words, padded, for word-boundary matches."""
    return " " + " ".join(re.findall(r"\w+", normalize_text(message))) + " "


def _document(name: str, content: Mapping[str, Any]) -> str:
    """What text similarity compares a message with: the name, triggers and the text without
    its placeholders."""
    triggers = content.get("triggers") or {}
    body = re.sub(r"\{[^{}]*\}", " ", str(content.get("text", "")))
    intents = [i.replace("_", " ") for i in triggers.get("intents", [])]
    return "\n".join([name, *triggers.get("phrases", []), *intents, body])


def _candidates(session: Session, actor: Actor) -> list[_Candidate]:
    """The shop's active response templates that have a production version, with it."""
    rows = session.exec(
        select(
            DesignTemplate.id,
            DesignTemplate.name,
            DesignTemplate.production_number,
            DesignTemplateVersion.content,
        )
        .join(
            DesignTemplateVersion,
            (col(DesignTemplateVersion.tenant_id) == col(DesignTemplate.tenant_id))
            & (col(DesignTemplateVersion.template_id) == col(DesignTemplate.id))
            & (col(DesignTemplateVersion.number) == col(DesignTemplate.production_number)),
        )
        .where(
            DesignTemplate.tenant_id == actor.tenant_id,
            DesignTemplate.kind == KIND,
            col(DesignTemplate.active),
        )
        .order_by(col(DesignTemplate.name))
    ).all()
    found = []
    for template_id, name, number, content in rows:
        triggers = content.get("triggers") or {}
        phrases = tuple(p for p in (_words(p).strip() for p in triggers.get("phrases", [])) if p)
        found.append(
            _Candidate(
                int(template_id or 0),
                name,
                str(content.get("category", "")),
                int(number or 0),
                phrases,
                tuple(triggers.get("intents", [])),
                _document(name, content),
            )
        )
    return found


def _similarities(candidates: Sequence[_Candidate], texts: Sequence[str]) -> Any:
    """Cosine similarity (texts x candidates) of word 1-2-gram tf-idf vectors fitted on the
    candidates' documents."""
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, strip_accents="unicode")
    try:
        documents = vectorizer.fit_transform([c.document for c in candidates])
    except ValueError:  # no words at all in any document
        return np.zeros((len(texts), len(candidates)))
    return (vectorizer.transform(texts) @ documents.T).toarray()


def _intent_tops(
    session: Session, actor: Actor, texts: Sequence[str]
) -> list[dict[str, float]] | None:
    loaded = registry.serving_model(session=session, actor=actor)
    if loaded is None:
        return None
    _, model = loaded
    return [dict(top) for top in model.predict_many(list(texts), k=MODEL_TOP_K)]


def suggest(
    *, session: Session, actor: Actor, text: str, k: int = 3, weights: Weights = WEIGHTS
) -> list[Suggestion]:
    """The response templates (production versions) that best fit a customer message, best
    first, at most `k`: score = 0.6 x the serving model's probability of the template's
    intent + 0.25 if one of its trigger phrases is in the message (whole words) + 0.15 x the
    tf-idf cosine similarity of the message and the template; each says why."""
    return suggest_many(session=session, actor=actor, texts=[text], k=k, weights=weights)[0]


def suggest_many(
    *,
    session: Session,
    actor: Actor,
    texts: Sequence[str],
    k: int = 3,
    weights: Weights = WEIGHTS,
) -> list[list[Suggestion]]:
    """`suggest` for many messages at once (the templates and the model are read once);
    `weights` other than the default serve to measure each signal alone."""
    require_role(actor, *READERS)
    if k < 1:
        raise InvalidInput("Ask for at least one suggestion.")
    candidates = _candidates(session, actor)
    if not candidates or not texts:
        return [[] for _ in texts]
    similarity = _similarities(candidates, texts)
    tops = _intent_tops(session, actor, texts)
    return [
        _ranked(candidates, message, tops[i] if tops else {}, similarity[i], k, weights)
        for i, message in enumerate(texts)
    ]


def _ranked(
    candidates: Sequence[_Candidate],
    message: str,
    top: Mapping[str, float],
    similarity: Any,
    k: int,
    weights: Weights,
) -> list[Suggestion]:
    words = _words(message)
    scored = []
    for candidate, sim in zip(candidates, similarity, strict=True):
        suggestion = _scored(candidate, words, top, float(sim), weights)
        if suggestion.score >= MIN_SCORE:
            scored.append(suggestion)
    scored.sort(key=lambda s: (-s.score, s.template))
    return scored[:k]


def _scored(
    candidate: _Candidate,
    words: str,
    top: Mapping[str, float],
    similarity: float,
    weights: Weights,
) -> Suggestion:
    intent, probability = max(
        ((i, top.get(i, 0.0)) for i in candidate.intents), key=lambda p: p[1], default=(None, 0.0)
    )
    matched = [p for p in candidate.phrases if f" {p} " in words]
    trigger = max(matched, key=len) if matched else None
    similarity = max(0.0, min(1.0, similarity))
    score = (
        weights.intent * probability
        + weights.trigger * (trigger is not None)
        + weights.similarity * similarity
    )
    reasons = []
    if intent is not None and probability >= 0.005:
        reasons.append(f"intent {intent} {probability:.2f}")
    if trigger is not None:
        reasons.append(f"trigger '{trigger}'")
    if similarity >= 0.005:
        reasons.append(f"text similarity {similarity:.2f}")
    return Suggestion(
        template_id=candidate.template_id,
        template=candidate.name,
        category=candidate.category,
        number=candidate.number,
        score=round(score, 4),
        reason="; ".join(reasons),
        intent=intent if probability > 0 else None,
        intent_probability=round(probability, 4),
        trigger=trigger,
        similarity=round(similarity, 4),
    )


# --------------------------------------------------------------------------------------------
# A new shop's starting response templates
# --------------------------------------------------------------------------------------------

_SIGN_OFF = {
    "name": "sign_off",
    "type": "text",
    "required": False,
    "default": "Warm wishes from all of us at the shop",
}
_CUSTOMER = {"name": "customer_name", "type": "text", "required": True}
_ORDER = {"name": "order_number", "type": "text", "required": True}

DEFAULT_RESPONSES: tuple[dict[str, Any], ...] = (
    {
        "name": "Order Status Inquiry",
        "description": "Where an order is and when it arrives.",
        "content": {
            "category": "Orders",
            "text": "Hi {customer_name},\n\nThank you for checking on order {order_number}. It "
            "is {order_status} and is due to arrive on {delivery_date}. We will text you as "
            "soon as it has been delivered.\n\n{sign_off}",
            "variables": [
                _CUSTOMER,
                _ORDER,
                {
                    "name": "order_status",
                    "type": "select",
                    "required": True,
                    "default": "being arranged",
                    "options": ["being arranged", "with our driver", "delivered"],
                },
                {"name": "delivery_date", "type": "date", "required": True},
                _SIGN_OFF,
            ],
            "triggers": {
                "phrases": [
                    "where is my order",
                    "order status",
                    "track my order",
                    "has my order shipped",
                    "out for delivery",
                ],
                "intents": ["order_status"],
            },
        },
    },
    {
        "name": "Damaged Flowers Resolution",
        "description": "Flowers that arrived damaged: an apology and how we make it right.",
        "content": {
            "category": "Quality",
            "text": "Hi {customer_name},\n\nI am so sorry the flowers from order {order_number} "
            "arrived {damage}. That is not the standard we aim for. We will make it right with "
            "{resolution} within {days_to_resolve} days; there is no need to send anything "
            "back, though a photo helps us improve our packing.\n\n{sign_off}",
            "variables": [
                _CUSTOMER,
                _ORDER,
                {
                    "name": "damage",
                    "type": "select",
                    "required": True,
                    "default": "damaged",
                    "options": ["damaged", "wilted", "crushed", "with a broken vase"],
                },
                {
                    "name": "resolution",
                    "type": "select",
                    "required": True,
                    "default": "a free replacement",
                    "options": ["a free replacement", "a full refund", "store credit"],
                },
                {"name": "days_to_resolve", "type": "number", "required": True, "default": 2},
                _SIGN_OFF,
            ],
            "triggers": {
                "phrases": [
                    "arrived damaged",
                    "flowers are wilted",
                    "broken vase",
                    "stems are snapped",
                    "flowers arrived dead",
                    "box was crushed",
                ],
                "intents": ["damaged_flowers"],
            },
        },
    },
)


def seed_default_responses(*, session: Session, actor: Actor) -> int:
    """Give the shop the starting response templates it lacks (by name), each with a
    production version 1; not audited (part of creating the shop). Returns how many."""
    require_role(actor, *EDITORS)
    have = {
        name.casefold()
        for name in session.exec(
            select(DesignTemplate.name).where(
                DesignTemplate.tenant_id == actor.tenant_id, DesignTemplate.kind == KIND
            )
        ).all()
    }
    made = 0
    for item in DEFAULT_RESPONSES:
        if item["name"].casefold() in have:
            continue
        templates.new_template(
            session=session,
            actor=actor,
            kind=KIND,
            name=item["name"],
            content=item["content"],
            description=item["description"],
            note="Starting template",
            production=True,
        )
        made += 1
    return made
