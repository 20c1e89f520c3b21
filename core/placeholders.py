"""Safe `{name}` templates: a hand-written scanner, an allowlist of variable names, plain joins.

Florists write prompt (and later response) templates such as
`Create a beautiful {style} bouquet with {flowers}`. Python's own formatting would let a template
reach attributes and indexes of the values (`{x.__class__}`, `{x[0]}`) or allocate without limit
(`{x:>99999999}`), so templates are never given to `str.format`, `string.Template` or `eval`:
`parse` splits the text once into literal and placeholder parts, refusing anything but a declared
name in braces, and `render` joins the parts with the values as they are.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, NamedTuple, TypeVar

from core.errors import InvalidInput

MAX_TEMPLATE_LENGTH = 20_000
MAX_PLACEHOLDERS = 500
MAX_NAME_LENGTH = 40
MAX_VARIABLES = 50
# Messages quote at most this much of a broken placeholder, so a long one stays readable.
_SHOWN_CHARACTERS = 40
_SHOWN_PROBLEMS = 3
_SHOWN_NAMES = 30

# Lowercase snake case, ASCII only: no lookalike letters, no dunders, no leading digit.
_NAME = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")
_BRACE = re.compile(r"[{}]")
# A placeholder ends at its "}"; another brace or a line break first means it is broken.
_FIELD_END = re.compile(r"[{}\n]")
# What str.format would read as attribute, index, conversion or format spec.
_FORMAT_SYNTAX = re.compile(r"[.\[\]!:]")
_SYNTAX_NAMES = {
    ".": ("Attribute access", '"."'),
    "[": ("Indexing", '"[ ]"'),
    "]": ("Indexing", '"[ ]"'),
    "!": ("Conversion", '"!"'),
    ":": ("Format specification", '":"'),
}

Value = str | int | float | Sequence[str]
Missing = Literal["error", "keep", "empty"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a template; `offset` is 0-based, `line` and `column` 1-based."""

    message: str
    offset: int
    line: int
    column: int
    code: str


class TemplateError(InvalidInput):
    """The template (or the values given to render it) is refused; `problems` lists every one."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__(_summary(self.problems))


@dataclass(frozen=True)
class Text:
    """Literal text of a template, with `{{` and `}}` already reduced to single braces."""

    text: str


@dataclass(frozen=True)
class Placeholder:
    """A declared variable's place in a template; `offset` is where its `{` stands."""

    name: str
    offset: int


Part = Text | Placeholder


@dataclass(frozen=True)
class Template:
    """A parsed template: `parts` in order, `names` its variables in order of first use."""

    source: str
    parts: tuple[Part, ...]
    names: tuple[str, ...]


class _Found(NamedTuple):
    """A problem before its line and column are known (they are computed only on failure)."""

    offset: int
    code: str
    what: str
    why: str


def check(text: str, allowed: Iterable[str]) -> list[Problem]:
    """Every problem in `text` given the declared variable names; empty when it parses."""
    return _scan(text, _allowlist(allowed))[1]


def parse(text: str, allowed: Iterable[str]) -> Template:
    """Split `text` into literal and placeholder parts; TemplateError lists every problem."""
    parts, problems = _scan(text, _allowlist(allowed))
    if problems:
        raise TemplateError(problems)
    names = dict.fromkeys(p.name for p in parts if isinstance(p, Placeholder))
    return Template(source=text, parts=tuple(parts), names=tuple(names))


def render(
    template: Template | str,
    values: Mapping[str, Value],
    *,
    allowed: Iterable[str] | None = None,
    missing: Missing = "error",
) -> str:
    """The template with each placeholder replaced by its value, inserted verbatim."""
    if missing not in ("error", "keep", "empty"):
        raise ValueError(f"missing must be 'error', 'keep' or 'empty', not {missing!r}")
    if isinstance(template, str):
        if allowed is None:
            raise TypeError("render() needs `allowed` when the template is given as text")
        template = parse(template, allowed)
    elif allowed is not None:
        _refuse_undeclared(template, _allowlist(allowed))
    texts = {name: _value_text(name, values[name]) for name in template.names if name in values}
    if missing == "error" and len(texts) < len(template.names):
        raise TemplateError(_missing_values(template, texts))
    out: list[str] = []
    for part in template.parts:
        if isinstance(part, Text):
            out.append(part.text)
        elif part.name in texts:
            out.append(texts[part.name])
        elif missing == "keep":
            out.append("{" + part.name + "}")
    return "".join(out)


def join_list(items: Iterable[str], *, conjunction: str = "and") -> str:
    """Items in natural English: 'a', 'a and b', 'a, b and c' (empty for no items)."""
    words = list(items)
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " " + conjunction + " " + words[-1]


