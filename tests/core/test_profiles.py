"""Shared import profiles: validation, owner-only changes, anonymity, counters and ranking.

Everything runs on SQLite and, with TEST_DATABASE_URL, on PostgreSQL as the app role (RLS on).
The counter test runs four OS processes against one file database / one PostgreSQL database.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, update
from sqlmodel import col, select

from core import profiles
from core.access import Actor, Role
from core.errors import InvalidInput, NotFound, PermissionDenied, StaleEdit
from core.file_spec import CLEANUP_STEPS, ReadSpec
from core.profiles import ProfileView, parse_profile_input
from db.engine import make_engine, session_scope
from db.migrate import upgrade
from db.models import AuditEvent, ImportProfile, ImportProfileUsage, Tenant
from tests import factories
from tests.conftest import truncate_all
from tests.factories import Shop, make_shop

SHOPIFY = {
    "name": "Shopify Inbox CSV",
    "source": "Shopify Inbox",
    "mapping": {"text": "Message", "intent": "Topic", "timestamp": "Created at"},
    "delimiter": ",",
    "date_format": "%Y-%m-%d %H:%M:%S %z",
    "cleanup": ["collapse_whitespace"],
}


@pytest.fixture
def shops(engine) -> tuple[Shop, Shop]:
    return make_shop(engine, "Shop A"), make_shop(engine, "Shop B")


def _create(engine: Engine, actor: Actor, **fields: object) -> ProfileView:
    with session_scope(actor, engine=engine) as s:
        data = parse_profile_input(**{**SHOPIFY, **fields})
        return profiles.create_profile(session=s, actor=actor, data=data)


def _get(engine: Engine, actor: Actor, profile_id: int) -> ProfileView:
    with session_scope(actor, engine=engine) as s:
        return profiles.get_profile(session=s, actor=actor, profile_id=profile_id)


def _list(engine: Engine, actor: Actor, **filters: object) -> list[ProfileView]:
    with session_scope(actor, engine=engine) as s:
        return profiles.list_profiles(session=s, actor=actor, **filters)


def _update(engine: Engine, actor: Actor, view: ProfileView, **fields: object) -> ProfileView:
    values = {**_fields_of(view), **fields}
    with session_scope(actor, engine=engine) as s:
        return profiles.update_profile(
            session=s,
            actor=actor,
            profile_id=view.id,
            data=parse_profile_input(**values),
            expected_version=view.version,
        )


def _delete(engine: Engine, actor: Actor, view: ProfileView) -> None:
    with session_scope(actor, engine=engine) as s:
        profiles.delete_profile(
            session=s, actor=actor, profile_id=view.id, expected_version=view.version
        )


def _record(engine: Engine, actor: Actor, profile_id: int, valid: int, total: int) -> bool:
    with session_scope(actor, engine=engine) as s:
        return profiles.record_use(
            session=s, actor=actor, profile_id=profile_id, valid_rows=valid, total_rows=total
        )


def _fields_of(view: ProfileView) -> dict[str, object]:
    names = ("name", "source", "kind", "file_format", "delimiter", "encoding", "date_format")
    return {
        **{n: getattr(view, n) for n in names},
        "mapping": dict(view.mapping),
        "cleanup": list(view.cleanup),
        "description": view.description,
    }


def _set_counts(
    engine: Engine,
    actor: Actor,
    profile_id: int,
    successes: int,
    failures: int,
    last: datetime | None = None,
) -> None:
    """Counters as if that many imports had happened (any shop may write counters)."""
    with session_scope(actor, engine=engine) as s:
        s.exec(
            update(ImportProfileUsage)
            .where(col(ImportProfileUsage.profile_id) == profile_id)
            .values(success_count=successes, failure_count=failures, last_successful_use=last)
        )


def _rows(engine: Engine, actor: Actor, model: type) -> list:
    with session_scope(actor, engine=engine) as s:
        return list(s.exec(select(model)).all())


def _audit(engine: Engine, shop: Shop, action: str) -> list[AuditEvent]:
    return [e for e in _rows(engine, shop.admin, AuditEvent) if e.action == action]


# ---------------------------------------------------------------- validation


BAD_INPUT = [
    pytest.param({"mapping": {"txt": "Message"}}, "txt is not a Trellis field", id="field-key"),
    pytest.param(
        {"kind": "conversations", "mapping": {"intent": "Topic"}},
        "intent is not a Trellis field of conversations",
        id="field-of-other-kind",
    ),
    pytest.param({"mapping": {"text": "  "}}, "text: name the column", id="blank-column"),
    pytest.param({"mapping": {"text": "x" * 201}}, "at most 200", id="long-column"),
    pytest.param({"mapping": {"text": "intent"}}, "would both read", id="two-fields-one-column"),
    pytest.param(
        {"file_format": "jsonl", "delimiter": None, "mapping": {"text": "msg..body"}},
        "not a key path",
        id="jsonl-path",
    ),
    pytest.param({"delimiter": ":"}, "delimiter: use one of", id="delimiter"),
    pytest.param({"file_format": "jsonl"}, "only CSV files have a delimiter", id="delimiter-jsonl"),
    pytest.param({"encoding": "klingon-8"}, "no text encoding named", id="encoding"),
    pytest.param({"encoding": "base64"}, "no text encoding named", id="encoding-not-text"),
    pytest.param({"date_format": "%Q-%d"}, "not a strptime format", id="date-format-directive"),
    pytest.param({"date_format": "%H:%M"}, "day, month and year", id="date-format-no-date"),
    pytest.param({"date_format": "today"}, "day, month and year", id="date-format-literal"),
    pytest.param({"cleanup": ["strip_emoji"]}, "unknown step strip_emoji", id="cleanup"),
    pytest.param({"name": "x"}, "name: use 2 to 100", id="name-short"),
    pytest.param({"source": "s" * 101}, "source: use 2 to 100", id="source-long"),
    pytest.param({"description": "d" * 501}, "at most 500", id="description"),
    pytest.param({"file_format": "rasa"}, "Rasa YAML file needs no profile", id="rasa"),
    pytest.param({"kind": "orders"}, "kind:", id="kind"),
    pytest.param({"delimeter": ";"}, "delimeter: Extra inputs", id="typo-field"),
]


@pytest.mark.parametrize(("fields", "message"), BAD_INPUT)
def test_invalid_profile_is_refused_clearly_and_writes_nothing(engine, shops, fields, message):
    a, _ = shops
    with pytest.raises(InvalidInput, match=message):
        _create(engine, a.admin, **fields)
    assert _rows(engine, a.admin, ImportProfile) == []
    assert _rows(engine, a.admin, ImportProfileUsage) == []
    assert _audit(engine, a, "import_profile.create") == []


def test_several_errors_come_in_one_message():
    with pytest.raises(InvalidInput) as caught:
        parse_profile_input(**{**SHOPIFY, "delimiter": ":", "encoding": "nope"})
    assert "delimiter:" in str(caught.value) and "encoding:" in str(caught.value)


def test_valid_input_is_normalised():
    data = parse_profile_input(
        name="  Shopify   Inbox  ",
        source="Shopify Inbox",
        encoding="Latin-1",
        delimiter="\t",
        date_format="",
        cleanup=["collapse_whitespace", "strip_html", "strip_html"],
        mapping={"text": "Message"},
    )
    assert data.name == "Shopify Inbox"
    assert data.encoding == "iso8859-1" and data.delimiter == "\t" and data.date_format is None
    assert data.cleanup == ["strip_html", "collapse_whitespace"]  # the order they run in


@pytest.mark.parametrize(
    "fmt",
    ["%Y-%m-%d %H:%M:%S %z", "%d/%m/%Y %H:%M", "%m/%d/%y %I:%M %p", "%d.%m.%Y", "%Y%m%d"],
    ids=["iso-with-offset", "european", "us-12-hour", "dotted", "compact"],
)
def test_common_date_formats_are_accepted(fmt):
    assert parse_profile_input(**{**SHOPIFY, "date_format": fmt}).date_format == fmt


def test_jsonl_profile_reads_nested_keys():
    data = parse_profile_input(
        name="Zendesk",
        source="Zendesk",
        file_format="jsonl",
        mapping={"text": "ticket.description", "intent": "custom_fields.intent"},
    )
    assert data.mapping["text"] == "ticket.description"


# ---------------------------------------------------------------- create, read, anonymity


def test_created_profile_is_listed_with_zero_uses_and_a_read_spec(engine, shops):
    a, _ = shops
    created = _create(engine, a.admin)
    assert created.is_mine and created.version == 1
    assert (created.success_count, created.failure_count, created.uses) == (0, 0, 0)
    assert created.success_rate is None and created.last_successful_use is None
    assert created.score == 0.0
    assert _list(engine, a.admin) == [created]
    assert hash(created) == hash(_get(engine, a.admin, created.id))  # usable as an option
    assert created.read_spec() == ReadSpec(
        kind="examples",
        file_format="csv",
        mapping=SHOPIFY["mapping"],
        delimiter=",",
        date_format="%Y-%m-%d %H:%M:%S %z",
        cleanup=("collapse_whitespace",),
    )
    (usage,) = _rows(engine, a.admin, ImportProfileUsage)
    assert usage.profile_id == created.id and usage.success_count == usage.failure_count == 0


def test_creation_is_audited_with_the_profile(engine, shops):
    a, _ = shops
    created = _create(engine, a.admin)
    (event,) = _audit(engine, a, "import_profile.create")
    assert event.entity_type == "import_profile" and event.entity_id == str(created.id)
    assert event.after["name"] == "Shopify Inbox CSV"
    assert event.after["mapping"] == SHOPIFY["mapping"]
    assert event.actor_name == a.admin.username


def test_a_shop_cannot_have_two_profiles_of_one_name_but_two_shops_can(engine, shops):
    a, b = shops
    _create(engine, a.admin)
    with pytest.raises(InvalidInput, match="already has an import profile named"):
        _create(engine, a.admin, source="Elsewhere")
    _create(engine, b.admin)
    assert len(_list(engine, a.admin)) == 2
    assert len(_rows(engine, a.admin, ImportProfileUsage)) == 2


def test_profile_view_never_says_which_shop_made_it(engine, shops):
    a, b = shops
    created = _create(engine, a.admin)
    names = {f.name for f in dataclasses.fields(ProfileView)}
    assert not {n for n in names if "owner" in n or "tenant" in n or "shop" in n}
    (seen,) = _list(engine, b.admin)
    assert seen.id == created.id and not seen.is_mine
    assert not hasattr(seen, "owner_tenant_id")
    assert a.name not in repr(seen)


def test_every_role_of_another_shop_reads_a_profile(engine, shops):
    a, b = shops
    created = _create(engine, a.admin)
    for role in Role:
        actor = b.actor(role)
        assert [v.id for v in _list(engine, actor)] == [created.id]
        assert _get(engine, actor, created.id).name == created.name
        with session_scope(actor, engine=engine) as s:
            assert profiles.sources(session=s, actor=actor) == ["Shopify Inbox"]
            best = profiles.best_profile(
                session=s, actor=actor, source="Shopify Inbox", kind="examples"
            )
            assert best is not None and best.id == created.id


def test_missing_profile_is_not_found_by_id_or_name(engine, shops):
    a, _ = shops
    with pytest.raises(NotFound, match="no import profile with id 999"):
        _get(engine, a.admin, 999)
    with (
        pytest.raises(NotFound, match="no import profile named 'Nope'"),
        session_scope(a.admin, engine=engine) as s,
    ):
        profiles.get_profile_by_name(session=s, actor=a.admin, name="Nope")


def test_sources_are_distinct_and_sorted(engine, shops):
    a, b = shops
    _create(engine, a.admin, name="One", source="Zendesk")
    _create(engine, a.admin, name="Two", source="gorgias")
    _create(engine, b.admin, name="Three", source="Zendesk")
    _create(engine, b.admin, name="Four", source="Shopify Inbox")
    with session_scope(b.florist, engine=engine) as s:
        assert profiles.sources(session=s, actor=b.florist) == [
            "gorgias",
            "Shopify Inbox",
            "Zendesk",
        ]


# ---------------------------------------------------------------- owner-only changes


def test_update_changes_the_profile_and_audits_before_and_after(engine, shops):
    a, _ = shops
    created = _create(engine, a.admin)
    mapping = {"text": "Body", "intent": "Topic"}
    updated = _update(engine, a.admin, created, mapping=mapping, delimiter=";")
    assert updated.version == 2 and dict(updated.mapping) == mapping and updated.delimiter == ";"
    assert _get(engine, a.admin, created.id) == updated
    (event,) = _audit(engine, a, "import_profile.update")
    assert event.before == {"mapping": SHOPIFY["mapping"], "delimiter": ","}
    assert event.after == {"mapping": mapping, "delimiter": ";"}


def test_update_without_a_change_keeps_the_version_and_audits_nothing(engine, shops):
    a, _ = shops
    created = _create(engine, a.admin)
    assert _update(engine, a.admin, created) == created
    assert _audit(engine, a, "import_profile.update") == []


def test_update_to_a_name_the_shop_uses_is_refused(engine, shops):
    a, _ = shops
    _create(engine, a.admin, name="Taken")
    created = _create(engine, a.admin)
    with pytest.raises(InvalidInput, match="already has an import profile named 'Taken'"):
        _update(engine, a.admin, created, name="Taken")
    assert _get(engine, a.admin, created.id) == created


def test_other_shop_cannot_update_or_delete_a_profile(engine, shops):
    a, b = shops
    created = _create(engine, a.admin)
    seen = _get(engine, b.admin, created.id)
    with pytest.raises(PermissionDenied, match="Only the shop that created a profile"):
        _update(engine, b.admin, seen, name="Hijacked")
    with pytest.raises(PermissionDenied, match="Only the shop that created a profile"):
        _delete(engine, b.admin, seen)
    assert _get(engine, a.admin, created.id) == created
    assert len(_rows(engine, a.admin, ImportProfileUsage)) == 1
    assert _rows(engine, b.admin, AuditEvent) == []


def test_stale_update_and_delete_are_refused(engine, shops):
    a, _ = shops
    first = _create(engine, a.admin)
    current = _update(engine, a.admin, first, description="Changed by someone else")
    with pytest.raises(StaleEdit, match="changed by someone else"):
        _update(engine, a.admin, first, description="Mine")
    with pytest.raises(StaleEdit, match="changed by someone else"):
        _delete(engine, a.admin, first)
    assert _get(engine, a.admin, first.id) == current


@pytest.mark.parametrize("action", ["update", "delete"])
def test_an_edit_that_loses_a_race_is_refused_not_applied(engine, shops, monkeypatch, action):
    """Another admin commits between our load and our write: the version in the WHERE sees it."""
    a, _ = shops
    created = _create(engine, a.admin)
    load, raced = profiles._load_own, []

    def load_then_lose_the_race(session, actor, profile_id):
        profile = load(session, actor, profile_id)
        if not raced:
            raced.append(True)
            with session_scope(a.admin, engine=engine) as other:
                other.exec(
                    update(ImportProfile)
                    .where(col(ImportProfile.id) == profile_id)
                    .values(description="Won the race", version=ImportProfile.version + 1)
                )
        return profile

    monkeypatch.setattr(profiles, "_load_own", load_then_lose_the_race)
    with pytest.raises(StaleEdit):
        if action == "update":
            _update(engine, a.admin, created, name="Lost the race")
        else:
            _delete(engine, a.admin, created)
    current = _get(engine, a.admin, created.id)
    assert (current.name, current.description, current.version) == (
        created.name,
        "Won the race",
        2,
    )


def test_delete_removes_the_profile_and_its_counters_and_is_audited(engine, shops):
    a, b = shops
    created = _create(engine, a.admin)
    kept = _create(engine, b.admin)
    _record(engine, b.admin, created.id, 100, 100)
    _delete(engine, a.admin, created)
    assert [v.id for v in _list(engine, b.admin)] == [kept.id]
    assert [u.profile_id for u in _rows(engine, a.admin, ImportProfileUsage)] == [kept.id]
    (event,) = _audit(engine, a, "import_profile.delete")
    assert event.entity_id == str(created.id) and event.before["name"] == created.name
    with pytest.raises(NotFound):
        _get(engine, a.admin, created.id)


@pytest.mark.parametrize("role", [Role.FLORIST, Role.MANAGER])
def test_only_admins_create_change_delete_or_count(engine, shops, role):
    a, _ = shops
    created = _create(engine, a.admin)
    actor = a.actor(role)
    with pytest.raises(PermissionDenied):
        _create(engine, actor, name="Florist's")
    with pytest.raises(PermissionDenied):
        _update(engine, actor, created, name="Renamed")
    with pytest.raises(PermissionDenied):
        _delete(engine, actor, created)
    with pytest.raises(PermissionDenied):
        _record(engine, actor, created.id, 10, 10)
    with session_scope(actor, engine=engine) as s, pytest.raises(PermissionDenied):
        profiles.seed_default_profiles(session=s, actor=actor)
    assert _list(engine, actor) == [created]


# ---------------------------------------------------------------- counting uses


@pytest.mark.parametrize(
    ("valid", "total", "success"),
    [(95, 100, True), (94, 100, False), (0, 0, False), (100, 100, True), (19, 20, True)],
    ids=["95-of-100", "94-of-100", "empty-file", "all", "19-of-20"],
)
def test_a_use_succeeds_when_95_percent_of_rows_are_valid(engine, shops, valid, total, success):
    a, _ = shops
    created = _create(engine, a.admin)
    before = datetime.now(UTC)
    assert _record(engine, a.admin, created.id, valid, total) is success
    view = _get(engine, a.admin, created.id)
    assert (view.success_count, view.failure_count) == ((1, 0) if success else (0, 1))
    assert view.uses == 1 and view.success_rate == (1.0 if success else 0.0)
    if success:
        assert view.last_successful_use is not None and view.last_successful_use >= before
    else:
        assert view.last_successful_use is None
    (usage,) = _rows(engine, a.admin, ImportProfileUsage)
    assert usage.last_used_at is not None and usage.last_used_at >= before


def test_a_failure_keeps_the_last_success(engine, shops):
    a, _ = shops
    created = _create(engine, a.admin)
    _record(engine, a.admin, created.id, 10, 10)
    first = _get(engine, a.admin, created.id).last_successful_use
    _record(engine, a.admin, created.id, 0, 10)
    view = _get(engine, a.admin, created.id)
    assert view.last_successful_use == first and view.success_rate == 0.5


def test_other_shops_count_uses_of_a_profile(engine, shops):
    a, b = shops
    created = _create(engine, a.admin)
    assert _record(engine, b.admin, created.id, 10, 10)
    assert not _record(engine, b.admin, created.id, 1, 10)
    view = _get(engine, a.admin, created.id)
    assert (view.success_count, view.failure_count) == (1, 1)


@pytest.mark.parametrize(("valid", "total"), [(11, 10), (-1, 10), (0, -1)])
def test_impossible_row_counts_are_refused(engine, shops, valid, total):
    a, _ = shops
    created = _create(engine, a.admin)
    with pytest.raises(InvalidInput, match="valid_rows"):
        _record(engine, a.admin, created.id, valid, total)
    assert _get(engine, a.admin, created.id).uses == 0


def test_counting_a_use_of_a_missing_profile_is_not_found(engine, shops):
    a, _ = shops
    with pytest.raises(NotFound, match="id 999"):
        _record(engine, a.admin, 999, 1, 1)


# ---------------------------------------------------------------- ranking


def test_best_profile_prefers_950_of_1000_over_2_of_2(engine, shops):
    a, b = shops
    proven = _create(engine, a.admin, name="Proven")
    lucky = _create(engine, b.admin, name="Lucky")
    _set_counts(engine, a.admin, proven.id, 950, 50)
    _set_counts(engine, b.admin, lucky.id, 2, 0, datetime.now(UTC))
    with session_scope(b.admin, engine=engine) as s:
        best = profiles.best_profile(
            session=s, actor=b.admin, source="Shopify Inbox", kind="examples"
        )
    assert best is not None and best.id == proven.id and not best.is_mine
    ranked = _list(engine, b.admin, source="Shopify Inbox")
    assert [v.name for v in ranked] == ["Proven", "Lucky"]
    assert ranked[0].success_rate == 0.95 and ranked[1].success_rate == 1.0
    assert ranked[0].score == pytest.approx(0.9347, abs=1e-4)
    assert ranked[0].score > ranked[1].score


def test_equal_records_rank_by_the_latest_success(engine, shops):
    a, _ = shops
    older = _create(engine, a.admin, name="Older")
    newer = _create(engine, a.admin, name="Newer")
    now = datetime.now(UTC)
    _set_counts(engine, a.admin, older.id, 10, 1, now - timedelta(days=3))
    _set_counts(engine, a.admin, newer.id, 10, 1, now)
    assert [v.name for v in _list(engine, a.admin)] == ["Newer", "Older"]


def test_unused_profiles_list_the_shops_own_first(engine, shops):
    a, b = shops
    _create(engine, a.admin, name="From A")
    _create(engine, b.admin, name="From B")
    assert [v.name for v in _list(engine, b.admin)] == ["From B", "From A"]
    assert [v.name for v in _list(engine, a.admin)] == ["From A", "From B"]


def test_best_profile_is_of_the_source_and_kind_asked_for(engine, shops):
    a, _ = shops
    examples = _create(engine, a.admin)
    conversations = _create(
        engine,
        a.admin,
        name="Shopify conversations",
        kind="conversations",
        mapping={"conversation_id": "Thread", "text": "Message"},
    )
    _set_counts(engine, a.admin, conversations.id, 500, 0)
    with session_scope(a.manager, engine=engine) as s:

        def best(source: str, kind: str) -> int | None:
            view = profiles.best_profile(session=s, actor=a.manager, source=source, kind=kind)
            return view.id if view else None

        assert best("Shopify Inbox", "examples") == examples.id
        assert best("Shopify Inbox", "conversations") == conversations.id
        assert best("Zendesk", "examples") is None
    assert [v.id for v in _list(engine, a.admin, kind="conversations")] == [conversations.id]


def test_by_name_prefers_the_shops_own_then_the_best_ranked(engine, shops):
    a, b = shops
    c = make_shop(engine, "Shop C")
    mine = _create(engine, a.admin)
    theirs = _create(engine, b.admin)
    _set_counts(engine, b.admin, theirs.id, 100, 0)
    with session_scope(a.admin, engine=engine) as s:
        found = profiles.get_profile_by_name(session=s, actor=a.admin, name="Shopify Inbox CSV")
        assert found.id == mine.id
    with session_scope(c.admin, engine=engine) as s:
        found = profiles.get_profile_by_name(session=s, actor=c.admin, name="shopify inbox  csv")
        assert found.id == theirs.id


# ---------------------------------------------------------------- starting profiles


def test_default_profiles_are_valid_unused_and_seeded_once(engine, shops):
    a, b = shops
    with session_scope(a.admin, engine=engine) as s:
        assert profiles.seed_default_profiles(session=s, actor=a.admin) == len(
            profiles.DEFAULT_PROFILES
        )
    with session_scope(a.admin, engine=engine) as s:
        assert profiles.seed_default_profiles(session=s, actor=a.admin) == 0
    seen = _list(engine, b.admin)
    assert len(seen) == len(profiles.DEFAULT_PROFILES) >= 4
    assert all(v.uses == 0 and v.last_successful_use is None and not v.is_mine for v in seen)
    assert {v.kind for v in seen} == {"examples", "conversations"}
    assert {v.file_format for v in seen} == {"csv", "jsonl"}
    for view in seen:
        assert set(view.read_spec().cleanup) <= set(CLEANUP_STEPS)


def test_demo_gives_the_first_shop_the_starting_profiles(engine, monkeypatch):
    from core import demo

    monkeypatch.setattr(
        "core.users.hash_password", lambda *_a, **_k: factories.test_password_hash()
    )
    demo.create_demo_workspace(engine=engine, days=1, now=datetime(2025, 5, 20, tzinfo=UTC))
    with session_scope(None, engine=engine) as s:
        tenants = {t.name: t.id for t in s.exec(select(Tenant)).all()}
    bloom = Actor(None, tenants["Bloom & Co."], Role.MANAGER, "test")
    fern = Actor(None, tenants["Fern & Thistle"], Role.MANAGER, "test")
    assert {v.name for v in _list(engine, bloom) if v.is_mine} == {
        p["name"] for p in profiles.DEFAULT_PROFILES
    }
    assert not any(v.is_mine for v in _list(engine, fern))
    assert all(v.uses == 0 for v in _list(engine, fern))


# ---------------------------------------------------------------- concurrent counting

PROCESSES, USES = 4, 250


def _count_uses(url: str, who: tuple[int, int, str], profile_id: int, uses: int, start) -> None:
    """A worker process: `uses` imports, each its own transaction; every fifth one fails."""
    tenant_id, user_id, username = who
    engine = make_engine(url)
    actor = Actor(user_id, tenant_id, Role.ADMIN, username)
    with session_scope(actor, engine=engine) as s:  # connect before the race starts
        profiles.get_profile(session=s, actor=actor, profile_id=profile_id)
    start.wait(timeout=60)
    for i in range(uses):
        with session_scope(actor, engine=engine) as s:
            profiles.record_use(
                session=s,
                actor=actor,
                profile_id=profile_id,
                valid_rows=50 if i % 5 == 0 else 100,
                total_rows=100,
            )
    engine.dispose()


def _race(engine: Engine, url: str, a: Shop, b: Shop) -> float:
    """Two processes as shop A and two as shop B count uses of A's profile at once."""
    profile = _create(engine, a.admin)
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(PROCESSES)
    workers = [
        ctx.Process(
            target=_count_uses,
            args=(
                url,
                (s.tenant_id, s.admin.user_id, s.admin.username),
                profile.id,
                USES,
                start,
            ),
        )
        for s in (a, a, b, b)
    ]
    began = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    elapsed = time.perf_counter() - began
    assert [w.exitcode for w in workers] == [0] * PROCESSES
    view = _get(engine, b.admin, profile.id)
    assert view.success_count + view.failure_count == PROCESSES * USES == 1000
    assert (view.success_count, view.failure_count) == (800, 200)
    return elapsed


def test_concurrent_uses_from_four_processes_all_count_on_sqlite(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'counters.db'}"
    engine = make_engine(url)
    upgrade(engine)
    a, b = make_shop(engine, "Shop A"), make_shop(engine, "Shop B")
    elapsed = _race(engine, url, a, b)
    engine.dispose()
    assert elapsed < 30


def test_concurrent_uses_from_four_processes_all_count_on_postgres(pg):
    truncate_all(pg.owner)
    a, b = make_shop(pg.app, "Shop A"), make_shop(pg.app, "Shop B")
    assert _race(pg.app, pg.app_url, a, b) < 30
