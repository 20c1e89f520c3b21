"""Templates page through app.py: edit, preview, save, promote (admins only), refused
placeholders with their positions, generator configurations and the shared library."""

from __future__ import annotations

from sqlmodel import select

from core import library, templates
from core.access import Role
from db.engine import session_scope
from db.models import DesignTemplateVersion, GeneratorConfig, SharedTemplate

NEW_TEXT = "A {style} bouquet of {flowers} for {occasion}, delivered in a {container}"


def _templates(app, actor):
    at = app(actor)
    at.switch_page("pages/templates.py")
    return at.run()


def _view(engine, actor, kind, name):
    with session_scope(actor, engine=engine) as s:
        return templates.find_template(session=s, actor=actor, kind=kind, name=name)


def _versions(engine, actor, view):
    with session_scope(actor, engine=engine) as s:
        return s.exec(
            select(DesignTemplateVersion)
            .where(DesignTemplateVersion.template_id == view.id)
            .order_by(DesignTemplateVersion.number)
        ).all()


def _open_prompt(at, view):
    at.selectbox(key="pick_prompt").set_value(view.id)
    return at.run()


def _codes(at):
    return [c.value for c in at.code]


def test_edit_preview_save_and_promote_a_prompt_template(app, shops, app_db):
    bloom, _ = shops
    basic = _view(app_db, bloom.admin, "prompt", "Basic Bouquet")
    at = _open_prompt(_templates(app, bloom.admin), basic)
    assert not at.exception
    key = f"{basic.id}_1"
    at.text_area(key=f"prompt_text_{key}").input(NEW_TEXT)
    at.button(key=f"preview_{key}").click()
    at = at.run()
    assert not at.exception
    # values from the shop's most used style and the catalog; {container} nobody gave
    rendered = next(c for c in _codes(at) if c.startswith("A romantic bouquet"))
    assert "roses and peonies" in rendered and rendered.endswith("in a {container}")
    assert any("No value for {container}" in w.value for w in at.warning)
    at.text_input(key=f"value_{basic.id}_1_container").input("glass vase")
    next(b for b in at.button if b.label == "Preview with these values").click()
    at = at.run()
    assert any(c.endswith("delivered in a glass vase") for c in _codes(at))
    assert _versions(app_db, bloom.admin, basic)[-1].number == 1  # a preview saves nothing

    at.text_area(key=f"prompt_text_{key}").input(NEW_TEXT)
    at.text_input(key=f"prompt_note_{key}").input("Say where it is delivered")
    at.button(key=f"save_{key}").click()
    at = at.run()
    assert not at.exception
    message = at.success[0].value
    assert "Saved version 2" in message and "container" in message
    saved = _versions(app_db, bloom.admin, basic)[-1]
    assert (saved.number, saved.note, saved.content["text"]) == (
        2,
        "Say where it is delivered",
        NEW_TEXT,
    )
    assert "container" in [v["name"] for v in saved.content["variables"]]
    assert _view(app_db, bloom.admin, "prompt", "Basic Bouquet").production_number == 1
    # the diff between production and the new version, as plain text
    diff = next(c for c in _codes(at) if c.startswith("--- version 1"))
    assert "+  " + NEW_TEXT in diff and "-  Create a beautiful" in diff

    at.selectbox(key=f"label_version_{basic.id}_1").set_value(2)
    at.checkbox(key=f"label_confirm_{basic.id}_1").check()
    at.button(key=f"promote_{basic.id}_1").click()
    at = at.run()
    assert not at.exception
    assert any("Promoted: version 2" in s.value for s in at.success)
    assert _view(app_db, bloom.admin, "prompt", "Basic Bouquet").production_number == 2


