"""Dataset import, export and statistics (core.dataset, core.readers)."""

from __future__ import annotations

import codecs
import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func
from sqlalchemy import select as select_columns
from sqlmodel import SQLModel, col, select

from core import dataset
from core.access import Actor
from core.dataset import (
    MIN_EXAMPLES_PER_INTENT,
    ExampleFilter,
    FileRefused,
    ImportReport,
    RowsRejected,
    check_file,
    dataset_stats,
    detect_format,
    export_conversations,
    export_examples,
    import_file,
    preview_file,
)
from core.errors import PermissionDenied
from core.file_spec import ReadSpec
from core.text import content_hash, text_hash
from db.engine import session_scope
from db.models import AuditEvent, Conversation, Example, Intent, Message
from tests.conftest import truncate_all
from tests.factories import Shop, make_shop

BANKING77 = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "banking77" / "train.csv"


# --- helpers ----------------------------------------------------------------------------------


def run_import(
    engine: Engine,
    actor: Actor,
    data: bytes | str,
    filename: str = "data.csv",
    spec: ReadSpec | None = None,
    **kwargs: Any,
) -> ImportReport:
    raw = data.encode() if isinstance(data, str) else data
    with session_scope(actor, engine=engine) as session:
        return import_file(
            session=session,
            actor=actor,
            stream=io.BytesIO(raw),
            filename=filename,
            spec=spec,
            **kwargs,
        )


def run_check(
    engine: Engine, actor: Actor, data: bytes | str, filename: str = "data.csv"
) -> ImportReport:
    raw = data.encode() if isinstance(data, str) else data
    with session_scope(actor, engine=engine) as session:
        return check_file(
            session=session, actor=actor, stream=io.BytesIO(raw), filename=filename, spec=None
        )


def run_export(
    engine: Engine, actor: Actor, file_format: str, flt: ExampleFilter | None = None
) -> str:
    out = io.StringIO()
    with session_scope(actor, engine=engine) as session:
        export_examples(
            session=session,
            actor=actor,
            out=out,
            file_format=file_format,  # type: ignore[arg-type]
            flt=flt or ExampleFilter(),
        )
    return out.getvalue()


def count(engine: Engine, shop: Shop, model: type[SQLModel]) -> int:
    with session_scope(shop.admin, engine=engine) as session:
        return session.exec(
            select(func.count()).select_from(model).where(model.tenant_id == shop.tenant_id)  # type: ignore[attr-defined]
        ).one()


def examples(engine: Engine, shop: Shop) -> list[Example]:
    with session_scope(shop.admin, engine=engine) as session:
        return list(session.exec(select(Example).order_by(col(Example.id))).all())


def nothing_written(engine: Engine, shop: Shop) -> bool:
    tables = (Example, Intent, Conversation, Message)
    imports = audit_actions(engine, shop).count("dataset.import")
    return all(count(engine, shop, table) == 0 for table in tables) and imports == 0


def audit_actions(engine: Engine, shop: Shop) -> list[str]:
    with session_scope(shop.admin, engine=engine) as session:
        return list(session.exec(select(AuditEvent.action)).all())


def banking_sample(size: int = 300) -> list[tuple[str, str]]:
    """A deterministic sample of the real banking77 training file (every 33rd row)."""
    with BANKING77.open(encoding="utf-8", newline="") as handle:
        rows = [(row["text"], row["intent"]) for row in csv.DictReader(handle)]
    return rows[::33][:size]


def csv_bytes(rows: list[tuple[str, str]], header: tuple[str, ...] = ("text", "intent")) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


@pytest.fixture
def shop(engine: Engine) -> Shop:
    return make_shop(engine)


@pytest.fixture
def lite(sqlite_engine: Engine) -> tuple[Engine, Shop]:
    return sqlite_engine, make_shop(sqlite_engine)


# --- labelled examples --------------------------------------------------------------------


def test_banking77_sample_imports_with_no_spec_and_creates_the_intents(engine, shop):
    sample = banking_sample()
    assert len(sample) == 300
    report = run_import(engine, shop.admin, csv_bytes(sample), "train.csv")
    distinct = {content_hash(text, intent) for text, intent in sample}
    assert (report.kind, report.file_format) == ("examples", "csv")
    assert report.total_rows == 300
    assert report.rejected == 0
    assert report.inserted == len(distinct)
    assert report.duplicates == 300 - len(distinct)
    assert count(engine, shop, Example) == len(distinct)
    with session_scope(shop.admin, engine=engine) as session:
        names = set(session.exec(select(Intent.name)).all())
    assert names == {intent for _, intent in sample}

    again = run_import(engine, shop.admin, csv_bytes(sample), "train.csv")
    assert (again.inserted, again.duplicates, again.rejected) == (0, 300, 0)
    assert count(engine, shop, Example) == len(distinct)


def test_imported_examples_are_approved_labelled_and_keep_file_values(engine, shop):
    lines = [
        {"text": "Do you deliver on Sunday?", "intent": "delivery", "response": "Yes!"},
        {
            "text": "Roses for mum",
            "intent": "order",
            "confidence": 0.25,
            "timestamp": "2024-05-01T12:00:00+02:00",
        },
        {"text": "Tulips?", "intent": "catalog", "timestamp": "2024-05-02 08:30:00"},
    ]
    data = "\n".join(json.dumps(line) for line in lines)
    report = run_import(engine, shop.admin, data, "examples.jsonl")
    assert report.inserted == 3
    rows = {e.text: e for e in examples(engine, shop)}
    first = rows["Do you deliver on Sunday?"]
    assert (first.status, first.source, first.correct_intent) == (
        "approved",
        "imported",
        "delivery",
    )
    assert first.reviewed is False
    assert first.ai_response == "Yes!"
    assert first.detected_intent is None
    assert first.text_hash == text_hash(first.text)
    assert first.content_hash == content_hash(first.text, "delivery")
    assert rows["Roses for mum"].confidence == 0.25
    assert rows["Roses for mum"].created_at == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert rows["Tulips?"].created_at == datetime(2024, 5, 2, 8, 30, tzinfo=UTC)  # naive: UTC


