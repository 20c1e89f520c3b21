"""The shared style library: anonymous publishing, owner-only changes (core guard, tenant guard
and, on PostgreSQL, row-level security), adoption as a copy, atomic success/failure counters
from design decisions, ranking by the Wilson lower bound then recency (core.ranking)."""

from __future__ import annotations

import dataclasses
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, delete, insert, text, update
from sqlalchemy.exc import ProgrammingError
from sqlmodel import col, select

from core import designs, library, ranking, templates
from core.access import Actor, Role
from core.errors import InvalidInput, NotFound, PermissionDenied, StaleEdit
from core.library import LibraryItemView
from db.engine import session_scope
from db.models import DesignTemplate, SharedTemplate, SharedTemplateUsage
from tests.conftest import truncate_all
from tests.factories import Shop, make_shop


@pytest.fixture
def shops(engine) -> tuple[Shop, Shop]:
    return make_shop(engine, "Shop A"), make_shop(engine, "Shop B")


def call(engine: Engine, actor: Actor, function: str, **kwargs: Any) -> Any:
    with session_scope(actor, engine=engine) as s:
        return getattr(library, function)(session=s, actor=actor, **kwargs)


def template(engine: Engine, actor: Actor, kind: str, name: str) -> templates.TemplateView:
    with session_scope(actor, engine=engine) as s:
        return templates.find_template(session=s, actor=actor, kind=kind, name=name)


def publish(engine: Engine, shop: Shop, name: str = "Romantic Classic", kind: str = "style"):
    source = template(engine, shop.florist, kind, name)
    return call(engine, shop.florist, "publish", template_id=source.id)


def set_counts(
    engine: Engine, actor: Actor, item_id: int, ok: int, bad: int, last: datetime | None = None
) -> None:
    """Counters as if that many decisions had happened (any shop may write counters)."""
    with session_scope(actor, engine=engine) as s:
        s.exec(
            update(SharedTemplateUsage)
            .where(col(SharedTemplateUsage.item_id) == item_id)
            .values(success_count=ok, failure_count=bad, last_successful_use=last)
        )


def report(n: int, style: str, template_name: str = "Basic Bouquet") -> dict[str, Any]:
    return {
        "design_id": f"d-{n}",
        "prompt": "p",
        "image_url": f"https://img.example/{n}.png",
        "model_type": "dalle3",
        "template": template_name,
        "style": style,
    }


def record(engine: Engine, shop: Shop, *items: dict[str, Any]) -> list[int]:
    with session_scope(shop.admin, engine=engine) as s:
        parsed = [designs.parse_design(i) for i in items]
        designs.record_designs(session=s, actor=shop.admin, items=parsed)
        page = designs.gallery(session=s, actor=shop.admin, page_size=200)
        return sorted(d.id for d in page.items)


def decide(engine: Engine, actor: Actor, design_id: int, approved: bool | None) -> None:
    with session_scope(actor, engine=engine) as s:
        designs.decide_design(session=s, actor=actor, design_id=design_id, approved=approved)


def counts(engine: Engine, actor: Actor, item_id: int) -> tuple[int, int, int]:
    view = call(engine, actor, "get_item", item_id=item_id)
    return view.success_count, view.failure_count, view.adoptions


# ---------------------------------------------------------------- publishing and reading


def test_a_published_style_is_seen_by_every_shop_without_its_owner(engine, shops):
    a, b = shops
    item = publish(engine, a)
    assert item.is_mine and item.kind == "style" and item.name == "Romantic Classic"
    assert (item.success_count, item.failure_count, item.adoptions, item.score) == (0, 0, 0, 0.0)
    fields = {f.name for f in dataclasses.fields(LibraryItemView)}
    assert not {n for n in fields if "owner" in n or "tenant" in n or "shop" in n}
    for role in Role:
        (seen,) = call(engine, b.actor(role), "browse")
        assert seen.id == item.id and not seen.is_mine
        assert seen.content == template(engine, a.admin, "style", "Romantic Classic").content
        assert a.name not in repr(seen)


