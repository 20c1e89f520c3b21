"""Training runs: select -> clean -> split -> fit -> evaluate against the serving model -> gate.

A run is a TrainingRun row (pending -> running -> completed | failed). `execute_run` does the
work in the calling thread and commits its progress (stage, fraction done, learning-curve
points, heartbeat) in its own short sessions, so every other session, replica and page sees the
run move. A failure anywhere marks the run failed with the reason; the serving model changes
only in the final saving transaction, so a failed run never touches it.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from scipy.stats import binomtest
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support
from sqlalchemy import Engine, event, func, or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from core import registry
from core.access import Actor, Role, require_role
from core.config import Settings, get_settings
from core.errors import InvalidInput, NotFound, TrellisError
from core.model import ECE_BINS, IntentModel, example_weights, expected_calibration_error, fit
from core.text import normalize_text
from db.engine import session_scope
from db.models import (
    Example,
    ExampleStatus,
    ModelVersion,
    RunStatus,
    TrainingRun,
    utcnow,
)

log = logging.getLogger(__name__)

SEED = 13
SPLIT = (0.70, 0.15, 0.15)
MIN_SPLIT_EXAMPLES = 3  # an intent with fewer goes to training only (reported)
THIN_INTENT = 10  # fewer examples than this: reported as too few to learn well
CURVE_FRACTIONS = (0.25, 0.5, 0.75)
CURVE_MAX_EXAMPLES = 3_000  # the learning curve subsamples; the full fit is its 1.0 point
FIRST_MODEL_MIN_EXAMPLES, FIRST_MODEL_MIN_INTENTS = 20, 2
CONFUSION_LABELS, MISCLASSIFIED_LIMIT, TOP_FLIPS = 30, 200, 10
STALE_AFTER = timedelta(minutes=10)  # an active run without a heartbeat this long was abandoned
TRAINABLE = (
    ExampleStatus.REVIEWED.value,
    ExampleStatus.APPROVED.value,
    ExampleStatus.USED_IN_TRAINING.value,
)
STAGES = (
    "selecting",
    "cleaning",
    "splitting",
    "learning_curve",
    "fitting",
    "evaluating",
    "baseline",
    "shadow",
    "gate",
    "saving",
    "done",
)
# Where each stage starts on the progress bar (the learning curve fills the gap to fitting).
STAGE_PROGRESS = dict(
    zip(STAGES, (0.02, 0.05, 0.08, 0.10, 0.45, 0.70, 0.75, 0.82, 0.90, 0.95, 1.0), strict=True)
)
BUSY = "A training run is already in progress for this shop."


@dataclass(frozen=True)
class RunOptions:
    include_unreviewed: bool = True
    min_confidence: float | None = None  # None: TRELLIS_TRAIN_MIN_CONFIDENCE
    corrected_weight: float | None = None  # None: TRELLIS_CORRECTED_WEIGHT


@dataclass(frozen=True)
class RunView:
    """A training run as pages and the CLI see it."""

    id: int
    status: str
    trigger: str
    stage: str
    progress: float
    eta_seconds: float | None
    points: list[dict[str, Any]]
    counts: dict[str, Any]
    metrics: dict[str, Any] | None
    baseline_metrics: dict[str, Any] | None
    gate: dict[str, Any] | None
    shadow: dict[str, Any] | None
    error: str | None
    deployed: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_s: float | None
    model_version: int | None


@dataclass(frozen=True)
class Labelled:
    """One training example after selection: text, intent, and whether a person corrected it."""

    text: str
    intent: str
    corrected: bool


@dataclass(frozen=True)
class Evaluation:
    metrics: dict[str, Any]
    correct: list[bool]


# --- reading runs -------------------------------------------------------------------------


def _view(run: TrainingRun, model_version: int | None) -> RunView:
    assert run.id is not None
    duration = None
    if run.started_at and run.finished_at:
        duration = (run.finished_at - run.started_at).total_seconds()
    return RunView(
        id=run.id,
        status=run.status,
        trigger=run.trigger,
        stage=run.stage,
        progress=run.progress,
        eta_seconds=run.eta_seconds,
        points=list(run.points or []),
        counts=dict(run.counts or {}),
        metrics=run.metrics,
        baseline_metrics=run.baseline_metrics,
        gate=run.gate,
        shadow=run.shadow,
        error=run.error,
        deployed=run.deployed,
        created_at=run.created_at,
        started_at=run.started_at,
        finished_at=run.finished_at,
        duration_s=duration,
        model_version=model_version,
    )


def _versions_of(session: Session, actor: Actor, run_ids: Sequence[int]) -> dict[int, int]:
    if not run_ids:
        return {}
    rows = session.exec(
        select(ModelVersion.run_id, ModelVersion.version).where(
            ModelVersion.tenant_id == actor.tenant_id, col(ModelVersion.run_id).in_(run_ids)
        )
    ).all()
    return {int(run_id): version for run_id, version in rows if run_id is not None}


def _views(session: Session, actor: Actor, runs: Sequence[TrainingRun]) -> list[RunView]:
    versions = _versions_of(session, actor, [r.id for r in runs if r.id is not None])
    return [_view(r, versions.get(r.id or 0)) for r in runs]


def _load(session: Session, actor: Actor, run_id: int) -> TrainingRun:
    run = session.exec(
        select(TrainingRun).where(
            TrainingRun.tenant_id == actor.tenant_id, TrainingRun.id == run_id
        )
    ).first()
    if run is None:
        raise NotFound(f"Your shop has no training run {run_id}.")
    return run


def get_run(*, session: Session, actor: Actor, run_id: int) -> RunView:
    """One training run of the shop (admin, manager)."""
    require_role(actor, Role.ADMIN, Role.MANAGER)
    return _views(session, actor, [_load(session, actor, run_id)])[0]


def list_runs(*, session: Session, actor: Actor, limit: int = 50) -> list[RunView]:
    """The shop's latest training runs, newest first (admin, manager)."""
    require_role(actor, Role.ADMIN, Role.MANAGER)
    runs = session.exec(
        select(TrainingRun)
        .where(TrainingRun.tenant_id == actor.tenant_id)
        .order_by(col(TrainingRun.created_at).desc(), col(TrainingRun.id).desc())
        .limit(limit)
    ).all()
    return _views(session, actor, runs)