def test_duplicates_within_one_file_count_as_duplicates(lite):
    engine, shop = lite
    data = csv_bytes([("Hello there", "greet"), ("hello   THERE", "greet"), ("Hello there", "bye")])
    report = run_import(engine, shop.admin, data)
    assert (report.inserted, report.duplicates) == (2, 1)


def test_import_is_audited_once_with_the_counts(engine, shop):
    run_import(engine, shop.admin, csv_bytes([("a", "x"), ("a", "x"), ("b", "y")]))
    with session_scope(shop.admin, engine=engine) as session:
        events = session.exec(select(AuditEvent).where(AuditEvent.action == "dataset.import")).all()
    assert len(events) == 1
    assert events[0].after is not None
    assert events[0].after["inserted"] == 2
    assert events[0].after["duplicates"] == 1
    assert events[0].entity_id == "data.csv"


@pytest.mark.parametrize("file_format", ["csv", "jsonl", "rasa"])
def test_export_then_import_adds_nothing(engine, shop, file_format):
    sample = banking_sample(120)
    run_import(engine, shop.admin, csv_bytes(sample))
    stored = {(e.text, e.correct_intent) for e in examples(engine, shop)}
    exported = run_export(engine, shop.admin, file_format)
    filename = {"csv": "out.csv", "jsonl": "out.jsonl", "rasa": "nlu.yml"}[file_format]
    report = run_import(engine, shop.admin, exported, filename)
    assert report.file_format == file_format
    assert report.total_rows == len(stored)
    assert (report.inserted, report.duplicates, report.rejected) == (0, len(stored), 0)
    # and into an empty shop, the export brings back what was stored (Rasa: one line each)
    other = make_shop(engine, "Other shop")
    run_import(engine, other.admin, exported, filename)
    if file_format == "rasa":
        stored = {(" ".join(text.split()), intent) for text, intent in stored}
    assert {(e.text, e.correct_intent) for e in examples(engine, other)} == stored


def test_rasa_export_groups_labelled_examples_by_intent(lite):
    engine, shop = lite
    run_import(engine, shop.admin, csv_bytes([("b1", "b"), ("a1", "a"), ("b2", "b")]))
    with session_scope(shop.admin, engine=engine) as session:
        session.add(Example(tenant_id=shop.tenant_id, text="unlabelled", text_hash="h"))
    text = run_export(engine, shop.admin, "rasa")
    assert text == (
        'version: "3.1"\nnlu:\n'
        "- intent: a\n  examples: |\n    - a1\n"
        "- intent: b\n  examples: |\n    - b1\n    - b2\n"
    )


# --- encodings and CSV dialects -------------------------------------------------------------


def test_bom_crlf_quoted_newline_and_semicolon_delimiter(engine, shop):
    data = b'\xef\xbb\xbfText;Intent\r\n"line one\r\nline two";greet\r\nplain; bye \r\n'
    report = run_import(engine, shop.admin, data)
    assert (report.inserted, report.rejected) == (2, 0)
    assert "delimiter ';'" in report.notes
    texts = {e.text: e.correct_intent for e in examples(engine, shop)}
    assert texts == {"line one\r\nline two": "greet", "plain": "bye"}


@pytest.mark.parametrize(
    ("delimiter", "name"), [("\t", "delimiter TAB"), ("|", "delimiter '|'"), (",", None)]
)
def test_delimiter_is_detected_from_the_header(lite, delimiter, name):
    engine, shop = lite
    data = f"text{delimiter}intent\nhello, world{delimiter}greet\n"
    if delimiter == ",":
        data = 'text,intent\n"hello, world",greet\n'
    report = run_import(engine, shop.admin, data)
    assert report.inserted == 1
    assert examples(engine, shop)[0].text == "hello, world"
    delimiter_notes = [note for note in report.notes if note.startswith("delimiter")]
    assert delimiter_notes == ([name] if name else [])


def test_cp1252_file_is_decoded_with_a_note(engine, shop):
    data = "text,intent\nCafé crème for the shop – please,order\n".encode("cp1252")
    report = run_import(engine, shop.admin, data)
    assert report.inserted == 1
    assert any("cp1252" in note for note in report.notes)
    assert examples(engine, shop)[0].text == "Café crème for the shop – please"


def test_utf16_file_with_bom_is_read(lite):
    engine, shop = lite
    data = codecs.BOM_UTF16_LE + "text,intent\nGrüße,greet\n".encode("utf-16-le")
    report = run_import(engine, shop.admin, data)
    assert report.inserted == 1
    assert examples(engine, shop)[0].text == "Grüße"


