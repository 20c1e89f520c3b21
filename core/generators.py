"""Generator configurations: named parameter sets for the outside generator, per model type.

Florists and admins write them; admins activate one, and exactly one configuration per model
type is active in a shop (activating one deactivates the other in the same transaction, and a
partial unique index makes the database refuse a second even across app replicas). Parameters
are a JSON object checked against what each model type takes, so a typo never reaches the
generator.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from core import audit
from core.access import Actor, Role, require_role
from core.errors import InvalidInput, NotFound, StaleEdit
from core.studio import EDITORS, READERS, http_url, label
from db.models import GeneratorConfig, ModelType, utcnow

ENTITY = "generator_config"
MAX_PARAMETERS = 30
MAX_TEXT = 500
_KEY = re.compile(r"[a-z][a-z0-9_]{0,39}")


@dataclass(frozen=True)
class Choice:
    """A parameter that takes one of a few texts."""

    options: tuple[str, ...]


@dataclass(frozen=True)
class Number:
    """A parameter that takes a number in [low, high] (an integer when `integer`)."""

    low: float
    high: float
    integer: bool = False


@dataclass(frozen=True)
class Free:
    """A parameter that takes short text (an http(s) URL when `url`)."""

    url: bool = False


Rule = Choice | Number | Free

# What each model type takes; a key not listed is refused (custom takes any well-formed key).
PARAMETERS: Mapping[ModelType, Mapping[str, Rule]] = {
    ModelType.DALLE3: {
        "size": Choice(("1024x1024", "1792x1024", "1024x1792")),
        "quality": Choice(("standard", "hd")),
        "style": Choice(("vivid", "natural")),
        "n": Number(1, 1, integer=True),
    },
    ModelType.GPT4: {
        "model": Free(),
        "temperature": Number(0, 2),
        "top_p": Number(0, 1),
        "max_tokens": Number(1, 32_000, integer=True),
        "presence_penalty": Number(-2, 2),
        "frequency_penalty": Number(-2, 2),
    },
    ModelType.CUSTOM: {"endpoint": Free(url=True)},
}
DEFAULT_PARAMETERS: Mapping[ModelType, dict[str, Any]] = {
    ModelType.DALLE3: {"size": "1024x1024", "quality": "standard", "style": "natural", "n": 1},
    ModelType.GPT4: {"model": "gpt-4", "temperature": 0.7, "max_tokens": 500},
    ModelType.CUSTOM: {},
}


def model_type(value: str) -> ModelType:
    try:
        return ModelType(value)
    except ValueError:
        allowed = ", ".join(m.value for m in ModelType)
        raise InvalidInput(f"{value!r} is not a model type; use {allowed}.") from None


def parse_parameters(kind: ModelType | str, raw: Mapping[str, Any] | str) -> dict[str, Any]:
    """The parameters as a checked JSON object (from a mapping or JSON text); every problem is
    named in one InvalidInput."""
    checked_type = model_type(kind)
    if isinstance(raw, str):
        try:
            raw = json.loads(raw or "{}")
        except json.JSONDecodeError as exc:
            raise InvalidInput(
                f"The parameters are not valid JSON ({exc.msg} at line {exc.lineno}, "
                f"column {exc.colno})."
            ) from None
    if not isinstance(raw, Mapping):
        raise InvalidInput('The parameters must be a JSON object, e.g. {"size": "1024x1024"}.')
    if len(raw) > MAX_PARAMETERS:
        raise InvalidInput(f"At most {MAX_PARAMETERS} parameters, not {len(raw)}.")
    rules = PARAMETERS[checked_type]
    problems = [p for key, value in raw.items() if (p := _problem(checked_type, rules, key, value))]
    if problems:
        raise InvalidInput("; ".join(problems) + ".")
    return dict(raw)


def _problem(kind: ModelType, rules: Mapping[str, Rule], key: object, value: object) -> str | None:
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        return f"{str(key)[:40]!r} is not a parameter name (lowercase a-z, 0-9 and _)"
    rule = rules.get(key)
    if rule is None:
        if kind is not ModelType.CUSTOM:
            return f"{kind.value} takes no parameter {key!r}; it takes {', '.join(rules)}"
        return _plain_problem(key, value)
    if isinstance(rule, Choice):
        return None if value in rule.options else f"{key} must be one of {', '.join(rule.options)}"
    if isinstance(rule, Number):
        return _number_problem(key, value, rule)
    return _text_problem(key, value, url=rule.url)


def _number_problem(key: str, value: object, rule: Number) -> str | None:
    ok_type = isinstance(value, int) if rule.integer else isinstance(value, int | float)
    if isinstance(value, bool) or not ok_type:
        return f"{key} must be {'a whole number' if rule.integer else 'a number'}"
    assert isinstance(value, int | float)
    if not math.isfinite(value) or not rule.low <= value <= rule.high:
        return f"{key} must lie between {rule.low:g} and {rule.high:g}"
    return None


def _text_problem(key: str, value: object, *, url: bool) -> str | None:
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        return f"{key} must be text of at most {MAX_TEXT} characters"
    if url:
        try:
            http_url(value, field=key)
        except ValueError as exc:
            return str(exc)
    return None


def _plain_problem(key: str, value: object) -> str | None:
    """A custom parameter: text, a number, true/false, or a short list of those."""
    if isinstance(value, list):
        if len(value) > 20 or any(isinstance(v, list | dict) for v in value):
            return f"{key} may be a list of at most 20 plain values"
        return next((p for v in value if (p := _plain_problem(key, v))), None)
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return None if math.isfinite(value) else f"{key} must be a finite number"
    if isinstance(value, str):
        return _text_problem(key, value, url=False)
    return f"{key} must be text, a number, true/false or a list of those (no nested objects)"


# --------------------------------------------------------------------------------------------
# Reading and writing
# --------------------------------------------------------------------------------------------


def list_configs(
    *, session: Session, actor: Actor, kind: ModelType | str | None = None
) -> list[GeneratorConfig]:
    """The shop's configurations (of one model type), by type and name."""
    require_role(actor, *READERS)
    query = select(GeneratorConfig).where(GeneratorConfig.tenant_id == actor.tenant_id)
    if kind is not None:
        query = query.where(GeneratorConfig.model_type == model_type(kind).value)
    order = (col(GeneratorConfig.model_type), col(GeneratorConfig.name))
    return list(session.exec(query.order_by(*order)).all())


