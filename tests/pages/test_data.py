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


def _profile(engine, actor, name, source="Shop", successes=0, failures=0):
    from core import profiles

    with session_scope(actor, engine=engine) as s:
        view = profiles.create_profile(
            session=s,
            actor=actor,
            data=profiles.parse_profile_input(
                name=name, source=source, mapping={"text": "Message", "intent": "Topic"}
            ),
        )
        for _ in range(successes):
            profiles.record_use(
                session=s, actor=actor, profile_id=view.id, valid_rows=1, total_rows=1
            )
        for _ in range(failures):
            profiles.record_use(
                session=s, actor=actor, profile_id=view.id, valid_rows=0, total_rows=1
            )
    return view


def test_picking_a_source_preselects_its_best_proven_profile(app, shops, app_db):
    bloom, fern = shops
    _profile(app_db, fern.admin, "Lucky two", successes=2)
    _profile(app_db, fern.admin, "Proven", successes=95, failures=5)
    at = _upload(_data(app, bloom.admin), "shop.csv", b"Message,Topic\nhi,greeting\n")
    at.selectbox(key="import_source").select("Shop")
    at = at.run()
    assert at.selectbox(key="import_profile_Shop").value.name == "Proven"
    assert list(at.dataframe[0].value["text"]) == ["hi"]  # read through the profile's mapping


def test_profiles_tab_is_anonymous_and_others_profiles_are_read_only(app, shops, app_db):
    bloom, fern = shops
    _profile(app_db, fern.admin, "Fern's format")
    at = _data(app, bloom.admin)
    table = at.dataframe[-1].value
    assert list(table["name"]) == ["Fern's format"] and list(table["yours"]) == [False]
    assert "Fern" not in " ".join(table.columns)
    assert at.get("expander") and not any(
        e.label.startswith("Change or delete") for e in at.get("expander")
    )


def test_admin_creates_edits_and_deletes_a_profile(app, shops, app_db):
    from db.models import ImportProfile

    bloom, _ = shops
    at = _data(app, bloom.admin)
    form = next(w for w in at.text_input if w.label == "Name")
    form.input("Till CSV")
    next(w for w in at.text_input if w.label == "Source platform").input("Till")
    next(w for w in at.text_area if w.label.startswith("Field mapping")).input(
        "text = Message\nintent = Topic"
    )
    next(b for b in at.button if b.label == "Create profile").click()
    at = at.run()
    assert "Created the profile 'Till CSV'" in at.success[0].value
    profile_id = _profile_id(app_db, bloom, "Till CSV")
    names = [w for w in at.text_input if w.label == "Name"]
    names[1].input("Till CSV v2")  # the edit form of the shop's own profile
    next(b for b in at.button if b.label == "Save changes").click()
    at = at.run()
    assert "Saved the profile 'Till CSV v2'" in at.success[0].value
    assert at.button(key=f"delete_{profile_id}").disabled  # confirmation first
    at.checkbox(key=f"confirm_delete_{profile_id}").check()
    at = at.run()
    at.button(key=f"delete_{profile_id}").click()
    at = at.run()
    assert "Deleted the profile" in at.success[0].value
    with session_scope(bloom.admin, engine=app_db) as s:
        assert s.exec(select(ImportProfile)).all() == []


def _profile_id(engine, shop, name):
    from db.models import ImportProfile

    with session_scope(shop.admin, engine=engine) as s:
        return s.exec(select(ImportProfile.id).where(ImportProfile.name == name)).one()


def test_an_oversized_upload_is_refused_on_the_server(app, shops, app_db, monkeypatch):
    bloom, _ = shops
    monkeypatch.setenv("TRELLIS_MAX_UPLOAD_MB", "1")
    big = b"text,intent\n" + b"where is my order please tell me,order_status\n" * 30_000
    at = _upload(_data(app, bloom.admin), "big.csv", big)
    assert "larger than 1 MB" in at.error[0].value
    assert not at.dataframe  # no preview of a refused file
    with session_scope(bloom.admin, engine=app_db) as s:
        assert s.exec(select(Example)).all() == []