def test_invalid_utf8_after_64_kib_refuses_naming_the_line_and_writes_nothing(
    engine, shop, monkeypatch
):
    monkeypatch.setattr(dataset, "BATCH_ROWS", 100)  # earlier batches are written, then undone
    lines = [b"text,intent"] + [f"Grüße Nummer {i},greet".encode() for i in range(4_000)]
    assert sum(len(line) + 1 for line in lines) > 64 * 1024
    bad_line = len(lines) + 1
    data = b"\n".join([*lines, b"caf\xe9 au lait,order", b"more,order"]) + b"\n"
    with (
        session_scope(shop.admin, engine=engine) as session,
        pytest.raises(FileRefused, match=f"line {bad_line}:"),
    ):
        import_file(
            session=session,
            actor=shop.admin,
            stream=io.BytesIO(data),
            filename="big.csv",
            spec=None,
        )
        # the caller swallows the error and commits: still nothing was written
    assert nothing_written(engine, shop)


def test_neither_utf8_nor_cp1252_is_refused(lite):
    engine, shop = lite
    data = b"text,intent\nbad \x81 byte,x\n"
    with pytest.raises(FileRefused, match=r"line 2: .*neither UTF-8 nor cp1252"):
        run_import(engine, shop.admin, data)


# --- structural errors ----------------------------------------------------------------------


def test_missing_required_column_is_refused_and_writes_nothing(engine, shop):
    with pytest.raises(FileRefused, match=r"line 1: missing required column\(s\) intent"):
        run_import(engine, shop.admin, "text,label\nhello,greet\n")
    assert nothing_written(engine, shop)


def test_malformed_json_on_line_3_is_refused(engine, shop):
    data = '{"text": "a", "intent": "x"}\n{"text": "b", "intent": "y"}\n{"text": "c", "intent\n'
    with pytest.raises(FileRefused, match="line 3: malformed JSON"):
        run_import(engine, shop.admin, data, "data.jsonl")
    assert nothing_written(engine, shop)


def test_json_line_that_is_not_an_object_is_refused(lite):
    engine, shop = lite
    data = '{"text": "a", "intent": "x"}\n\n["b", "y"]\n'
    with pytest.raises(FileRefused, match="line 3: expected a JSON object"):
        run_import(engine, shop.admin, data, "data.ndjson")
    assert nothing_written(engine, shop)


def test_json_array_file_is_refused_with_a_hint(lite):
    engine, shop = lite
    with pytest.raises(FileRefused, match="one JSON object per line"):
        run_import(engine, shop.admin, '[{"text": "a", "intent": "x"}]', "data.json")


def test_json_nested_deeper_than_the_limit_is_refused(lite, monkeypatch):
    engine, shop = lite
    monkeypatch.setenv("TRELLIS_MAX_JSON_DEPTH", "3")
    ok = '{"text": "a", "intent": "x", "meta": {"a": [1]}}'
    assert run_import(engine, shop.admin, ok, "ok.jsonl").inserted == 1
    deep = '{"text": "b", "intent": "x"}\n{"text": "c", "intent": "x", "meta": {"a": [[1]]}}\n'
    with pytest.raises(FileRefused, match="line 2: JSON nested deeper than 3 levels"):
        run_import(engine, shop.admin, deep, "deep.jsonl")
    very_deep = '{"text": "d", "intent": "x", "m": ' + "[" * 5000 + "]" * 5000 + "}"
    with pytest.raises(FileRefused, match="line 1: JSON nested deeper"):
        run_import(engine, shop.admin, very_deep, "deeper.jsonl")
    assert count(engine, shop, Example) == 1


def test_more_rows_than_the_limit_is_refused(engine, shop, monkeypatch):
    monkeypatch.setenv("TRELLIS_MAX_IMPORT_ROWS", "5")
    five = csv_bytes([(f"text {i}", "x") for i in range(5)])
    six = csv_bytes([(f"text {i}", "x") for i in range(6)])
    with pytest.raises(FileRefused, match="line 7: the file has more than 5 rows"):
        run_import(engine, shop.admin, six)
    assert nothing_written(engine, shop)
    assert run_import(engine, shop.admin, five).inserted == 5


class OneWayStream(io.RawIOBase):
    """A stream that cannot seek, like an HTTP upload read in chunks."""

    def __init__(self, data: bytes) -> None:
        self.inner = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self.inner.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def test_file_larger_than_the_upload_limit_is_refused(lite, monkeypatch):
    engine, shop = lite
    monkeypatch.setenv("TRELLIS_MAX_UPLOAD_MB", "1")
    data = csv_bytes([(f"a message about flowers number {i}", "x") for i in range(40_000)])
    assert len(data) > 1024 * 1024
    with pytest.raises(FileRefused, match="the limit is 1 MB"):
        run_import(engine, shop.admin, data)
    with (
        session_scope(shop.admin, engine=engine) as session,
        pytest.raises(FileRefused, match="larger than the 1 MB limit"),
    ):
        import_file(
            session=session,
            actor=shop.admin,
            stream=OneWayStream(data),  # type: ignore[arg-type]
            filename="big.csv",
            spec=None,
        )
    assert nothing_written(engine, shop)


def test_unterminated_quote_is_refused_naming_the_line(lite):
    engine, shop = lite
    data = 'text,intent\nfine,x\n"never closed,x\nmore,y\n'
    with pytest.raises(FileRefused, match="line 3: malformed CSV"):
        run_import(engine, shop.admin, data)
    assert nothing_written(engine, shop)


def test_unknown_extension_is_refused(lite):
    engine, shop = lite
    with pytest.raises(FileRefused, match=r"'\.xlsx' files are not read"):
        run_import(engine, shop.admin, b"PK\x03\x04", "data.xlsx")


# --- row-level problems ---------------------------------------------------------------------

