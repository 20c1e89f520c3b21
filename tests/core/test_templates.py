"""Style and prompt templates: defaults, immutable versions, diffs, the production label,
previews and the generator's render. Every test runs on SQLite and, with TEST_DATABASE_URL, on
PostgreSQL as the app role (RLS on)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import select

from core import catalog, templates
from core.access import Actor, Role
from core.errors import InvalidInput, NotFound, PermissionDenied, StaleEdit
from core.placeholders import TemplateError
from core.templates import (
    DEFAULT_PROMPTS,
    DEFAULT_STYLES,
    MissingValues,
    Preview,
    TemplateView,
    VersionView,
)
from db.engine import session_scope
from db.models import AuditEvent, DesignTemplateVersion
from tests.factories import Shop, make_shop

SEED_EXAMPLE = (
    "Create a beautiful romantic bouquet with roses and peonies in pink and white colors "
    "for wedding"
)
ROMANTIC = DEFAULT_STYLES[0]["content"]


@pytest.fixture
def shop(engine) -> Shop:
    return make_shop(engine, "Bloom")


def call(engine: Engine, actor: Actor, function: str, **kwargs: Any) -> Any:
    with session_scope(actor, engine=engine) as s:
        return getattr(templates, function)(session=s, actor=actor, **kwargs)


def find(engine: Engine, actor: Actor, kind: str, name: str) -> TemplateView:
    return call(engine, actor, "find_template", kind=kind, name=name)


def save(engine: Engine, actor: Actor, view: TemplateView, note: str, **changes) -> VersionView:
    current = call(engine, actor, "get_template", template_id=view.id)
    return call(
        engine,
        actor,
        "save_version",
        template_id=view.id,
        content={**current.content, **changes},
        note=note,
        expected_version=current.version,
    )


def versions(engine: Engine, actor: Actor, view: TemplateView) -> list[VersionView]:
    return call(engine, actor, "list_versions", template_id=view.id)


def audit_actions(engine: Engine, shop: Shop) -> list[str]:
    with session_scope(shop.admin, engine=engine) as s:
        return [e.action for e in s.exec(select(AuditEvent).order_by(AuditEvent.id)).all()]


# ---------------------------------------------------------------- defaults


def test_a_new_shop_gets_the_five_styles_and_three_prompts_in_production(engine, shop):
    styles = call(engine, shop.florist, "list_templates", kind="style")
    prompts = call(engine, shop.florist, "list_templates", kind="prompt")
    assert sorted(t.name for t in styles) == sorted(
        [
            "Romantic Classic",
            "Modern Minimalist",
            "Rustic Natural",
            "Elegant Formal",
            "Tropical Vibrant",
        ]
    )
    assert sorted(t.name for t in prompts) == [
        "Basic Bouquet",
        "Modern Arrangement",
        "Style Specific",
    ]
    for view in styles + prompts:
        assert (view.latest_number, view.production_number, view.usage_count) == (1, 1, 0)
        assert not view.has_draft and not view.adopted_from_library
    romantic = find(engine, shop.manager, "style", "romantic classic")
    assert romantic.content["color_palette"] == ["pink", "white", "blush"]
    assert romantic.content["mood"] == "romantic"
    assert audit_actions(engine, shop) == []  # part of creating the shop, not an edit


def test_default_content_is_valid_for_its_kind():
    for item in DEFAULT_STYLES:
        assert templates.parse_content("style", item["content"]) == item["content"]
    for item in DEFAULT_PROMPTS:
        assert templates.parse_content("prompt", item["content"]) == item["content"]


def test_another_shops_templates_are_not_found(engine, shop):
    other = make_shop(engine, "Fern")
    theirs = find(engine, other.admin, "style", "Romantic Classic")
    mine = find(engine, shop.admin, "style", "Romantic Classic")
    assert theirs.id != mine.id
    for name, kwargs in [
        ("get_template", {}),
        ("list_versions", {}),
        ("get_version", {"number": 1}),
    ]:
        with pytest.raises(NotFound):
            call(engine, shop.admin, name, template_id=theirs.id, **kwargs)
    with pytest.raises(NotFound):
        call(engine, shop.admin, "promote", template_id=theirs.id, number=1)
    assert versions(engine, other.admin, theirs)[0].note == "Starting template"


# ---------------------------------------------------------------- preview and render


def test_the_seed_example_renders_from_the_style_and_the_catalog(engine, shop):
    basic = find(engine, shop.florist, "prompt", "Basic Bouquet")
    romantic = find(engine, shop.florist, "style", "Romantic Classic")
    shown: Preview = call(
        engine, shop.florist, "preview", template_id=basic.id, style_id=romantic.id
    )
    assert shown.text == SEED_EXAMPLE
    assert shown.origins == {
        "style": "style",
        "flowers": "style",
        "colors": "style",
        "occasion": "catalog",
    }
    assert shown.values["flowers"] == "roses and peonies" and shown.missing == ()
    # Without a choice the shop's most used style is taken (a new shop: the first default).
    assert call(engine, shop.manager, "preview", template_id=basic.id).text == SEED_EXAMPLE


def test_catalog_values_are_the_ones_that_suit_the_style(engine, shop):
    basic = find(engine, shop.florist, "prompt", "Basic Bouquet")
    tropical = find(engine, shop.florist, "style", "Tropical Vibrant")
    with session_scope(shop.florist, engine=engine) as s:
        catalog.create_item(
            session=s,
            actor=shop.florist,
            kind="occasion",
            values={"name": "luau", "typical_flowers": "bird of paradise, heliconia, protea"},
        )
    shown = call(engine, shop.florist, "preview", template_id=basic.id, style_id=tropical.id)
    assert shown.values["style"] == "tropical" and shown.values["occasion"] == "luau"
    romantic = call(engine, shop.florist, "preview", template_id=basic.id)
    assert romantic.values["occasion"] == "wedding"


def test_given_values_win_and_free_text_without_one_stays_visible(engine, shop):
    modern = find(engine, shop.florist, "prompt", "Modern Arrangement")
    shown = call(engine, shop.florist, "preview", template_id=modern.id)
    assert "{container}" in shown.text and shown.missing == ("container",)
    given = call(
        engine,
        shop.florist,
        "preview",
        template_id=modern.id,
        values={"container": "ceramic bowl", "flowers": "tulips, irises, lilac"},
    )
    assert "in a ceramic bowl, featuring tulips, irises and lilac in a" in given.text
    assert given.origins["container"] == "given" and given.missing == ()


def test_a_value_for_an_undeclared_variable_is_refused(engine, shop):
    basic = find(engine, shop.florist, "prompt", "Basic Bouquet")
    with pytest.raises(InvalidInput, match="has no variable budget"):
        call(engine, shop.florist, "preview", template_id=basic.id, values={"budget": "$50"})


def test_user_values_are_inserted_verbatim_never_formatted(engine, shop):
    basic = find(engine, shop.florist, "prompt", "Basic Bouquet")
    sneaky = "{style.__class__} {0} {flowers!r}"
    shown = call(engine, shop.florist, "preview", template_id=basic.id, values={"occasion": sneaky})
    assert shown.text.endswith(f"for {sneaky}")


def test_render_prompt_uses_production_not_the_draft(engine, shop):
    basic = find(engine, shop.florist, "prompt", "Basic Bouquet")
    save(engine, shop.florist, basic, "warmer", text="A warm {style} bouquet of {flowers}")
    draft = call(engine, shop.florist, "preview", template_id=basic.id)
    assert draft.text == "A warm romantic bouquet of roses and peonies" and draft.number == 2
    rendered = call(engine, shop.admin, "render_prompt", template="basic bouquet")
    assert rendered.text == SEED_EXAMPLE and rendered.number == 1
    call(engine, shop.admin, "promote", template_id=basic.id, number=2)
    rendered = call(engine, shop.admin, "render_prompt", template="Basic Bouquet")
    assert (rendered.text, rendered.number) == ("A warm romantic bouquet of roses and peonies", 2)
    older = call(engine, shop.admin, "render_prompt", template="Basic Bouquet", number=1)
    assert older.text == SEED_EXAMPLE


def test_render_prompt_names_the_values_nothing_can_supply(engine, shop):
    with pytest.raises(MissingValues) as caught:
        call(engine, shop.admin, "render_prompt", template="Modern Arrangement")
    assert caught.value.names == ("container",)
    assert "{container}" in str(caught.value)
    done = call(
        engine,
        shop.admin,
        "render_prompt",
        template="Modern Arrangement",
        values={"container": "glass cube"},
        style="Modern Minimalist",
    )
    assert "in a glass cube" in done.text and done.style_name == "Modern Minimalist"


def test_a_template_without_a_production_version_does_not_render(engine, shop):
    created = call(
        engine,
        shop.florist,
        "create_template",
        kind="prompt",
        name="Draft only",
        content={
            "text": "Hello {occasion}",
            "variables": [templates.STANDARD_VARIABLES[6].to_dict()],
        },
    )
    assert created.production_number is None and created.has_draft
    with pytest.raises(InvalidInput, match="no production version yet"):
        call(engine, shop.admin, "render_prompt", template="Draft only")


def test_variable_choices_offer_the_sources_values(engine, shop):
    basic = find(engine, shop.florist, "prompt", "Basic Bouquet")
    choices = call(engine, shop.florist, "variable_choices", template_id=basic.id)
    assert choices["colors"] == ROMANTIC["color_palette"]
    assert choices["occasion"][0] == "wedding" and "birthday" in choices["occasion"]


def test_standard_variables_fill_in_what_a_text_uses():
    found = templates.with_standard_variables("For {occasion}: {flowers}")
    assert [v.name for v in found] == ["occasion", "flowers"]
    with pytest.raises(TemplateError, match="Unknown placeholder"):
        templates.with_standard_variables("For {nope}")


# ---------------------------------------------------------------- versions


def test_every_save_is_a_new_immutable_version_with_its_note(engine, shop):
    romantic = find(engine, shop.florist, "style", "Romantic Classic")
    with session_scope(shop.admin, engine=engine) as s:
        first = s.exec(
            select(DesignTemplateVersion).where(DesignTemplateVersion.template_id == romantic.id)
        ).one()
    saved = save(engine, shop.florist, romantic, "dreamier", mood="dreamy")
    assert (saved.number, saved.note, saved.is_production) == (2, "dreamier", False)
    assert saved.author_name == shop.florist.display_name
    save(engine, shop.florist, romantic, "add lilac", flowers=["roses", "lilac"])
    listed = versions(engine, shop.manager, romantic)
    assert [v.number for v in listed] == [3, 2, 1]
    assert listed[2].content == first.content == ROMANTIC  # version 1 never changed
    assert (listed[2].note, listed[2].created_at) == (first.note, first.created_at)
    view = call(engine, shop.florist, "get_template", template_id=romantic.id)
    assert view.latest_number == 3 and view.production_number == 1 and view.has_draft
    assert view.content["flowers"] == ["roses", "lilac"] and view.content["mood"] == "dreamy"
    assert audit_actions(engine, shop) == ["template.save", "template.save"]


def test_a_prompt_with_a_bad_placeholder_is_refused_with_its_position(engine, shop):
    basic = find(engine, shop.florist, "prompt", "Basic Bouquet")
    with pytest.raises(TemplateError) as caught:
        save(engine, shop.florist, basic, "oops", text="A {style} bouquet\nfor {ocasion}")
    (problem,) = caught.value.problems
    assert (problem.line, problem.column, problem.offset) == (2, 5, 22)
    assert "Did you mean {occasion}?" in problem.message
    for text in ("{style.__class__}", "{flowers[0]}", "{colors!r}", "{occasion:>999}", "{0}"):
        with pytest.raises(TemplateError):
            save(engine, shop.florist, basic, "format tricks", text=text)
    assert [v.number for v in versions(engine, shop.florist, basic)] == [1]
    assert audit_actions(engine, shop) == []


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"color_palette": []}, "color_palette: .*at least one"),
        ({"mood": ""}, "mood"),
        ({"example_images": ["javascript:alert(1)"]}, "http:// or https://"),
        ({"flowers": ["x" * 61]}, "longer than 60"),
        ({"sparkle": True}, "sparkle: Extra inputs"),
    ],
    ids=["empty-palette", "no-mood", "image-scheme", "long-flower", "unknown-field"],
)
def test_an_invalid_style_is_refused_and_nothing_is_written(engine, shop, changes, message):
    romantic = find(engine, shop.florist, "style", "Romantic Classic")
    with pytest.raises(InvalidInput, match=message):
        save(engine, shop.florist, romantic, "bad", **changes)
    assert len(versions(engine, shop.florist, romantic)) == 1


def test_saving_the_same_content_again_is_refused(engine, shop):
    romantic = find(engine, shop.florist, "style", "Romantic Classic")
    with pytest.raises(InvalidInput, match="same as version 1"):
        save(engine, shop.florist, romantic, "nothing new")


def test_a_stale_save_is_refused(engine, shop):
    romantic = find(engine, shop.florist, "style", "Romantic Classic")
    save(engine, shop.admin, romantic, "first", mood="dreamy")
    with pytest.raises(StaleEdit, match="changed by someone else"):
        call(
            engine,
            shop.florist,
            "save_version",
            template_id=romantic.id,
            content={**ROMANTIC, "mood": "mine"},
            note="late",
            expected_version=romantic.version,
        )
    assert [v.number for v in versions(engine, shop.florist, romantic)] == [2, 1]


def test_the_diff_between_two_versions_shows_what_changed(engine, shop):
    romantic = find(engine, shop.florist, "style", "Romantic Classic")
    save(engine, shop.florist, romantic, "dreamy", mood="dreamy", flowers=["roses", "lilac"])
    diff = call(engine, shop.manager, "diff_versions", template_id=romantic.id, old=1, new=2)
    assert diff.changed and diff.lines[:2] == ["--- version 1", "+++ version 2"]
    assert "-mood: romantic" in diff.lines and "+mood: dreamy" in diff.lines
    assert "+  - lilac" in diff.lines and "-  - peonies" in diff.lines
    assert "  - roses" not in [line for line in diff.lines if line.startswith(("-", "+"))]
    same = call(engine, shop.manager, "diff_versions", template_id=romantic.id, old=2, new=2)
    assert not same.changed
    with pytest.raises(NotFound, match="no version 9"):
        call(engine, shop.manager, "diff_versions", template_id=romantic.id, old=1, new=9)


def test_the_diff_of_a_prompt_shows_its_text_and_variables(engine, shop):
    basic = find(engine, shop.florist, "prompt", "Basic Bouquet")
    save(engine, shop.florist, basic, "shorter", text="A {style} bouquet for {occasion}")
    diff = call(engine, shop.florist, "diff_versions", template_id=basic.id, old=1, new=2)
    assert "+  A {style} bouquet for {occasion}" in diff.lines
    assert "  - occasion (text, catalog occasions)" in templates.content_lines(
        "prompt", basic.content
    )


# ---------------------------------------------------------------- production label


def test_promote_and_rollback_move_the_label_and_are_audited(engine, shop):
    romantic = find(engine, shop.florist, "style", "Romantic Classic")
    save(engine, shop.florist, romantic, "v2", mood="dreamy")
    save(engine, shop.florist, romantic, "v3", mood="wistful")
    view = call(engine, shop.admin, "promote", template_id=romantic.id, number=3, reason="launch")
    assert view.production_number == 3 and not view.has_draft
    assert [v.is_production for v in versions(engine, shop.admin, romantic)] == [True, False, False]
    view = call(engine, shop.admin, "rollback", template_id=romantic.id)
    assert view.production_number == 1
    view = call(engine, shop.admin, "rollback", template_id=romantic.id, to_number=2)
    assert view.production_number == 2
    with pytest.raises(InvalidInput, match="production already"):
        call(engine, shop.admin, "rollback", template_id=romantic.id, to_number=2)
    with pytest.raises(NotFound, match="no version 7"):
        call(engine, shop.admin, "promote", template_id=romantic.id, number=7)
    with session_scope(shop.admin, engine=engine) as s:
        events = s.exec(
            select(AuditEvent)
            .where(AuditEvent.action.in_(["template.promote", "template.rollback"]))  # type: ignore[attr-defined]
            .order_by(AuditEvent.id)
        ).all()
    assert [(e.action, e.before, e.after) for e in events] == [
        ("template.promote", {"production": 1}, {"production": 3}),
        ("template.rollback", {"production": 3}, {"production": 1}),
        ("template.rollback", {"production": 1}, {"production": 2}),
    ]
    assert events[0].reason == "launch" and events[0].entity_type == "style_template"
    # Versions stay as they were: the label is on the template.
    assert [v.content["mood"] for v in versions(engine, shop.admin, romantic)] == [
        "wistful",
        "dreamy",
        "romantic",
    ]


def test_promoting_the_production_version_again_changes_nothing(engine, shop):
    romantic = find(engine, shop.florist, "style", "Romantic Classic")
    assert call(engine, shop.admin, "promote", template_id=romantic.id, number=1) == romantic
    assert audit_actions(engine, shop) == []


def test_a_template_never_promoted_has_nothing_to_roll_back_to(engine, shop):
    romantic = find(engine, shop.florist, "style", "Romantic Classic")
    with pytest.raises(InvalidInput, match="no earlier production version"):
        call(engine, shop.admin, "rollback", template_id=romantic.id)


@pytest.mark.parametrize("role", [Role.FLORIST, Role.MANAGER])
def test_only_admins_promote_or_roll_back(engine, shop, role):
    romantic = find(engine, shop.florist, "style", "Romantic Classic")
    save(engine, shop.florist, romantic, "v2", mood="dreamy")
    actor = shop.actor(role)
    with pytest.raises(PermissionDenied):
        call(engine, actor, "promote", template_id=romantic.id, number=2)
    with pytest.raises(PermissionDenied):
        call(engine, actor, "rollback", template_id=romantic.id, to_number=2)
    assert find(engine, shop.admin, "style", "Romantic Classic").production_number == 1


def test_managers_read_but_do_not_edit(engine, shop):
    romantic = find(engine, shop.manager, "style", "Romantic Classic")
    m = shop.manager
    with pytest.raises(PermissionDenied):
        call(engine, m, "create_template", kind="style", name="Mine", content=ROMANTIC)
    with pytest.raises(PermissionDenied):
        save(engine, m, romantic, "no", mood="grey")
    with pytest.raises(PermissionDenied):
        call(engine, m, "update_details", template_id=romantic.id, expected_version=1, name="X")
    with session_scope(m, engine=engine) as s, pytest.raises(PermissionDenied):
        templates.seed_default_templates(session=s, actor=m)
    assert call(engine, m, "list_versions", template_id=romantic.id)
    assert call(engine, m, "get_version", template_id=romantic.id, number=1).number == 1


# ---------------------------------------------------------------- create and details


def test_create_a_style_and_refuse_a_name_the_shop_uses(engine, shop):
    created = call(
        engine,
        shop.florist,
        "create_template",
        kind="style",
        name="  Winter   Frost ",
        content={**ROMANTIC, "mood": "wintry", "example_images": "https://img.example/a.png"},
        description="Icy blues",
    )
    assert created.name == "Winter Frost" and created.latest_number == 1
    assert created.content["example_images"] == ["https://img.example/a.png"]
    assert versions(engine, shop.florist, created)[0].note == "First version"
    with pytest.raises(InvalidInput, match="already has a style named 'winter frost'"):
        call(
            engine,
            shop.admin,
            "create_template",
            kind="style",
            name="winter frost",
            content=ROMANTIC,
        )
    # A prompt may share a style's name: they are different kinds.
    call(
        engine,
        shop.admin,
        "create_template",
        kind="prompt",
        name="Winter Frost",
        content={
            "text": "Frosty {style}",
            "variables": [templates.STANDARD_VARIABLES[0].to_dict()],
        },
    )
    assert "template.create" in audit_actions(engine, shop)


def test_details_change_without_a_new_version(engine, shop):
    romantic = find(engine, shop.florist, "style", "Romantic Classic")
    view = call(
        engine,
        shop.florist,
        "update_details",
        template_id=romantic.id,
        expected_version=romantic.version,
        name="Romantic Classic II",
        active=False,
    )
    assert view.name == "Romantic Classic II" and not view.active and view.latest_number == 1
    assert "Romantic Classic II" not in {
        t.name for t in call(engine, shop.florist, "list_templates", kind="style")
    }
    every = call(engine, shop.florist, "list_templates", kind="style", include_inactive=True)
    assert "Romantic Classic II" in {t.name for t in every}
    with pytest.raises(StaleEdit):
        call(
            engine,
            shop.florist,
            "update_details",
            template_id=romantic.id,
            expected_version=romantic.version,
            description="late",
        )
    with pytest.raises(InvalidInput, match="already has a style named"):
        call(
            engine,
            shop.florist,
            "update_details",
            template_id=romantic.id,
            expected_version=view.version,
            name="modern minimalist",
        )