def _active(session: Session, actor: Actor) -> TrainingRun | None:
    return session.exec(
        select(TrainingRun).where(
            TrainingRun.tenant_id == actor.tenant_id,
            col(TrainingRun.status).in_((RunStatus.PENDING.value, RunStatus.RUNNING.value)),
        )
    ).first()


def active_run(*, session: Session, actor: Actor) -> RunView | None:
    """The shop's pending or running run, if any (admin, manager)."""
    require_role(actor, Role.ADMIN, Role.MANAGER)
    run = _active(session, actor)
    return None if run is None else _views(session, actor, [run])[0]


# --- starting runs ------------------------------------------------------------------------


def start_run(
    *, session: Session, actor: Actor, trigger: str = "manual", options: RunOptions | None = None
) -> RunView:
    """Queue a training run for the shop (admin); the database refuses a second active one."""
    require_role(actor, Role.ADMIN)
    _fail_abandoned(session, actor)
    run = TrainingRun(
        tenant_id=actor.tenant_id,
        trigger=trigger,
        started_by=actor.user_id,
        config=asdict(options or RunOptions()),
    )
    try:
        with session.begin_nested():
            session.add(run)
    except IntegrityError as exc:
        raise InvalidInput(BUSY) from exc
    return _view(run, None)


def _fail_abandoned(session: Session, actor: Actor) -> None:
    """An active run whose process died would block the shop for ever: close it."""
    run = _active(session, actor)
    if run is None:
        return
    last_sign = run.heartbeat_at or run.created_at
    if utcnow() - last_sign < STALE_AFTER:
        return
    run.status, run.finished_at = RunStatus.FAILED.value, utcnow()
    run.error = f"Abandoned: no progress for {int(STALE_AFTER.total_seconds() // 60)} minutes."
    session.add(run)
    session.flush()


def launch_run(*, engine: Engine, actor: Actor, run_id: int) -> threading.Thread:
    """execute_run on a daemon thread, started."""
    thread = threading.Thread(
        target=execute_run,
        kwargs={"engine": engine, "actor": actor, "run_id": run_id},
        name=f"training-run-{run_id}",
        daemon=True,
    )
    thread.start()
    return thread