MIXED = (
    "text,intent,confidence,timestamp,extra\n"
    "good one,greet,0.5,2024-01-01T00:00:00Z,whatever\n"  # line 2
    ",greet,,,\n"  # line 3: empty text
    "no label,,,,\n"  # line 4: missing intent
    "too sure,greet,1.5,,\n"  # line 5: bad confidence
    "when?,greet,,yesterday,\n"  # line 6: bad timestamp
    "short,row\n"  # line 7: wrong number of fields
    f"{'x' * 60},greet,,,\n"  # line 8: too long (limit set to 50)
    '"multi\nline",greet,,,\n'  # line 9-10: fine
    "good two,bye,0,,\n"  # line 11
)


def test_row_rejects_are_listed_with_line_numbers_and_unknown_columns_noted(
    engine, shop, monkeypatch
):
    monkeypatch.setenv("TRELLIS_MAX_TEXT_LENGTH", "50")
    report = run_check(engine, shop.admin, MIXED)
    reasons = {r.line: r.reason for r in report.rejects}
    assert reasons == {
        3: "empty text",
        4: "missing intent",
        5: "bad confidence '1.5' (expected a number from 0 to 1)",
        6: "bad timestamp 'yesterday' (expected ISO 8601, e.g. 2024-05-01T14:30:00Z)",
        7: "has 2 fields; the header has 5",
        8: "text longer than 50 characters (60)",
    }
    assert (report.total_rows, report.rejected, report.valid_rows) == (9, 6, 3)
    assert report.inserted == 3
    assert report.notes == ["ignored unknown columns: extra", "created 2 intents"]
    assert nothing_written(engine, shop)  # check_file is a dry run


def test_without_valid_only_rejected_rows_raise_and_nothing_is_written(engine, shop, monkeypatch):
    monkeypatch.setenv("TRELLIS_MAX_TEXT_LENGTH", "50")
    with pytest.raises(RowsRejected) as raised:
        run_import(engine, shop.admin, MIXED)
    assert raised.value.report.rejected == 6
    assert "first: line 3: empty text" in str(raised.value)
    assert nothing_written(engine, shop)


def test_with_valid_only_only_the_valid_rows_are_written(engine, shop, monkeypatch):
    monkeypatch.setenv("TRELLIS_MAX_TEXT_LENGTH", "50")
    report = run_import(engine, shop.admin, MIXED, valid_only=True)
    assert (report.inserted, report.rejected) == (3, 6)
    assert sorted(e.text for e in examples(engine, shop)) == ["good one", "good two", "multi\nline"]


def test_fields_too_long_for_their_columns_are_rejected(engine, shop):
    data = csv_bytes([("fine", "x" * 101), ("also fine", "x" * 100)])
    report = run_import(engine, shop.admin, data, valid_only=True)
    assert [(r.line, r.reason) for r in report.rejects] == [
        (2, "intent longer than 100 characters")
    ]
    assert report.inserted == 1


def test_text_with_nul_or_lone_surrogate_is_rejected(lite):
    engine, shop = lite
    data = '{"text": "a\\u0000b", "intent": "x"}\n{"text": "\\ud800", "intent": "x"}\n'
    report = run_import(engine, shop.admin, data, "d.jsonl", valid_only=True)
    assert [r.line for r in report.rejects] == [1, 2]
    assert all("NUL" in r.reason for r in report.rejects)


def test_at_most_1000_rejects_are_kept_but_all_are_counted(lite):
    engine, shop = lite
    data = csv_bytes([("", "x")] * 1_200 + [("ok", "x")])
    report = run_import(engine, shop.admin, data, valid_only=True)
    assert report.rejected == 1_200
    assert len(report.rejects) == 1_000
    assert report.inserted == 1


# --- check_file -----------------------------------------------------------------------------


def test_check_file_counts_duplicates_against_the_database_and_writes_nothing(engine, shop):
    run_import(engine, shop.admin, csv_bytes([("one", "x"), ("two", "x")]))
    before = count(engine, shop, Example), audit_actions(engine, shop)
    report = run_check(engine, shop.admin, csv_bytes([("one", "x"), ("two", "y"), ("two", "y")]))
    assert (report.inserted, report.duplicates, report.rejected) == (1, 2, 0)
    assert (count(engine, shop, Example), audit_actions(engine, shop)) == before
    assert count(engine, shop, Intent) == 1


# --- mapping, clean-up, dates ---------------------------------------------------------------

HELPDESK = (
    "Ticket Body ; Topic ;Sent At\n"
    '"<p>Hello&nbsp;there,</p><p>Do you   have <b>peonies</b>?</p>\n'
    '-- \nAnna\nFlorist fan";catalog;21/03/2024 14:05\n'
    '"Thanks!\nOn Tue, Mar 19, 2024 Shop wrote:\n> old text\n> more";thanks;01/04/2024 09:00\n'
)


def test_mapping_cleanup_and_date_format_from_a_read_spec(engine, shop):
    spec = ReadSpec(
        mapping={"text": "ticket body", "intent": "TOPIC", "timestamp": "sent at"},
        date_format="%d/%m/%Y %H:%M",
        cleanup=("collapse_whitespace", "strip_html", "strip_signature", "strip_quoted_reply"),
    )
    report = run_import(engine, shop.admin, HELPDESK, "tickets.csv", spec)
    assert (report.inserted, report.rejected) == (2, 0)
    rows = {e.correct_intent: e for e in examples(engine, shop)}
    assert rows["catalog"].text == "Hello there, Do you have peonies?"
    assert rows["catalog"].created_at == datetime(2024, 3, 21, 14, 5, tzinfo=UTC)
    assert rows["thanks"].text == "Thanks!"