def active_config(
    *, session: Session, actor: Actor, kind: ModelType | str
) -> GeneratorConfig | None:
    """The active configuration of a model type, if one is."""
    require_role(actor, *READERS)
    return session.exec(
        select(GeneratorConfig).where(
            GeneratorConfig.tenant_id == actor.tenant_id,
            GeneratorConfig.model_type == model_type(kind).value,
            col(GeneratorConfig.is_active),
        )
    ).first()


def _load(session: Session, actor: Actor, config_id: int) -> GeneratorConfig:
    config = session.exec(
        select(GeneratorConfig).where(
            GeneratorConfig.tenant_id == actor.tenant_id, GeneratorConfig.id == config_id
        )
    ).first()
    if config is None:
        raise NotFound(f"There is no generator configuration with id {config_id}.")
    return config


def _name(name: str) -> str:
    try:
        return label(name, field="A configuration's name", min_length=2)
    except ValueError as exc:
        raise InvalidInput(f"{exc}.") from None


def _taken(name: str) -> InvalidInput:
    return InvalidInput(f"Your shop already has a generator configuration named {name!r}.")


def create_config(
    *,
    session: Session,
    actor: Actor,
    name: str,
    kind: ModelType | str,
    parameters: Mapping[str, Any] | str,
    description: str = "",
) -> GeneratorConfig:
    """A new, inactive configuration (florist, admin; audited)."""
    require_role(actor, *EDITORS)
    checked_type = model_type(kind)
    config = GeneratorConfig(
        tenant_id=actor.tenant_id,
        name=_name(name),
        model_type=checked_type.value,
        parameters=parse_parameters(checked_type, parameters),
        description=_description(description),
    )
    try:
        with session.begin_nested():
            session.add(config)
            session.flush()
    except IntegrityError as exc:
        raise _taken(config.name) from exc
    _audit(session, actor, "generator.create", config, after=_snapshot(config))
    return config


def _description(text: str) -> str:
    text = text.strip()
    if len(text) > 500:
        raise InvalidInput("A description has at most 500 characters.")
    return text


def _snapshot(config: GeneratorConfig) -> dict[str, Any]:
    return {
        "name": config.name,
        "model_type": config.model_type,
        "parameters": config.parameters,
        "description": config.description,
    }


