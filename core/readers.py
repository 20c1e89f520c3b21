"""Reading dataset files: decoding, format detection, and the rows of CSV, JSON Lines, Rasa YAML.

Everything streams: bytes are decoded chunk by chunk and rows are yielded one at a time, so a
file of any size is read in constant memory. A structural problem raises FileRefused naming the
line; a problem of one row travels with the row (RawRow.problem) for the caller to report.
"""

from __future__ import annotations

import codecs
import csv
import html
import itertools
import json
import re
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import PurePath
from typing import BinaryIO

from core.errors import FileRefused
from core.file_spec import (
    CLEANUP_STEPS,
    CONVERSATION_FIELDS,
    CONVERSATION_REQUIRED,
    EXAMPLE_FIELDS,
    EXAMPLE_REQUIRED,
    FileFormat,
    Kind,
    ReadSpec,
)
from core.spreadsheet import FORMULA_STARTS

HEAD_BYTES = 64 * 1024
CHUNK_BYTES = 256 * 1024
DELIMITERS = (",", ";", "\t", "|")
EXTENSIONS: dict[str, FileFormat] = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".yml": "rasa",
    ".yaml": "rasa",
}
MAX_NAMES_NOTED = 20

_BREAK = re.compile(r"\r\n|\r|\n")
_BREAK_BYTES = re.compile(rb"\r\n|\r|\n")


@dataclass(frozen=True)
class RawRow:
    """One row of a file as Trellis fields, before validation."""

    line: int
    values: dict[str, object]
    problem: str | None = None


def fields_of(kind: Kind) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The Trellis fields a file of this kind can supply, and the required ones."""
    if kind == "conversations":
        return CONVERSATION_FIELDS, CONVERSATION_REQUIRED
    return EXAMPLE_FIELDS, EXAMPLE_REQUIRED


# --- bytes and text -------------------------------------------------------------------------


class Source:
    """A binary stream read in chunks: keeps the head for detection, counts and limits bytes."""

    def __init__(
        self, stream: BinaryIO, *, max_bytes: int | None, progress: Callable[[int], None] | None
    ) -> None:
        self.stream, self.max_bytes, self.progress = stream, max_bytes, progress
        self.bytes_read = 0
        self._refuse_if_known_too_large()
        head = b""
        while len(head) < HEAD_BYTES:
            chunk = self._read(HEAD_BYTES - len(head))
            if not chunk:
                break
            head += chunk
        self.head = head

    def _refuse_if_known_too_large(self) -> None:
        """A file on disk or in memory is measured first; a one-way stream while it is read."""
        if self.max_bytes is None:
            return
        try:
            here = self.stream.tell()
            size = self.stream.seek(0, 2) - here
            self.stream.seek(here)
        except (AttributeError, OSError, ValueError):
            return
        if size > self.max_bytes:
            raise FileRefused(_too_large(self.max_bytes, size))

    def _read(self, size: int) -> bytes:
        chunk = self.stream.read(size) or b""
        self.bytes_read += len(chunk)
        if self.max_bytes is not None and self.bytes_read > self.max_bytes:
            raise FileRefused(_too_large(self.max_bytes, None))
        if chunk and self.progress is not None:
            self.progress(self.bytes_read)
        return chunk

    def chunks(self) -> Iterator[bytes]:
        """The head, then the rest of the stream."""
        yield self.head
        while chunk := self._read(CHUNK_BYTES):
            yield chunk


def _too_large(max_bytes: int, size: int | None) -> str:
    limit = f"{max_bytes / 1024 / 1024:g} MB"
    if size is None:
        return f"The file is larger than the {limit} limit (TRELLIS_MAX_UPLOAD_MB)."
    return f"The file is {size / 1024 / 1024:.1f} MB; the limit is {limit} (TRELLIS_MAX_UPLOAD_MB)."


def choose_encoding(head: bytes, encoding: str | None, notes: list[str]) -> str:
    """The codec to read with: the spec's, else UTF-8 (BOM stripped), else cp1252 with a note."""
    if encoding:
        try:
            name = codecs.lookup(encoding).name
            b"a".decode(name)  # refuses codecs that are not text encodings (base64, rot13, …)
        except LookupError:
            raise FileRefused(f"Unknown encoding '{encoding}' in the import profile.") from None
        except UnicodeError:
            pass  # a text encoding that cannot decode one byte alone (UTF-16)
        return "utf-8-sig" if name == "utf-8" else name
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        notes.append("decoded as UTF-16 (the file starts with a UTF-16 byte order mark)")
        return "utf-16"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        return "utf-8-sig"
    except UnicodeDecodeError as exc:
        try:
            head.decode("cp1252")
        except UnicodeDecodeError:
            line = _line_at(exc.object, exc.start)
            raise FileRefused(
                f"line {line}: the file is neither UTF-8 nor cp1252 text "
                f"(byte 0x{exc.object[exc.start]:02x}); save it as UTF-8."
            ) from None
    notes.append("decoded as cp1252 (the file is not UTF-8)")
    return "cp1252"