def maybe_auto_retrain(*, session: Session, actor: Actor, launch: bool = True) -> RunView | None:
    """Queue a run once TRELLIS_AUTO_RETRAIN_AFTER examples were reviewed since the last run;
    with `launch` it starts on a worker thread when this session commits (else the caller runs
    it: the command line, which would exit under a background thread)."""
    threshold = get_settings().auto_retrain_after
    last = session.exec(
        select(func.max(TrainingRun.created_at)).where(TrainingRun.tenant_id == actor.tenant_id)
    ).one()
    reviewed = select(func.count()).where(
        Example.tenant_id == actor.tenant_id, col(Example.reviewed_at).is_not(None)
    )
    if last is not None:
        reviewed = reviewed.where(col(Example.reviewed_at) > last)
    if session.exec(reviewed).one() < threshold or _active(session, actor) is not None:
        return None
    system = Actor(
        None, actor.tenant_id, Role.ADMIN, "auto-retrain", "Automatic retraining", actor.tenant_name
    )
    try:
        view = start_run(session=session, actor=system, trigger="auto")
    except InvalidInput:
        return None
    if not launch:
        return view
    engine = session.get_bind()
    assert isinstance(engine, Engine)

    def start(_session: Session) -> None:
        launch_run(engine=engine, actor=system, run_id=view.id)

    event.listen(session, "after_commit", start, once=True)
    return view


# --- executing runs -----------------------------------------------------------------------


class _Progress:
    """Commits a run's progress in short sessions of its own, so others see it at once."""

    def __init__(self, engine: Engine, actor: Actor, run_id: int) -> None:
        self.engine, self.actor, self.run_id = engine, actor, run_id
        self.clock = time.monotonic()
        self.points: list[dict[str, Any]] = []

    def update(
        self, *, stage: str | None = None, progress: float | None = None, **fields: Any
    ) -> None:
        with session_scope(self.actor, engine=self.engine) as session:
            run = _load(session, self.actor, self.run_id)
            if stage is not None:
                run.stage = stage
                progress = STAGE_PROGRESS[stage] if progress is None else progress
            if progress is not None:
                run.progress = progress
                run.eta_seconds = self._eta(progress)
            for name, value in fields.items():
                setattr(run, name, value)
            run.heartbeat_at = utcnow()
            session.add(run)

    def point(self, fraction: float, macro_f1: float, progress: float) -> None:
        self.points.append({"fraction": round(fraction, 4), "macro_f1": round(macro_f1, 4)})
        self.update(progress=progress, points=list(self.points))

    def _eta(self, progress: float) -> float | None:
        if progress < 0.05 or progress >= 1:
            return None if progress < 1 else 0.0
        elapsed = time.monotonic() - self.clock
        return round(elapsed * (1 - progress) / progress, 1)


def execute_run(*, engine: Engine, actor: Actor, run_id: int) -> RunView:
    """Run a pending training run to its end in this thread; a failure marks it failed."""
    require_role(actor, Role.ADMIN)
    with session_scope(actor, engine=engine) as session:
        run = _load(session, actor, run_id)
        if run.status != RunStatus.PENDING.value:
            raise InvalidInput(f"Training run {run_id} has already been started.")
        run.status, run.started_at, run.heartbeat_at = RunStatus.RUNNING.value, utcnow(), utcnow()
        session.add(run)
        options = RunOptions(**run.config)
    progress = _Progress(engine, actor, run_id)
    try:
        _train(progress, options)
    except Exception as exc:  # every failure ends as a failed run, never a stuck one
        if not isinstance(exc, TrellisError):
            log.exception("Training run %s failed", run_id)
        _mark_failed(progress, exc)
    else:
        _find_label_issues(engine, actor, run_id)
    with session_scope(actor, engine=engine) as session:
        return get_run(session=session, actor=actor, run_id=run_id)


def _find_label_issues(engine: Engine, actor: Actor, run_id: int) -> None:
    """After a completed run, flag the examples whose label is probably wrong (the run stands
    whatever happens here)."""
    from core import label_issues

    try:
        with session_scope(actor, engine=engine) as session:
            label_issues.detect(session=session, actor=actor)
    except Exception:
        log.exception("Label-issue detection after run %s failed", run_id)