def update_config(
    *,
    session: Session,
    actor: Actor,
    config_id: int,
    expected_version: int,
    name: str | None = None,
    parameters: Mapping[str, Any] | str | None = None,
    description: str | None = None,
) -> GeneratorConfig:
    """Change a configuration's name, parameters or description (florist, admin)."""
    require_role(actor, *EDITORS)
    config = _load(session, actor, config_id)
    if config.version != expected_version:
        raise _stale(config)
    wanted: dict[str, Any] = {}
    if name is not None:
        wanted["name"] = _name(name)
    if parameters is not None:
        wanted["parameters"] = parse_parameters(config.model_type, parameters)
    if description is not None:
        wanted["description"] = _description(description)
    changed = {k: v for k, v in wanted.items() if getattr(config, k) != v}
    if changed:
        before = {k: getattr(config, k) for k in changed}
        _write(session, config, changed)
        _audit(session, actor, "generator.update", config, before=before, after=changed)
    return config


def _write(session: Session, config: GeneratorConfig, changes: Mapping[str, Any]) -> None:
    statement = (
        update(GeneratorConfig)
        .where(col(GeneratorConfig.id) == config.id, col(GeneratorConfig.version) == config.version)
        .values(**changes, version=config.version + 1, updated_at=utcnow())
    )
    try:
        with session.begin_nested():
            matched = session.exec(statement).rowcount  # type: ignore[call-overload]
    except IntegrityError as exc:
        raise _taken(str(changes.get("name", config.name))) from exc
    if matched != 1:
        session.refresh(config)
        raise _stale(config)
    session.refresh(config)


def _stale(config: GeneratorConfig) -> StaleEdit:
    """`current` holds the row as it is now (plain values: the session is rolled back)."""
    current = {"id": config.id, "version": config.version, **_snapshot(config)}
    return StaleEdit(
        f"The configuration {config.name!r} was changed by someone else since you loaded it; "
        "load it again.",
        current=current,
    )


def activate_config(*, session: Session, actor: Actor, config_id: int) -> GeneratorConfig:
    """Make a configuration the active one of its model type, deactivating the one that was
    (admin; audited). Two admins activating at once: one wins, the other gets StaleEdit."""
    require_role(actor, Role.ADMIN)
    config = _load(session, actor, config_id)
    if config.is_active:
        return config
    previous = active_config(session=session, actor=actor, kind=config.model_type)
    try:
        with session.begin_nested():
            session.exec(
                update(GeneratorConfig)
                .where(
                    col(GeneratorConfig.tenant_id) == actor.tenant_id,
                    col(GeneratorConfig.model_type) == config.model_type,
                    col(GeneratorConfig.is_active),
                )
                .values(is_active=False, updated_at=utcnow())
            )
            session.exec(
                update(GeneratorConfig)
                .where(col(GeneratorConfig.id) == config.id)
                .values(is_active=True, updated_at=utcnow())
            )
    except IntegrityError as exc:
        raise StaleEdit(
            f"Another {config.model_type} configuration was activated at the same moment; "
            "load the list again."
        ) from exc
    session.refresh(config)
    if previous is not None:
        session.refresh(previous)
    _audit(
        session,
        actor,
        "generator.activate",
        config,
        before={"active": previous.name if previous else None},
        after={"active": config.name},
    )
    return config


def deactivate_config(*, session: Session, actor: Actor, config_id: int) -> GeneratorConfig:
    """Leave a model type without an active configuration (admin; audited)."""
    require_role(actor, Role.ADMIN)
    config = _load(session, actor, config_id)
    if config.is_active:
        session.exec(
            update(GeneratorConfig)
            .where(col(GeneratorConfig.id) == config.id)
            .values(is_active=False, updated_at=utcnow())
        )
        session.refresh(config)
        _audit(session, actor, "generator.deactivate", config, before={"active": config.name})
    return config


def delete_config(*, session: Session, actor: Actor, config_id: int, expected_version: int) -> None:
    """Delete an inactive configuration (florist, admin; audited)."""
    require_role(actor, *EDITORS)
    config = _load(session, actor, config_id)
    if config.version != expected_version:
        raise _stale(config)
    if config.is_active:
        raise InvalidInput(
            f"{config.name!r} is the active {config.model_type} configuration; "
            "activate another one first."
        )
    _audit(session, actor, "generator.delete", config, before=_snapshot(config))
    session.delete(config)
    session.flush()


def _audit(
    session: Session,
    actor: Actor,
    action: str,
    config: GeneratorConfig,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    audit.record(
        session=session,
        actor=actor,
        action=action,
        entity_type=ENTITY,
        entity_id=config.id,
        before=before,
        after=after,
    )
