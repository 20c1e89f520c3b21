"""The shop's trained models: store, list, activate, roll back, and the one that serves.

Artifacts live in the database (every app replica serves the same model); a loaded model is
verified (SHA-256, pinned types) once and cached per (shop, version), read-only.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from core import audit, review_groups
from core.access import Actor, Role, require_role
from core.artifacts import dump_model, load_model, sha256_of
from core.errors import InvalidInput, NotFound
from core.model import Explanation, IntentModel
from db.models import Example, ModelVersion, utcnow

VIEW_COLUMNS = (
    ModelVersion.id,
    ModelVersion.version,
    ModelVersion.run_id,
    ModelVersion.sha256,
    ModelVersion.size_bytes,
    ModelVersion.features,
    ModelVersion.intents,
    ModelVersion.metrics,
    ModelVersion.is_active,
    ModelVersion.created_at,
    ModelVersion.activated_at,
)


@dataclass(frozen=True)
class ModelVersionView:
    """A model version as pages and the CLI see it (never the artifact bytes)."""

    id: int
    version: int
    run_id: int | None
    sha256: str
    size_bytes: int
    features: str
    intents: list[str]
    metrics: dict[str, Any]
    is_active: bool
    created_at: datetime
    activated_at: datetime | None


@dataclass(frozen=True)
class Prediction:
    intent: str
    confidence: float
    top: list[tuple[str, float]]
    model_version: int

    @property
    def margin(self) -> float:
        return margin_of(self.top)


def margin_of(top: Sequence[tuple[str, float]] | Sequence[list[Any]]) -> float:
    """Top-1 minus top-2 probability: small means the model hesitated between two intents."""
    first = float(top[0][1]) if top else 0.0
    return first - (float(top[1][1]) if len(top) > 1 else 0.0)


class _ModelCache:
    """Loaded models by (shop, version id, sha256); a bounded LRU shared by the process."""

    def __init__(self, size: int = 16) -> None:
        self._size, self._lock = size, threading.Lock()
        self._models: OrderedDict[tuple[int, int, str], IntentModel] = OrderedDict()

    def get(self, key: tuple[int, int, str]) -> IntentModel | None:
        with self._lock:
            model = self._models.get(key)
            if model is not None:
                self._models.move_to_end(key)
            return model

    def put(self, key: tuple[int, int, str], model: IntentModel) -> None:
        with self._lock:
            self._models[key] = model
            while len(self._models) > self._size:
                self._models.popitem(last=False)


MODEL_CACHE = _ModelCache()


def _views(session: Session, actor: Actor, *where: Any) -> list[ModelVersionView]:
    rows = session.exec(
        select(*VIEW_COLUMNS)  # type: ignore[call-overload]
        .where(ModelVersion.tenant_id == actor.tenant_id, *where)
        .order_by(col(ModelVersion.version).desc())
    ).all()
    return [ModelVersionView(*row) for row in rows]


def store_version(
    *,
    session: Session,
    actor: Actor,
    model: IntentModel,
    run_id: int | None,
    metrics: dict[str, Any],
    features: str = "tfidf",
) -> ModelVersionView:
    """Save a trained model as the shop's next version (not serving yet)."""
    require_role(actor, Role.ADMIN)
    data = dump_model(model)
    latest = session.exec(
        select(func.max(ModelVersion.version)).where(ModelVersion.tenant_id == actor.tenant_id)
    ).one()
    row = ModelVersion(
        tenant_id=actor.tenant_id,
        version=(latest or 0) + 1,
        run_id=run_id,
        artifact=data,
        sha256=sha256_of(data),
        size_bytes=len(data),
        features=features,
        intents=model.intents,
        metrics=metrics,
    )
    session.add(row)
    session.flush()
    assert row.id is not None
    MODEL_CACHE.put((actor.tenant_id, row.id, row.sha256), model)
    return _views(session, actor, ModelVersion.id == row.id)[0]


def list_versions(*, session: Session, actor: Actor) -> list[ModelVersionView]:
    """Every model version of the shop, newest first (admin, manager)."""
    require_role(actor, Role.ADMIN, Role.MANAGER)
    return _views(session, actor)


def serving_version(*, session: Session, actor: Actor) -> ModelVersionView | None:
    """The version that serves now, if any (every role)."""
    found = _views(session, actor, col(ModelVersion.is_active))
    return found[0] if found else None


