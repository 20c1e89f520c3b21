"""Import profiles: how to read files from one source platform, shared by every shop.

Every shop reads every profile, anonymously (a ProfileView never names the shop that made it);
only the shop that created a profile changes or deletes it (checked here, by the tenant guard
and, on PostgreSQL, by row-level security). Each import that used a profile counts a success or
a failure in ImportProfileUsage with one atomic UPDATE, so concurrent imports of any shops never
lose a count; the best profile for a source is the one with the highest Wilson lower bound.
"""

from __future__ import annotations

import codecs
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from core import audit
from core.access import ALL_ROLES, Actor, Role, require_role
from core.errors import InvalidInput, NotFound, PermissionDenied, StaleEdit
from core.file_spec import (
    CLEANUP_STEPS,
    CONVERSATION_FIELDS,
    EXAMPLE_FIELDS,
    Kind,
    ReadSpec,
)
from core.ranking import rank_by_success, wilson_lower_bound
from db.models import ImportProfile, ImportProfileUsage, utcnow

# An import succeeded when at least this share of its rows was valid.
SUCCESS_SHARE = 0.95

ProfileFormat = Literal["csv", "jsonl"]  # a Rasa YAML file is self-describing: no profile
DELIMITERS = (",", ";", "\t", "|")
FIELDS_OF_KIND: Mapping[str, tuple[str, ...]] = {
    "examples": EXAMPLE_FIELDS,
    "conversations": CONVERSATION_FIELDS,
}
MAX_KEY_LENGTH = 200
# A date format must reproduce this moment's date when it formats and parses it back.
_PROBE_MOMENT = datetime(2024, 11, 23, 14, 5, 9, tzinfo=UTC)
ENTITY = "import_profile"


# --------------------------------------------------------------------------------------------
# Input
# --------------------------------------------------------------------------------------------


