"""Datasets: import labelled examples and conversation logs from files, export them, count them.

An import is all or nothing per file (a structural error writes nothing) and idempotent:
labelled examples are de-duplicated by content_hash, messages by Message.dedupe_key, so
importing a file twice adds nothing. Files stream in constant memory and rows go to the
database in batches, inside a savepoint of the caller's transaction.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, BinaryIO, Literal, TextIO

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    Text,
    any_,
    bindparam,
    case,
    cast,
    column,
    false,
    func,
    insert,
    literal,
    update,
)
from sqlalchemy import select as select_columns
from sqlalchemy.dialects import postgresql
from sqlmodel import Session, SQLModel, col, select

from core import audit, memory, review_groups
from core.access import Actor, Role, require_role
from core.config import Settings, get_settings
from core.errors import FileRefused, InvalidInput
from core.file_spec import FileFormat, Kind, ReadSpec
from core.readers import (
    GUARDED,
    RawRow,
    Source,
    choose_encoding,
    cleaner,
    csv_rows,
    decoded_lines,
    detect_format,
    jsonl_rows,
    rasa_quote,
    rasa_rows,
)
from core.spreadsheet import safe_cell
from core.sql import insert_unless_exists
from core.text import message_key, near_identical, normalize_text, text_hash
from db.models import (
    Conversation,
    Example,
    ExampleSource,
    ExampleStatus,
    Intent,
    Message,
    utcnow,
)

__all__ = [
    "MIN_EXAMPLES_PER_INTENT",
    "DatasetStats",
    "ExampleFilter",
    "FileRefused",
    "ImportReport",
    "Preview",
    "RejectedRow",
    "RowsRejected",
    "check_file",
    "dataset_stats",
    "detect_format",
    "export_conversations",
    "export_examples",
    "import_file",
    "preview_file",
]

MIN_EXAMPLES_PER_INTENT = 10
BATCH_ROWS = 5_000
MAX_REJECTS_KEPT = 1_000
EXPORT_COLUMNS = ("text", "intent", "response", "confidence", "timestamp", "status", "source")
# Message roles, and the names other platforms give them.
ROLES = {"customer": "customer", "assistant": "assistant", "agent": "agent"}
ROLES |= {"user": "customer", "bot": "assistant"}
TRUE_WORDS = frozenset({"true", "yes", "y", "t", "1"})
FALSE_WORDS = frozenset({"false", "no", "n", "f", "0"})
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
MAX_INTENT_LENGTH = 100  # Intent.name, Example.correct_intent
MAX_ID_LENGTH = 128  # Conversation.external_id, Conversation.customer_id


# --- results --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RejectedRow:
    """A row left out of an import, and why."""

    line: int
    reason: str


@dataclass(frozen=True)
class ImportReport:
    """What an import did (or, from check_file and RowsRejected, would do)."""

    kind: Kind
    file_format: FileFormat
    total_rows: int
    inserted: int
    duplicates: int
    rejected: int
    rejects: list[RejectedRow]  # the first MAX_REJECTS_KEPT; `rejected` has the full count
    notes: list[str]

    @property
    def valid_rows(self) -> int:
        return self.total_rows - self.rejected


class RowsRejected(InvalidInput):
    """Rows were rejected and valid_only was not set: nothing was written; `.report` says why."""

    def __init__(self, report: ImportReport) -> None:
        first = report.rejects[0] if report.rejects else None
        example = f" (first: line {first.line}: {first.reason})" if first else ""
        super().__init__(
            f"{report.rejected:,} of {report.total_rows:,} rows were rejected{example}; "
            "nothing was imported. Fix the file, or import only the valid rows."
        )
        self.report = report


@dataclass(frozen=True)
class Preview:
    """The head of a file as Trellis would read it."""

    kind: Kind
    file_format: FileFormat
    columns: list[str]
    rows: list[dict[str, str]]
    notes: list[str]


@dataclass(frozen=True)
class ExampleFilter:
    """Which examples to export; None means any. Dates compare with created_at, until exclusive."""

    status: str | None = None
    intent: str | None = None
    source: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class DatasetStats:
    """A shop's examples counted: labels are correct_intent; duplicates share a text_hash."""

    total: int
    reviewed: int
    reviewed_share: float
    per_intent: list[tuple[str, int]]
    per_source: dict[str, int]
    per_status: dict[str, int]
    duplicate_groups: int
    duplicate_rows: int
    thin_intents: list[tuple[str, int]]