def test_promote_needs_the_confirmation_and_roll_back_restores(app, shops, app_db):
    bloom, _ = shops
    basic = _view(app_db, bloom.admin, "prompt", "Basic Bouquet")
    with session_scope(bloom.admin, engine=app_db) as s:
        templates.save_version(
            session=s,
            actor=bloom.admin,
            template_id=basic.id,
            content={**basic.content, "text": "A {style} posy for {occasion}"},
            note="shorter",
            expected_version=basic.version,
        )
        templates.promote(session=s, actor=bloom.admin, template_id=basic.id, number=2)
    at = _open_prompt(_templates(app, bloom.admin), basic)
    at.button(key=f"rollback_{basic.id}_2").click()
    at = at.run()
    assert any("Tick the confirmation first" in w.value for w in at.warning)
    assert _view(app_db, bloom.admin, "prompt", "Basic Bouquet").production_number == 2
    at.checkbox(key=f"label_confirm_{basic.id}_2").check()
    at.button(key=f"rollback_{basic.id}_2").click()
    at = at.run()
    assert any("Rolled back: version 1" in s.value for s in at.success)
    assert _view(app_db, bloom.admin, "prompt", "Basic Bouquet").production_number == 1


def test_a_florist_saves_a_draft_but_cannot_promote_and_sees_why(app, shops, app_db):
    bloom, _ = shops
    basic = _view(app_db, bloom.florist, "prompt", "Basic Bouquet")
    at = _open_prompt(_templates(app, bloom.florist), basic)
    assert not at.exception
    assert any("Only an admin can promote" in i.value for i in at.info)
    assert at.button(key=f"promote_locked_{basic.id}").disabled
    assert not [b for b in at.button if b.key and b.key.startswith("promote_" + str(basic.id))]
    key = f"{basic.id}_1"
    at.text_area(key=f"prompt_text_{key}").input(NEW_TEXT)
    at.text_input(key=f"prompt_note_{key}").input("delivery")
    at.button(key=f"save_{key}").click()
    at = at.run()
    assert any("waits as a draft until an admin promotes it" in s.value for s in at.success)
    assert _view(app_db, bloom.florist, "prompt", "Basic Bouquet").production_number == 1


def test_a_bad_placeholder_shows_its_line_and_column_and_saves_nothing(app, shops, app_db):
    bloom, _ = shops
    basic = _view(app_db, bloom.florist, "prompt", "Basic Bouquet")
    at = _open_prompt(_templates(app, bloom.florist), basic)
    key = f"{basic.id}_1"
    at.text_area(key=f"prompt_text_{key}").input("A {style.__class__} bouquet\nfor {ocasion}")
    at.text_input(key=f"prompt_note_{key}").input("broken")
    at.button(key=f"save_{key}").click()
    at = at.run()
    assert not at.exception
    assert "Nothing was saved: the prompt text has 2 problems" in at.error[0].value
    problems = next(d.value for d in at.dataframe if "line" in d.value.columns)
    assert list(zip(problems["line"], problems["column"], strict=True)) == [(1, 3), (2, 5)]
    assert "Did you mean {occasion}?" in problems["problem"][1]
    assert len(_versions(app_db, bloom.florist, basic)) == 1
    # Preview refuses it the same way
    at.button(key=f"preview_{key}").click()
    at = at.run()
    assert "Nothing was saved" in at.error[0].value


def test_a_style_is_edited_previewed_in_a_prompt_and_saved(app, shops, app_db):
    bloom, _ = shops
    romantic = _view(app_db, bloom.florist, "style", "Romantic Classic")
    at = _templates(app, bloom.florist)
    at.selectbox(key="pick_style").set_value(romantic.id)
    at = at.run()
    key = f"{romantic.id}_1"
    at.text_input(key=f"style_mood_{key}").input("dreamy")
    at.button(key=f"preview_{key}").click()
    at = at.run()
    assert not at.exception
    assert any("dreamy" in c for c in _codes(at))
    assert any("This style has no example images yet" in c.value for c in at.caption)
    at.text_input(key=f"style_note_{key}").input("dreamier")
    at.button(key=f"save_{key}").click()
    at = at.run()
    assert any("Saved version 2" in s.value for s in at.success)
    assert _versions(app_db, bloom.florist, romantic)[-1].content["mood"] == "dreamy"


