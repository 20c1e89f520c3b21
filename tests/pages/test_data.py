"""The Data page: upload, preview, check, import with the rejected-row report; export; stats."""

from __future__ import annotations

from sqlmodel import select

from core.access import Role
from db.engine import session_scope
from db.models import Example


def _data(app, actor):
    at = app(actor)
    at.switch_page("pages/data.py")
    return at.run()


def _upload(at, name: str, content: bytes, mime: str = "text/csv"):
    at.file_uploader[0].upload(name, content, mime)
    return at.run()


def _button(at, starts: str):
    return next(b for b in at.button if b.label.startswith(starts))


GOOD = b"text,intent\nWhere is my order?,order_status\nCan you deliver today?,same_day_delivery\n"
MIXED = GOOD + b",order_status\nDo you have lilies?,\n"


def test_upload_preview_check_and_import(app, shops, app_db):
    bloom, fern = shops
    at = _upload(_data(app, bloom.admin), "examples.csv", GOOD)
    assert not at.exception
    preview = at.dataframe[0].value
    assert list(preview["text"]) == ["Where is my order?", "Can you deliver today?"]
    _button(at, "Check the whole file").click()
    at = at.run()
    metrics = {m.label: m.value for m in at.metric}
    assert (metrics["Rows"], metrics["New"], metrics["Rejected"]) == ("2", "2", "0")
    _button(at, "Import 2 rows").click()
    at = at.run()
    assert "Imported 2 rows" in at.success[0].value
    with session_scope(bloom.admin, engine=app_db) as s:
        assert {e.correct_intent for e in s.exec(select(Example))} == {
            "order_status",
            "same_day_delivery",
        }
    with session_scope(fern.admin, engine=app_db) as s:
        assert s.exec(select(Example)).all() == []


def test_rejected_rows_are_listed_and_only_valid_rows_import_on_request(app, shops, app_db):
    bloom, _ = shops
    at = _upload(_data(app, bloom.admin), "mixed.csv", MIXED)
    _button(at, "Check the whole file").click()
    at = at.run()
    assert "2 rows cannot be imported" in at.warning[0].value
    rejects = at.dataframe[1].value
    assert list(rejects["line"]) == [4, 5]
    with session_scope(bloom.admin, engine=app_db) as s:
        assert s.exec(select(Example)).all() == []  # checking writes nothing
    _button(at, "Import the 2 valid, skip 2 rows").click()
    at = at.run()
    assert "Imported 2 rows" in at.success[0].value


def test_a_structurally_broken_file_is_refused_with_its_reason(app, shops, app_db):
    bloom, _ = shops
    at = _upload(_data(app, bloom.admin), "broken.csv", b"message,topic\nhello,greeting\n")
    assert not at.exception
    assert "text" in at.error[0].value
    with session_scope(bloom.admin, engine=app_db) as s:
        assert s.exec(select(Example)).all() == []


def test_manager_sees_export_and_statistics_but_cannot_import(app, shops):
    bloom, _ = shops
    at = _data(app, bloom.manager)
    assert not at.exception
    assert [t.label for t in at.tabs] == ["Export", "Statistics", "Import profiles"]
    assert not at.file_uploader


def test_florist_is_not_allowed(app, shops):
    bloom, _ = shops
    at = _data(app, bloom.actor(Role.FLORIST))
    assert "Not allowed" in at.error[0].value


def test_statistics_and_empty_states(app, shops):
    bloom, _ = shops
    at = _data(app, bloom.admin)
    assert any("No examples yet" in i.value for i in at.info)
    at = _upload(at, "examples.csv", GOOD)
    _button(at, "Check the whole file").click()
    at = at.run()
    _button(at, "Import 2 rows").click()
    assert "Imported 2 rows" in at.run().success[0].value
    at = _data(app, bloom.admin)
    assert {m.label: m.value for m in at.metric}["Examples"] == "2"
    assert any("Add examples to" in w.value for w in at.warning)  # both intents have < 10
