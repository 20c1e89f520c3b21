"""Response templates: the starting ones, typed variables checked at save, typed rendering with
one error per variable, the studio's shared renderer, versions and the production label, and
full-text search. Every test runs on SQLite and, with TEST_DATABASE_URL, on PostgreSQL as the
app role (RLS on)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlmodel import select

from core import placeholders, responses, templates
from core.access import Actor, Role
from core.errors import InvalidInput, PermissionDenied
from core.placeholders import TemplateError
from core.responses import DEFAULT_RESPONSES, ResponseVariable, ValueErrors, VariableType
from core.templates import TemplateView
from db.engine import session_scope
from db.models import AuditEvent, DesignTemplate, ResponseSearch
from tests.db.test_migrations import empty_db, upgrade_to  # noqa: F401 (a fixture)
from tests.factories import Shop, make_shop

ORDER_VALUES = {"customer_name": "Ada", "order_number": "#1204", "delivery_date": "2026-12-04"}


@pytest.fixture
def shop(engine) -> Shop:
    return make_shop(engine, "Bloom")


def call(engine: Engine, actor: Actor, module: Any, function: str, **kwargs: Any) -> Any:
    with session_scope(actor, engine=engine) as s:
        return getattr(module, function)(session=s, actor=actor, **kwargs)


def create(engine: Engine, actor: Actor, name: str, body: str, **kwargs: Any) -> TemplateView:
    return call(engine, actor, responses, "create_response", name=name, text=body, **kwargs)


def find(engine: Engine, actor: Actor, name: str) -> TemplateView:
    return call(engine, actor, responses, "find_response", name=name)


def search(engine: Engine, actor: Actor, query: str, **kwargs: Any) -> list[responses.SearchHit]:
    return call(engine, actor, responses, "search", query=query, **kwargs)


def names(hits: list[responses.SearchHit]) -> list[str]:
    return [h.name for h in hits]


def content(body: str, *variables: dict[str, Any], **triggers: list[str]) -> dict[str, Any]:
    return {"category": "Orders", "text": body, "variables": list(variables), "triggers": triggers}


def text_var(name: str, **more: Any) -> dict[str, Any]:
    return {"name": name, "type": "text", **more}


# ---------------------------------------------------------------- the starting templates


def test_a_new_shop_gets_the_two_starting_response_templates_in_production(engine, shop):
    found = call(engine, shop.florist, templates, "list_templates", kind="response")
    assert sorted(t.name for t in found) == ["Damaged Flowers Resolution", "Order Status Inquiry"]
    assert all(t.production_number == 1 and t.kind.value == "response" for t in found)
    damaged = next(t for t in found if t.name == "Damaged Flowers Resolution")
    assert damaged.content["triggers"]["intents"] == ["damaged_flowers"]
    assert {v["type"] for v in damaged.content["variables"]} == {"text", "select", "number"}


def test_the_starting_templates_are_valid_and_render_with_their_defaults(engine, shop):
    for item in DEFAULT_RESPONSES:
        assert responses.parse_response(item["content"]) == item["content"]
    order = find(engine, shop.florist, "order status inquiry")
    done = call(
        engine,
        shop.florist,
        responses,
        "render_response",
        template_id=order.id,
        values=ORDER_VALUES,
    )
    assert done.text.startswith("Hi Ada,\n\nThank you for checking on order #1204. It is being ")
    assert "arrive on Friday 4 December 2026." in done.text
    assert done.defaults_used == ("order_status", "sign_off") and done.number == 1


def test_the_migration_gives_existing_shops_the_starting_templates(empty_db):  # noqa: F811
    from db.migrate import upgrade

    upgrade_to(empty_db, "0009")
    with empty_db.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO tenant (id, name, slug, is_demo, created_at) "
                "VALUES (1, 'Bloom', 'bloom', false, CURRENT_TIMESTAMP)"
            )
        )
    upgrade(empty_db)
    with empty_db.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT t.name, t.production_number, s.category, s.document IS NOT NULL "
                "FROM design_template t JOIN response_search s ON s.template_id = t.id "
                "WHERE t.kind = 'response' ORDER BY t.name"
            )
        ).all()
    postgres = empty_db.dialect.name == "postgresql"
    assert [tuple(r) for r in rows] == [
        ("Damaged Flowers Resolution", 1, "Quality", postgres),
        ("Order Status Inquiry", 1, "Orders", postgres),
    ]


# ---------------------------------------------------------------- validation at save


def test_every_placeholder_must_be_declared_and_is_named_with_its_position(engine, shop):
    with pytest.raises(TemplateError) as caught:
        create(engine, shop.florist, "Hours", "We open at {opening}.\nSee you {day}!")
    assert [(p.line, p.column, p.code) for p in caught.value.problems] == [
        (1, 12, "unknown"),
        (2, 9, "unknown"),
    ]
    assert "Unknown placeholder {opening} at line 1, column 12" in str(caught.value)


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ([text_var("name"), text_var("unused")], "it never uses {unused}"),
        ([text_var("name"), {"name": "day", "type": "select"}], "needs at least one option"),
        (
            [text_var("name"), {"name": "day", "type": "select", "options": [" ", ""]}],
            "needs at least one option",
        ),
        ([text_var("name", options=["a"])], "only a select has options"),
        ([text_var("name"), {"name": "n", "type": "number", "default": "x"}], "is not a number"),
        ([text_var("name"), {"name": "d", "type": "date", "default": "5/12"}], "is not a date"),
        (
            [text_var("name"), {"name": "s", "type": "select", "options": ["a"], "default": "b"}],
            "'b' is not one of a",
        ),
        ([text_var("name"), {"name": "x", "type": "colour"}], "must be one of text, select"),
        ([text_var("name"), text_var("name")], "name is declared twice"),
        ([text_var("Name")], "not lowercase snake case"),
        ([text_var("name", required="yes")], "required must be true or false"),
        ([text_var("name", secret=1)], "unknown fields secret"),
    ],
)
def test_invalid_variables_are_refused_at_save(engine, shop, variables, message):
    with pytest.raises(InvalidInput, match=message):
        create(engine, shop.florist, "Hello", "Hello {name}", variables=variables)
    assert find_names(engine, shop) == ["Damaged Flowers Resolution", "Order Status Inquiry"]


def find_names(engine: Engine, shop: Shop) -> list[str]:
    found = call(engine, shop.florist, templates, "list_templates", kind="response")
    return [t.name for t in found]


def test_an_optional_variable_may_go_unused_and_defaults_are_stored_normalised(engine, shop):
    view = create(
        engine,
        shop.florist,
        "Pickup",
        "Pick up on {day}. {note}",
        variables=[
            {"name": "day", "type": "date", "default": " 2026-12-24 "},
            text_var("note", required=False),
            {
                "name": "gift",
                "type": "select",
                "required": False,
                "options": ["Card", "card", " Ribbon "],
            },
            {"name": "extra", "type": "number", "required": False, "default": "2.0"},
        ],
    )
    assert view.content["variables"] == [
        {"name": "day", "type": "date", "required": True, "default": "2026-12-24"},
        {"name": "note", "type": "text", "required": False},
        {"name": "gift", "type": "select", "required": False, "options": ["Card", "Ribbon"]},
        {"name": "extra", "type": "number", "required": False, "default": 2},
    ]


def test_bad_content_and_triggers_are_refused(engine, shop):
    bad = [
        ({"text": "Hi", "tone": "warm"}, "not tone"),
        ({"text": "  "}, "needs its text"),
        ({"text": "Hi", "triggers": {"phrases": ["x"], "regex": ".*"}}, "not regex"),
        ({"text": "Hi", "triggers": {"phrases": ["x" * 201]}}, "longer than 200"),
        ({"text": "Hi", "variables": {"name": "x"}}, "must be a list"),
    ]
    for item, message in bad:
        with pytest.raises(InvalidInput, match=message):
            call(
                engine,
                shop.florist,
                templates,
                "create_template",
                kind="response",
                name="Bad",
                content=item,
            )


# ---------------------------------------------------------------- typed rendering


ALL_TYPES = content(
    "{who} ordered {count} {kind} for {day}.",
    text_var("who"),
    {"name": "count", "type": "number"},
    {"name": "kind", "type": "select", "options": ["Roses", "Tulips"]},
    {"name": "day", "type": "date"},
)


def test_each_value_is_checked_against_its_type_and_every_problem_is_named():
    with pytest.raises(ValueErrors) as caught:
        responses.fill(
            ALL_TYPES, {"count": "a dozen", "kind": "lilies", "day": "2026-02-30", "colour": "red"}
        )
    assert caught.value.problems == {
        "colour": "the template has no such variable",
        "who": "a value is required",
        "count": "'a dozen' is not a number",
        "kind": "'lilies' is not one of Roses, Tulips",
        "day": "'2026-02-30' is not a date (write YYYY-MM-DD)",
    }
    assert str(caught.value).startswith("'The template' cannot be filled in: colour: the template")


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (True, "must be a number, not true or false"),
        (float("nan"), "is not a finite number"),
        ("inf", "is not a finite number"),
        ([1], "is not a finite number"),
    ],
)
def test_numbers_refuse_flags_and_non_finite_values(value, problem):
    with pytest.raises(ValueErrors) as caught:
        responses.fill(
            ALL_TYPES, {"who": "Ada", "count": value, "kind": "Roses", "day": "2026-12-01"}
        )
    assert problem in caught.value.problems["count"]


def test_typed_values_are_accepted_in_their_natural_forms():
    done = responses.fill(
        ALL_TYPES, {"who": "Ada", "count": " 12 ", "kind": "roses", "day": date(2026, 12, 1)}
    )
    assert done.text == "Ada ordered 12 Roses for Tuesday 1 December 2026."
    assert done.values == {
        "who": "Ada",
        "count": 12,
        "kind": "Roses",
        "day": "Tuesday 1 December 2026",
    }
    assert responses.fill(
        ALL_TYPES, {"who": "B", "count": 2.5, "kind": "Tulips", "day": "2026-12-02"}
    ).text == ("B ordered 2.5 Tulips for Wednesday 2 December 2026.")


def test_text_values_are_inserted_verbatim_never_formatted():
    hostile = "{count} {0.__class__} {{x}} %s"
    done = responses.fill(
        ALL_TYPES, {"who": hostile, "count": 1, "kind": "Roses", "day": "2026-12-01"}
    )
    assert done.text.startswith(hostile + " ordered 1 Roses")


def test_optional_variables_without_a_value_are_left_empty():
    body = content("Thanks{comma}{note}", text_var("comma", required=False, default=","))
    body["text"] = "Thanks{comma} see you{note}"
    body["variables"].append(text_var("note", required=False))
    assert responses.fill(body, {}).text == "Thanks, see you"


def test_responses_and_prompts_share_the_one_placeholder_renderer(engine, shop, monkeypatch):
    """Not a copy: both kinds call core.placeholders.parse and render themselves."""
    seen: list[str] = []
    real_parse, real_render = placeholders.parse, placeholders.render

    def spy_parse(source: str, allowed: Any) -> Any:
        seen.append("parse")
        return real_parse(source, allowed)

    def spy_render(template: Any, values: Any, **kwargs: Any) -> str:
        seen.append("render")
        return real_render(template, values, **kwargs)

    monkeypatch.setattr(placeholders, "parse", spy_parse)
    monkeypatch.setattr(placeholders, "render", spy_render)
    assert responses.placeholders is templates.placeholders is placeholders

    prompt = call(
        engine, shop.florist, templates, "find_template", kind="prompt", name="Basic Bouquet"
    )
    call(engine, shop.florist, templates, "preview", template_id=prompt.id)
    assert "render" in seen
    seen.clear()
    order = find(engine, shop.florist, "Order Status Inquiry")
    call(
        engine,
        shop.florist,
        responses,
        "render_response",
        template_id=order.id,
        values=ORDER_VALUES,
    )
    assert seen == ["parse", "render"]


# ---------------------------------------------------------------- versions, production, roles


def test_versions_production_and_the_diff_work_as_for_prompts(engine, shop):
    order = find(engine, shop.florist, "Order Status Inquiry")
    changed = {**order.content, "triggers": {"phrases": ["where are my flowers"], "intents": []}}
    call(
        engine,
        shop.florist,
        templates,
        "save_version",
        template_id=order.id,
        content=changed,
        note="Shorter triggers",
        expected_version=order.version,
    )
    diff = call(
        engine, shop.florist, templates, "diff_versions", template_id=order.id, old=1, new=2
    )
    assert "+  - where are my flowers" in diff.lines and "-  - order_status" in diff.lines
    draft = call(
        engine,
        shop.florist,
        responses,
        "render_response",
        template_id=order.id,
        values=ORDER_VALUES,
        number=2,
    )
    production = call(
        engine,
        shop.florist,
        responses,
        "render_response",
        template_id=order.id,
        values=ORDER_VALUES,
    )
    assert (draft.number, production.number) == (2, 1)
    with pytest.raises(PermissionDenied):
        call(engine, shop.florist, templates, "promote", template_id=order.id, number=2)
    call(engine, shop.admin, templates, "promote", template_id=order.id, number=2)
    assert find(engine, shop.florist, "Order Status Inquiry").production_number == 2


def test_florists_create_drafts_only_admins_create_in_production(engine, shop):
    draft = create(engine, shop.florist, "Thanks", "Thank you!", intents=["thanks"])
    assert draft.production_number is None
    with pytest.raises(InvalidInput, match="no production version yet"):
        call(engine, shop.florist, responses, "render_response", template_id=draft.id, values={})
    with pytest.raises(PermissionDenied):
        create(engine, shop.florist, "Bye", "Bye!", production=True)
    live = create(engine, shop.admin, "Bye", "Bye!", production=True)
    assert live.production_number == 1
    with session_scope(shop.admin, engine=engine) as s:
        actions = [e.action for e in s.exec(select(AuditEvent).order_by(AuditEvent.id)).all()]
    assert actions == ["template.create", "template.create", "template.promote"]


def test_managers_read_and_render_but_do_not_create(engine, shop):
    with pytest.raises(PermissionDenied):
        create(engine, shop.manager, "Hi", "Hi!")
    order = find(engine, shop.manager, "Order Status Inquiry")
    done = call(
        engine,
        shop.manager,
        responses,
        "render_response",
        template_id=order.id,
        values=ORDER_VALUES,
    )
    assert done.text.startswith("Hi Ada")
    assert names(search(engine, shop.manager, "order")) == [
        "Order Status Inquiry",
        "Damaged Flowers Resolution",
    ]


def test_a_name_is_unique_among_response_templates(engine, shop):
    with pytest.raises(InvalidInput, match="already has a response template named"):
        create(engine, shop.florist, "order status inquiry", "Hi")


def test_the_command_line_declares_undeclared_placeholders_as_required_text():
    declared = [{"name": "day", "type": "date"}]
    assert responses.text_variables("On {day}, {who} gets {{braces}}", declared) == [
        {"name": "day", "type": "date", "required": True},
        {"name": "who", "type": "text", "required": True},
    ]
    with pytest.raises(TemplateError):
        responses.text_variables("Hi {who.name}")


def test_render_refuses_a_template_of_another_kind(engine, shop):
    prompt = call(
        engine, shop.florist, templates, "find_template", kind="prompt", name="Basic Bouquet"
    )
    with pytest.raises(InvalidInput, match="is a prompt template, not a response"):
        call(engine, shop.florist, responses, "render_response", template_id=prompt.id, values={})


# ---------------------------------------------------------------- search


@pytest.fixture
def catalog(engine, shop) -> Shop:
    """Three templates that match 'wedding' in different places, and one that does not."""
    create(
        engine,
        shop.florist,
        "Wedding consultation",
        "We would love to help. Book a call with {florist}.",
        variables=[text_var("florist")],
        category="Events",
    )
    create(
        engine,
        shop.florist,
        "Venue setup",
        "Our team arrives two hours early to set up.",
        phrases=["wedding venue", "set up the ceremony"],
        category="Events",
    )
    create(
        engine,
        shop.florist,
        "Big orders",
        "For a wedding or a party of more than fifty guests we need two weeks' notice.",
        category="Orders",
    )
    create(engine, shop.florist, "Opening hours", "We open at nine.", intents=["opening_hours"])
    return shop


def test_search_ranks_name_over_triggers_over_text(engine, catalog):
    hits = search(engine, catalog.florist, "wedding")
    assert names(hits) == ["Wedding consultation", "Venue setup", "Big orders"]
    assert hits[0].score > hits[1].score > hits[2].score > 0
    assert hits[0].name_highlight == "«Wedding» consultation"
    assert "«wedding» venue" in hits[1].excerpt
    assert "«wedding» or a party" in hits[2].excerpt
    assert hits[0].category == "Events" and hits[0].active


def test_search_needs_every_word_and_reads_the_last_as_a_prefix(engine, catalog):
    assert names(search(engine, catalog.florist, "wedding notice")) == ["Big orders"]
    assert names(search(engine, catalog.florist, "Consult")) == ["Wedding consultation"]
    assert names(search(engine, catalog.florist, "opening_hours")) == ["Opening hours"]
    assert search(engine, catalog.florist, "wedding tulips") == []


def test_search_covers_categories_and_trigger_intents(engine, catalog):
    assert sorted(names(search(engine, catalog.florist, "events"))) == [
        "Venue setup",
        "Wedding consultation",
    ]
    assert names(search(engine, catalog.florist, "hours")) == ["Opening hours", "Venue setup"]


@pytest.mark.parametrize(
    "query",
    [
        '"',
        "wedding*",
        'NEAR(a b) OR "x',
        "a & b | !c",
        "name:wedding",
        "'); DROP TABLE x; --",
        "  ",
    ],
)
def test_search_text_is_never_read_as_query_syntax(engine, catalog, query):
    found = search(engine, catalog.florist, query)
    assert isinstance(found, list)
    if query == "name:wedding":  # both words must match; none has "name"
        assert found == []


def test_search_follows_saves_renames_and_deactivation(engine, catalog):
    venue = find(engine, catalog.florist, "Venue setup")
    call(
        engine,
        catalog.florist,
        templates,
        "save_version",
        template_id=venue.id,
        content={**venue.content, "text": "Our team arrives early with peonies."},
        note="Peonies",
        expected_version=venue.version,
    )
    assert names(search(engine, catalog.florist, "peonies")) == ["Venue setup"]
    assert names(search(engine, catalog.florist, "hours early")) == []
    venue = find(engine, catalog.florist, "Venue setup")
    call(
        engine,
        catalog.florist,
        templates,
        "update_details",
        template_id=venue.id,
        expected_version=venue.version,
        name="Ceremony styling",
        active=False,
    )
    assert search(engine, catalog.florist, "ceremony styling") == []
    hits = search(engine, catalog.florist, "ceremony styling", include_inactive=True)
    assert [(h.name, h.active) for h in hits] == [("Ceremony styling", False)]


def test_search_never_shows_another_shops_templates(engine, catalog):
    other = make_shop(engine, "Fern")
    create(engine, other.florist, "Wedding arches", "Arches for a wedding.")
    assert names(search(engine, other.florist, "wedding")) == ["Wedding arches"]
    assert "Wedding arches" not in names(search(engine, catalog.florist, "wedding"))
    with session_scope(catalog.admin, engine=engine) as s:
        rows = s.exec(select(ResponseSearch.name)).all()
    assert "Wedding arches" not in rows and "Wedding consultation" in rows


def test_rebuilding_the_index_gives_the_same_results(engine, catalog):
    before = search(engine, catalog.florist, "wedding")
    assert call(engine, catalog.florist, responses, "rebuild_index") == 6
    after = search(engine, catalog.florist, "wedding")
    assert [(h.template_id, h.name_highlight, h.excerpt) for h in after] == [
        (h.template_id, h.name_highlight, h.excerpt) for h in before
    ]


def test_an_empty_query_or_limit_finds_nothing(engine, catalog):
    assert search(engine, catalog.florist, "   ") == []
    assert search(engine, catalog.florist, "wedding", limit=0) == []
    assert len(search(engine, catalog.florist, "wedding", limit=2)) == 2


def test_response_variables_round_trip_through_their_dict_form():
    variable = ResponseVariable("kind", VariableType.SELECT, False, "Roses", ("Roses", "Tulips"))
    assert responses.parse_variable(variable.to_dict()) == variable


def test_a_response_template_row_is_a_design_template_of_kind_response(engine, shop):
    with session_scope(shop.admin, engine=engine) as s:
        kinds = sorted(set(s.exec(select(DesignTemplate.kind)).all()))
    assert kinds == ["prompt", "response", "style"]


@pytest.mark.parametrize("role", [Role.ADMIN, Role.FLORIST, Role.MANAGER])
def test_every_role_searches(engine, shop, role):
    assert names(search(engine, shop.actor(role), "damaged")) == ["Damaged Flowers Resolution"]
