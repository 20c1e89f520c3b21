"""Designs: ingestion idempotent by design id and all or nothing, rating bounds (core and
database), decisions, the gallery paged and filtered in SQL, usage analytics. Both backends
(PostgreSQL as the app role, RLS on)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from core import designs, templates
from core.access import Actor, Role
from core.designs import GalleryFilter, RecordSummary
from core.errors import InvalidInput, NotFound, PermissionDenied
from db.engine import session_scope
from db.models import AuditEvent, Design
from tests.factories import Shop, make_shop

DAY = datetime(2026, 5, 1, 12, tzinfo=UTC)


@pytest.fixture
def shop(engine) -> Shop:
    return make_shop(engine, "Bloom")


def call(engine: Engine, actor: Actor, function: str, **kwargs: Any) -> Any:
    with session_scope(actor, engine=engine) as s:
        return getattr(designs, function)(session=s, actor=actor, **kwargs)


def report(n: int | str, **fields: Any) -> dict[str, Any]:
    return {
        "design_id": f"gen-{n}",
        "prompt": f"A romantic bouquet {n}",
        "image_url": f"https://img.example/{n}.png",
        "model_type": "dalle3",
        "template": "Basic Bouquet",
        "style": "Romantic Classic",
        "occasion": "wedding",
        "tokens": 100,
        "cost": 0.04,
        "created_at": DAY,
    } | fields


def record(engine: Engine, shop: Shop, *items: dict[str, Any]) -> RecordSummary:
    parsed = [designs.parse_design(item) for item in items]
    return call(engine, shop.admin, "record_designs", items=parsed)


def stored(engine: Engine, actor: Actor) -> list[Design]:
    with session_scope(actor, engine=engine) as s:
        return list(s.exec(select(Design).order_by(Design.id)).all())


def template_id(engine: Engine, actor: Actor, kind: str, name: str) -> int:
    with session_scope(actor, engine=engine) as s:
        return templates.find_template(session=s, actor=actor, kind=kind, name=name).id


# ---------------------------------------------------------------- ingestion


def test_a_design_is_recorded_with_its_template_version_and_style(engine, shop):
    summary = call(engine, shop.admin, "record_design", **report(1))
    assert summary == RecordSummary(added=1, known=0)
    (design,) = stored(engine, shop.admin)
    assert design.template_id == template_id(engine, shop.admin, "prompt", "Basic Bouquet")
    assert design.style_id == template_id(engine, shop.admin, "style", "Romantic Classic")
    view = call(engine, shop.florist, "get_design", design_id=design.id)
    assert (view.template_name, view.template_number, view.style_name) == (
        "Basic Bouquet",
        1,
        "Romantic Classic",
    )
    assert (view.tokens, view.cost, view.rating, view.decision) == (100, 0.04, None, "undecided")


def test_reporting_a_design_id_again_adds_nothing(engine, shop):
    assert record(engine, shop, report(1), report(2)).added == 2
    again = record(engine, shop, report(2, prompt="changed"), report(3), report(3))
    assert again == RecordSummary(added=1, known=2)
    assert [d.design_id for d in stored(engine, shop.admin)] == ["gen-1", "gen-2", "gen-3"]
    assert stored(engine, shop.admin)[1].prompt == "A romantic bouquet 2"
    # Each design counts once for its template and style.
    with session_scope(shop.admin, engine=engine) as s:
        basic = templates.find_template(
            session=s, actor=shop.admin, kind="prompt", name="Basic Bouquet"
        )
        romantic = templates.find_template(
            session=s, actor=shop.admin, kind="style", name="Romantic Classic"
        )
    assert basic.usage_count == romantic.usage_count == 3


def test_two_shops_may_report_the_same_design_id(engine, shop):
    other = make_shop(engine, "Fern")
    assert record(engine, shop, report(1)).added == 1
    assert record(engine, other, report(1)).added == 1


def test_the_version_defaults_to_production_and_can_be_named(engine, shop):
    basic = template_id(engine, shop.admin, "prompt", "Basic Bouquet")
    with session_scope(shop.florist, engine=engine) as s:
        view = templates.get_template(session=s, actor=shop.florist, template_id=basic)
        templates.save_version(
            session=s,
            actor=shop.florist,
            template_id=basic,
            content={**view.content, "text": "A {style} bouquet"},
            note="short",
            expected_version=view.version,
        )
    record(engine, shop, report(1), report(2, template_version=2))
    numbers = [d.template_number for d in call(engine, shop.admin, "gallery").items]
    assert sorted(numbers) == [1, 2]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"template": "Nope"}, "no prompt template named 'Nope'"),
        ({"style": "Basic Bouquet"}, "no style named 'Basic Bouquet'"),
        ({"template_version": 9}, "'Basic Bouquet' has no version 9"),
    ],
    ids=["template", "style-is-a-prompt", "version"],
)
def test_an_unknown_reference_refuses_the_whole_batch(engine, shop, fields, message):
    with pytest.raises(InvalidInput, match=message) as caught:
        record(engine, shop, report(1), report(2, **fields))
    assert "Design 'gen-2'" in str(caught.value) and "gen-1" not in str(caught.value)
    assert stored(engine, shop.admin) == []


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"image_url": "javascript:alert(1)"}, "image_url: the image URL must be an http"),
        ({"image_url": "https://"}, "with a host"),
        ({"model_type": "midjourney"}, "model_type"),
        ({"tokens": -1}, "tokens: must lie between 0"),
        ({"cost": float("nan")}, "cost: must lie between 0"),
        ({"prompt": "   "}, "prompt: is empty"),
        ({"design_id": ""}, "design_id"),
        ({"template": None, "template_version": 2}, "needs the template's name"),
        ({"seed": 42}, "seed: Extra inputs"),
    ],
)
def test_an_invalid_report_is_refused_clearly(fields, message):
    with pytest.raises(InvalidInput, match=message):
        designs.parse_design(report(1, **fields))


def test_record_design_checks_its_input_and_writes_nothing(engine, shop):
    with pytest.raises(InvalidInput, match="image_url"):
        call(engine, shop.admin, "record_design", **report(1, image_url="data:image/png;base64,"))
    assert stored(engine, shop.admin) == []


def test_read_designs_names_every_bad_line():
    lines = [
        '{"design_id": "a", "prompt": "p", "image_url": "https://x.example/a", '
        '"model_type": "gpt4"}',
        "",
        "{not json",
        '{"design_id": "b", "prompt": "p", "image_url": "ftp://x", "model_type": "gpt4"}',
        "[1, 2]",
    ]
    with pytest.raises(InvalidInput) as caught:
        designs.read_designs(lines)
    message = str(caught.value)
    assert message.startswith("Nothing was recorded:")
    assert "Line 3: not valid JSON" in message and "Line 4: image_url" in message
    assert "Line 5: not a JSON object" in message and "Line 1" not in message
    found = designs.read_designs(lines[:2])
    assert [(n, d.design_id) for n, d in found] == [(1, "a")]


def test_only_admins_record_designs(engine, shop):
    for role in (Role.FLORIST, Role.MANAGER):
        with pytest.raises(PermissionDenied):
            call(engine, shop.actor(role), "record_design", **report(1))
    assert stored(engine, shop.admin) == []


# ---------------------------------------------------------------- rating, comment, decision


def test_ratings_from_0_to_5_are_kept_and_others_refused(engine, shop):
    record(engine, shop, report(1))
    (design,) = stored(engine, shop.admin)
    for rating in (0, 5, 3):
        view = call(engine, shop.florist, "rate_design", design_id=design.id, rating=rating)
        assert view.rating == rating
    for bad in (-1, 6, 2.5, True, "4"):
        with pytest.raises(InvalidInput, match="whole number from 0 to 5"):
            call(engine, shop.florist, "rate_design", design_id=design.id, rating=bad)
    assert stored(engine, shop.admin)[0].rating == 3
    assert call(engine, shop.admin, "rate_design", design_id=design.id, rating=None).rating is None
    (row,) = stored(engine, shop.admin)
    assert row.reviewed_by == shop.admin.user_id and row.reviewed_at is not None


@pytest.mark.parametrize("rating", [-1, 6])
def test_the_database_refuses_a_rating_out_of_bounds(engine, shop, rating):
    record(engine, shop, report(1))
    with pytest.raises(IntegrityError), session_scope(shop.admin, engine=engine) as s:
        s.execute(update(Design).values(rating=rating))
    assert stored(engine, shop.admin)[0].rating is None


def test_comment_and_favorite(engine, shop):
    record(engine, shop, report(1))
    (design,) = stored(engine, shop.admin)
    view = call(engine, shop.florist, "comment_design", design_id=design.id, comment="  lovely  ")
    assert view.comment == "lovely"
    assert (
        call(engine, shop.florist, "comment_design", design_id=design.id, comment=" ").comment
        is None
    )
    with pytest.raises(InvalidInput, match="at most 2000"):
        call(engine, shop.florist, "comment_design", design_id=design.id, comment="x" * 2001)
    assert call(engine, shop.florist, "set_favorite", design_id=design.id, favorite=True).favorite


def test_decisions_are_tri_state_and_audited(engine, shop):
    record(engine, shop, report(1))
    (design,) = stored(engine, shop.admin)
    assert (
        call(engine, shop.florist, "decide_design", design_id=design.id, approved=True).decision
        == "approved"
    )
    assert (
        call(engine, shop.florist, "decide_design", design_id=design.id, approved=False).decision
        == "rejected"
    )
    assert (
        call(engine, shop.florist, "decide_design", design_id=design.id, approved=None).decision
        == "undecided"
    )
    with session_scope(shop.admin, engine=engine) as s:
        events = s.exec(select(AuditEvent).where(AuditEvent.action == "design.decide")).all()
    assert [(e.before, e.after) for e in events] == [
        ({"approved": None}, {"approved": True}),
        ({"approved": True}, {"approved": False}),
        ({"approved": False}, {"approved": None}),
    ]


def test_managers_see_designs_but_do_not_judge_them(engine, shop):
    record(engine, shop, report(1))
    (design,) = stored(engine, shop.admin)
    m = shop.manager
    for function, kwargs in [
        ("rate_design", {"rating": 4}),
        ("comment_design", {"comment": "meh"}),
        ("decide_design", {"approved": True}),
        ("set_favorite", {"favorite": True}),
    ]:
        with pytest.raises(PermissionDenied):
            call(engine, m, function, design_id=design.id, **kwargs)
    assert call(engine, m, "gallery").total == 1
    assert call(engine, m, "get_design", design_id=design.id).design_id == "gen-1"


def test_another_shops_design_is_not_found(engine, shop):
    other = make_shop(engine, "Fern")
    record(engine, other, report(1))
    (theirs,) = stored(engine, other.admin)
    with pytest.raises(NotFound):
        call(engine, shop.florist, "rate_design", design_id=theirs.id, rating=5)
    with pytest.raises(NotFound):
        call(engine, shop.florist, "get_design", design_id=theirs.id)
    assert call(engine, shop.florist, "gallery").total == 0
    assert stored(engine, other.admin)[0].rating is None


# ---------------------------------------------------------------- gallery


def _decide(engine: Engine, shop: Shop, index: int, **actions: Any) -> None:
    design = stored(engine, shop.admin)[index]
    for function, value in actions.items():
        key = {"rate_design": "rating", "decide_design": "approved", "set_favorite": "favorite"}[
            function
        ]
        call(engine, shop.florist, function, design_id=design.id, **{key: value})


def test_the_gallery_pages_newest_first(engine, shop):
    record(engine, shop, *(report(i, created_at=DAY + timedelta(hours=i)) for i in range(7)))
    first = call(engine, shop.florist, "gallery", page=1, page_size=3)
    assert (first.total, first.pages) == (7, 3)
    assert [d.design_id for d in first.items] == ["gen-6", "gen-5", "gen-4"]
    last = call(engine, shop.florist, "gallery", page=3, page_size=3)
    assert [d.design_id for d in last.items] == ["gen-0"]
    with pytest.raises(InvalidInput, match="1 to 200"):
        call(engine, shop.florist, "gallery", page_size=500)


def test_the_gallery_filters_in_sql(engine, shop):
    record(
        engine,
        shop,
        report(0),
        report(1, style="Tropical Vibrant", occasion="birthday", model_type="gpt4"),
        report(2, template="Style Specific", occasion=None),
        report(3),
    )
    _decide(engine, shop, 0, rate_design=5, decide_design=True, set_favorite=True)
    _decide(engine, shop, 1, rate_design=2, decide_design=False)
    _decide(engine, shop, 2, rate_design=4)
    tropical = template_id(engine, shop.admin, "style", "Tropical Vibrant")
    specific = template_id(engine, shop.admin, "prompt", "Style Specific")

    def ids(**flt: Any) -> list[str]:
        page = call(engine, shop.florist, "gallery", filters=GalleryFilter(**flt))
        return sorted(d.design_id for d in page.items)

    assert ids(style_id=tropical) == ["gen-1"]
    assert ids(template_id=specific) == ["gen-2"]
    assert ids(occasion="wedding") == ["gen-0", "gen-3"]
    assert ids(model_type="gpt4") == ["gen-1"]
    assert ids(min_rating=4) == ["gen-0", "gen-2"]
    assert ids(unrated=True) == ["gen-3"]
    assert ids(decision="approved") == ["gen-0"]
    assert ids(decision="rejected") == ["gen-1"]
    assert ids(decision="undecided") == ["gen-2", "gen-3"]
    assert ids(favorites=True) == ["gen-0"]
    assert ids(since=DAY, until=DAY + timedelta(seconds=1)) == ["gen-0", "gen-1", "gen-2", "gen-3"]
    assert ids(until=DAY) == []
    options = call(engine, shop.manager, "gallery_options")
    assert [name for _i, name in options.styles] == ["Romantic Classic", "Tropical Vibrant"]
    assert [name for _i, name in options.templates] == ["Basic Bouquet", "Style Specific"]
    assert options.occasions == ["birthday", "wedding"] and options.model_types == [
        "dalle3",
        "gpt4",
    ]


# ---------------------------------------------------------------- analytics


def test_usage_per_day_and_model_type_is_summed_in_sql(engine, shop):
    next_day = DAY + timedelta(days=1)
    record(
        engine,
        shop,
        report(0, tokens=100, cost=0.04),
        report(1, tokens=300, cost=0.08),
        report(2, model_type="gpt4", tokens=50, cost=0.01),
        report(3, created_at=next_day, tokens=10, cost=0.5),
        report(4, created_at=DAY - timedelta(days=5)),
    )
    _decide(engine, shop, 0, rate_design=5)
    _decide(engine, shop, 1, rate_design=2)
    rows = call(
        engine,
        shop.manager,
        "usage_by_day",
        since=DAY - timedelta(hours=12),
        until=next_day + timedelta(hours=1),
    )
    assert [(r.day, r.model_type, r.generations, r.tokens) for r in rows] == [
        ("2026-05-01", "dalle3", 2, 400),
        ("2026-05-01", "gpt4", 1, 50),
        ("2026-05-02", "dalle3", 1, 10),
    ]
    assert rows[0].cost == pytest.approx(0.12) and rows[0].avg_rating == pytest.approx(3.5)
    assert rows[1].avg_rating is None


def test_results_per_template_and_style(engine, shop):
    record(
        engine,
        shop,
        report(0),
        report(1),
        report(2),
        report(3, template="Style Specific", style="Tropical Vibrant"),
    )
    _decide(engine, shop, 0, rate_design=5, decide_design=True)
    _decide(engine, shop, 1, rate_design=3, decide_design=True)
    _decide(engine, shop, 2, decide_design=False)
    prompts = {s.name: s for s in call(engine, shop.manager, "template_stats", kind="prompt")}
    basic = prompts["Basic Bouquet"]
    assert (basic.uses, basic.approved, basic.rejected) == (3, 2, 1)
    assert basic.avg_rating == pytest.approx(4.0) and basic.approval_rate == pytest.approx(2 / 3)
    assert prompts["Modern Arrangement"].uses == 0
    assert prompts["Modern Arrangement"].approval_rate is None
    assert next(iter(prompts)) == "Basic Bouquet"  # most used first
    styles = {s.name: s for s in call(engine, shop.manager, "template_stats", kind="style")}
    assert (styles["Romantic Classic"].uses, styles["Tropical Vibrant"].uses) == (3, 1)
    later = call(
        engine, shop.manager, "template_stats", kind="style", since=DAY + timedelta(days=1)
    )
    assert all(s.uses == 0 for s in later)
