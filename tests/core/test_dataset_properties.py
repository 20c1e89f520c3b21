"""Property tests: whatever bytes arrive, an import writes exactly what it reports, or nothing."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from unittest.mock import patch

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func
from sqlmodel import SQLModel, select

from core import dataset
from core.dataset import (
    ExampleFilter,
    FileRefused,
    ImportReport,
    RowsRejected,
    check_file,
    export_examples,
    import_file,
)
from core.file_spec import ReadSpec
from db.engine import make_engine, session_scope
from db.models import AuditEvent, Conversation, Example, Intent, Message
from tests.factories import Shop, make_shop

PROPERTY_SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
FILENAMES = ["data.csv", "data.jsonl", "data.json", "nlu.yml", "upload", "log.csv"]
ENCODINGS = ["utf-8", "utf-8-sig", "cp1252", "latin-1", "utf-16"]


@contextmanager
def fresh_shop() -> Iterator[tuple[Engine, Shop]]:
    """A private in-memory database per example (function fixtures do not mix with @given)."""
    engine = make_engine("sqlite://")
    SQLModel.metadata.create_all(engine)
    try:
        yield engine, make_shop(engine)
    finally:
        engine.dispose()


def counts(engine: Engine, shop: Shop) -> dict[str, int]:
    with session_scope(shop.admin, engine=engine) as session:
        found = {
            model.__name__: session.exec(select(func.count()).select_from(model)).one()
            for model in (Example, Intent, Conversation, Message)
        }
        found["imports"] = session.exec(
            select(func.count()).where(AuditEvent.action == "dataset.import")
        ).one()
    return found


def attempt(
    engine: Engine,
    shop: Shop,
    data: bytes,
    filename: str,
    valid_only: bool,
    spec: ReadSpec | None = None,
):
    """Import inside a session that commits even when the import raised (the worst caller)."""
    with session_scope(shop.admin, engine=engine) as session:
        try:
            return import_file(
                session=session,
                actor=shop.admin,
                stream=io.BytesIO(data),
                filename=filename,
                spec=spec,
                valid_only=valid_only,
            )
        except (FileRefused, RowsRejected) as exc:
            return exc


def assert_all_or_nothing(engine: Engine, shop: Shop, outcome: ImportReport | Exception) -> None:
    found = counts(engine, shop)
    if isinstance(outcome, Exception):
        assert found == dict.fromkeys(found, 0), outcome
        return
    assert outcome.inserted + outcome.duplicates + outcome.rejected == outcome.total_rows
    assert len(outcome.rejects) == min(outcome.rejected, 1_000)
    assert found["imports"] == 1
    if outcome.kind == "examples":
        assert found["Example"] == outcome.inserted
        assert found["Message"] == 0
    else:
        assert found["Message"] == outcome.inserted
        assert found["Example"] <= outcome.inserted
        assert found["Conversation"] <= outcome.inserted


# --- malformed files ------------------------------------------------------------------------

texts = st.text(max_size=30)
cells = st.one_of(
    texts, st.sampled_from(["", " ", '"', "'=1+1", "\x00", "\r", "1.5", "2024-01-01"])
)


@st.composite
def corrupted_csv(draw: st.DrawFn) -> bytes:
    """A valid CSV of examples or messages, then cut, spliced, re-encoded."""
    header = draw(
        st.sampled_from(
            [
                ["text", "intent"],
                ["text", "intent", "confidence", "timestamp", "response"],
                ["conversation_id", "role", "text", "timestamp", "escalated"],
                ["Text", "label"],
            ]
        )
    )
    rows = draw(st.lists(st.lists(cells, min_size=1, max_size=len(header) + 1), max_size=8))
    delimiter = draw(st.sampled_from([",", ";", "\t", "|"]))
    out = io.StringIO()
    writer = csv.writer(
        out, delimiter=delimiter, lineterminator=draw(st.sampled_from(["\n", "\r\n"]))
    )
    writer.writerow(header)
    for row in rows:
        if "role" in header and len(row) > 1:
            row[1] = draw(st.sampled_from(["customer", "assistant", "agent", "bot", "chef"]))
        writer.writerow(row)
    text = out.getvalue()
    data = text.encode(draw(st.sampled_from(ENCODINGS)), errors="replace")
    return draw(_corrupt(data))


@st.composite
def _corrupt(draw: st.DrawFn, data: bytes) -> bytes:
    for _ in range(draw(st.integers(0, 3))):
        where = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["cut", "insert", "delete"]))
        junk = draw(st.sampled_from([b'"', b"\x00", b"\xff", b"\n", b",", b";", b"\xe9", b"\r"]))
        if op == "cut":
            data = data[:where]
        elif op == "insert":
            data = data[:where] + junk + data[where:]
        else:
            data = data[:where] + data[where + 1 :]
    return data


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=10,
)


@st.composite
def broken_jsonl(draw: st.DrawFn) -> bytes:
    keys = st.sampled_from(["text", "intent", "confidence", "timestamp", "conversation_id", "role"])
    lines = []
    for _ in range(draw(st.integers(0, 6))):
        obj = draw(st.dictionaries(keys | texts, json_values, max_size=5))
        line = json.dumps(obj)
        if draw(st.integers(0, 5)) == 0:
            line = line[: draw(st.integers(0, len(line)))]
        if draw(st.integers(0, 8)) == 0:
            line = draw(st.sampled_from(["[1, 2]", "42", '"text"', "null", "[" * 60 + "]" * 60]))
        lines.append(line)
    return "\n".join(lines).encode(draw(st.sampled_from(ENCODINGS)), errors="replace")


YAML_FRAGMENTS = [
    "nlu:",
    "version: '3.1'",
    "- intent: greet",
    '- intent: "order flowers"',
    "- intent: 'a''b'",
    '- intent: "unclosed',
    "  examples: |",
    "  examples: |-",
    "  examples: >",
    "  examples:",
    "    - hello",
    "    - good [morning](time)",
    "    not a list item",
    "\t- tabbed",
    "  - text: hi",
    "  - text: |",
    "      multi line",
    "    metadata:",
    "      sentiment: neutral",
    "- synonym: rose",
    "responses:",
    "  utter_x:",
    "# comment",
    "",
    "---",
]


@st.composite
def yaml_garbage(draw: st.DrawFn) -> bytes:
    lines = draw(st.lists(st.sampled_from(YAML_FRAGMENTS) | texts, max_size=14))
    if draw(st.booleans()):
        lines = ["nlu:", *lines]
    return "\n".join(lines).encode("utf-8", errors="replace")


@st.composite
def valid_then_broken(draw: st.DrawFn) -> tuple[bytes, str]:
    """Good rows, then a line that breaks the whole file (so earlier batches must be undone)."""
    good = draw(st.lists(st.tuples(texts, st.sampled_from(["a", "b"])), min_size=1, max_size=8))
    if draw(st.booleans()):
        lines = [json.dumps({"text": t, "intent": i}) for t, i in good]
        bad = draw(st.sampled_from(['{"text": "x", "intent', "[1]", "[" * 50 + "]" * 50]))
        return "\n".join([*lines, bad, *lines]).encode(), "data.jsonl"
    out = io.StringIO()
    csv.writer(out).writerows([("text", "intent"), *good])
    bad = draw(st.sampled_from(['"never closed,a\n', "caf\xe9,a\n"]))
    return out.getvalue().encode() + bad.encode("latin-1"), "data.csv"


files = st.one_of(
    valid_then_broken(),
    st.tuples(st.binary(max_size=300), st.sampled_from(FILENAMES)),
    st.tuples(corrupted_csv(), st.sampled_from(["data.csv", "upload", "data.txt"])),
    st.tuples(broken_jsonl(), st.sampled_from(["data.jsonl", "data.json", "upload"])),
    st.tuples(yaml_garbage(), st.sampled_from(["nlu.yml", "nlu.yaml"])),
)


specs = st.none() | st.builds(
    ReadSpec,
    kind=st.sampled_from(["examples", "conversations"]),
    file_format=st.sampled_from(["csv", "jsonl", "rasa"]),
    mapping=st.sampled_from([{}, {"text": "Text", "intent": "label"}, {"text": "msg.body"}]),
    delimiter=st.sampled_from([None, ",", ";", "tab"]),
    encoding=st.sampled_from([None, "utf-8", "cp1252", "latin-1", "utf-16"]),
    date_format=st.sampled_from([None, "%d/%m/%Y", "%Y-%m-%d %H:%M"]),
    cleanup=st.sampled_from([(), ("strip_html", "collapse_whitespace"), ("strip_signature",)]),
)


@PROPERTY_SETTINGS
@given(file=files, valid_only=st.booleans(), batch=st.integers(1, 4), spec=specs)
def test_import_writes_what_it_reports_or_nothing(
    file: tuple[bytes, str], valid_only: bool, batch: int, spec: ReadSpec | None
):
    data, filename = file
    # Tiny batches: rows reach the database before a later line turns out to be broken.
    with fresh_shop() as (engine, shop), patch.object(dataset, "BATCH_ROWS", batch):
        outcome = attempt(engine, shop, data, filename, valid_only, spec)
        assert_all_or_nothing(engine, shop, outcome)
        if isinstance(outcome, ImportReport):  # idempotent: the same file again adds nothing
            again = attempt(engine, shop, data, filename, valid_only, spec)
            assert isinstance(again, ImportReport)
            assert again.inserted == 0
            assert again.duplicates == outcome.inserted + outcome.duplicates


@PROPERTY_SETTINGS
@given(file=files)
def test_check_file_never_writes(file: tuple[bytes, str]):
    data, filename = file
    with fresh_shop() as (engine, shop):
        with session_scope(shop.admin, engine=engine) as session:
            try:
                report = check_file(
                    session=session,
                    actor=shop.admin,
                    stream=io.BytesIO(data),
                    filename=filename,
                    spec=None,
                )
                assert report.inserted + report.duplicates + report.rejected == report.total_rows
            except FileRefused:
                pass
        assert counts(engine, shop) == dict.fromkeys(counts(engine, shop), 0)


# --- round trip of arbitrary text -----------------------------------------------------------

storable = st.text(
    st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), min_size=1, max_size=40
).filter(lambda t: t.strip() != "")


@PROPERTY_SETTINGS
@given(rows=st.lists(st.tuples(storable, st.sampled_from(["a", "b", "c d"])), max_size=8))
def test_any_text_survives_csv_export_and_import(rows: list[tuple[str, str]]):
    source = "\n".join(json.dumps({"text": text, "intent": intent}) for text, intent in rows)
    with fresh_shop() as (engine, shop):
        other = make_shop(engine, "Other")
        attempt(engine, shop, source.encode(), "in.jsonl", False)
        out = io.StringIO()
        with session_scope(shop.admin, engine=engine) as session:
            export_examples(
                session=session, actor=shop.admin, out=out, file_format="csv", flt=ExampleFilter()
            )
            stored = sorted(session.exec(select(Example.text, Example.correct_intent)).all())
        back = attempt(engine, other, out.getvalue().encode(), "out.csv", False)
        assert isinstance(back, ImportReport), back
        with session_scope(other.admin, engine=engine) as session:
            restored = sorted(session.exec(select(Example.text, Example.correct_intent)).all())
        assert restored == stored
        again = attempt(engine, shop, out.getvalue().encode(), "out.csv", False)
        assert isinstance(again, ImportReport) and again.inserted == 0