def _line_at(data: bytes, offset: int) -> int:
    return len(_BREAK_BYTES.findall(data, 0, offset)) + 1


def _decode_error(codec: str, exc: UnicodeError, lines_done: int) -> str:
    name = codec.removesuffix("-sig").upper()
    if not isinstance(exc, UnicodeDecodeError):  # e.g. UTF-16 without a byte order mark
        return f"line {lines_done + 1}: not {name} text ({exc}). Save the file as UTF-8."
    line = lines_done + _line_at(exc.object, exc.start)
    bad = f"byte 0x{exc.object[exc.start]:02x}" if exc.start < len(exc.object) else "its end"
    return (
        f"line {line}: invalid {name} text at {bad}; the start of the file was read as "
        f"{name}. Save the file as UTF-8."
    )


def decoded_lines(source: Source, codec: str) -> Iterator[str]:
    """The text lines of the file, each with its line break (CRLF, LF or CR) kept."""
    decoder = codecs.getincrementaldecoder(codec)("strict")
    pending, done = "", 0
    for chunk in itertools.chain(source.chunks(), [b""]):
        final = not chunk
        try:
            text = decoder.decode(chunk, final)
        except UnicodeError as exc:
            raise FileRefused(_decode_error(codec, exc, done)) from None
        buf = pending + text
        # A CR at the end of a chunk may be the first half of a CRLF: keep it for the next one.
        end = len(buf) - 1 if not final and buf.endswith("\r") else len(buf)
        start = 0
        for match in _BREAK.finditer(buf, 0, end):
            yield buf[start : match.end()]
            start = match.end()
            done += 1
        pending = buf[start:]
    if pending:
        yield pending


# --- format detection -----------------------------------------------------------------------


def detect_format(filename: str, head: bytes) -> tuple[Kind, FileFormat]:
    """The kind and format of a file, from its extension and a look at its first line."""
    suffix = PurePath(filename).suffix.lower()
    utf16 = head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    text = head.decode("utf-16" if utf16 else "utf-8", errors="replace").lstrip("\ufeff")
    first = next((line for line in _BREAK.split(text) if line.strip()), "")
    file_format = EXTENSIONS.get(suffix) or _sniff_format(suffix, text, first)
    if file_format == "rasa":
        return "examples", "rasa"
    if file_format == "jsonl":
        keys = set(re.findall(r'"([^"\\]*)"\s*:', first))
    else:
        names = first.split(detect_delimiter(first))
        keys = {name.strip().strip('"').strip().lower() for name in names}
    kind: Kind = "conversations" if {"conversation_id", "role"} <= keys else "examples"
    return kind, file_format


def _sniff_format(suffix: str, text: str, first: str) -> FileFormat:
    if suffix:
        raise FileRefused(
            f"'{suffix}' files are not read; use CSV (.csv), JSON Lines (.jsonl) "
            "or Rasa training data (.yml)."
        )
    if first.lstrip().startswith("{"):
        return "jsonl"
    if re.search(r"^nlu:\s*$", text, re.MULTILINE):
        return "rasa"
    return "csv"