def test_wrong_date_format_rejects_the_row(lite):
    engine, shop = lite
    spec = ReadSpec(date_format="%d/%m/%Y")
    report = run_check(engine, shop.admin, "text,intent,timestamp\na,x,2024-03-21\n")
    assert report.rejected == 0
    with session_scope(shop.admin, engine=engine) as session:
        report = check_file(
            session=session,
            actor=shop.admin,
            stream=io.BytesIO(b"text,intent,timestamp\na,x,2024-03-21\n"),
            filename="a.csv",
            spec=spec,
        )
    assert [r.reason for r in report.rejects] == [
        "bad timestamp '2024-03-21' (expected '%d/%m/%Y')"
    ]


def test_jsonl_mapping_reaches_nested_keys(lite):
    engine, shop = lite
    spec = ReadSpec(
        file_format="jsonl", mapping={"text": "msg.body", "intent": "label", "response": "reply"}
    )
    data = '{"msg": {"body": "Need lilies"}, "label": "order", "reply": "Sure", "id": 7}\n'
    report = run_import(engine, shop.admin, data, "export.txt", spec)
    assert report.inserted == 1
    assert report.notes[0] == "ignored unknown columns: id"
    example = examples(engine, shop)[0]
    assert (example.text, example.correct_intent, example.ai_response) == (
        "Need lilies",
        "order",
        "Sure",
    )


def test_spec_delimiter_and_encoding_are_used(lite):
    engine, shop = lite
    data = "text\tintent\nGrüße, Anna\tgreet\n".encode("latin-1")
    spec = ReadSpec(delimiter="tab", encoding="latin-1")
    report = run_import(engine, shop.admin, data, "x.tsv", spec)
    assert report.inserted == 1
    assert examples(engine, shop)[0].text == "Grüße, Anna"
    assert "delimiter TAB" in report.notes


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (ReadSpec(delimiter=";;"), "delimiter ';;' cannot be used"),
        (ReadSpec(encoding="base64"), "Unknown encoding 'base64'"),
        (ReadSpec(encoding="klingon"), "Unknown encoding 'klingon'"),
        (ReadSpec(kind="conversations", file_format="rasa"), "Rasa training data holds"),
    ],
)
def test_unusable_spec_is_refused(lite, spec, message):
    engine, shop = lite
    with pytest.raises(FileRefused, match=message):
        run_import(engine, shop.admin, "text,intent\na,b\n", "a.csv", spec)


def test_profile_with_an_unknown_field_or_step_is_refused(lite):
    engine, shop = lite
    with pytest.raises(FileRefused, match="unknown field"):
        run_import(engine, shop.admin, "text,intent\na,b\n", spec=ReadSpec(mapping={"txt": "a"}))
    with pytest.raises(FileRefused, match="Unknown clean-up step"):
        run_import(engine, shop.admin, "text,intent\na,b\n", spec=ReadSpec(cleanup=("shout",)))


# --- Rasa -----------------------------------------------------------------------------------

RASA = """\
version: "3.1"
# a comment
nlu:
- intent: greet
  examples: |
    - hey
    - hello there
    - good [morning](time) to you
- synonym: roses
  examples: |
    - rose
- intent: "order flowers"   # quoted name
  examples:
  - text: I want [12](amount) tulips
    metadata:
      sentiment: neutral
  - text: |
      Deliver on
      Friday
  - plain list item
responses:
  utter_greet:
  - text: Hi!
"""


def test_rasa_training_data_is_read(lite):
    engine, shop = lite
    report = run_import(engine, shop.admin, RASA, "nlu.yml")
    assert (report.kind, report.file_format, report.rejected) == ("examples", "rasa", 0)
    got = sorted((e.correct_intent or "", e.text) for e in examples(engine, shop))
    assert got == [
        ("greet", "good morning to you"),
        ("greet", "hello there"),
        ("greet", "hey"),
        ("order flowers", "Deliver on\nFriday"),
        ("order flowers", "I want 12 tulips"),
        ("order flowers", "plain list item"),
    ]
    assert "ignored Rasa sections: synonym, responses" in report.notes
    assert "removed entity annotations from 2 examples" in report.notes
    assert "ignored metadata on 1 entries" in report.notes


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nlu:\n- intent: a\n  examples: |\n\t- x\n", "line 4: YAML does not allow tabs"),
        ("just some words\n", "line 1: expected a top-level key"),
        ("nlu:\n- examples: |\n    - x\n  intent: a\n- intent\n", "line 5: expected '- intent"),
        ('nlu:\n- intent: "open\n', "line 2: a quoted value is not closed"),
        ("nlu:\n- intent: a\n  examples: >\n    - x\n", "line 3: write examples as a literal"),
    ],
)
def test_malformed_rasa_is_refused(lite, text, message):
    engine, shop = lite
    with pytest.raises(FileRefused, match=message):
        run_import(engine, shop.admin, text, "nlu.yaml")
    assert nothing_written(engine, shop)


def test_rasa_line_without_dash_is_a_row_reject(lite):
    engine, shop = lite
    text = "nlu:\n- intent: a\n  examples: |\n    - fine\n    not a list item\n"
    report = run_import(engine, shop.admin, text, "nlu.yml", valid_only=True)
    assert [(r.line, r.reason) for r in report.rejects] == [(5, "expected '- ' before the example")]
    assert report.inserted == 1


# --- spreadsheet safety ---------------------------------------------------------------------