def variable_name_problem(name: object) -> str | None:
    """Why `name` cannot name a variable, or None when it can."""
    if not isinstance(name, str) or not name:
        return "a variable needs a name"
    if len(name) > MAX_NAME_LENGTH:
        return f"the name {_shown(name)} is longer than {MAX_NAME_LENGTH} characters"
    if not _NAME.fullmatch(name):
        return (
            f"the name {_shown(name)} is not lowercase snake case "
            "(a-z and 0-9 in words joined by single _, starting with a letter)"
        )
    return None


# --- the scanner ------------------------------------------------------------------------------


def _allowlist(allowed: Iterable[str]) -> frozenset[str]:
    if isinstance(allowed, str):  # a lone name would silently become its single letters
        raise TypeError("allowed must be a collection of names, not one string")
    names = frozenset(allowed)
    for name in names:
        problem = variable_name_problem(name)
        if problem:
            raise InvalidInput(f"Declared variables: {problem}.")
    return names


def _scan(text: str, allowed: frozenset[str]) -> tuple[list[Part], list[Problem]]:
    if len(text) > MAX_TEMPLATE_LENGTH:
        # Refused before scanning, so an oversized paste costs nothing beyond its length.
        too_long = _Found(
            MAX_TEMPLATE_LENGTH,
            "too_long",
            "Template too long",
            f"it has {len(text):,} characters and at most {MAX_TEMPLATE_LENGTH:,} are allowed",
        )
        return [], _located(text, [too_long])
    parts: list[Part] = []
    found: list[_Found] = []
    literal: list[str] = []
    fields = 0
    pos = 0
    # Each iteration moves pos forward past everything it looked at: linear in the text.
    while (brace := _BRACE.search(text, pos)) is not None:
        start = brace.start()
        literal.append(text[pos:start])
        char = text[start]
        if text.startswith(char, start + 1):
            literal.append(char)
            pos = start + 2
            continue
        if char == "}":
            found.append(_Found(start, "unmatched_close", 'Unmatched "}"', _LITERAL_CLOSE))
            pos = start + 1
            continue
        end = _FIELD_END.search(text, start + 1)
        if end is None or text[end.start()] != "}":
            pos = len(text) if end is None else end.start()
            found.append(_unclosed(text, start, pos))
            continue
        fields += 1
        if fields == MAX_PLACEHOLDERS + 1:
            found.append(_too_many(start))
        content = text[start + 1 : end.start()]
        problem = _diagnose(content, start, allowed)
        if problem is not None:
            found.append(problem)
        elif not found:  # once the template is refused its parts are never used
            _flush(literal, parts)
            parts.append(Placeholder(content, start))
        pos = end.end()
    literal.append(text[pos:])
    _flush(literal, parts)
    return parts, _located(text, found)


def _flush(literal: list[str], parts: list[Part]) -> None:
    text = "".join(literal)
    literal.clear()
    if text:
        parts.append(Text(text))


_LITERAL_CLOSE = 'write "}}" for a literal brace'
_ONLY_A_NAME = "a placeholder holds only a declared variable's name, without "


def _diagnose(content: str, offset: int, allowed: frozenset[str]) -> _Found | None:
    """The problem with `{content}`, most specific first, or None for a declared name."""
    if content in allowed:
        return None
    shown = "{" + _shown(content) + "}"
    if not content:
        why = 'write a declared variable\'s name inside the braces, or "{{}}" for literal braces'
        return _Found(offset, "empty", "Empty placeholder {}", why)
    syntax = _FORMAT_SYNTAX.search(content)
    if syntax is not None:
        kind, chars = _SYNTAX_NAMES[syntax.group()]
        return _Found(
            offset, "format_syntax", f"{kind} in placeholder {shown}", _ONLY_A_NAME + chars
        )
    odd = next((c for c in content if not c.isascii() or not c.isprintable()), None)
    if odd is not None:
        what = f'Unexpected character "{_shown(odd)}" (U+{ord(odd):04X}) in placeholder {shown}'
        return _Found(offset, "character", what, "variable names use only a-z, 0-9 and _")
    if content.strip() != content or " " in content:
        why = _hinted("write the name without spaces", content.strip(), allowed)
        return _Found(offset, "space", f"Space in placeholder {shown}", why)
    if content.isdigit():
        why = "use a declared variable's name instead of a number"
        return _Found(offset, "positional", f"Positional placeholder {shown}", why)
    if not _NAME.fullmatch(content):
        why = "variable names are lowercase a-z, 0-9 and single _, starting with a letter"
        why = _hinted(why, content.lower(), allowed)
        return _Found(offset, "invalid_name", f"Invalid placeholder {shown}", why)
    return _Found(offset, "unknown", f"Unknown placeholder {shown}", _declared(content, allowed))