def _mark_failed(progress: _Progress, exc: Exception) -> None:
    reason = str(exc) if isinstance(exc, TrellisError) else f"{type(exc).__name__}: {exc}"
    progress.update(
        status=RunStatus.FAILED.value,
        error=reason or type(exc).__name__,
        deployed=False,
        finished_at=utcnow(),
        eta_seconds=None,
    )


def _train(progress: _Progress, options: RunOptions) -> None:
    settings = get_settings()
    engine, actor = progress.engine, progress.actor
    progress.update(stage="selecting")
    with session_scope(actor, engine=engine) as session:
        selected = select_examples(session=session, actor=actor, options=options, settings=settings)
    progress.update(stage="cleaning", counts={"selected": len(selected)})
    examples, cleaning = clean_examples(selected, max_length=settings.max_text_length)
    progress.update(stage="splitting", counts={"selected": len(selected), **cleaning})
    train, validation, test, train_only = stratified_split(examples)
    counts = {"selected": len(selected), **cleaning, **_split_counts(train, validation, test)}
    counts["train_only_intents"] = train_only
    progress.update(stage="learning_curve", counts=counts)
    if not test:
        raise InvalidInput(
            f"Too few examples to set a test split aside: an intent needs {MIN_SPLIT_EXAMPLES}."
        )
    weight = options.corrected_weight or settings.corrected_weight
    _learning_curve(progress, train, validation or test, weight)
    progress.update(stage="fitting")
    model = fit_model(train, weight, validation)
    held_out = validation or test
    progress.point(1.0, _macro_f1(model, held_out), STAGE_PROGRESS["evaluating"])
    progress.update(stage="evaluating")
    new = evaluate(model, test)
    progress.update(stage="baseline", metrics=new.metrics)
    with session_scope(actor, engine=engine) as session:
        serving = registry.serving_model(session=session, actor=actor)
        live = _live_texts(session, actor, settings.shadow_messages)
    old = evaluate(serving[1], test) if serving else None
    progress.update(stage="shadow", baseline_metrics=old.metrics if old else None)
    shadow = shadow_replay(model, serving[1] if serving else None, live)
    progress.update(stage="gate", shadow=shadow)
    gate = deploy_gate(
        metrics=new.metrics,
        baseline=old.metrics if old else None,
        train_examples=len(train),
        intents=len(model.intents),
        settings=settings,
    )
    gate.update(mcnemar(new.correct, old.correct if old else None))
    progress.update(stage="saving", gate=gate)
    _save(progress, model, new.metrics, gate)


def _split_counts(
    train: list[Labelled], validation: list[Labelled], test: list[Labelled]
) -> dict[str, Any]:
    return {
        "train": len(train),
        "validation": len(validation),
        "test": len(test),
        "intents": len({e.intent for e in train}),
    }


def _save(
    progress: _Progress, model: IntentModel, metrics: dict[str, Any], gate: dict[str, Any]
) -> None:
    """Store the version, activate it if the gate says so, and close the run: one transaction."""
    actor = progress.actor
    summary = {
        k: metrics[k]
        for k in ("accuracy", "macro_f1", "macro_precision", "macro_recall", "ece", "n_test")
    }
    with session_scope(actor, engine=progress.engine) as session:
        stored = registry.store_version(
            session=session, actor=actor, model=model, run_id=progress.run_id, metrics=summary
        )
        if gate["deploy"]:
            registry.activate(
                session=session,
                actor=actor,
                version=stored.version,
                reason="deploy gate: " + "; ".join(gate["reasons"]),
            )
        run = _load(session, actor, progress.run_id)
        run.status, run.stage, run.progress = RunStatus.COMPLETED.value, "done", 1.0
        run.deployed, run.finished_at, run.heartbeat_at = bool(gate["deploy"]), utcnow(), utcnow()
        run.eta_seconds = 0.0
        session.add(run)


# --- the steps ----------------------------------------------------------------------------