def test_browse_filters_by_kind_and_text(engine, shops):
    a, b = shops
    publish(engine, a)
    publish(engine, b, "Basic Bouquet", kind="prompt")
    publish(engine, b, "Tropical Vibrant")
    assert [v.name for v in call(engine, a.manager, "browse", kind="prompt")] == ["Basic Bouquet"]
    assert [v.name for v in call(engine, a.manager, "browse", text="tropic")] == [
        "Tropical Vibrant"
    ]
    assert [v.name for v in call(engine, a.manager, "browse", text="BLUSH")] == ["Romantic Classic"]
    assert len(call(engine, a.manager, "browse", limit=2)) == 2


def test_a_shop_publishes_a_name_once_per_kind(engine, shops):
    a, b = shops
    publish(engine, a)
    with pytest.raises(InvalidInput, match="already published a template named"):
        publish(engine, a)
    publish(engine, b)  # another shop may
    assert len(call(engine, a.admin, "browse")) == 2


def test_publishing_takes_the_production_version(engine, shops):
    a, _ = shops
    romantic = template(engine, a.florist, "style", "Romantic Classic")
    with session_scope(a.florist, engine=engine) as s:
        templates.save_version(
            session=s,
            actor=a.florist,
            template_id=romantic.id,
            content={**romantic.content, "mood": "draft mood"},
            note="draft",
            expected_version=romantic.version,
        )
    item = publish(engine, a)
    assert item.content["mood"] == "romantic"
    updated = call(
        engine, a.florist, "update_item", item_id=item.id, expected_version=item.version, number=2
    )
    assert updated.content["mood"] == "draft mood" and updated.version == 2
    described = call(
        engine,
        a.florist,
        "update_item",
        item_id=item.id,
        expected_version=updated.version,
        description="Now dreamier",
    )
    assert described.description == "Now dreamier" and described.content["mood"] == "draft mood"
    with pytest.raises(StaleEdit):
        call(engine, a.florist, "update_item", item_id=item.id, expected_version=1, number=1)


# ---------------------------------------------------------------- only the owner changes


def test_another_shop_cannot_update_or_withdraw_an_item(engine, shops):
    a, b = shops
    item = publish(engine, a)
    for actor in (b.admin, b.florist):
        with pytest.raises(PermissionDenied, match="Only the shop that published"):
            call(engine, actor, "update_item", item_id=item.id, expected_version=1, description="x")
        with pytest.raises(PermissionDenied, match="Only the shop that published"):
            call(engine, actor, "withdraw", item_id=item.id, expected_version=1)
    assert call(engine, a.admin, "get_item", item_id=item.id) == item


def test_without_the_core_check_the_database_layer_still_refuses(engine, shops, monkeypatch):
    """The tenant guard (both backends) and RLS (PostgreSQL) hold when core's check is gone."""
    a, b = shops
    item = publish(engine, a)
    monkeypatch.setattr(
        library, "_load_own", lambda session, actor, i: session.get(SharedTemplate, i)
    )
    with pytest.raises(StaleEdit):
        call(engine, b.admin, "update_item", item_id=item.id, expected_version=1, description="x")
    with pytest.raises(StaleEdit):
        call(engine, b.admin, "withdraw", item_id=item.id, expected_version=1)
    assert call(engine, a.admin, "get_item", item_id=item.id) == item


def test_rls_alone_keeps_another_shop_off_an_item(pg):
    """Raw SQL as the app role, bound to shop B: no UPDATE, DELETE or INSERT in A's name."""
    truncate_all(pg.owner)
    a, b = make_shop(pg.app, "Shop A"), make_shop(pg.app, "Shop B")
    item = publish(pg.app, a)
    with pg.app.connect() as conn, conn.begin():
        conn.execute(text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(b.tenant_id)})
        assert conn.execute(update(SharedTemplate).values(name="Hijacked")).rowcount == 0
        assert conn.execute(delete(SharedTemplate)).rowcount == 0
        assert conn.execute(delete(SharedTemplateUsage)).rowcount == 0
        assert conn.execute(text("SELECT count(*) FROM shared_template")).scalar() == 1
    in_a_name = insert(SharedTemplate).values(
        owner_tenant_id=a.tenant_id,
        kind="style",
        name="In A's name",
        description="",
        content={},
        created_at=datetime.now(UTC),
        updated_at=datetime.now(UTC),
        version=1,
    )
    with (
        pytest.raises(ProgrammingError, match="row-level security"),
        pg.app.connect() as conn,
        conn.begin(),
    ):
        conn.execute(text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(b.tenant_id)})
        conn.execute(in_a_name)
    assert call(pg.app, a.admin, "get_item", item_id=item.id) == item