def _unclosed(text: str, start: int, stop: int) -> _Found:
    if stop < len(text) and text[stop] == "{":
        shown = '"' + _shown(text[start : stop + 1]) + '"'
        why = 'placeholders cannot contain braces; write "{{" and "}}" for literal braces'
        return _Found(start, "nested", f"Brace inside placeholder {shown}", why)
    shown = '"' + _shown(text[start:stop]) + '"'
    why = 'close it with "}" on the same line, or write "{{" for a literal brace'
    return _Found(start, "unclosed", f"Unclosed placeholder {shown}", why)


def _too_many(offset: int) -> _Found:
    why = f"a template may hold at most {MAX_PLACEHOLDERS} placeholders"
    return _Found(offset, "too_many", "Too many placeholders", why)


def _declared(name: str, allowed: frozenset[str]) -> str:
    if not allowed:
        return "this template declares no variables"
    names = sorted(allowed)
    listed = ", ".join(names[:_SHOWN_NAMES])
    if len(names) > _SHOWN_NAMES:
        listed += f" and {len(names) - _SHOWN_NAMES} more"
    return _hinted(f"declared variables are {listed}", name, allowed)


def _hinted(why: str, candidate: str, allowed: frozenset[str]) -> str:
    """`why` as a sentence, followed by the closest declared name when one is close."""
    if candidate in allowed:
        close = [candidate]
    else:
        close = difflib.get_close_matches(candidate, sorted(allowed), n=1, cutoff=0.75)
    return why + "." + (f" Did you mean {{{close[0]}}}?" if close else "")


def _shown(text: str) -> str:
    """User text fit to quote in a message: control characters escaped, length capped."""
    clipped = text[:_SHOWN_CHARACTERS]
    safe = "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in clipped)
    return safe + ("…" if len(text) > _SHOWN_CHARACTERS else "")


def _located(text: str, found: list[_Found]) -> list[Problem]:
    if not found:
        return []
    # Line starts are computed only for a refused template; a valid one never pays for them.
    limit = max(f.offset for f in found)
    starts = [0, *(m.end() for m in re.finditer("\n", text[:limit]))]
    problems = []
    for f in found:
        line = bisect_right(starts, f.offset)
        column = f.offset - starts[line - 1] + 1
        where = f"{f.what} at line {line}, column {column}"
        message = where + (": " + f.why if f.why else "")
        problems.append(Problem(_sentence(message), f.offset, line, column, f.code))
    return problems


def _sentence(message: str) -> str:
    return message if message.endswith((".", "?")) else message + "."


def _summary(problems: tuple[Problem, ...]) -> str:
    if len(problems) == 1:
        return problems[0].message
    if all(p.code == "missing_value" for p in problems):
        heading = f"{len(problems)} values are missing."
    else:
        heading = f"The template has {len(problems)} problems."
    shown = " ".join(p.message for p in problems[:_SHOWN_PROBLEMS])
    more = len(problems) - _SHOWN_PROBLEMS
    return f"{heading} {shown}" + (f" And {more} more." if more > 0 else "")


# --- rendering --------------------------------------------------------------------------------