def select_examples(
    *, session: Session, actor: Actor, options: RunOptions, settings: Settings
) -> list[Labelled]:
    """Reviewed and approved examples, plus confident unreviewed ones if the options say so."""
    trusted = col(Example.status).in_(TRAINABLE)
    where: Any = trusted
    if options.include_unreviewed:
        floor = (
            settings.train_min_confidence
            if options.min_confidence is None
            else options.min_confidence
        )
        confident = (
            (col(Example.status) == ExampleStatus.PENDING.value)
            & col(Example.detected_intent).is_not(None)
            & (col(Example.confidence) >= floor)
        )
        where = or_(trusted, confident)
    rows = session.exec(
        select(  # type: ignore[call-overload]
            Example.text,
            Example.correct_intent,
            Example.detected_intent,
            Example.intent_correct,
            Example.reviewed,
            Example.status,
        )
        .where(Example.tenant_id == actor.tenant_id, where)
        .order_by(col(Example.id))
        .execution_options(yield_per=5_000)
    )
    selected = []
    for text, correct, detected, intent_correct, reviewed, status in rows:
        label = label_of(correct, detected, intent_correct, status in TRAINABLE)
        if label:
            corrected = bool(reviewed and correct and correct != detected)
            selected.append(Labelled(text, label, corrected))
    return selected


def label_of(
    correct: str | None, detected: str | None, intent_correct: bool | None, trusted: bool
) -> str | None:
    """The corrected intent when there is one; else the detected one unless marked wrong."""
    if correct and correct.strip():
        return correct.strip()
    if trusted and intent_correct is False:
        return None
    return detected.strip() if detected and detected.strip() else None


def clean_examples(
    examples: Sequence[Labelled], *, max_length: int
) -> tuple[list[Labelled], dict[str, Any]]:
    """Normalize, drop empty and over-long texts, de-duplicate (a corrected copy wins; else the
    latest), and report thin intents."""
    kept: dict[str, Labelled] = {}
    bad = 0
    for example in examples:
        text = normalize_text(example.text)
        if not text or len(text) > max_length:
            bad += 1
            continue
        prior = kept.get(text)
        if prior is None or example.corrected or not prior.corrected:
            kept[text] = Labelled(text, example.intent, example.corrected)
    cleaned = list(kept.values())
    sizes = Counter(e.intent for e in cleaned)
    thin = sorted([intent, n] for intent, n in sizes.items() if n < THIN_INTENT)
    report = {
        "after_cleaning": len(cleaned),
        "duplicates_dropped": len(examples) - bad - len(cleaned),
        "empty_or_long_dropped": bad,
        "thin_intents": thin,
    }
    return cleaned, report