def test_csv_export_guards_formulas_and_round_trips_them(engine, shop):
    texts = [
        '=HYPERLINK("http://evil.example","click")',
        "+31 6 1234 5678 call me",
        "-5% off?",
        "@florist help",
        "'=already quoted by hand",
        "plain",
    ]
    data = "\n".join(json.dumps({"text": t, "intent": "x"}) for t in texts)
    run_import(engine, shop.admin, data, "in.jsonl")
    exported = run_export(engine, shop.admin, "csv")
    cells = {row["text"] for row in csv.DictReader(io.StringIO(exported))}
    assert '\'=HYPERLINK("http://evil.example","click")' in cells
    assert "'+31 6 1234 5678 call me" in cells
    assert "''=already quoted by hand" in cells
    assert "plain" in cells
    assert not any(cell.startswith(("=", "+", "-", "@")) for cell in cells)
    other = make_shop(engine, "Other")
    assert run_import(engine, other.admin, exported, "out.csv").inserted == len(texts)
    assert sorted(e.text for e in examples(engine, other)) == sorted(texts)
    assert run_import(engine, shop.admin, exported, "out.csv").inserted == 0


# --- conversation logs ----------------------------------------------------------------------

LOG = """\
conversation_id,customer_id,role,text,timestamp,escalated,resolved
c1,cust1,customer,Do you deliver roses on Sunday?,2024-05-01T10:00:00Z,false,
c1,cust1,assistant,Yes we do!,2024-05-01T10:00:05Z,false,true
c2,cust2,customer,"My order #12
never arrived",2024-05-02 09:00:00,yes,
c2,cust2,agent,Sorry about that,2024-05-02 09:05:00,yes,false
c3,,customer,no time given,,,
c3,,bot,hi,,,
"""


def test_conversation_log_creates_conversations_messages_and_pending_examples(engine, shop):
    report = run_import(engine, shop.admin, LOG, "log.csv")
    assert (report.kind, report.inserted, report.rejected) == ("conversations", 6, 0)
    assert "created 3 conversations" in report.notes
    assert (count(engine, shop, Conversation), count(engine, shop, Message)) == (3, 6)
    rows = examples(engine, shop)
    assert sorted(e.text for e in rows) == [
        "Do you deliver roses on Sunday?",
        "My order #12\nnever arrived",
        "no time given",
    ]
    for example in rows:
        assert (example.status, example.source) == ("pending", "imported")
        assert example.correct_intent is None and example.detected_intent is None
        assert example.content_hash is None and example.text_hash == text_hash(example.text)
        assert example.message_id is not None and example.conversation_id is not None
    with session_scope(shop.admin, engine=engine) as session:
        c2 = session.exec(select(Conversation).where(Conversation.external_id == "c2")).one()
        roles = session.exec(select(Message.role).order_by(col(Message.id))).all()
    assert (c2.customer_id, c2.escalated, c2.resolved) == ("cust2", True, False)
    assert c2.started_at == datetime(2024, 5, 2, 9, tzinfo=UTC)
    assert c2.ended_at == datetime(2024, 5, 2, 9, 5, tzinfo=UTC)
    assert roles[-1] == "assistant"  # "bot" is read as the assistant


def test_conversation_log_round_trips_and_reimport_adds_nothing(engine, shop):
    run_import(engine, shop.admin, LOG, "log.csv")
    again = run_import(engine, shop.admin, LOG, "log.csv")
    assert (again.inserted, again.duplicates) == (0, 6)
    out = io.StringIO()
    with session_scope(shop.manager, engine=engine) as session:
        written = export_conversations(session=session, actor=shop.manager, out=out)
    assert written == 6
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert set(lines[0]) == {
        "conversation_id",
        "customer_id",
        "role",
        "text",
        "timestamp",
        "escalated",
        "resolved",
    }
    report = run_import(engine, shop.admin, out.getvalue(), "log.jsonl")
    assert (report.kind, report.inserted, report.duplicates) == ("conversations", 0, 6)
    assert (count(engine, shop, Message), count(engine, shop, Example)) == (6, 3)
    other = make_shop(engine, "Other")
    assert run_import(engine, other.admin, out.getvalue(), "log.jsonl").inserted == 6


def test_conversation_spread_over_batches_is_merged(engine, shop, monkeypatch):
    monkeypatch.setattr(dataset, "BATCH_ROWS", 2)
    log = (
        "conversation_id,role,text,timestamp,escalated,resolved\n"
        "c1,customer,hi,2024-05-01T10:00:00Z,,\n"
        "c1,assistant,hello,2024-05-01T10:01:00Z,,\n"
        "c1,customer,I need a human,2024-05-01T10:02:00Z,true,\n"
        "c1,agent,Here I am,2024-05-01T10:03:00Z,,true\n"
    )
    run_import(engine, shop.admin, log, "log.csv")
    with session_scope(shop.admin, engine=engine) as session:
        conversation = session.exec(select(Conversation)).one()
    assert conversation.escalated is True and conversation.resolved is True
    assert conversation.started_at == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert conversation.ended_at == datetime(2024, 5, 1, 10, 3, tzinfo=UTC)


def test_conversation_import_leaves_the_plan_cache_mode_as_it_was(pg):
    truncate_all(pg.owner)
    engine = pg.app
    shop = make_shop(engine)
    mode = select_columns(func.current_setting("plan_cache_mode"))
    with session_scope(shop.admin, engine=engine) as session:
        import_file(
            session=session,
            actor=shop.admin,
            stream=io.BytesIO(LOG.encode()),
            filename="log.csv",
            spec=None,
        )
        assert session.execute(mode).scalar_one() == "auto"