# --- reading --------------------------------------------------------------------------------


@dataclass
class _Opened:
    spec: ReadSpec
    rows: Iterator[RawRow]
    columns: list[str]
    notes: list[str]


def _open(
    stream: BinaryIO,
    filename: str,
    spec: ReadSpec | None,
    settings: Settings,
    progress: Callable[[int], None] | None = None,
    *,
    limit_size: bool = True,
) -> _Opened:
    max_bytes = settings.max_upload_mb * 1024 * 1024 if limit_size else None
    source = Source(stream, max_bytes=max_bytes, progress=progress)
    if spec is None:
        kind, file_format = detect_format(filename, source.head)
        spec = ReadSpec(kind=kind, file_format=file_format)
    if spec.file_format == "rasa" and spec.kind != "examples":
        raise FileRefused("Rasa training data holds labelled examples, not conversations.")
    notes: list[str] = []
    columns: list[str] = []
    lines = decoded_lines(source, choose_encoding(source.head, spec.encoding, notes))
    if spec.file_format == "csv":
        rows = csv_rows(lines, spec, spec.kind, notes, columns)
    elif spec.file_format == "jsonl":
        rows = jsonl_rows(lines, spec, spec.kind, notes, columns, settings.max_json_depth)
    else:
        columns.extend(["intent", "text"])
        rows = rasa_rows(lines, notes)
    return _Opened(spec, rows, columns, notes)


def preview_file(
    *, stream: BinaryIO, filename: str, spec: ReadSpec | None, rows: int = 20
) -> Preview:
    """The first rows of a file as Trellis fields (mapping and clean-up applied); writes nothing."""
    opened = _open(stream, filename, spec, get_settings(), limit_size=False)
    clean = cleaner(opened.spec.cleanup)
    shown: list[dict[str, str]] = []
    for raw in opened.rows:
        values = {k: _shown(v) for k, v in raw.values.items()}
        if values.get("text"):
            values["text"] = clean(values["text"]).strip()
        shown.append(values)
        if len(shown) >= rows:
            break
    spec = opened.spec
    return Preview(spec.kind, spec.file_format, opened.columns, shown, opened.notes)


def _shown(value: object) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


# --- row validation -------------------------------------------------------------------------


class _RowError(Exception):
    """One row cannot be imported; the message is the reason shown to the user."""


class _Rows:
    """Turns raw rows into the values of database rows, or raises _RowError."""

    def __init__(self, spec: ReadSpec, settings: Settings, tenant_id: int) -> None:
        self.clean = cleaner(spec.cleanup)
        self.date_format = spec.date_format
        self.max_text = settings.max_text_length
        self.tenant_id = tenant_id
        self.now = utcnow()

    def message_text(self, values: dict[str, object]) -> str:
        text = self.clean(_string(values, "text")).strip()
        if not text:
            raise _RowError("missing text" if values.get("text") is None else "empty text")
        if len(text) > self.max_text:
            raise _RowError(f"text longer than {self.max_text:,} characters ({len(text):,})")
        return text

    def example(self, values: dict[str, object]) -> dict[str, Any]:
        text = self.message_text(values)
        intent = _string(values, "intent", required=True, max_length=MAX_INTENT_LENGTH)
        when = _timestamp(values.get("timestamp"), self.date_format)
        by_text, by_content = example_hashes(text, intent)
        return {
            "tenant_id": self.tenant_id,
            "text": text,
            "correct_intent": intent,
            "ai_response": _string(values, "response") or None,
            "confidence": _confidence(values.get("confidence")),
            "status": ExampleStatus.APPROVED.value,
            "source": ExampleSource.IMPORTED.value,
            "reviewed": False,
            "escalated": False,
            "text_hash": by_text,
            "content_hash": by_content,
            "created_at": when or self.now,
            "updated_at": self.now,
            "version": 1,
        }

    def message(self, values: dict[str, object]) -> dict[str, Any]:
        text = self.message_text(values)
        external = _string(values, "conversation_id", required=True, max_length=MAX_ID_LENGTH)
        role = _string(values, "role", required=True).lower()
        role = ROLES.get(role) or _unknown_role(role)
        when = _timestamp(values.get("timestamp"), self.date_format)
        return {
            "external_id": external,
            "customer_id": _string(values, "customer_id", max_length=MAX_ID_LENGTH),
            "role": role,
            "text": text,
            "created_at": when,
            "escalated": _flag(values, "escalated"),
            "resolved": _flag(values, "resolved"),
            "dedupe_key": message_key(external, role, text, when),
        }


