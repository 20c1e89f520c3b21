"""A shop's own thresholds: what the review queue counts as unsure (admins change them)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import update
from sqlmodel import Session, col, select

from core import audit, review_groups
from core.access import Actor, Role, require_role
from core.errors import InvalidInput, StaleEdit
from core.sql import insert_unless_exists
from db.models import ShopSettings, utcnow


@dataclass(frozen=True)
class ReviewThresholds:
    """An unreviewed message needs a person when its confidence is below `confidence` or its
    top-1/top-2 margin is below `margin`. `version` guards concurrent edits (0: never saved)."""

    confidence: float = 0.6
    margin: float = 0.1
    version: int = 0


def _row(session: Session, actor: Actor) -> ShopSettings | None:
    return session.exec(
        select(ShopSettings).where(ShopSettings.tenant_id == actor.tenant_id)
    ).first()


def review_thresholds(*, session: Session, actor: Actor) -> ReviewThresholds:
    """The shop's review thresholds, or the defaults until an admin saves some (every role)."""
    row = _row(session, actor)
    if row is None:
        return ReviewThresholds()
    return ReviewThresholds(row.review_confidence, row.review_margin, row.version)


def set_review_thresholds(
    *, session: Session, actor: Actor, confidence: float, margin: float, expected_version: int
) -> ReviewThresholds:
    """Change the shop's review thresholds (admin; audited; refuses a stale edit)."""
    require_role(actor, Role.ADMIN)
    for name, value in (("confidence", confidence), ("margin", margin)):
        if not 0 <= value <= 1:
            raise InvalidInput(f"The {name} threshold must lie between 0 and 1 (got {value}).")
    before = review_thresholds(session=session, actor=actor)
    ensure_settings_row(session=session, actor=actor)
    # Compare and set: of two admins saving at once, exactly one moves the version on (the
    # other's UPDATE matches no row), whatever each read before.
    saved = session.exec(
        update(ShopSettings)
        .where(
            col(ShopSettings.tenant_id) == actor.tenant_id,
            col(ShopSettings.version) == expected_version,
        )
        .values(
            review_confidence=confidence,
            review_margin=margin,
            version=expected_version + 1,
            updated_at=utcnow(),
            updated_by=actor.user_id,
        )
    ).rowcount
    if saved != 1:
        raise StaleEdit(
            "Another admin changed the review thresholds since you loaded them; "
            "the page now shows the current values."
        )
    audit.record(
        session=session,
        actor=actor,
        action="settings.review_thresholds",
        entity_type="shop_settings",
        entity_id=settings_id(session=session, actor=actor),
        before=None
        if before.version == 0
        else {"confidence": before.confidence, "margin": before.margin},
        after={"confidence": confidence, "margin": margin},
    )
    # Which examples count as unsure changed: every group of the queue may have.
    review_groups.refresh(session=session, actor=actor, text_hashes=None)
    return ReviewThresholds(confidence, margin, expected_version + 1)


def ensure_settings_row(*, session: Session, actor: Actor) -> None:
    """The shop's settings row, created with the defaults if missing (concurrency-safe)."""
    values = ShopSettings(tenant_id=actor.tenant_id, version=0).model_dump(exclude={"id"})
    session.execute(insert_unless_exists(session, ShopSettings, ["tenant_id"]).values(**values))


def compare_and_set(
    *,
    session: Session,
    actor: Actor,
    version_field: str,
    expected_version: int,
    values: Mapping[str, object],
) -> bool:
    """Save `values` if the settings' `version_field` is still `expected_version`: of two
    admins saving at once, exactly one moves the version on (the other's UPDATE matches no
    row). Each group of settings has its own version, so editing one never makes another stale."""
    ensure_settings_row(session=session, actor=actor)
    version = getattr(ShopSettings, version_field)
    statement = (
        update(ShopSettings)
        .where(col(ShopSettings.tenant_id) == actor.tenant_id, col(version) == expected_version)
        .values(
            **values,
            **{version_field: expected_version + 1},
            updated_at=utcnow(),
            updated_by=actor.user_id,
        )
    )
    return session.exec(statement).rowcount == 1  # type: ignore[call-overload]


def settings_id(*, session: Session, actor: Actor) -> int | None:
    """The id of the shop's settings row (None until one exists)."""
    return session.exec(
        select(ShopSettings.id).where(ShopSettings.tenant_id == actor.tenant_id)
    ).first()
