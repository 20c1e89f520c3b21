"""Generator configurations: checked parameters, exactly one active per model type (in core and
in the database), roles and audit. Both backends (PostgreSQL as the app role, RLS on)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from core import generators
from core.access import Actor, Role
from core.errors import InvalidInput, NotFound, PermissionDenied, StaleEdit
from db.engine import session_scope
from db.models import AuditEvent, GeneratorConfig
from tests.factories import Shop, make_shop

DALLE = {"size": "1024x1024", "quality": "hd", "style": "vivid", "n": 1}


@pytest.fixture
def shop(engine) -> Shop:
    return make_shop(engine, "Bloom")


def call(engine: Engine, actor: Actor, function: str, **kwargs: Any) -> Any:
    with session_scope(actor, engine=engine) as s:
        return getattr(generators, function)(session=s, actor=actor, **kwargs)


def create(engine: Engine, actor: Actor, name: str, kind: str = "dalle3", **kwargs) -> Any:
    parameters = kwargs.pop("parameters", DALLE if kind == "dalle3" else {})
    return call(
        engine, actor, "create_config", name=name, kind=kind, parameters=parameters, **kwargs
    )


def active_names(engine: Engine, actor: Actor) -> dict[str, str]:
    return {c.model_type: c.name for c in call(engine, actor, "list_configs") if c.is_active}


# ---------------------------------------------------------------- parameters


@pytest.mark.parametrize(
    ("kind", "parameters"),
    [
        ("dalle3", DALLE),
        ("dalle3", '{"size": "1792x1024"}'),
        ("gpt4", {"model": "gpt-4o", "temperature": 0.2, "max_tokens": 800, "top_p": 1}),
        ("custom", {"endpoint": "https://gen.example/v1", "steps": 30, "tags": ["a", "b"]}),
        ("custom", ""),
    ],
    ids=["dalle3", "dalle3-json-text", "gpt4", "custom", "custom-empty"],
)
def test_valid_parameters_are_kept(kind, parameters):
    checked = generators.parse_parameters(kind, parameters)
    assert isinstance(checked, dict)


@pytest.mark.parametrize(
    ("kind", "parameters", "message"),
    [
        ("dalle3", {"size": "800x600"}, "size must be one of 1024x1024"),
        ("dalle3", {"sise": "1024x1024"}, "dalle3 takes no parameter 'sise'"),
        ("dalle3", {"n": 2}, "n must lie between 1 and 1"),
        ("gpt4", {"temperature": 3}, "temperature must lie between 0 and 2"),
        ("gpt4", {"temperature": "hot"}, "temperature must be a number"),
        ("gpt4", {"max_tokens": 10.5}, "max_tokens must be a whole number"),
        ("gpt4", {"max_tokens": True}, "max_tokens must be a whole number"),
        ("custom", {"endpoint": "ftp://gen.example"}, "http:// or https://"),
        ("custom", {"nested": {"a": 1}}, "no nested objects"),
        ("custom", {"Bad-Key": 1}, "not a parameter name"),
        ("dalle3", "[1, 2]", "must be a JSON object"),
        ("dalle3", '{"size": ', "not valid JSON .* line 1, column"),
        ("midjourney", {}, "not a model type"),
    ],
)
def test_invalid_parameters_are_refused_clearly(kind, parameters, message):
    with pytest.raises(InvalidInput, match=message):
        generators.parse_parameters(kind, parameters)


def test_every_problem_comes_in_one_message():
    with pytest.raises(InvalidInput) as caught:
        generators.parse_parameters("gpt4", {"temperature": 9, "top_p": -1})
    assert "temperature" in str(caught.value) and "top_p" in str(caught.value)


def test_default_parameters_are_valid():
    for kind, parameters in generators.DEFAULT_PARAMETERS.items():
        assert generators.parse_parameters(kind, parameters) == parameters


# ---------------------------------------------------------------- one active per model type


def test_a_new_configuration_is_inactive_and_audited(engine, shop):
    created = create(engine, shop.florist, "Portrait HD", description="Tall prints")
    assert not created.is_active and created.parameters == DALLE and created.version == 1
    assert call(engine, shop.manager, "active_config", kind="dalle3") is None
    with session_scope(shop.admin, engine=engine) as s:
        (event,) = s.exec(select(AuditEvent)).all()
    assert event.action == "generator.create" and event.after["name"] == "Portrait HD"


def test_activating_one_deactivates_the_other_of_its_type_only(engine, shop):
    first = create(engine, shop.florist, "First")
    second = create(engine, shop.florist, "Second")
    chat = create(engine, shop.florist, "Chat", kind="gpt4", parameters={"temperature": 0.5})
    call(engine, shop.admin, "activate_config", config_id=first.id)
    call(engine, shop.admin, "activate_config", config_id=chat.id)
    assert active_names(engine, shop.manager) == {"dalle3": "First", "gpt4": "Chat"}
    activated = call(engine, shop.admin, "activate_config", config_id=second.id)
    assert activated.is_active
    assert active_names(engine, shop.manager) == {"dalle3": "Second", "gpt4": "Chat"}
    assert call(engine, shop.manager, "active_config", kind="dalle3").id == second.id
    with session_scope(shop.admin, engine=engine) as s:
        events = s.exec(
            select(AuditEvent)
            .where(AuditEvent.action == "generator.activate")
            .order_by(AuditEvent.id)
        ).all()
    assert [(e.before, e.after) for e in events][-1] == ({"active": "First"}, {"active": "Second"})
    call(engine, shop.admin, "deactivate_config", config_id=second.id)
    assert active_names(engine, shop.manager) == {"gpt4": "Chat"}


def test_the_database_refuses_a_second_active_configuration(engine, shop):
    create(engine, shop.florist, "One")
    call(
        engine,
        shop.admin,
        "activate_config",
        config_id=call(engine, shop.admin, "list_configs")[0].id,
    )
    with pytest.raises(IntegrityError), session_scope(shop.admin, engine=engine) as s:
        s.execute(
            insert(GeneratorConfig).values(
                tenant_id=shop.tenant_id,
                name="Sneaky",
                model_type="dalle3",
                parameters={},
                description="",
                is_active=True,
                version=1,
            )
        )
    # Another shop has its own active configuration of the same type.
    other = make_shop(engine, "Fern")
    theirs = create(engine, other.florist, "Theirs")
    call(engine, other.admin, "activate_config", config_id=theirs.id)
    assert active_names(engine, shop.admin) == {"dalle3": "One"}


def test_an_active_configuration_is_not_deleted_an_inactive_one_is(engine, shop):
    keep = create(engine, shop.florist, "Keep")
    spare = create(engine, shop.florist, "Spare")
    call(engine, shop.admin, "activate_config", config_id=keep.id)
    with pytest.raises(InvalidInput, match="activate another one first"):
        call(
            engine, shop.florist, "delete_config", config_id=keep.id, expected_version=keep.version
        )
    call(engine, shop.florist, "delete_config", config_id=spare.id, expected_version=spare.version)
    assert [c.name for c in call(engine, shop.florist, "list_configs")] == ["Keep"]


def test_update_checks_the_parameters_and_refuses_a_stale_edit(engine, shop):
    created = create(engine, shop.florist, "Square")
    updated = call(
        engine,
        shop.florist,
        "update_config",
        config_id=created.id,
        expected_version=created.version,
        parameters={"size": "1024x1792"},
    )
    assert updated.parameters == {"size": "1024x1792"} and updated.version == 2
    with pytest.raises(InvalidInput, match="size must be one of"):
        call(
            engine,
            shop.florist,
            "update_config",
            config_id=created.id,
            expected_version=updated.version,
            parameters={"size": "1x1"},
        )
    with pytest.raises(StaleEdit) as caught:
        call(
            engine,
            shop.admin,
            "update_config",
            config_id=created.id,
            expected_version=created.version,
            name="Late",
        )
    assert caught.value.current["parameters"] == {"size": "1024x1792"}


def test_a_name_the_shop_uses_is_refused(engine, shop):
    create(engine, shop.florist, "Square")
    with pytest.raises(InvalidInput, match="already has a generator configuration named"):
        create(engine, shop.admin, "Square", kind="gpt4")


def test_another_shops_configuration_is_not_found(engine, shop):
    other = make_shop(engine, "Fern")
    theirs = create(engine, other.florist, "Theirs")
    with pytest.raises(NotFound):
        call(engine, shop.admin, "activate_config", config_id=theirs.id)
    assert call(engine, shop.admin, "list_configs") == []


# ---------------------------------------------------------------- roles


def test_florists_write_configurations_but_only_admins_activate(engine, shop):
    created = create(engine, shop.florist, "Mine")
    with pytest.raises(PermissionDenied):
        call(engine, shop.florist, "activate_config", config_id=created.id)
    with pytest.raises(PermissionDenied):
        call(engine, shop.florist, "deactivate_config", config_id=created.id)
    assert active_names(engine, shop.admin) == {}


def test_managers_only_read_configurations(engine, shop):
    created = create(engine, shop.florist, "Mine")
    m = shop.manager
    with pytest.raises(PermissionDenied):
        create(engine, m, "Theirs")
    with pytest.raises(PermissionDenied):
        call(engine, m, "update_config", config_id=created.id, expected_version=1, name="X")
    with pytest.raises(PermissionDenied):
        call(engine, m, "delete_config", config_id=created.id, expected_version=1)
    with pytest.raises(PermissionDenied):
        call(engine, m, "activate_config", config_id=created.id)
    assert [c.name for c in call(engine, m, "list_configs", kind="dalle3")] == ["Mine"]


@pytest.mark.parametrize("role", [Role.ADMIN, Role.FLORIST])
def test_editors_create_configurations(engine, shop, role):
    assert create(engine, shop.actor(role), f"By {role.value}").name == f"By {role.value}"