def stratified_split(
    examples: Sequence[Labelled], *, seed: int = SEED
) -> tuple[list[Labelled], list[Labelled], list[Labelled], list[str]]:
    """70/15/15 per intent with a fixed seed; intents too small to split train only (listed)."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible split, not a secret
    by_intent: defaultdict[str, list[Labelled]] = defaultdict(list)
    for example in examples:
        by_intent[example.intent].append(example)
    train: list[Labelled] = []
    validation: list[Labelled] = []
    test: list[Labelled] = []
    train_only = []
    for intent in sorted(by_intent):
        group = by_intent[intent]
        rng.shuffle(group)
        if len(group) < MIN_SPLIT_EXAMPLES:
            train += group
            train_only.append(intent)
            continue
        n_test = max(1, int(len(group) * SPLIT[2] + 0.5))
        n_val = max(1, int(len(group) * SPLIT[1] + 0.5))
        test += group[:n_test]
        validation += group[n_test : n_test + n_val]
        train += group[n_test + n_val :]
    return train, validation, test, train_only


def fit_model(
    train: Sequence[Labelled],
    corrected_weight: float,
    held_out: Sequence[Labelled] = (),
) -> IntentModel:
    """Fit the default pipeline; corrected examples weigh corrected_weight; `held_out` (the
    validation split) calibrates the confidence when it is large enough."""
    return fit(
        texts=[e.text for e in train],
        labels=[e.intent for e in train],
        weights=example_weights(
            corrected=[e.corrected for e in train], corrected_weight=corrected_weight
        ),
        random_state=SEED,
        held_out=([e.text for e in held_out], [e.intent for e in held_out]),
    )


def _learning_curve(
    progress: _Progress, train: list[Labelled], held_out: list[Labelled], weight: float
) -> None:
    """Macro-F1 on held-out data at growing shares of (at most CURVE_MAX_EXAMPLES of) train."""
    pool = list(train)
    random.Random(SEED).shuffle(pool)  # noqa: S311 - reproducible, not a secret
    pool = pool[:CURVE_MAX_EXAMPLES]
    start, span = (
        STAGE_PROGRESS["learning_curve"],
        STAGE_PROGRESS["fitting"] - STAGE_PROGRESS["learning_curve"],
    )
    for i, fraction in enumerate(CURVE_FRACTIONS, start=1):
        subset = pool[: int(len(pool) * fraction)]
        if len({e.intent for e in subset}) < 2:
            continue
        model = fit_model(subset, weight, held_out)
        share = len(subset) / len(train)
        progress.point(share, _macro_f1(model, held_out), start + span * i / len(CURVE_FRACTIONS))


def _predict(model: IntentModel, texts: Sequence[str]) -> tuple[list[str], np.ndarray]:
    proba = model.probabilities(texts)
    classes = model.intents
    return [classes[i] for i in proba.argmax(axis=1)], proba.max(axis=1)


def _macro_f1(model: IntentModel, examples: Sequence[Labelled]) -> float:
    predicted, _ = _predict(model, [e.text for e in examples])
    truth = [e.intent for e in examples]
    _, _, f1, _ = precision_recall_fscore_support(
        truth, predicted, labels=sorted(set(truth)), zero_division=0
    )
    return float(np.mean(f1))


def evaluate(model: IntentModel, test: Sequence[Labelled]) -> Evaluation:
    """Every metric of one model on the test split (JSON-ready)."""
    texts, truth = [e.text for e in test], [e.intent for e in test]
    predicted, confidence = _predict(model, texts)
    labels = sorted(set(truth))
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, predicted, labels=labels, zero_division=0
    )
    correct = [t == p for t, p in zip(truth, predicted, strict=True)]
    metrics = {
        "accuracy": float(np.mean(correct)),
        "macro_precision": float(np.mean(precision)),
        "macro_recall": float(np.mean(recall)),
        "macro_f1": float(np.mean(f1)),
        "ece": expected_calibration_error(confidences=confidence, correct=correct),
        "n_test": len(test),
        "per_intent": {
            label: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(labels)
        },
        "confusion": _confusion(truth, predicted),
        "misclassified": _misclassified(texts, truth, predicted, confidence),
        "calibration": _calibration(confidence, correct),
    }
    return Evaluation(metrics, correct)


def _confusion(truth: list[str], predicted: list[str]) -> dict[str, Any]:
    """The confusion matrix over the test split's most frequent intents (kept small)."""
    frequent = sorted(Counter(truth).items(), key=lambda item: (-item[1], item[0]))
    labels = sorted(label for label, _ in frequent[:CONFUSION_LABELS])
    matrix = confusion_matrix(truth, predicted, labels=labels)
    return {"labels": labels, "matrix": matrix.astype(int).tolist()}


def _misclassified(
    texts: list[str], truth: list[str], predicted: list[str], confidence: np.ndarray
) -> list[dict[str, Any]]:
    """The mistakes, most confident first (those hurt most)."""
    wrong = sorted(
        (
            (float(c), text, t, p)
            for text, t, p, c in zip(texts, truth, predicted, confidence, strict=True)
            if t != p
        ),
        key=lambda row: -row[0],
    )
    return [
        {"text": text, "true": t, "predicted": p, "confidence": round(c, 4)}
        for c, text, t, p in wrong[:MISCLASSIFIED_LIMIT]
    ]


def _calibration(confidence: np.ndarray, correct: list[bool]) -> dict[str, Any]:
    """Reliability bins as the ECE counts them: (lower, upper] of the top-1 confidence."""
    hits = np.asarray(correct, dtype=np.float64)
    which = np.clip(np.ceil(confidence * ECE_BINS).astype(int) - 1, 0, ECE_BINS - 1)
    bins: dict[str, list[Any]] = {"bins": [], "accuracy": [], "confidence": [], "count": []}
    for b in range(ECE_BINS):
        members = which == b
        count = int(members.sum())
        bins["bins"].append(round((b + 1) / ECE_BINS, 4))
        bins["accuracy"].append(float(hits[members].mean()) if count else None)
        bins["confidence"].append(float(confidence[members].mean()) if count else None)
        bins["count"].append(count)
    return bins