def _value_text(name: str, value: object) -> str:
    """A value as the text to insert; only plain data is accepted, never an arbitrary object."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        pass  # True would print as "True"; a template variable is never a flag
    elif isinstance(value, int):
        return str(value)
    elif isinstance(value, float) and math.isfinite(value):
        return str(int(value)) if value.is_integer() else repr(value)
    elif isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return join_list(value)
    raise InvalidInput(
        f"The value for {{{name}}} must be text, a number or a list of text, "
        f"not {type(value).__name__}."
    )


def _missing_values(template: Template, texts: Mapping[str, str]) -> list[Problem]:
    first: dict[str, int] = {}
    for part in template.parts:
        if isinstance(part, Placeholder) and part.name not in texts:
            first.setdefault(part.name, part.offset)
    found = [
        _Found(offset, "missing_value", f"No value for {{{name}}}", "")
        for name, offset in first.items()
    ]
    return _located(template.source, found)


def _refuse_undeclared(template: Template, allowed: frozenset[str]) -> None:
    found = [
        _Found(p.offset, "unknown", f"Unknown placeholder {{{p.name}}}", _declared(p.name, allowed))
        for p in template.parts
        if isinstance(p, Placeholder) and p.name not in allowed
    ]
    if found:
        raise TemplateError(_located(template.source, found))


# --- typed variable declarations --------------------------------------------------------------


class VariableType(StrEnum):
    TEXT = "text"
    LIST = "list"
    NUMBER = "number"


class VariableSource(StrEnum):
    FREE_TEXT = "free_text"
    CATALOG = "catalog"
    STYLE_PARAMETER = "style_parameter"


CATALOGS = ("flowers", "colors", "occasions", "arrangement_types", "budget_tiers")
STYLE_PARAMETERS = ("color_palette", "flowers", "mood", "arrangement_style", "flair_elements")
_VARIABLE_KEYS = ("name", "type", "source", "catalog", "parameter")


@dataclass(frozen=True)
class Variable:
    """A declared template variable: its name, what kind of value it takes and where from.

    `catalog` names the catalog list when the source is CATALOG, `parameter` the style
    parameter when it is STYLE_PARAMETER; each is None otherwise.
    """

    name: str
    type: VariableType
    source: VariableSource = VariableSource.FREE_TEXT
    catalog: str | None = None
    parameter: str | None = None

    def __post_init__(self) -> None:
        problem = variable_name_problem(self.name)
        if problem:
            raise InvalidInput(_sentence(problem[0].upper() + problem[1:]))
        # Plain strings from stored JSON become the enums, so equality and to_dict stay exact.
        object.__setattr__(self, "type", _member(VariableType, self.type, "type"))
        object.__setattr__(self, "source", _member(VariableSource, self.source, "source"))
        _check_detail(self.source, VariableSource.CATALOG, "catalog", self.catalog, CATALOGS)
        _check_detail(
            self.source,
            VariableSource.STYLE_PARAMETER,
            "parameter",
            self.parameter,
            STYLE_PARAMETERS,
        )

    def to_dict(self) -> dict[str, str]:
        """Plain JSON-ready form; `catalog` and `parameter` appear only when set."""
        out = {"name": self.name, "type": self.type.value, "source": self.source.value}
        if self.catalog is not None:
            out["catalog"] = self.catalog
        if self.parameter is not None:
            out["parameter"] = self.parameter
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Variable:
        """A Variable from its to_dict form; unknown keys and wrong types are refused."""
        unknown = sorted(str(k) for k in data if k not in _VARIABLE_KEYS)
        if unknown:
            raise InvalidInput(f"Unknown variable fields: {', '.join(map(_shown, unknown))}.")
        if "type" not in data:
            raise InvalidInput("A variable needs a type (text, list or number).")
        fields: dict[str, str] = {}
        for key in _VARIABLE_KEYS:
            value = data.get(key)
            if value is not None and not isinstance(value, str):
                raise InvalidInput(f"The variable's {key} must be text.")
            if value is not None:
                fields[key] = value
        return cls(
            name=fields.get("name", ""),
            type=_member(VariableType, fields["type"], "type"),
            source=_member(VariableSource, fields.get("source", "free_text"), "source"),
            catalog=fields.get("catalog"),
            parameter=fields.get("parameter"),
        )


def parse_variables(data: object) -> tuple[Variable, ...]:
    """Variables from a JSON list (decoded or as text) of objects; every problem is reported."""
    if isinstance(data, str | bytes):
        try:
            data = json.loads(data)
        except ValueError:
            raise InvalidInput("The variables are not valid JSON.") from None
    if not isinstance(data, list):
        raise InvalidInput("The variables must be a list of objects.")
    if len(data) > MAX_VARIABLES:
        raise InvalidInput(f"At most {MAX_VARIABLES} variables may be declared, not {len(data)}.")
    variables: list[Variable] = []
    errors: list[str] = []
    for number, item in enumerate(data, start=1):
        try:
            if not isinstance(item, Mapping):
                raise InvalidInput("it must be an object with a name and a type.")
            variable = Variable.from_dict(item)
        except InvalidInput as exc:
            errors.append(f"Variable {number}: {_lower_first(str(exc))}")
            continue
        if any(v.name == variable.name for v in variables):
            errors.append(f"Variable {number}: {variable.name} is declared twice.")
            continue
        variables.append(variable)
    if errors:
        raise InvalidInput(" ".join(errors))
    return tuple(variables)


_Enum = TypeVar("_Enum", bound=StrEnum)


def _member(enum: type[_Enum], value: object, field: str) -> _Enum:
    try:
        return enum(str(value))
    except ValueError:
        allowed = ", ".join(m.value for m in enum)
        raise InvalidInput(f"The variable's {field} must be one of {allowed}.") from None


def _check_detail(
    source: VariableSource,
    needs: VariableSource,
    field: str,
    value: str | None,
    choices: tuple[str, ...],
) -> None:
    if source != needs:
        if value is not None:
            raise InvalidInput(f"A {field} is given only when the source is {needs.value}.")
        return
    if value not in choices:
        raise InvalidInput(f"The variable's {field} must be one of {', '.join(choices)}.")


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]