def detect_delimiter(header: str) -> str:
    """The one of , ; TAB | that appears most often outside quotes in the header line."""
    outside = re.sub(r'"[^"]*"', "", header)
    counts = [(outside.count(d), -i, d) for i, d in enumerate(DELIMITERS)]
    best = max(counts)
    return best[2] if best[0] else ","


def delimiter_name(delimiter: str) -> str:
    """How a delimiter is named in a note."""
    return "TAB" if delimiter == "\t" else f"'{delimiter}'"


# --- mapping and clean-up -------------------------------------------------------------------


def source_keys(spec: ReadSpec, kind: Kind) -> dict[str, str]:
    """Trellis field -> the file's column or key, refusing mappings of unknown fields."""
    fields, _ = fields_of(kind)
    unknown = sorted(set(spec.mapping) - set(fields))
    if unknown:
        raise FileRefused(
            f"The import profile maps unknown field(s) {', '.join(unknown)}; "
            f"{kind} files have: {', '.join(fields)}."
        )
    return {f: (spec.mapping.get(f) or f).strip() for f in fields}


_TAG = re.compile(r"<[^>]*>")
_BLOCK_END = re.compile(r"<\s*(br|/p|/div|/li|/tr|/h\d)\b[^>]*>", re.IGNORECASE)
_INVISIBLE = re.compile(r"<(script|style)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_WROTE = re.compile(r"^\s*On\b.*\bwrote:\s*$", re.MULTILINE)
_SIGNATURE = re.compile(r"^--[ ]?$", re.MULTILINE)
_SPACES = re.compile(r"\s+")


def _strip_html(text: str) -> str:
    text = _BLOCK_END.sub("\n", _INVISIBLE.sub("", text))
    return html.unescape(_TAG.sub("", text))


def _strip_quoted_reply(text: str) -> str:
    match = _WROTE.search(text)
    text = text[: match.start()] if match else text
    return "\n".join(line for line in text.split("\n") if not line.lstrip().startswith(">"))


def _strip_signature(text: str) -> str:
    match = _SIGNATURE.search(text.replace("\r\n", "\n"))
    return text.replace("\r\n", "\n")[: match.start()] if match else text


def _collapse_whitespace(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


CLEANERS: Mapping[str, Callable[[str], str]] = {
    "strip_html": _strip_html,
    "strip_quoted_reply": _strip_quoted_reply,
    "strip_signature": _strip_signature,
    "collapse_whitespace": _collapse_whitespace,
}


def cleaner(steps: tuple[str, ...]) -> Callable[[str], str]:
    """One function applying the spec's clean-up steps in CLEANUP_STEPS order."""
    unknown = sorted(set(steps) - set(CLEANUP_STEPS))
    if unknown:
        raise FileRefused(f"Unknown clean-up step(s) in the import profile: {', '.join(unknown)}.")
    chosen = [CLEANERS[name] for name in CLEANUP_STEPS if name in steps]

    def clean(text: str) -> str:
        for fn in chosen:
            text = fn(text)
        return text

    return clean


# --- CSV ------------------------------------------------------------------------------------

# A cell starting with a formula character, after any apostrophes (the guard and text's own).
GUARDED = re.compile("'*[" + re.escape("".join(FORMULA_STARTS)) + "]")


def unquote_cell(value: str) -> str:
    """Undo core.spreadsheet.safe_cell: drop one apostrophe that guards a formula character.

    Export guards text that already starts with apostrophes before a formula character too
    ("'=x" is written "''=x"), so that every text survives the round trip.
    """
    return value[1:] if value.startswith("'") and GUARDED.match(value, 1) else value


def csv_rows(
    lines: Iterator[str], spec: ReadSpec, kind: Kind, notes: list[str], columns: list[str]
) -> Iterator[RawRow]:
    """Rows of a CSV file with a header line; `columns` receives the header as read."""
    first = next(lines, None)
    if first is None or not first.strip():
        raise FileRefused("line 1: the file is empty or has no header line.")
    delimiter = _delimiter(spec.delimiter) if spec.delimiter else detect_delimiter(first)
    if delimiter != ",":
        notes.append(f"delimiter {delimiter_name(delimiter)}")
    reader = csv.reader(itertools.chain([first], lines), delimiter=delimiter, strict=True)
    header = _csv_next(reader, 1) or []
    columns.extend(h.strip() for h in header)
    positions = _csv_positions([h.strip().lstrip("\ufeff").lower() for h in header], spec, kind)
    taken = set(positions.values())
    notes.extend(_unknown_note([h for i, h in enumerate(header) if i not in taken]))
    width, last = len(header), reader.line_num
    while (row := _csv_next(reader, last + 1)) is not None:
        line, last = last + 1, reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        values: dict[str, object] = {
            f: unquote_cell(row[i]) for f, i in positions.items() if i < len(row)
        }
        problem = None if len(row) == width else f"has {len(row)} fields; the header has {width}"
        yield RawRow(line, values, problem)


def _delimiter(given: str) -> str:
    delimiter = {"\\t": "\t", "tab": "\t"}.get(given.lower(), given)
    if len(delimiter) != 1 or delimiter in '"\r\n':
        raise FileRefused(
            f"The import profile's delimiter {given!r} cannot be used; give one character "
            "such as , ; | or TAB."
        )
    return delimiter


def _csv_next(reader: Iterator[list[str]], line: int) -> list[str] | None:
    try:
        return next(reader, None)
    except csv.Error as exc:
        raise FileRefused(f"line {line}: malformed CSV ({exc}).") from None


def _csv_positions(names: list[str], spec: ReadSpec, kind: Kind) -> dict[str, int]:
    fields, required = fields_of(kind)
    keys = {f: k.lower() for f, k in source_keys(spec, kind).items()}
    positions = {f: names.index(keys[f]) for f in fields if keys[f] in names}
    missing = [f"{keys[f]}" for f in required if f not in positions]
    if missing:
        raise FileRefused(
            f"line 1: missing required column(s) {', '.join(missing)}; "
            f"the header has: {', '.join(n for n in names if n) or 'nothing'}."
        )
    return positions


def _unknown_note(names: list[str]) -> list[str]:
    unknown = [name.strip() for name in names if name.strip()]
    if not unknown:
        return []
    shown = ", ".join(unknown[:MAX_NAMES_NOTED]) + (", …" if len(unknown) > MAX_NAMES_NOTED else "")
    return [f"ignored unknown columns: {shown}"]


# --- JSON Lines -----------------------------------------------------------------------------


def jsonl_rows(
    lines: Iterator[str],
    spec: ReadSpec,
    kind: Kind,
    notes: list[str],
    columns: list[str],
    max_depth: int,
) -> Iterator[RawRow]:
    """Rows of a JSON Lines file: one object per line; dotted keys reach nested objects."""
    paths = source_keys(spec, kind)
    tops = {key.split(".")[0] for key in paths.values()} | set(paths.values())
    unknown: dict[str, None] = {}
    seen: set[str] = set()
    for number, text in enumerate(lines, 1):
        if not text.strip():
            continue
        obj = _json_object(text, number, max_depth)
        for key in obj:
            if key in seen or len(seen) > MAX_NAMES_NOTED * 5:
                continue
            seen.add(key)
            columns.append(key)
            if key not in tops:
                unknown.setdefault(key)
        yield RawRow(number, {f: _lookup(obj, key) for f, key in paths.items()})
    notes.extend(_unknown_note(list(unknown)))


_ARRAY_HINT = "; a JSON array is not read: write one JSON object per line (JSON Lines)"


def _json_object(text: str, number: int, max_depth: int) -> dict[str, object]:
    try:
        obj = json.loads(text)
    except RecursionError:
        raise FileRefused(f"line {number}: JSON nested deeper than {max_depth} levels.") from None
    except ValueError as exc:
        detail = (
            f" ({exc.msg} at column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
        )
        hint = _ARRAY_HINT if text.lstrip().startswith("[") else ""
        raise FileRefused(f"line {number}: malformed JSON{detail}{hint}.") from None
    if not isinstance(obj, dict):
        hint = _ARRAY_HINT if isinstance(obj, list) else ""
        raise FileRefused(f"line {number}: expected a JSON object{hint}.")
    if _deeper_than(obj, max_depth):
        raise FileRefused(f"line {number}: JSON nested deeper than {max_depth} levels.")
    return obj


def _deeper_than(obj: object, limit: int) -> bool:
    stack: list[tuple[object, int]] = [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return True
        children = (
            value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        )
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _lookup(obj: dict[str, object], key: str) -> object:
    if key in obj:
        return obj[key]
    value: object = obj
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


# --- Rasa NLU YAML --------------------------------------------------------------------------

_KEY = re.compile(r"^([A-Za-z_][\w-]*)\s*:(?:\s+(.*))?$")
_DOUBLE = re.compile(r'^"((?:[^"\\]|\\.)*)"\s*(?:#.*)?$')
_SINGLE = re.compile(r"^'((?:[^']|'')*)'\s*(?:#.*)?$")
_ENTITY = re.compile(r"\[([^\[\]\n]+)\](?:\([^()\n]*\)|\{[^{}\n]*\})")
_LITERAL = ("|", "|-", "|+")


def rasa_scalar(value: str, line: int) -> str:
    """A YAML scalar on one line: plain, 'single' or "double" quoted (comments dropped)."""
    value = value.strip()
    if value.startswith('"'):
        match = _DOUBLE.match(value)
        try:
            return str(json.loads(f'"{match.group(1)}"')) if match else _bad_scalar(line)
        except ValueError:
            return _bad_scalar(line)
    if value.startswith("'"):
        match = _SINGLE.match(value)
        return match.group(1).replace("''", "'") if match else _bad_scalar(line)
    return value.split(" #")[0].strip()


def _bad_scalar(line: int) -> str:
    raise FileRefused(f"line {line}: a quoted value is not closed or has bad escapes.")


def rasa_quote(value: str) -> str:
    """A YAML scalar that reads back as `value` (plain when that is safe)."""
    if re.fullmatch(r"[A-Za-z0-9_][\w.\-/]*", value):
        return value
    return json.dumps(value, ensure_ascii=False)


class _RasaParser:
    """A streaming reader of the NLU part of Rasa training data (the subset Rasa writes)."""

    def __init__(self, notes: list[str]) -> None:
        self.notes = notes
        self.section = "top"
        self.item_indent: int | None = None
        self.intent: str | None = None
        self.skip_deeper: int | None = None
        self.block: tuple[str, int, int | None] | None = None  # (kind, parent indent, indent)
        self.text_block: tuple[int, list[str]] | None = None  # (first line, lines)
        self.list_mode = False
        self.ignored: dict[str, None] = {}
        self.entities = self.metadata = 0

    def feed(self, number: int, raw: str) -> Iterator[RawRow]:
        """The examples a line completes (a text block completes on the line after it)."""
        line = raw.rstrip("\r\n")
        indent = len(line) - len(line.lstrip(" "))
        if self.block is not None:
            done = yield from self._in_block(number, line, indent)
            if done:
                return
        if not line.strip() or line.lstrip(" ").startswith("#"):
            return
        if line[indent] == "\t":
            raise FileRefused(f"line {number}: YAML does not allow tabs for indentation.")
        if self.skip_deeper is not None and indent > self.skip_deeper:
            return
        self.skip_deeper = None
        content = line.strip()
        if indent == 0 and not content.startswith("-"):
            self._top_level(number, content)
        elif self.section == "nlu":
            yield from self._nlu_line(number, content, indent)
        elif self.section == "top":
            raise FileRefused(f"line {number}: expected a top-level key such as 'nlu:'.")

    def _in_block(self, number: int, line: str, indent: int) -> Generator[RawRow, None, bool]:
        assert self.block is not None
        kind, parent, block_indent = self.block
        if line.strip() and indent <= parent:
            yield from self._close_block()
            return False
        if not line.strip():
            if self.text_block is not None:
                self.text_block[1].append("")
            return True
        if block_indent is None:
            block_indent = indent
            self.block = (kind, parent, indent)
        if indent < block_indent:
            raise FileRefused(f"line {number}: the block is indented less than its first line.")
        content = line[block_indent:]
        if self.text_block is not None:
            self.text_block[1].append(content)
        elif content.startswith("- ") or content.rstrip() == "-":
            yield self._example(number, content[2:])
        else:
            yield RawRow(number, {}, "expected '- ' before the example")
        return True

    def _close_block(self) -> Iterator[RawRow]:
        if self.text_block is not None:
            first, lines = self.text_block
            yield self._example(first, "\n".join(lines))
        self.block = self.text_block = None

    def finish(self) -> Iterator[RawRow]:
        if self.block is not None:
            yield from self._close_block()
        if self.ignored:
            self.notes.append(f"ignored Rasa sections: {', '.join(self.ignored)}")
        if self.entities:
            self.notes.append(f"removed entity annotations from {self.entities} examples")
        if self.metadata:
            self.notes.append(f"ignored metadata on {self.metadata} entries")

    def _example(self, number: int, text: str) -> RawRow:
        plain, count = _ENTITY.subn(r"\1", text)
        self.entities += 1 if count else 0
        return RawRow(number, {"text": plain, "intent": self.intent})

    def _top_level(self, number: int, content: str) -> None:
        if content in ("---", "..."):
            return
        match = _KEY.match(content)
        if not match:
            raise FileRefused(f"line {number}: expected a top-level key such as 'nlu:'.")
        key = match.group(1)
        self.section = "nlu" if key == "nlu" else "other"
        self.item_indent, self.intent, self.list_mode = None, None, False
        if key not in ("nlu", "version"):
            self.ignored.setdefault(key)

    def _nlu_line(self, number: int, content: str, indent: int) -> Iterator[RawRow]:
        if self.item_indent is None:
            self.item_indent = indent
        if indent < self.item_indent:
            raise FileRefused(f"line {number}: bad indentation.")
        if indent == self.item_indent:
            self._new_item(number, content)
        elif self.intent is None:
            raise FileRefused(f"line {number}: expected '- intent: <name>' first.")
        elif self.list_mode and content.startswith("-"):
            yield from self._list_entry(number, content[1:].strip(), indent)
        else:
            self._item_key(number, content, indent)

    def _new_item(self, number: int, content: str) -> None:
        match = _KEY.match(content[1:].strip()) if content.startswith("- ") else None
        if not match:
            raise FileRefused(f"line {number}: expected '- intent: <name>'.")
        self.list_mode, self.intent = False, None
        if match.group(1) != "intent":
            self.ignored.setdefault(match.group(1))
            self.skip_deeper = self.item_indent
            return
        self.intent = rasa_scalar(match.group(2) or "", number)
        if not self.intent:
            raise FileRefused(f"line {number}: the intent has no name.")

    def _item_key(self, number: int, content: str, indent: int) -> None:
        match = _KEY.match(content)
        if not match:
            raise FileRefused(f"line {number}: expected a key such as 'examples: |'.")
        key, value = match.group(1), (match.group(2) or "").split(" #")[0].strip()
        if key != "examples":
            self.metadata += key == "metadata"
            self.skip_deeper = indent
        elif value in _LITERAL:
            self.block = ("examples", indent, None)
        elif not value:
            self.list_mode = True
        else:
            raise FileRefused(f"line {number}: write examples as a literal block ('examples: |').")

    def _list_entry(self, number: int, rest: str, indent: int) -> Iterator[RawRow]:
        match = _KEY.match(rest)
        if match is None:
            yield self._example(number, rasa_scalar(rest, number))
            return
        key, value = match.group(1), (match.group(2) or "").strip()
        if key != "text":
            self.metadata += key == "metadata"
            self.skip_deeper = indent + 1
        elif value.split(" #")[0].strip() in _LITERAL:
            self.block, self.text_block = ("text", indent + 2, None), (number, [])
        else:
            yield self._example(number, rasa_scalar(value, number))


def rasa_rows(lines: Iterator[str], notes: list[str]) -> Iterator[RawRow]:
    """Examples of the `nlu:` section of Rasa training data; other sections are noted, skipped."""
    parser = _RasaParser(notes)
    for number, line in enumerate(lines, 1):
        yield from parser.feed(number, line)
    yield from parser.finish()
