"""What the florist studio's modules share: who may do what, and the checks of plain values.

Studio content (catalog, styles, prompt templates, generator configurations, designs' ratings)
is edited by florists and admins; only admins label a template version production or activate
a generator configuration; every role reads, so managers see the results.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TypeVar
from urllib.parse import urlsplit

from pydantic import ValidationError

from core.access import ALL_ROLES, Role
from core.errors import InvalidInput

EDITORS: tuple[Role, ...] = (Role.ADMIN, Role.FLORIST)
READERS: tuple[Role, ...] = ALL_ROLES
MAX_URL_LENGTH = 2000
_CONTROL = re.compile(r"[\x00-\x20\x7f]")


def label(value: object, *, field: str, max_length: int = 100, min_length: int = 1) -> str:
    """A one-line name with its spaces collapsed, between the given lengths."""
    if not isinstance(value, str):
        raise ValueError(f"{field} must be text")
    cleaned = " ".join(value.split())
    if not min_length <= len(cleaned) <= max_length:
        raise ValueError(f"{field} needs {min_length} to {max_length} characters")
    return cleaned


def text_list(value: object, *, field: str, max_items: int = 20, max_length: int = 60) -> list[str]:
    """A list of short texts, from a list or from comma-separated text; blanks and repeats
    (ignoring case) are dropped, the order is kept."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ValueError(f"{field} must be a list of text or comma-separated text")
    out: list[str] = []
    seen: set[str] = set()
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"{field} must hold text only")
        cleaned = " ".join(item.split())
        if not cleaned or cleaned.casefold() in seen:
            continue
        if len(cleaned) > max_length:
            raise ValueError(f"{field}: {cleaned[:20]!r}… is longer than {max_length} characters")
        seen.add(cleaned.casefold())
        out.append(cleaned)
    if len(out) > max_items:
        raise ValueError(f"{field} holds at most {max_items} items, not {len(out)}")
    return out


def http_url(value: object, *, field: str = "image URL") -> str:
    """An absolute http(s) URL with a host, no spaces or control characters."""
    if not isinstance(value, str):
        raise ValueError(f"the {field} must be text")
    url = value.strip()
    if len(url) > MAX_URL_LENGTH:
        raise ValueError(f"the {field} is longer than {MAX_URL_LENGTH} characters")
    if _CONTROL.search(url):
        raise ValueError(f"the {field} contains spaces or control characters")
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(f"the {field} must be an http:// or https:// address with a host")
    return url


def url_list(value: object, *, field: str = "example images", max_items: int = 10) -> list[str]:
    """A list of http(s) URLs (a list, or text with one per line or comma-separated)."""
    if value is None:
        return []
    items = re.split(r"[\n,]", value) if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ValueError(f"{field} must be a list of URLs")
    urls = [
        http_url(u, field=f"{field} URL")
        for u in items
        if not (isinstance(u, str) and not u.strip())
    ]
    if len(urls) > max_items:
        raise ValueError(f"{field} holds at most {max_items} URLs, not {len(urls)}")
    return list(dict.fromkeys(urls))


def input_error(exc: ValidationError, *, where: str = "") -> InvalidInput:
    """Pydantic's errors as one InvalidInput: 'field: problem; other: problem'."""
    parts = []
    for error in exc.errors():
        field = ".".join(str(p) for p in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        parts.append(f"{field}: {message}" if field else message)
    return InvalidInput(where + "; ".join(parts) + ".")


def words(texts: Iterable[str]) -> set[str]:
    """Lowercase words with a naive plural removed ('peonies' and 'peony' meet), to compare
    catalog entries with a style's parameters."""
    found: set[str] = set()
    for text in texts:
        for word in re.findall(r"[a-z]+", text.casefold()):
            found.add(_singular(word))
    return found


def _singular(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


T = TypeVar("T")
SHOWN_ERRORS = 20  # bad lines named when a file is refused


def read_jsonl(
    lines: Iterable[str], parse: Callable[[Mapping[str, object], str], T]
) -> list[tuple[int, T]]:
    """A JSONL file as (line number, parse(fields, "Line N: ")); any bad line refuses the whole
    file, naming every bad line (the first SHOWN_ERRORS of them). Blank lines are skipped."""
    found: list[tuple[int, T]] = []
    errors: list[str] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            fields = json.loads(line)
            if not isinstance(fields, dict):
                raise InvalidInput(f"Line {number}: not a JSON object.")
            found.append((number, parse(fields, f"Line {number}: ")))
        except json.JSONDecodeError as exc:
            errors.append(f"Line {number}: not valid JSON ({exc.msg}).")
        except InvalidInput as exc:
            errors.append(str(exc))
    if errors:
        raise nothing_recorded(errors)
    return found


def nothing_recorded(errors: Sequence[str]) -> InvalidInput:
    """One error for a refused file: what was wrong, the first SHOWN_ERRORS lines of it."""
    shown = list(errors[:SHOWN_ERRORS])
    if len(errors) > SHOWN_ERRORS:
        shown.append(f"… and {len(errors) - SHOWN_ERRORS} more.")
    return InvalidInput("\n".join(["Nothing was recorded:", *shown]))
