"""A shop's own thresholds: what the review queue counts as unsure (admins change them)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, select

from core import audit
from core.access import Actor, Role, require_role
from core.errors import InvalidInput, StaleEdit
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
    row = _row(session, actor)
    current = row.version if row else 0
    if current != expected_version:
        raise StaleEdit(
            "Another admin changed the review thresholds since you loaded them; "
            "the page now shows the current values."
        )
    before = (
        None if row is None else {"confidence": row.review_confidence, "margin": row.review_margin}
    )
    if row is None:
        row = ShopSettings(tenant_id=actor.tenant_id, version=0)
    row.review_confidence, row.review_margin = confidence, margin
    row.updated_at, row.updated_by, row.version = utcnow(), actor.user_id, row.version + 1
    session.add(row)
    session.flush()
    audit.record(
        session=session,
        actor=actor,
        action="settings.review_thresholds",
        entity_type="shop_settings",
        entity_id=row.id,
        before=before,
        after={"confidence": confidence, "margin": margin},
    )
    return ReviewThresholds(confidence, margin, row.version)