def activate(
    *, session: Session, actor: Actor, version: int, reason: str | None = None
) -> ModelVersionView:
    """Make `version` the serving model (admin); audited with the version it replaces."""
    require_role(actor, Role.ADMIN)
    target = session.exec(
        select(ModelVersion).where(
            ModelVersion.tenant_id == actor.tenant_id, ModelVersion.version == version
        )
    ).first()
    if target is None:
        raise NotFound(f"Your shop has no model version {version}.")
    current = session.exec(
        select(ModelVersion).where(
            ModelVersion.tenant_id == actor.tenant_id, col(ModelVersion.is_active)
        )
    ).first()
    if current is not None and current.id == target.id:
        return _views(session, actor, ModelVersion.id == target.id)[0]
    if current is not None:  # one serving model per shop: switch off first (unique index)
        current.is_active = False
        session.add(current)
        session.flush()
    target.is_active, target.activated_at = True, utcnow()
    session.add(target)
    session.flush()
    audit.record(
        session=session,
        actor=actor,
        action="model.activate",
        entity_type="model",
        entity_id=version,
        before={"serving": current.version if current else None},
        after={"serving": version},
        reason=reason,
    )
    return _views(session, actor, ModelVersion.id == target.id)[0]


def rollback(*, session: Session, actor: Actor, reason: str | None = None) -> ModelVersionView:
    """Serve again the version that served before the current one (admin)."""
    require_role(actor, Role.ADMIN)
    previous = session.exec(
        select(ModelVersion.version)
        .where(
            ModelVersion.tenant_id == actor.tenant_id,
            ~col(ModelVersion.is_active),
            col(ModelVersion.activated_at).is_not(None),
        )
        .order_by(col(ModelVersion.activated_at).desc())
    ).first()
    if previous is None:
        raise InvalidInput("There is no earlier serving model to roll back to.")
    return activate(session=session, actor=actor, version=previous, reason=reason or "rollback")


def serving_model(*, session: Session, actor: Actor) -> tuple[ModelVersionView, IntentModel] | None:
    """The serving model, verified and loaded (from the cache when it can be)."""
    view = serving_version(session=session, actor=actor)
    if view is None:
        return None
    key = (actor.tenant_id, view.id, view.sha256)
    model = MODEL_CACHE.get(key)
    if model is None:
        data = session.exec(
            select(ModelVersion.artifact).where(
                ModelVersion.tenant_id == actor.tenant_id, ModelVersion.id == view.id
            )
        ).one()
        model = load_model(data, sha256=view.sha256)
        MODEL_CACHE.put(key, model)
    return view, model


def predict(*, session: Session, actor: Actor, text: str, k: int = 5) -> Prediction | None:
    """The serving model's top-k intents for one message, or None when no model serves."""
    loaded = serving_model(session=session, actor=actor)
    if loaded is None:
        return None
    view, model = loaded
    top = model.predict_top(text, k=k)
    return Prediction(top[0][0], top[0][1], top, view.version)


def explain(
    *, session: Session, actor: Actor, text: str, k: int = 5
) -> tuple[Prediction, Explanation] | None:
    """Top-k intents of one message and why: the words that pushed toward the prediction and
    away from it, against the runner-up (admin, florist). None when no model serves."""
    require_role(actor, Role.ADMIN, Role.FLORIST)
    loaded = serving_model(session=session, actor=actor)
    if loaded is None:
        return None
    view, model = loaded
    top = model.predict_top(text, k=k)
    return Prediction(top[0][0], top[0][1], top, view.version), model.explain(text)


def fill_predictions(*, session: Session, actor: Actor, batch: int = 2_000) -> int:
    """Give every example that has no prediction yet the serving model's (admin); returns how
    many. Labelled ones also learn whether the prediction was right (intent_correct)."""
    require_role(actor, Role.ADMIN)
    loaded = serving_model(session=session, actor=actor)
    if loaded is None:
        return 0
    _, model = loaded
    done, hashes = 0, set()
    while rows := session.exec(
        select(Example)
        .where(Example.tenant_id == actor.tenant_id, col(Example.detected_intent).is_(None))
        .limit(batch)
    ).all():
        for example, top in zip(rows, model.predict_many([r.text for r in rows], k=3), strict=True):
            example.detected_intent, example.confidence = top[0]
            example.top_intents = [list(pair) for pair in top]
            example.margin = margin_of(top)
            if example.correct_intent is not None:
                example.intent_correct = example.correct_intent == example.detected_intent
            session.add(example)
            hashes.add(example.text_hash)
        session.flush()
        done += len(rows)
    if hashes:
        review_groups.refresh(session=session, actor=actor, text_hashes=hashes)
    return done