class ProfileInput(BaseModel):
    """What a shop types to create or change an import profile."""

    model_config = ConfigDict(extra="forbid")

    name: str
    source: str
    kind: Kind = "examples"
    file_format: ProfileFormat = "csv"
    mapping: dict[str, str] = Field(default_factory=dict)
    delimiter: str | None = None
    encoding: str | None = None
    date_format: str | None = None
    cleanup: list[str] = Field(default_factory=list)
    description: str = ""

    @field_validator("name", "source")
    @classmethod
    def _label(cls, value: str) -> str:
        value = " ".join(value.split())
        if not 2 <= len(value) <= 100:
            raise ValueError("use 2 to 100 characters")
        return value

    @field_validator("file_format", mode="before")
    @classmethod
    def _format(cls, value: object) -> object:
        if value == "rasa":
            raise ValueError("a Rasa YAML file needs no profile; profiles are for CSV and JSONL")
        return value

    @field_validator("delimiter", "encoding", "date_format", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("mapping")
    @classmethod
    def _mapping(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        kind = info.data.get("kind")
        if not isinstance(kind, str) or kind not in FIELDS_OF_KIND:
            return value  # the kind itself is wrong; that error is reported instead
        fields = FIELDS_OF_KIND[kind]
        unknown = sorted(set(value) - set(fields))
        if unknown:
            raise ValueError(
                f"{', '.join(unknown)} is not a Trellis field of {kind}; "
                f"use one of {', '.join(fields)}"
            )
        for field, key in value.items():
            _check_source_key(field, key, info.data.get("file_format"))
        _check_distinct_sources(fields, value)
        return value

    @field_validator("delimiter")
    @classmethod
    def _delimiter(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if value not in DELIMITERS:
            raise ValueError("use one of , ; TAB | (or leave it empty to detect it)")
        if info.data.get("file_format") != "csv":
            raise ValueError("only CSV files have a delimiter; leave it empty")
        return value

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            name = codecs.lookup(value.strip()).name
            # Refuses codecs that are not text encodings (base64, rot13, zlib, idna).
            b"x".decode(name, "ignore")  # not b"": decoding nothing skips the check
        except (LookupError, UnicodeError) as exc:
            raise ValueError(f"Python knows no text encoding named {value!r}") from exc
        return name

    @field_validator("date_format")
    @classmethod
    def _date_format(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if len(value) > 64:
            raise ValueError("at most 64 characters")
        try:
            parsed = datetime.strptime(_PROBE_MOMENT.strftime(value), value)
        except ValueError as exc:
            raise ValueError(f"not a strptime format ({exc})") from exc
        if parsed.date() != _PROBE_MOMENT.date():
            raise ValueError("the format must contain the day, month and year (e.g. %d/%m/%Y)")
        return value

    @field_validator("cleanup")
    @classmethod
    def _cleanup(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(CLEANUP_STEPS))
        if unknown:
            raise ValueError(
                f"unknown step {', '.join(unknown)}; use any of {', '.join(CLEANUP_STEPS)}"
            )
        return [step for step in CLEANUP_STEPS if step in value]  # the order they run in

    @field_validator("description")
    @classmethod
    def _description(cls, value: str) -> str:
        value = value.strip()
        if len(value) > 500:
            raise ValueError("at most 500 characters")
        return value


def _check_source_key(field: str, key: str, file_format: object) -> None:
    if not key.strip():
        raise ValueError(f"{field}: name the column or key to read it from")
    if len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"{field}: a column or key name has at most {MAX_KEY_LENGTH} characters")
    if file_format == "jsonl" and "" in key.split("."):
        raise ValueError(f"{field}: {key!r} is not a key path (dots separate nested keys)")


def _check_distinct_sources(fields: tuple[str, ...], mapping: Mapping[str, str]) -> None:
    """Unmapped fields read the column of their own name: no two fields may read one column."""
    readers: dict[str, str] = {}
    for field in fields:
        key = mapping.get(field, field)
        if key in readers:
            raise ValueError(f"{readers[key]} and {field} would both read {key!r}")
        readers[key] = field


def parse_profile_input(**fields: object) -> ProfileInput:
    """Validate raw input into ProfileInput, turning pydantic's errors into one clear message."""
    try:
        return ProfileInput.model_validate(fields)
    except ValidationError as exc:
        parts = [
            f"{'.'.join(map(str, e['loc']))}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        ]
        raise InvalidInput("; ".join(parts)) from exc


# --------------------------------------------------------------------------------------------
# What pages and the CLI see
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProfileView:
    """A profile as every shop sees it: never which shop made it, only whether it was you."""

    id: int
    name: str
    source: str
    kind: Kind
    file_format: ProfileFormat
    # A dict, left out of the hash so that views stay hashable (e.g. as select box options).
    mapping: Mapping[str, str] = dataclasses.field(hash=False)
    delimiter: str | None
    encoding: str | None
    date_format: str | None
    cleanup: tuple[str, ...]
    description: str
    is_mine: bool
    success_count: int
    failure_count: int
    uses: int
    success_rate: float | None
    last_successful_use: datetime | None
    score: float
    version: int

    @classmethod
    def of(
        cls, profile: ImportProfile, usage: ImportProfileUsage | None, actor: Actor
    ) -> ProfileView:
        assert profile.id is not None
        successes = usage.success_count if usage else 0
        failures = usage.failure_count if usage else 0
        uses = successes + failures
        return cls(
            id=profile.id,
            name=profile.name,
            source=profile.source,
            kind=cast(Kind, profile.kind),
            file_format=cast(ProfileFormat, profile.file_format),
            mapping={str(k): str(v) for k, v in profile.mapping.items()},
            delimiter=profile.delimiter,
            encoding=profile.encoding,
            date_format=profile.date_format,
            cleanup=tuple(profile.cleanup),
            description=profile.description,
            is_mine=profile.owner_tenant_id == actor.tenant_id,
            success_count=successes,
            failure_count=failures,
            uses=uses,
            success_rate=successes / uses if uses else None,
            last_successful_use=usage.last_successful_use if usage else None,
            score=wilson_lower_bound(successes, failures),
            version=profile.version,
        )

    def read_spec(self) -> ReadSpec:
        """The part of the profile that reading a file needs."""
        return ReadSpec(
            kind=self.kind,
            file_format=self.file_format,
            mapping=dict(self.mapping),
            delimiter=self.delimiter,
            encoding=self.encoding,
            date_format=self.date_format,
            cleanup=self.cleanup,
        )


# --------------------------------------------------------------------------------------------
# Reading (every role of every shop)
# --------------------------------------------------------------------------------------------


def _missing(profile_id: int) -> NotFound:
    return NotFound(f"There is no import profile with id {profile_id}; it may have been deleted.")


def list_profiles(
    *, session: Session, actor: Actor, source: str | None = None, kind: Kind | None = None
) -> list[ProfileView]:
    """Every shop's profiles (optionally of one source and kind), best first."""
    require_role(actor, *ALL_ROLES)
    query = select(ImportProfile, ImportProfileUsage).outerjoin(
        ImportProfileUsage, col(ImportProfileUsage.profile_id) == col(ImportProfile.id)
    )
    if source is not None:
        query = query.where(ImportProfile.source == source)
    if kind is not None:
        query = query.where(ImportProfile.kind == kind)
    rows = session.exec(query.order_by(col(ImportProfile.id))).all()
    views = [ProfileView.of(profile, usage, actor) for profile, usage in rows]
    # Among equals (say, none used yet) the shop's own profiles come first.
    views.sort(key=lambda v: not v.is_mine)
    return rank_by_success(
        views, lambda v: (v.success_count, v.failure_count), lambda v: v.last_successful_use
    )


def sources(*, session: Session, actor: Actor) -> list[str]:
    """The distinct source platforms that have a profile, sorted."""
    require_role(actor, *ALL_ROLES)
    found = session.exec(select(ImportProfile.source).distinct()).all()
    return sorted(found, key=lambda s: (s.casefold(), s))


def best_profile(*, session: Session, actor: Actor, source: str, kind: Kind) -> ProfileView | None:
    """The profile to preselect for a source and kind: the top-ranked one, if any."""
    ranked = list_profiles(session=session, actor=actor, source=source, kind=kind)
    return ranked[0] if ranked else None


def get_profile(*, session: Session, actor: Actor, profile_id: int) -> ProfileView:
    """One profile by id; NotFound when it does not exist (any longer)."""
    require_role(actor, *ALL_ROLES)
    row = session.exec(
        select(ImportProfile, ImportProfileUsage)
        .outerjoin(ImportProfileUsage, col(ImportProfileUsage.profile_id) == col(ImportProfile.id))
        .where(ImportProfile.id == profile_id)
    ).first()
    if row is None:
        raise _missing(profile_id)
    return ProfileView.of(row[0], row[1], actor)


def get_profile_by_name(*, session: Session, actor: Actor, name: str) -> ProfileView:
    """The profile called `name` (any case): the shop's own first, else the best-ranked one."""
    wanted = " ".join(name.split())
    candidates = [
        view
        for view in list_profiles(session=session, actor=actor)
        if view.name.casefold() == wanted.casefold()
    ]
    if not candidates:
        raise NotFound(f"There is no import profile named {wanted!r}.")
    # Stable sort of the ranked list: own shop first, then the exact spelling, then rank.
    candidates.sort(key=lambda v: (not v.is_mine, v.name != wanted))
    return candidates[0]


# --------------------------------------------------------------------------------------------
# Changing (admins of the shop that created the profile)
# --------------------------------------------------------------------------------------------

_EDITABLE = (
    "name",
    "source",
    "kind",
    "file_format",
    "mapping",
    "delimiter",
    "encoding",
    "date_format",
    "cleanup",
    "description",
)


def _values(data: ProfileInput) -> dict[str, Any]:
    return data.model_dump(include=set(_EDITABLE))


def _snapshot(profile: ImportProfile) -> dict[str, Any]:
    return {name: getattr(profile, name) for name in _EDITABLE}


def _taken(name: str) -> InvalidInput:
    return InvalidInput(f"Your shop already has an import profile named {name!r}; choose another.")


def create_profile(*, session: Session, actor: Actor, data: ProfileInput) -> ProfileView:
    """Add a profile owned by the actor's shop, with its zeroed use counters (admin only)."""
    require_role(actor, Role.ADMIN)
    profile = ImportProfile(owner_tenant_id=actor.tenant_id, **_values(data))
    # The unique (shop, name) index is the one place that knows about a concurrent create.
    try:
        with session.begin_nested():
            session.add(profile)
            session.flush()
    except IntegrityError as exc:
        raise _taken(data.name) from exc
    assert profile.id is not None
    usage = ImportProfileUsage(profile_id=profile.id)
    session.add(usage)
    audit.record(
        session=session,
        actor=actor,
        action="import_profile.create",
        entity_type=ENTITY,
        entity_id=profile.id,
        after=_snapshot(profile),
    )
    session.flush()
    return ProfileView.of(profile, usage, actor)


def _load_own(session: Session, actor: Actor, profile_id: int) -> ImportProfile:
    """The profile, if it exists and the actor's shop created it."""
    require_role(actor, Role.ADMIN)
    profile = session.get(ImportProfile, profile_id)
    if profile is None:
        raise _missing(profile_id)
    if profile.owner_tenant_id != actor.tenant_id:
        raise PermissionDenied("Only the shop that created a profile can change it.")
    return profile


def _stale(name: str) -> StaleEdit:
    return StaleEdit(
        f"The import profile {name!r} was changed by someone else since you loaded it; "
        "load it again to see the current values."
    )


def update_profile(
    *,
    session: Session,
    actor: Actor,
    profile_id: int,
    data: ProfileInput,
    expected_version: int,
) -> ProfileView:
    """Change a profile of the actor's own shop (admin only), refusing a stale edit."""
    profile = _load_own(session, actor, profile_id)
    if profile.version != expected_version:
        raise _stale(profile.name)
    before = _snapshot(profile)
    after = _values(data)
    changed = [name for name in _EDITABLE if before[name] != after[name]]
    if changed:
        _write_changes(session, profile, {name: after[name] for name in changed}, data.name)
        audit.record(
            session=session,
            actor=actor,
            action="import_profile.update",
            entity_type=ENTITY,
            entity_id=profile_id,
            before={name: before[name] for name in changed},
            after={name: after[name] for name in changed},
        )
        session.flush()
    return get_profile(session=session, actor=actor, profile_id=profile_id)


def _write_changes(
    session: Session, profile: ImportProfile, changes: dict[str, Any], name: str
) -> None:
    """One conditional UPDATE: a concurrent edit that committed first makes it match no row."""
    statement = (
        update(ImportProfile)
        .where(col(ImportProfile.id) == profile.id, col(ImportProfile.version) == profile.version)
        .values(**changes, version=profile.version + 1, updated_at=utcnow())
    )
    try:
        with session.begin_nested():
            matched = session.exec(statement).rowcount
    except IntegrityError as exc:
        raise _taken(name) from exc
    if matched != 1:
        raise _stale(profile.name)
    session.refresh(profile)


def delete_profile(
    *, session: Session, actor: Actor, profile_id: int, expected_version: int
) -> None:
    """Delete a profile of the actor's own shop and its counters (admin only)."""
    profile = _load_own(session, actor, profile_id)
    stale = profile.version != expected_version
    if not stale:
        statement = delete(ImportProfile).where(
            col(ImportProfile.id) == profile_id, col(ImportProfile.version) == expected_version
        )
        stale = session.exec(statement).rowcount != 1
    if stale:
        raise _stale(profile.name)
    # The counter row follows by ON DELETE CASCADE (SQLite too: foreign_keys is on).
    audit.record(
        session=session,
        actor=actor,
        action="import_profile.delete",
        entity_type=ENTITY,
        entity_id=profile_id,
        before=_snapshot(profile),
    )
    session.expunge(profile)
    session.flush()


# --------------------------------------------------------------------------------------------
# Counting uses (any shop's import, any profile)
# --------------------------------------------------------------------------------------------


def is_success(*, valid_rows: int, total_rows: int) -> bool:
    """Whether an import counts as a success: rows read and at least SUCCESS_SHARE valid."""
    return total_rows > 0 and valid_rows / total_rows >= SUCCESS_SHARE


def record_use(
    *, session: Session, actor: Actor, profile_id: int, valid_rows: int, total_rows: int
) -> bool:
    """Count one import that used the profile, atomically in SQL; return whether it succeeded."""
    require_role(actor, Role.ADMIN)
    if not 0 <= valid_rows <= total_rows:
        raise InvalidInput(
            f"valid_rows ({valid_rows}) must lie between 0 and total_rows ({total_rows})."
        )
    success = is_success(valid_rows=valid_rows, total_rows=total_rows)
    now = utcnow()
    # Increment in the database, never read-modify-write: concurrent imports of any shop
    # then serialize on the row lock and no count is lost.
    if success:
        values = {
            "success_count": col(ImportProfileUsage.success_count) + 1,
            "last_successful_use": now,
            "last_used_at": now,
        }
    else:
        values = {"failure_count": col(ImportProfileUsage.failure_count) + 1, "last_used_at": now}
    statement = (
        update(ImportProfileUsage)
        .where(col(ImportProfileUsage.profile_id) == profile_id)
        .values(values)
        .execution_options(synchronize_session=False)
    )
    if session.exec(statement).rowcount != 1:
        raise _missing(profile_id)
    return success


# --------------------------------------------------------------------------------------------
# Starting profiles
# --------------------------------------------------------------------------------------------

DEFAULT_PROFILES: tuple[dict[str, Any], ...] = (
    {
        "name": "Shopify Inbox CSV",
        "source": "Shopify Inbox",
        "kind": "examples",
        "file_format": "csv",
        "mapping": {"text": "Message", "intent": "Topic", "timestamp": "Created at"},
        "delimiter": ",",
        "date_format": "%Y-%m-%d %H:%M:%S %z",
        "cleanup": ["strip_html", "collapse_whitespace"],
        "description": (
            "Customer messages with a Topic column as the label, "
            "e.g. Created at = 2025-05-20 15:30:00 +0100."
        ),
    },
    {
        "name": "Zendesk tickets JSONL",
        "source": "Zendesk",
        "kind": "examples",
        "file_format": "jsonl",
        "mapping": {
            "text": "description",
            "intent": "custom_fields.intent",
            "timestamp": "created_at",
        },
        "cleanup": ["strip_quoted_reply", "strip_signature", "collapse_whitespace"],
        "description": (
            "One ticket per line: description, created_at (ISO 8601) and the label in the "
            'nested key custom_fields.intent, e.g. {"custom_fields": {"intent": "order_status"}}.'
            " Drops quoted replies and e-mail signatures."
        ),
    },
    {
        "name": "Gorgias conversations CSV",
        "source": "Gorgias",
        "kind": "conversations",
        "file_format": "csv",
        "mapping": {
            "conversation_id": "Ticket ID",
            "customer_id": "Customer email",
            "role": "Sender",
            "text": "Body",
            "timestamp": "Sent at",
        },
        "delimiter": ",",
        "cleanup": list(CLEANUP_STEPS),
        "description": (
            "One row per message of a ticket; Sender says who wrote it (customer, agent or "
            "assistant), Sent at is ISO 8601. HTML, quoted replies and signatures are removed."
        ),
    },
    {
        "name": "Trellis CSV",
        "source": "Trellis",
        "kind": "examples",
        "file_format": "csv",
        "mapping": {field: field for field in EXAMPLE_FIELDS},
        "delimiter": ",",
        "encoding": "utf-8",
        "description": "Labelled examples as Trellis exports them: text, intent, response, "
        "confidence, timestamp (ISO 8601).",
    },
    {
        "name": "Trellis conversations CSV",
        "source": "Trellis",
        "kind": "conversations",
        "file_format": "csv",
        "mapping": {field: field for field in CONVERSATION_FIELDS},
        "delimiter": ",",
        "encoding": "utf-8",
        "description": "Conversation logs as Trellis exports them, one row per message.",
    },
)


def seed_default_profiles(*, session: Session, actor: Actor) -> int:
    """Add the starting profiles the shop lacks (by name), with zero uses; return how many."""
    require_role(actor, Role.ADMIN)
    existing = set(
        session.exec(
            select(ImportProfile.name).where(ImportProfile.owner_tenant_id == actor.tenant_id)
        ).all()
    )
    added = 0
    for fields in DEFAULT_PROFILES:
        if fields["name"] in existing:
            continue
        create_profile(session=session, actor=actor, data=parse_profile_input(**fields))
        added += 1
    return added