def test_create_a_prompt_template_declares_the_standard_variables(app, shops, app_db):
    bloom, _ = shops
    at = _templates(app, bloom.florist)
    at.text_input(key="new_name_prompt").input("Table Piece")
    at.text_area(key="new_text_prompt").input("A low {arrangement} with {flowers}")
    next(b for b in at.button if b.label == "Create prompt template").click()
    at = at.run()
    assert not at.exception
    assert any("Created the prompt template “Table Piece”" in s.value for s in at.success)
    made = _view(app_db, bloom.florist, "prompt", "Table Piece")
    assert [v["name"] for v in made.content["variables"]] == ["arrangement", "flowers"]
    assert at.selectbox(key="pick_prompt").value == made.id  # opened right away


def test_generator_configurations_validate_and_only_admins_activate(app, shops, app_db):
    bloom, _ = shops
    at = _templates(app, bloom.florist)
    assert any("No generator configurations yet" in i.value for i in at.info)
    assert at.selectbox(key="new_generator_type").value == "dalle3"
    at.text_input(key="new_generator_name_dalle3").input("Square")
    at.text_area(key="new_generator_parameters_dalle3").input('{"size": "12x12"}')
    next(b for b in at.button if b.label == "Create configuration").click()
    at = at.run()
    assert "size must be one of" in at.error[0].value
    at.text_area(key="new_generator_parameters_dalle3").input(
        '{"size": "1024x1024", "quality": "hd"}'
    )
    next(b for b in at.button if b.label == "Create configuration").click()
    at = at.run()
    assert any("an admin activates it" in s.value for s in at.success)
    with session_scope(bloom.admin, engine=app_db) as s:
        config = s.exec(select(GeneratorConfig)).one()
    assert not config.is_active
    assert not [b for b in at.button if b.label.startswith("Activate")]
    at = _templates(app, bloom.admin)
    next(b for b in at.button if b.label.startswith("Activate for")).click()
    at = at.run()
    assert any("is now the active DALL·E 3 configuration" in s.value for s in at.success)
    with session_scope(bloom.admin, engine=app_db) as s:
        assert s.exec(select(GeneratorConfig)).one().is_active


def test_library_publish_adopt_and_withdraw_with_confirmation(app, shops, app_db):
    bloom, fern = shops
    romantic = _view(app_db, bloom.florist, "style", "Romantic Classic")
    at = _templates(app, bloom.florist)
    assert any("Nothing in the library yet" in i.value for i in at.info)
    at.selectbox(key="publish_pick").set_value(romantic.id)
    at = at.run()
    next(b for b in at.button if b.label == "Publish").click()
    at = at.run()
    assert any("Published “Romantic Classic”" in s.value for s in at.success)

    # another shop sees it anonymously and adopts it under another name
    at = _templates(app, fern.florist)
    table = at.dataframe[-1].value
    assert list(table["name"]) == ["Romantic Classic"] and list(table["yours"]) == [False]
    assert not any("Fern" in c or "Bloom" in c for c in table.columns)
    next(t for t in at.text_input if t.label == "Name of your copy").input("Borrowed Romance")
    next(b for b in at.button if b.label == "Adopt").click()
    at = at.run()
    assert any("Adopted as your style “Borrowed Romance”" in s.value for s in at.success)
    assert _view(app_db, fern.florist, "style", "Borrowed Romance").adopted_from_library
    assert not [b for b in at.button if b.label == "Withdraw"]  # not theirs to withdraw

    at = _templates(app, bloom.florist)
    with session_scope(bloom.florist, engine=app_db) as s:
        item_id = library.browse(session=s, actor=bloom.florist)[0].id
    assert at.button(key=f"withdraw_{item_id}").disabled
    at.checkbox(key=f"confirm_withdraw_{item_id}").check()
    at = at.run()
    at.button(key=f"withdraw_{item_id}").click()
    at = at.run()
    assert any("Withdrew “Romantic Classic”" in s.value for s in at.success)
    with session_scope(bloom.florist, engine=app_db) as s:
        assert s.exec(select(SharedTemplate)).all() == []


def test_managers_are_not_allowed(app, shops):
    bloom, _ = shops
    at = _templates(app, bloom.actor(Role.MANAGER))
    assert "Not allowed" in at.error[0].value