def test_repeated_message_in_one_log_is_a_duplicate(lite):
    engine, shop = lite
    log = "conversation_id,role,text,timestamp\n" + "c1,customer,hi,2024-01-01T00:00:00Z\n" * 2
    report = run_import(engine, shop.admin, log, "log.csv")
    assert (report.inserted, report.duplicates) == (1, 1)
    assert count(engine, shop, Example) == 1


def test_conversation_rows_with_problems_are_rejected(lite):
    engine, shop = lite
    log = (
        "conversation_id,role,text,escalated\n"
        "c1,customer,hi,\n"
        "c1,florist,hello,\n"
        ",customer,who am I,\n"
        "c1,customer,maybe,sometimes\n"
    )
    report = run_import(engine, shop.admin, log, "log.csv", valid_only=True)
    assert [(r.line, r.reason) for r in report.rejects] == [
        (3, "unknown role 'florist' (expected customer, assistant or agent)"),
        (4, "missing conversation_id"),
        (5, "bad escalated value 'sometimes' (expected true or false)"),
    ]
    assert report.inserted == 1


# --- export filters -------------------------------------------------------------------------


def test_export_filters_by_status_intent_source_and_dates(engine, shop):
    base = datetime(2024, 1, 1, tzinfo=UTC)
    with session_scope(shop.admin, engine=engine) as session:
        for i, (status, source, intent) in enumerate(
            [
                ("approved", "imported", "a"),
                ("pending", "live", None),
                ("approved", "live", "b"),
                ("rejected", "imported", "a"),
            ]
        ):
            text = f"message {i}"
            session.add(
                Example(
                    tenant_id=shop.tenant_id,
                    text=text,
                    text_hash=text_hash(text),
                    status=status,
                    source=source,
                    correct_intent=intent,
                    created_at=base + timedelta(days=i),
                )
            )

    def texts(flt: ExampleFilter) -> list[str]:
        lines = run_export(engine, shop.manager, "jsonl", flt).splitlines()
        return [json.loads(line)["text"] for line in lines]

    assert texts(ExampleFilter()) == [f"message {i}" for i in range(4)]
    assert texts(ExampleFilter(status="approved")) == ["message 0", "message 2"]
    assert texts(ExampleFilter(intent="a")) == ["message 0", "message 3"]
    assert texts(ExampleFilter(source="live")) == ["message 1", "message 2"]
    since, until = base + timedelta(days=1), base + timedelta(days=3)
    assert texts(ExampleFilter(since=since, until=until)) == ["message 1", "message 2"]
    header = run_export(engine, shop.admin, "csv").splitlines()[0]
    assert header == "text,intent,response,confidence,timestamp,status,source"


# --- statistics -----------------------------------------------------------------------------


def test_dataset_stats_on_a_hand_made_fixture(engine, shop):
    rows = [
        # text, intent, source, status, reviewed
        ("hello", "greet", "imported", "approved", True),
        ("Hello ", "greet", "live", "reviewed", True),  # same text_hash as "hello"
        ("HELLO", "bye", "live", "pending", False),  # third of that group
        ("bye now", "bye", "imported", "approved", False),
        ("see you", "bye", "imported", "approved", False),  # group of one
        ("roses?", None, "live", "pending", False),
        ("roses?", None, "live", "pending", False),  # second group of two
    ]
    with session_scope(shop.admin, engine=engine) as session:
        for text, intent, source, status, reviewed in rows:
            session.add(
                Example(
                    tenant_id=shop.tenant_id,
                    text=text,
                    text_hash=text_hash(text),
                    correct_intent=intent,
                    source=source,
                    status=status,
                    reviewed=reviewed,
                )
            )
        for name in ("greet", "bye", "never_used"):
            session.add(Intent(tenant_id=shop.tenant_id, name=name))
        session.add(Intent(tenant_id=shop.tenant_id, name="retired", is_active=False))
    with session_scope(shop.manager, engine=engine) as session:
        stats = dataset_stats(session=session, actor=shop.manager)
    assert stats.total == 7
    assert stats.reviewed == 2
    assert stats.reviewed_share == pytest.approx(2 / 7)
    assert stats.per_intent == [("bye", 3), ("greet", 2)]
    assert stats.per_source == {"imported": 3, "live": 4}
    assert stats.per_status == {"approved": 3, "reviewed": 1, "pending": 3}
    assert (stats.duplicate_groups, stats.duplicate_rows) == (2, 3)
    assert stats.thin_intents == [("never_used", 0), ("greet", 2), ("bye", 3)]
    assert MIN_EXAMPLES_PER_INTENT == 10


def test_intent_with_ten_examples_is_not_thin(lite):
    engine, shop = lite
    run_import(engine, shop.admin, csv_bytes([(f"text {i}", "enough") for i in range(10)]))
    run_import(engine, shop.admin, csv_bytes([(f"text {i}", "thin") for i in range(9)]))
    with session_scope(shop.admin, engine=engine) as session:
        stats = dataset_stats(session=session, actor=shop.admin)
    assert stats.thin_intents == [("thin", 9)]


def test_stats_of_an_empty_shop(lite):
    engine, shop = lite
    with session_scope(shop.admin, engine=engine) as session:
        stats = dataset_stats(session=session, actor=shop.admin)
    assert (stats.total, stats.reviewed_share, stats.duplicate_groups, stats.per_intent) == (
        0,
        0.0,
        0,
        [],
    )


# --- shops and roles ------------------------------------------------------------------------