def _live_texts(session: Session, actor: Actor, limit: int) -> list[str]:
    """The newest customer messages of conversations (live traffic, imported logs, the demo)."""
    if limit <= 0:
        return []
    texts = session.exec(
        select(Example.text)
        .where(Example.tenant_id == actor.tenant_id, col(Example.message_id).is_not(None))
        .order_by(col(Example.created_at).desc(), col(Example.id).desc())
        .limit(limit)
    ).all()
    return [normalize_text(t) for t in texts if normalize_text(t)]


def shadow_replay(
    candidate: IntentModel, serving: IntentModel | None, texts: Sequence[str]
) -> dict[str, Any]:
    """How often the candidate disagrees with the serving model on recent live messages, and
    which intents flip most (old -> new)."""
    if not texts or serving is None:
        return {"messages": len(texts), "disagreement": None, "flips": []}
    new, _ = _predict(candidate, texts)
    old, _ = _predict(serving, texts)
    flips = Counter((o, n) for o, n in zip(old, new, strict=True) if o != n)
    return {
        "messages": len(texts),
        "disagreement": sum(flips.values()) / len(texts),
        "flips": [{"from": o, "to": n, "count": c} for (o, n), c in flips.most_common(TOP_FLIPS)],
    }


def deploy_gate(
    *,
    metrics: dict[str, Any],
    baseline: dict[str, Any] | None,
    train_examples: int,
    intents: int,
    settings: Settings,
) -> dict[str, Any]:
    """Whether the new model may replace the serving one, and why (every rule that decided)."""
    if baseline is None:
        return _first_model_gate(train_examples, intents)
    reasons, deploy = [], True
    new_f1, old_f1 = metrics["macro_f1"], baseline["macro_f1"]
    allowed = settings.gate_max_f1_drop
    if new_f1 < old_f1 - allowed:
        deploy = False
        reasons.append(
            f"macro-F1 {new_f1:.3f} is more than {allowed:.2f} below "
            f"the serving model's {old_f1:.3f}"
        )
    else:
        reasons.append(f"macro-F1 {new_f1:.3f} vs the serving model's {old_f1:.3f}")
    for intent, scores in sorted(metrics["per_intent"].items()):
        if scores["support"] < settings.gate_min_support:
            continue
        before = baseline["per_intent"].get(intent, {}).get("f1", 0.0)
        if scores["f1"] < before - settings.gate_intent_floor:
            deploy = False
            reasons.append(
                f"intent {intent}: F1 {scores['f1']:.3f} vs {before:.3f}, a drop of more than "
                f"{settings.gate_intent_floor:.2f}"
            )
    if deploy:
        reasons.append("no well-tested intent got much worse")
    return {"deploy": deploy, "reasons": reasons}


def _first_model_gate(train_examples: int, intents: int) -> dict[str, Any]:
    reasons = []
    if train_examples < FIRST_MODEL_MIN_EXAMPLES:
        reasons.append(
            f"a first model needs at least {FIRST_MODEL_MIN_EXAMPLES} training examples "
            f"(has {train_examples})"
        )
    if intents < FIRST_MODEL_MIN_INTENTS:
        reasons.append(f"a first model needs at least {FIRST_MODEL_MIN_INTENTS} intents")
    if reasons:
        return {"deploy": False, "reasons": reasons}
    return {
        "deploy": True,
        "reasons": [f"first model: {train_examples} training examples, {intents} intents"],
    }


def mcnemar(new_correct: Sequence[bool], old_correct: Sequence[bool] | None) -> dict[str, Any]:
    """Exact McNemar test of new vs old on the same test examples (binomial on the discordant)."""
    if old_correct is None:
        return {"mcnemar_p": None, "new_only_correct": 0, "old_only_correct": 0}
    new_only = sum(n and not o for n, o in zip(new_correct, old_correct, strict=True))
    old_only = sum(o and not n for n, o in zip(new_correct, old_correct, strict=True))
    discordant = new_only + old_only
    p = float(binomtest(new_only, discordant, 0.5).pvalue) if discordant else 1.0
    return {"mcnemar_p": p, "new_only_correct": new_only, "old_only_correct": old_only}