def example_hashes(text: str, label: str) -> tuple[str, str]:
    """core.text's text_hash and content_hash, normalizing the text once (imports are hot)."""
    normal = normalize_text(text)
    key = normal + "\x1f" + label.strip().lower()
    grouped = near_identical(normal).encode()
    return hashlib.sha256(grouped).hexdigest(), hashlib.sha256(key.encode()).hexdigest()


def _unknown_role(role: str) -> str:
    raise _RowError(f"unknown role '{role[:40]}' (expected customer, assistant or agent)")


def _string(
    values: dict[str, object], name: str, *, required: bool = False, max_length: int | None = None
) -> str:
    value = values.get(name)
    if type(value) is str:
        text = value.strip()
    elif isinstance(value, bool) or not isinstance(value, str | int | float | None):
        raise _RowError(f"{name} is not text")
    else:
        text = "" if value is None else str(value).strip()
    if not text and required:
        raise _RowError(f"missing {name}")
    if _UNSTORABLE.search(text):
        raise _RowError(f"{name} contains a NUL character or invalid Unicode")
    if max_length is not None and len(text) > max_length:
        raise _RowError(f"{name} longer than {max_length} characters")
    return text


def _timestamp(value: object, date_format: str | None) -> datetime | None:
    if value is None or value == "":
        return None
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            parsed = datetime.fromtimestamp(value, UTC)
        elif isinstance(value, str):
            text = value.strip()
            parsed = (
                datetime.strptime(text, date_format)
                if date_format
                else datetime.fromisoformat(text)
            )
        else:
            raise ValueError
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError, OSError):
        expected = f"'{date_format}'" if date_format else "ISO 8601, e.g. 2024-05-01T14:30:00Z"
        raise _RowError(f"bad timestamp '{str(value)[:40]}' (expected {expected})") from None


def _confidence(value: object) -> float | None:
    if value is None or value == "":
        return None
    try:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValueError
        number = float(value)
    except ValueError:
        number = math.nan
    if not 0 <= number <= 1:
        raise _RowError(f"bad confidence '{str(value)[:40]}' (expected a number from 0 to 1)")
    return number


def _flag(values: dict[str, object], name: str) -> bool | None:
    value = values.get(name)
    if value is None or isinstance(value, bool):
        return value
    word = str(value).strip().lower() if isinstance(value, str | int) else "?"
    if word in TRUE_WORDS or word in FALSE_WORDS:
        return word in TRUE_WORDS
    if not word:
        return None
    raise _RowError(f"bad {name} value '{str(value)[:40]}' (expected true or false)")


# --- writing --------------------------------------------------------------------------------


def _is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


_PG_EXAMPLE_COLUMNS: dict[str, Any] = {
    "text": Text,
    "correct_intent": Text,
    "ai_response": Text,
    "confidence": Float,
    "text_hash": Text,
    "content_hash": Text,
    "created_at": DateTime(timezone=True),
}


@functools.cache
def _pg_example_insert() -> Any:
    """INSERT … SELECT FROM json_to_recordset(:rows) ON CONFLICT DO NOTHING: one parameter a batch.

    psycopg parses every placeholder of a statement in Python: a multi-row VALUES list of a
    5,000-row batch has 70,000 of them, and parsing cost more than PostgreSQL's work (9,000
    rows/s). One JSON document per batch is encoded in C and parsed by the server (>20,000
    rows/s). The tenant guard still checks the `tenant_id` parameter.
    """
    columns = [column(name, kind) for name, kind in _PG_EXAMPLE_COLUMNS.items()]
    batch = (
        func.json_to_recordset(cast(bindparam("rows", type_=Text), JSON))
        .table_valued(*columns)
        .render_derived(name="batch", with_types=True)
    )
    constants = {
        "status": literal(ExampleStatus.APPROVED.value),
        "source": literal(ExampleSource.IMPORTED.value),
        "reviewed": false(),
        "escalated": false(),
        "updated_at": bindparam("updated_at", type_=DateTime(timezone=True)),
        "version": literal(1),
    }
    rows = select_columns(
        bindparam("tenant_id"),
        *(batch.c[name] for name in _PG_EXAMPLE_COLUMNS),
        *constants.values(),
    ).select_from(batch)
    table = SQLModel.metadata.tables["example"]  # Core: ORM bulk mode wants a list of rows
    return (
        postgresql.insert(table)
        .from_select(["tenant_id", *_PG_EXAMPLE_COLUMNS, *constants], rows)
        .on_conflict_do_nothing(index_elements=["tenant_id", "content_hash"])
        .returning(table.c.id)
    )