def test_imports_exports_and_stats_are_scoped_to_the_shop(engine):
    a, b = make_shop(engine, "Shop A"), make_shop(engine, "Shop B")
    a_rows = [("secret of a", "a_only"), ("shared text", "x")]
    run_import(engine, a.admin, csv_bytes(a_rows))
    run_import(engine, a.admin, LOG, "log.csv")
    report = run_import(engine, b.admin, csv_bytes([("shared text", "x"), ("b text", "b_only")]))
    assert (report.inserted, report.duplicates) == (2, 0)  # A's rows are not B's duplicates
    assert run_import(engine, b.admin, LOG, "log.csv").inserted == 6
    b_export = run_export(engine, b.admin, "jsonl") + run_export(engine, b.admin, "rasa")
    assert "secret of a" not in b_export and "a_only" not in b_export
    out = io.StringIO()
    with session_scope(b.admin, engine=engine) as session:
        assert export_conversations(session=session, actor=b.admin, out=out) == 6
        stats = dataset_stats(session=session, actor=b.admin)
        intents = set(session.exec(select(Intent.name)).all())
    assert stats.total == 5  # two labelled + three customer messages
    assert dict(stats.per_intent) == {"x": 1, "b_only": 1}
    assert intents == {"x", "b_only"}
    assert count(engine, a, Example) == 5


@pytest.mark.parametrize("role", ["florist", "manager"])
def test_only_admins_import_or_check(engine, shop, role):
    actor = getattr(shop, role)
    with pytest.raises(PermissionDenied):
        run_import(engine, actor, "text,intent\na,b\n")
    with pytest.raises(PermissionDenied):
        run_check(engine, actor, "text,intent\na,b\n")
    assert nothing_written(engine, shop)


def test_managers_export_and_read_stats_but_florists_do_not(engine, shop):
    run_import(engine, shop.admin, "text,intent\na,b\n")
    assert "a,b" in run_export(engine, shop.manager, "csv")
    with session_scope(shop.manager, engine=engine) as session:
        assert dataset_stats(session=session, actor=shop.manager).total == 1
    with pytest.raises(PermissionDenied):
        run_export(engine, shop.florist, "csv")
    with session_scope(shop.florist, engine=engine) as session:
        with pytest.raises(PermissionDenied):
            export_conversations(session=session, actor=shop.florist, out=io.StringIO())
        with pytest.raises(PermissionDenied):
            dataset_stats(session=session, actor=shop.florist)


def test_exports_are_audited(lite):
    engine, shop = lite
    run_import(engine, shop.admin, "text,intent\na,b\n")
    run_export(engine, shop.manager, "jsonl")
    assert audit_actions(engine, shop).count("dataset.export") == 1


# --- detection, preview, progress -----------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "head", "expected"),
    [
        ("train.csv", b"text,intent\n", ("examples", "csv")),
        ("log.csv", b"\xef\xbb\xbfConversation_ID;Role;Text\n", ("conversations", "csv")),
        ("a.jsonl", b'{"text": "a", "intent": "b"}\n', ("examples", "jsonl")),
        (
            "a.json",
            b'{"conversation_id": 1, "role": "customer", "text": "x"}',
            ("conversations", "jsonl"),
        ),
        ("a.ndjson", b'{"text": "a"}', ("examples", "jsonl")),
        ("nlu.yml", b"nlu:\n", ("examples", "rasa")),
        ("nlu.YAML", b"version: '3.1'\n", ("examples", "rasa")),
        ("upload", b'{"text": "a"}\n', ("examples", "jsonl")),
        ("upload", b"version: 3.1\nnlu:\n- intent: a\n", ("examples", "rasa")),
        ("upload", b"text\tintent\n", ("examples", "csv")),
    ],
)
def test_detect_format(filename, head, expected):
    assert detect_format(filename, head) == expected


def test_preview_reads_only_the_head_and_applies_mapping_and_cleanup(lite):
    engine, shop = lite
    rows = b"".join(b"<b>msg %d</b>,x\n" % i for i in range(20_000))
    data = b"Body,Label\n" + rows + b"bad \x81 byte,x\n"  # far beyond the rows shown
    assert len(data) > 4 * 64 * 1024
    spec = ReadSpec(mapping={"text": "body", "intent": "label"}, cleanup=("strip_html",))
    preview = preview_file(stream=io.BytesIO(data), filename="x.csv", spec=spec, rows=3)
    assert preview.columns == ["Body", "Label"]
    assert preview.rows == [{"text": f"msg {i}", "intent": "x"} for i in range(3)]
    assert (preview.kind, preview.file_format, preview.notes) == ("examples", "csv", [])
    with pytest.raises(FileRefused, match="line 20002: invalid UTF-8"):
        run_import(engine, shop.admin, data, "x.csv", spec)


def test_preview_of_a_log_reports_its_kind():
    preview = preview_file(stream=io.BytesIO(LOG.encode()), filename="log.csv", spec=None, rows=2)
    assert preview.kind == "conversations"
    assert preview.rows[1]["role"] == "assistant"
    assert len(preview.rows) == 2


def test_progress_reports_bytes_read_up_to_the_file_size(lite, monkeypatch):
    engine, shop = lite
    data = csv_bytes([(f"message number {i}", "x") for i in range(20_000)])
    seen: list[int] = []
    run_import(engine, shop.admin, data, progress=seen.append)
    assert seen == sorted(seen)
    assert seen[-1] == len(data)
    assert len(seen) > 1


def test_example_hashes_match_core_text():
    for text, label in [
        ("Héllo  World ", " Greet"),
        ("ＦＵＬＬ width", "x"),
        ("", ""),
        ("a\tb", "B"),
    ]:
        assert dataset.example_hashes(text, label) == (
            text_hash(text),
            content_hash(text, label),
        )