def test_the_owner_withdraws_and_adopted_copies_stay(engine, shops):
    a, b = shops
    item = publish(engine, a)
    adopted = call(engine, b.florist, "adopt", item_id=item.id, name="Their Romance")
    call(engine, a.florist, "withdraw", item_id=item.id, expected_version=item.version)
    assert call(engine, b.admin, "browse") == []
    with pytest.raises(NotFound):
        call(engine, b.admin, "get_item", item_id=item.id)
    with session_scope(a.admin, engine=engine) as s:
        assert s.exec(select(SharedTemplateUsage)).all() == []
    copy = template(engine, b.florist, "style", "Their Romance")
    assert copy.id == adopted.id and not copy.adopted_from_library  # link cleared, copy kept
    assert copy.content == adopted.content


def test_a_stale_withdrawal_is_refused(engine, shops):
    a, _ = shops
    item = publish(engine, a)
    call(engine, a.florist, "update_item", item_id=item.id, expected_version=1, description="x")
    with pytest.raises(StaleEdit):
        call(engine, a.florist, "withdraw", item_id=item.id, expected_version=1)


# ---------------------------------------------------------------- adopting


def test_adopting_copies_the_item_as_the_shops_own_version_1(engine, shops):
    a, b = shops
    item = publish(engine, a, "Basic Bouquet", kind="prompt")
    with pytest.raises(InvalidInput, match="already has a prompt template named 'Basic Bouquet'"):
        call(engine, b.florist, "adopt", item_id=item.id)
    copy = call(engine, b.florist, "adopt", item_id=item.id, name="Bouquet from the library")
    assert copy.kind == "prompt" and copy.adopted_from_library
    assert (copy.latest_number, copy.production_number) == (1, None)
    assert copy.content == item.content
    with session_scope(b.florist, engine=engine) as s:
        (version,) = templates.list_versions(session=s, actor=b.florist, template_id=copy.id)
        assert version.note == "Adopted from the shared library"
        templates.save_version(
            session=s,
            actor=b.florist,
            template_id=copy.id,
            content={**copy.content, "text": "Mine now: {style}"},
            note="mine",
            expected_version=copy.version,
        )
    assert call(engine, a.admin, "get_item", item_id=item.id).content == item.content
    assert counts(engine, a.admin, item.id) == (0, 0, 1)


# ---------------------------------------------------------------- counting outcomes


def test_decisions_on_designs_of_an_adopted_style_count_for_the_original(engine, shops):
    a, b = shops
    item = publish(engine, a)
    call(engine, b.florist, "adopt", item_id=item.id, name="Adopted Romance")
    ids = record(engine, b, *(report(i, "Adopted Romance") for i in range(4)))
    own = record(engine, a, report(9, "Romantic Classic"))  # the owner's own style: no count
    decide(engine, a.florist, own[0], True)
    decide(engine, b.florist, ids[0], True)
    decide(engine, b.florist, ids[1], True)
    decide(engine, b.florist, ids[2], False)
    assert counts(engine, a.admin, item.id) == (2, 1, 1)
    decide(engine, b.florist, ids[1], False)  # changed its mind: the success becomes a failure
    assert counts(engine, a.admin, item.id) == (1, 2, 1)
    decide(engine, b.florist, ids[2], None)  # undecided again
    decide(engine, b.florist, ids[2], None)  # no change, no count
    assert counts(engine, a.admin, item.id) == (1, 1, 1)
    view = call(engine, b.manager, "get_item", item_id=item.id)
    assert view.last_successful_use is not None and view.success_rate == 0.5