def _json_value(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON: {type(value).__name__}")


def _plan_every_check(session: Session) -> str | None:
    """On PostgreSQL, plan each foreign-key check for the rows at hand; returns the old mode.

    Messages and their examples reference rows this import creates. Until the tables are
    analyzed, a connection's cached plan for the check `conversation(tenant_id, id)` can pick
    an index on tenant_id alone and scan the whole shop for every row (1,200 messages/s on a
    fresh database instead of 8,000). Transaction-local; a rolled-back savepoint undoes it.
    """
    if not _is_postgres(session):
        return None
    old = session.execute(select_columns(func.current_setting("plan_cache_mode"))).scalar_one()
    _set_plan_cache_mode(session, "force_custom_plan")
    return str(old)


def _set_plan_cache_mode(session: Session, mode: str) -> None:
    session.execute(select_columns(func.set_config("plan_cache_mode", mode, True)))


@dataclass
class _Import:
    """One file going into the database in batches; counts what happened."""

    session: Session
    actor: Actor
    opened: _Opened
    settings: Settings
    total: int = 0
    inserted: int = 0
    duplicates: int = 0
    rejected: int = 0
    rejects: list[RejectedRow] = field(default_factory=list)
    intents_seen: set[str] = field(default_factory=set)
    created: dict[tuple[str, str], int] = field(default_factory=dict)  # (one, many) -> count
    waiting: set[str] = field(default_factory=set)  # text_hash of new pending examples
    told: list[int] = field(default_factory=list)  # new customer messages: memories to extract

    def run(self) -> ImportReport:
        rows = _Rows(self.opened.spec, self.settings, self.actor.tenant_id)
        examples = self.opened.spec.kind == "examples"
        make = rows.example if examples else rows.message
        flush = self._flush_examples if examples else self._flush_messages
        restore = None if examples else _plan_every_check(self.session)
        batch: list[dict[str, Any]] = []
        for raw in self.opened.rows:
            self._count(raw.line)
            try:
                if raw.problem:
                    raise _RowError(raw.problem)
                batch.append(make(raw.values))
            except _RowError as exc:
                self._reject(raw.line, str(exc))
            if len(batch) >= BATCH_ROWS:
                flush(batch)
                batch = []
        if batch:
            flush(batch)
        if restore is not None:
            _set_plan_cache_mode(self.session, restore)
        if self.told:
            memory.extract_messages(session=self.session, actor=self.actor, message_ids=self.told)
        if self.waiting:
            review_groups.refresh(session=self.session, actor=self.actor, text_hashes=self.waiting)
        return self._report()

    def _count(self, line: int) -> None:
        self.total += 1
        if self.total > self.settings.max_import_rows:
            raise FileRefused(
                f"line {line}: the file has more than {self.settings.max_import_rows:,} rows "
                "(TRELLIS_MAX_IMPORT_ROWS); split it."
            )

    def _reject(self, line: int, reason: str) -> None:
        self.rejected += 1
        if len(self.rejects) < MAX_REJECTS_KEPT:
            self.rejects.append(RejectedRow(line, reason))

    def _report(self) -> ImportReport:
        notes = list(self.opened.notes)
        notes += [
            f"created {n:,} {one if n == 1 else many}"
            for (one, many), n in self.created.items()
            if n
        ]
        spec = self.opened.spec
        return ImportReport(
            spec.kind,
            spec.file_format,
            self.total,
            self.inserted,
            self.duplicates,
            self.rejected,
            self.rejects,
            notes,
        )

    def _created(self, what: tuple[str, str], count: int) -> None:
        self.created[what] = self.created.get(what, 0) + count

    def _existing(self, column: Any, tenant_column: Any, values: set[str]) -> set[str]:
        if _is_postgres(self.session):
            # One array parameter instead of thousands of placeholders for the driver to parse.
            among = col(column) == any_(
                bindparam("keys", list(values), type_=postgresql.ARRAY(Text))
            )
        else:
            among = col(column).in_(values)
        query = select(column).where(tenant_column == self.actor.tenant_id, among)
        return set(self.session.exec(query).all())

    def _flush_examples(self, batch: list[dict[str, Any]]) -> None:
        hashes = {row["content_hash"] for row in batch}
        known = self._existing(Example.content_hash, Example.tenant_id, hashes)
        fresh: dict[str, dict[str, Any]] = {}
        for row in batch:
            if row["content_hash"] not in known:
                fresh.setdefault(row["content_hash"], row)
        self._ensure_intents({row["correct_intent"] for row in batch})
        added = self._insert_examples(list(fresh.values())) if fresh else 0
        self.inserted += added
        self.duplicates += len(batch) - added

    def _insert_examples(self, rows: list[dict[str, Any]]) -> int:
        if _is_postgres(self.session):
            batch = [{name: row[name] for name in _PG_EXAMPLE_COLUMNS} for row in rows]
            params = {
                "tenant_id": self.actor.tenant_id,
                "updated_at": rows[0]["updated_at"],
                "rows": json.dumps(batch, ensure_ascii=False, default=_json_value),
            }
            return len(self.session.execute(_pg_example_insert(), params).all())
        stmt = insert_unless_exists(self.session, Example, ("tenant_id", "content_hash")).returning(
            Example.id
        )
        return len(self.session.execute(stmt, rows).all())

    def _ensure_intents(self, labels: set[str]) -> None:
        new = labels - self.intents_seen
        if not new:
            return
        self.intents_seen |= new
        now = utcnow()
        tenant = self.actor.tenant_id
        rows = [
            {
                "tenant_id": tenant,
                "name": name,
                "description": "",
                "is_active": True,
                "created_at": now,
            }
            for name in sorted(new)
        ]
        stmt = insert_unless_exists(self.session, Intent, ("tenant_id", "name")).returning(
            Intent.id
        )
        self._created(("intent", "intents"), len(self.session.execute(stmt, rows).all()))

    def _flush_messages(self, batch: list[dict[str, Any]]) -> None:
        keys = {row["dedupe_key"] for row in batch}
        known = self._existing(Message.dedupe_key, Message.tenant_id, keys)
        fresh: dict[str, dict[str, Any]] = {}
        for row in batch:
            if row["dedupe_key"] not in known:
                fresh.setdefault(row["dedupe_key"], row)
        added = self._insert_messages(list(fresh.values())) if fresh else 0
        self.inserted += added
        self.duplicates += len(batch) - added

    def _insert_messages(self, rows: list[dict[str, Any]]) -> int:
        conversations = _Conversations(self.session, self.actor.tenant_id)
        ids = conversations.upsert(rows)
        self._created(("conversation", "conversations"), conversations.created)
        now, tenant = utcnow(), self.actor.tenant_id
        values = [
            {
                "tenant_id": tenant,
                "conversation_id": ids[row["external_id"]],
                "role": row["role"],
                "text": row["text"],
                "created_at": row["created_at"] or now,
                "dedupe_key": row["dedupe_key"],
            }
            for row in rows
        ]
        stmt = insert_unless_exists(self.session, Message, ("tenant_id", "dedupe_key"))
        result = self.session.execute(stmt.returning(Message.id, Message.dedupe_key), values)
        message_ids = {key: message_id for message_id, key in result.all()}
        examples = [
            _pending_example(tenant, row, values[i], message_ids[row["dedupe_key"]], now)
            for i, row in enumerate(rows)
            if row["role"] == "customer" and row["dedupe_key"] in message_ids
        ]
        self.told.extend(example["message_id"] for example in examples)
        if examples:
            self.session.execute(insert(Example), examples)
            self.waiting.update(row["text_hash"] for row in examples)
            what = ("example from a customer message", "examples from customer messages")
            self._created(what, len(examples))
        return len(message_ids)


def _pending_example(
    tenant: int, row: dict[str, Any], message: dict[str, Any], message_id: int, now: datetime
) -> dict[str, Any]:
    return {
        "tenant_id": tenant,
        "text": row["text"],
        "status": ExampleStatus.PENDING.value,
        "source": ExampleSource.IMPORTED.value,
        "reviewed": False,
        "escalated": bool(row["escalated"]),
        "text_hash": text_hash(row["text"]),
        "content_hash": None,
        "conversation_id": message["conversation_id"],
        "message_id": message_id,
        "created_at": message["created_at"],
        "updated_at": now,
        "version": 1,
    }


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else min(a, b)


def _latest(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else max(a, b)


@dataclass
class _Conversation:
    """What a conversation row says, and how what a file adds merges into it."""

    customer_id: str = ""
    started_at: datetime | None = None
    ended_at: datetime | None = None
    escalated: bool = False
    resolved: bool | None = None

    def merged(self, other: _Conversation) -> _Conversation:
        return _Conversation(
            self.customer_id or other.customer_id,
            _earliest(self.started_at, other.started_at),
            _latest(self.ended_at, other.ended_at),
            self.escalated or other.escalated,
            self.resolved if other.resolved is None else other.resolved,
        )

    @classmethod
    def of(cls, row: dict[str, Any]) -> _Conversation:
        when = row["created_at"]
        return cls(row["customer_id"], when, when, bool(row["escalated"]), row["resolved"])


class _Conversations:
    """Finds or creates the conversations of a batch of messages, merging what the batch adds."""

    def __init__(self, session: Session, tenant_id: int) -> None:
        self.session, self.tenant_id, self.created = session, tenant_id, 0

    def upsert(self, rows: list[dict[str, Any]]) -> dict[str, int]:
        seen: dict[str, _Conversation] = {}
        for row in rows:
            external = row["external_id"]
            seen[external] = seen.get(external, _Conversation()).merged(_Conversation.of(row))
        ids = self._merge_existing(seen)
        new = {external: conv for external, conv in seen.items() if external not in ids}
        if new:
            ids |= self._create(new)
        return ids

    def _select(self, externals: set[str]) -> Any:
        fields: list[Any] = [Conversation.id, Conversation.external_id, Conversation.customer_id]
        fields += [Conversation.started_at, Conversation.ended_at]
        fields += [Conversation.escalated, Conversation.resolved]
        query = select_columns(*(col(field) for field in fields)).where(
            col(Conversation.tenant_id) == self.tenant_id,
            col(Conversation.external_id).in_(externals),
        )
        return self.session.execute(query).all()

    def _merge_existing(self, seen: dict[str, _Conversation]) -> dict[str, int]:
        ids: dict[str, int] = {}
        changes: list[dict[str, Any]] = []
        for conv_id, external, customer, started, ended, escalated, resolved in self._select(
            set(seen)
        ):
            ids[external] = conv_id
            stored = _Conversation(customer, started, ended, escalated, resolved)
            merged = stored.merged(seen[external])
            if merged != stored:
                changes.append({"id": conv_id, **merged.__dict__})
        if changes:
            self.session.execute(update(Conversation), changes)
        return ids

    def _create(self, new: dict[str, _Conversation]) -> dict[str, int]:
        now = utcnow()
        values = [
            {
                "tenant_id": self.tenant_id,
                "external_id": external,
                "customer_id": conv.customer_id,
                "channel": "chat",
                "started_at": conv.started_at or now,
                "ended_at": conv.ended_at,
                "escalated": conv.escalated,
                "resolved": conv.resolved,
            }
            for external, conv in new.items()
        ]
        stmt = insert_unless_exists(self.session, Conversation, ("tenant_id", "external_id"))
        result = self.session.execute(
            stmt.returning(Conversation.id, Conversation.external_id), values
        )
        ids = {external: conv_id for conv_id, external in result.all()}
        self.created += len(ids)
        missing = set(new) - set(ids)
        if missing:  # created by a concurrent import since we looked
            ids |= {row[1]: row[0] for row in self._select(missing)}
        return ids


# --- import entry points --------------------------------------------------------------------


def _run(
    session: Session,
    actor: Actor,
    stream: BinaryIO,
    filename: str,
    spec: ReadSpec | None,
    progress: Callable[[int], None] | None,
    keep: Callable[[ImportReport], bool],
) -> ImportReport:
    """Import inside a savepoint: kept when `keep(report)`, else rolled back; always on errors."""
    settings = get_settings()
    opened = _open(stream, filename, spec, settings, progress)
    savepoint = session.begin_nested()
    try:
        report = _Import(session, actor, opened, settings).run()
    except BaseException:
        savepoint.rollback()
        raise
    if keep(report):
        savepoint.commit()
    else:
        savepoint.rollback()
    return report


def check_file(
    *, session: Session, actor: Actor, stream: BinaryIO, filename: str, spec: ReadSpec | None
) -> ImportReport:
    """A dry run (admin only): what import_file would insert, skip and reject; writes nothing."""
    require_role(actor, Role.ADMIN)
    return _run(session, actor, stream, filename, spec, None, keep=lambda _report: False)


def import_file(
    *,
    session: Session,
    actor: Actor,
    stream: BinaryIO,
    filename: str,
    spec: ReadSpec | None,
    valid_only: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import a dataset file into the actor's shop (admin only), all or nothing, idempotently."""
    require_role(actor, Role.ADMIN)
    report = _run(
        session,
        actor,
        stream,
        filename,
        spec,
        progress,
        keep=lambda r: valid_only or r.rejected == 0,
    )
    if report.rejected and not valid_only:
        raise RowsRejected(report)
    audit.record(
        session=session,
        actor=actor,
        action="dataset.import",
        entity_type="dataset",
        entity_id=filename[-64:],
        after={
            "kind": report.kind,
            "format": report.file_format,
            "total_rows": report.total_rows,
            "inserted": report.inserted,
            "duplicates": report.duplicates,
            "rejected": report.rejected,
        },
    )
    return report


# --- export ---------------------------------------------------------------------------------


def _csv_cell(value: object) -> str:
    """core.spreadsheet.safe_cell, so that core.readers.unquote_cell gives the text back."""
    text = "" if value is None else str(value)
    if text.startswith("'") and GUARDED.match(text):
        return "'" + text  # safe_cell leaves "'=x" alone, but reading drops its apostrophe
    return safe_cell(text)


def _example_query(actor: Actor, flt: ExampleFilter) -> Any:
    query = select_columns(
        col(Example.text),
        col(Example.correct_intent),
        col(Example.correct_response),
        col(Example.ai_response),
        col(Example.confidence),
        col(Example.created_at),
        col(Example.status),
        col(Example.source),
    ).where(col(Example.tenant_id) == actor.tenant_id)
    if flt.status:
        query = query.where(col(Example.status) == flt.status)
    if flt.intent:
        query = query.where(col(Example.correct_intent) == flt.intent)
    if flt.source:
        query = query.where(col(Example.source) == flt.source)
    if flt.since:
        query = query.where(col(Example.created_at) >= flt.since)
    if flt.until:
        query = query.where(col(Example.created_at) < flt.until)
    return query


def export_examples(
    *,
    session: Session,
    actor: Actor,
    out: TextIO,
    file_format: Literal["csv", "jsonl", "rasa"],
    flt: ExampleFilter,
) -> int:
    """Write the shop's filtered examples to `out` (admin or manager); returns rows written."""
    require_role(actor, Role.ADMIN, Role.MANAGER)
    query = _example_query(actor, flt)
    if file_format == "rasa":
        query = query.where(col(Example.correct_intent).is_not(None))
        query = query.order_by(col(Example.correct_intent), col(Example.id))
    else:
        query = query.order_by(col(Example.created_at), col(Example.id))
    rows = session.execute(query.execution_options(yield_per=1_000))
    write = {"csv": _write_csv, "jsonl": _write_jsonl, "rasa": _write_rasa}[file_format]
    count = write(out, (_export_record(*row) for row in rows))
    _audit_export(session, actor, f"examples.{file_format}", count)
    return count


def _export_record(
    text: str,
    intent: str | None,
    correct_response: str | None,
    ai_response: str | None,
    confidence: float | None,
    created_at: datetime,
    status: str,
    source: str,
) -> dict[str, Any]:
    return {
        "text": text,
        "intent": intent,
        "response": correct_response or ai_response,
        "confidence": confidence,
        "timestamp": created_at.astimezone(UTC).isoformat(),
        "status": status,
        "source": source,
    }


def _write_csv(out: TextIO, records: Iterator[dict[str, Any]]) -> int:
    # CRLF line ends (RFC 4180): the writer quotes fields holding any character of them.
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(EXPORT_COLUMNS)
    count = 0
    for record in records:
        writer.writerow([_csv_cell(record[name]) for name in EXPORT_COLUMNS])
        count += 1
    return count


def _write_jsonl(out: TextIO, records: Iterator[dict[str, Any]]) -> int:
    count = 0
    for record in records:
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
        count += 1
    return count


def _write_rasa(out: TextIO, records: Iterator[dict[str, Any]]) -> int:
    out.write('version: "3.1"\nnlu:\n')
    count, current = 0, None
    for record in records:
        if record["intent"] != current:
            current = record["intent"]
            out.write(f"- intent: {rasa_quote(current)}\n  examples: |\n")
        # One example per line: whitespace runs become one space (the content hash ignores them).
        out.write(f"    - {' '.join(record['text'].split())}\n")
        count += 1
    return count


def export_conversations(
    *,
    session: Session,
    actor: Actor,
    out: TextIO,
    since: datetime | None = None,
    until: datetime | None = None,
) -> int:
    """Messages of conversations started in [since, until) as JSON Lines (admin or manager)."""
    require_role(actor, Role.ADMIN, Role.MANAGER)
    rows = session.execute(_message_query(actor, since, until).execution_options(yield_per=1_000))
    count = 0
    for external, customer, escalated, resolved, role, text, at, key in rows:
        # A message imported without a time keeps none, so that re-importing this file matches it.
        timeless = key is not None and key == message_key(external, role, text, None)
        record = {
            "conversation_id": external,
            "customer_id": customer,
            "role": role,
            "text": text,
            "timestamp": None if timeless else at.astimezone(UTC).isoformat(),
            "escalated": escalated,
            "resolved": resolved,
        }
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
        count += 1
    _audit_export(session, actor, "conversations.jsonl", count)
    return count


def _message_query(actor: Actor, since: datetime | None, until: datetime | None) -> Any:
    same_conversation = (col(Message.tenant_id) == col(Conversation.tenant_id)) & (
        col(Message.conversation_id) == col(Conversation.id)
    )
    query = (
        select_columns(
            col(Conversation.external_id),
            col(Conversation.customer_id),
            col(Conversation.escalated),
            col(Conversation.resolved),
            col(Message.role),
            col(Message.text),
            col(Message.created_at),
            col(Message.dedupe_key),
        )
        .join(Message, same_conversation)
        .where(col(Conversation.tenant_id) == actor.tenant_id)
    )
    if since:
        query = query.where(col(Conversation.started_at) >= since)
    if until:
        query = query.where(col(Conversation.started_at) < until)
    return query.order_by(
        col(Conversation.started_at), col(Conversation.id), col(Message.created_at), col(Message.id)
    )


def _audit_export(session: Session, actor: Actor, what: str, count: int) -> None:
    audit.record(
        session=session,
        actor=actor,
        action="dataset.export",
        entity_type="dataset",
        entity_id=what,
        after={"rows": count},
    )


# --- statistics -----------------------------------------------------------------------------


def dataset_stats(*, session: Session, actor: Actor) -> DatasetStats:
    """Counts of the shop's examples by intent, source and status, duplicates, review share."""
    require_role(actor, Role.ADMIN, Role.MANAGER)
    mine = col(Example.tenant_id) == actor.tenant_id
    per_intent = [
        (str(name), int(n))
        for name, n in session.exec(
            select(Example.correct_intent, func.count())
            .where(mine, col(Example.correct_intent).is_not(None))
            .group_by(col(Example.correct_intent))
            .order_by(func.count().desc(), col(Example.correct_intent))
        ).all()
    ]
    total, reviewed = session.exec(
        select(func.count(), func.coalesce(func.sum(case((col(Example.reviewed), 1), else_=0)), 0))
        .select_from(Example)
        .where(mine)
    ).one()
    groups = (
        select(func.count().label("n"))
        .select_from(Example)
        .where(mine)
        .group_by(col(Example.text_hash))
        .having(func.count() > 1)
        .subquery()
    )
    dup_groups, dup_rows = session.exec(
        select(func.count(), func.coalesce(func.sum(groups.c.n - 1), 0))
    ).one()
    return DatasetStats(
        total=int(total),
        reviewed=int(reviewed),
        reviewed_share=int(reviewed) / int(total) if total else 0.0,
        per_intent=per_intent,
        per_source=_counts_by(session, mine, col(Example.source)),
        per_status=_counts_by(session, mine, col(Example.status)),
        duplicate_groups=int(dup_groups),
        duplicate_rows=int(dup_rows),
        thin_intents=_thin_intents(session, actor, dict(per_intent)),
    )


def _counts_by(session: Session, mine: Any, column: Any) -> dict[str, int]:
    rows = session.exec(select(column, func.count()).where(mine).group_by(column)).all()
    return {str(value): int(n) for value, n in rows}


def _thin_intents(session: Session, actor: Actor, counts: dict[str, int]) -> list[tuple[str, int]]:
    """Labels with fewer than MIN_EXAMPLES_PER_INTENT examples, and active intents with none."""
    names = session.exec(
        select(Intent.name).where(col(Intent.tenant_id) == actor.tenant_id, col(Intent.is_active))
    ).all()
    thin = {name: n for name, n in counts.items() if n < MIN_EXAMPLES_PER_INTENT}
    thin |= {name: 0 for name in names if name not in counts}
    return sorted(thin.items(), key=lambda item: (item[1], item[0]))