def test_an_adopted_prompt_and_style_both_count(engine, shops):
    a, b = shops
    style = publish(engine, a)
    prompt = publish(engine, a, "Basic Bouquet", kind="prompt")
    call(engine, b.florist, "adopt", item_id=style.id, name="Style copy")
    copy = call(engine, b.florist, "adopt", item_id=prompt.id, name="Prompt copy")
    with session_scope(b.admin, engine=engine) as s:
        templates.promote(session=s, actor=b.admin, template_id=copy.id, number=1)
    (design,) = record(engine, b, report(1, "Style copy", template_name="Prompt copy"))
    decide(engine, b.florist, design, True)
    assert counts(engine, a.admin, style.id)[:2] == counts(engine, a.admin, prompt.id)[:2] == (1, 0)


def test_concurrent_decisions_all_count(threaded_engine):
    engine = threaded_engine
    a, b = make_shop(engine, "Shop A"), make_shop(engine, "Shop B")
    item = publish(engine, a)
    call(engine, b.florist, "adopt", item_id=item.id, name="Adopted Romance")
    ids = record(engine, b, *(report(i, "Adopted Romance") for i in range(40)))
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def work(chunk: list[int]) -> None:
        try:
            start.wait(timeout=30)
            for design_id in chunk:
                decide(engine, b.florist, design_id, design_id % 5 != 0)
        except BaseException as exc:  # reported below: a thread's error must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(ids[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    rejected = sum(1 for i in ids if i % 5 == 0)
    assert counts(engine, a.admin, item.id) == (40 - rejected, rejected, 1)


# ---------------------------------------------------------------- ranking


def test_the_library_ranks_with_the_import_profiles_ranking():
    assert library.rank_by_success is ranking.rank_by_success
    assert library.wilson_lower_bound is ranking.wilson_lower_bound


def test_950_of_1000_ranks_above_2_of_2(engine, shops):
    a, b = shops
    proven = publish(engine, a)
    lucky = publish(engine, b, "Tropical Vibrant")
    set_counts(engine, a.admin, proven.id, 950, 50)
    set_counts(engine, b.admin, lucky.id, 2, 0, datetime.now(UTC))
    ranked = call(engine, b.manager, "browse")
    assert [v.name for v in ranked] == ["Romantic Classic", "Tropical Vibrant"]
    assert ranked[0].score == pytest.approx(0.9347, abs=1e-4) and ranked[1].success_rate == 1.0


def test_equal_records_rank_by_recency(engine, shops):
    a, b = shops
    older = publish(engine, a)
    newer = publish(engine, b, "Tropical Vibrant")
    unused_old = publish(engine, a, "Rustic Natural")
    unused_new = publish(engine, b, "Elegant Formal")
    now = datetime.now(UTC)
    set_counts(engine, a.admin, older.id, 10, 1, now - timedelta(days=3))
    set_counts(engine, b.admin, newer.id, 10, 1, now)
    names = [v.name for v in call(engine, a.manager, "browse")]
    assert names == ["Tropical Vibrant", "Romantic Classic", "Elegant Formal", "Rustic Natural"]
    assert unused_old.published_at <= unused_new.published_at


# ---------------------------------------------------------------- roles


def test_managers_browse_but_do_not_publish_adopt_or_change(engine, shops):
    a, b = shops
    item = publish(engine, a)
    romantic = template(engine, a.manager, "style", "Romantic Classic")
    for actor in (a.manager, b.manager):
        with pytest.raises(PermissionDenied):
            call(engine, actor, "publish", template_id=romantic.id)
        with pytest.raises(PermissionDenied):
            call(engine, actor, "adopt", item_id=item.id, name="Mine")
        with pytest.raises(PermissionDenied):
            call(engine, actor, "update_item", item_id=item.id, expected_version=1)
        with pytest.raises(PermissionDenied):
            call(engine, actor, "withdraw", item_id=item.id, expected_version=1)
        with pytest.raises(PermissionDenied):
            call(engine, actor, "count_outcome", item_id=item.id, successes=1, failures=0)
        assert call(engine, actor, "get_item", item_id=item.id).id == item.id
    with session_scope(a.admin, engine=engine) as s:
        assert s.exec(select(DesignTemplate).where(DesignTemplate.name == "Mine")).all() == []


def test_a_shop_publishes_only_its_own_templates(engine, shops):
    a, b = shops
    theirs = template(engine, a.florist, "style", "Romantic Classic")
    with pytest.raises(NotFound, match="no template with id"):
        call(engine, b.florist, "publish", template_id=theirs.id)
