"""Label issues: examples whose given label is probably wrong (confident learning).

Every labelled example gets an out-of-sample probability for each intent: a fast linear text
model is fitted on the other folds (copies of one text are held out together, so a copy never
vouches for itself), and its decision values become probabilities through one softmax
temperature fitted on those same out-of-fold decisions. Then confident learning (Northcutt et
al., "Confident learning", 2021; cleanlab's filter_by="low_self_confidence"): per intent, a
threshold, the mean probability of that intent over the examples labelled with it; the
confident joint counts each example under the likeliest intent it reaches the threshold of;
calibrated to the label counts, its off-diagonal says how many examples of each given intent
are mislabelled, and that many of them are flagged: those the model finds least likely to have
their label, where another intent is likelier (the suggestion). Score: 1 - p(given label).

Why not flag the off-diagonal itself, ranked by p(suggested) - p(given)? Measured on BANKING77
train.csv with 10 % of the labels flipped: it finds 70 % of the flips (precision 0.80) and
reviewing as many flags as there are flips recovers 42 % of the test accuracy the noise cost;
this finds 95 % (precision 0.76) and recovers 96-100 %. The off-diagonal misses every example
that reaches no intent's threshold, and 30 % of the flips reach none.

Human corrections are judged like every other label: a person can slip too.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import minimize_scalar
from scipy.special import logsumexp, softmax
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import FeatureUnion
from sklearn.svm import LinearSVC
from sqlalchemy import func, or_, update
from sqlmodel import Session, col, select

from core import audit, review_groups, training
from core.access import Actor, Role, require_role
from core.config import get_settings
from core.errors import InvalidInput
from core.model import char_tfidf, word_tfidf
from core.text import normalize_text
from db.models import Example, ExampleStatus, utcnow

FOLDS = 5
SEED = 13
# Character n-grams make the flags more precise with little data (BANKING77 train, 10 %
# flipped: precision 0.75 vs 0.70 at the same recall, 0.95) for ~4x the time (9 s vs 2.4 s of
# CPU); that time grows quickly with the data: above this many examples, words alone.
CHAR_NGRAMS_UP_TO = 12_000
# Each fold's model learns from at most this many examples (a sample with an equal quota per
# intent, small intents whole): liblinear's time grows faster than the data with noisy labels
# (one fold of 80,000 BANKING77-based examples: 13 s, of 20,000: 1.1 s), while a held-out
# example needs only a good model, not the best one.
FOLD_TRAIN_LIMIT = 20_000
SVM_C = 0.5
# The ranking needs no tighter optimum: at 10,000 examples 4 of 1,255 flags differ from those
# with liblinear's default 1e-4, and noisy labels make the tighter one slow to converge.
SVM_TOL = 1e-2
SVM_MAX_ITER = 200
TEMPERATURE_BOUNDS = (-6.0, 6.0)  # log of the softmax temperature
AUDIT_ACTION = "label_issues.detect"
NO_INTENTS = "Label-issue detection needs labelled examples of at least two intents."
TOO_FEW = (
    "Label-issue detection needs at least two different labelled texts in each of two intents."
)
NO_WORDS = "The labelled examples contain no words to learn from."

Matrix = NDArray[np.float64]
Indices = NDArray[np.intp]


@dataclass(frozen=True)
class Flag:
    """One probable label error: the example's position, its label, the likeliest other intent,
    and how sure (1 - the probability of the given label: higher is a surer error)."""

    index: int
    given: str
    suggested: str
    score: float


@dataclass(frozen=True)
class Findings:
    """What detection judged: the flags, how many examples it could judge, and why not all."""

    flags: list[Flag]
    judged: int
    reason: str | None = None


@dataclass(frozen=True)
class DetectionSummary:
    examined: int  # labelled examples selected
    judged: int  # those with an out-of-sample judgement (not the only text of their intent)
    flagged: int
    cleared: int  # flags of the previous detection removed
    intents: int
    reason: str | None  # why nothing could be judged, when that is so
    found_at: datetime


@dataclass(frozen=True)
class IssueView:
    """A flagged example as the review tab and the CLI show it."""

    example_id: int
    text: str
    given_intent: str | None
    suggested_intent: str
    score: float
    found_at: datetime | None


# --- the method ---------------------------------------------------------------------------


def find_label_issues(
    texts: Sequence[str], labels: Sequence[str], *, folds: int = FOLDS, random_state: int = SEED
) -> list[Flag]:
    """Examples whose label is probably wrong, likeliest error first (confident learning)."""
    return judge_labels(texts, labels, folds=folds, random_state=random_state).flags


def judge_labels(
    texts: Sequence[str], labels: Sequence[str], *, folds: int = FOLDS, random_state: int = SEED
) -> Findings:
    """find_label_issues, plus how many examples were judged and why none were, if so."""
    if len(texts) != len(labels):
        raise InvalidInput("Every example needs exactly one intent.")
    if folds < 2:
        raise InvalidInput("Label-issue detection needs at least two folds.")
    classes, y = np.unique(np.asarray(labels, dtype=str), return_inverse=True)
    if len(classes) < 2:
        return Findings([], 0, NO_INTENTS)
    fold = _assign_folds([normalize_text(t) for t in texts], y, folds, random_state)
    if fold is None:
        return Findings([], 0, TOO_FEW)
    features = _features(texts)
    if features is None:
        return Findings([], 0, NO_WORDS)
    decisions, judged = _out_of_fold_decisions(features, y, fold, len(classes), random_state)
    if len(np.unique(y[judged])) < 2:
        return Findings([], int(judged.sum()), TOO_FEW)
    rows = np.flatnonzero(judged)
    proba = softmax(decisions[rows] * _temperature(decisions[rows], y[rows]), axis=1)
    return Findings(_confident_errors(proba, y[rows], rows, classes), len(rows))


def _assign_folds(
    normal_texts: Sequence[str], y: Indices, folds: int, random_state: int
) -> Indices | None:
    """The fold of each example (-1: always trained on, never judged), stratified by intent
    over distinct texts; None when fewer than two intents have two distinct texts."""
    index: dict[str, int] = {}
    group = np.fromiter(
        (index.setdefault(t, len(index)) for t in normal_texts), np.intp, len(normal_texts)
    )
    _, first = np.unique(group, return_index=True)
    group_label = y[first]  # a text labelled two ways counts for its first label here
    texts_per_intent = np.bincount(group_label)
    splittable = texts_per_intent[texts_per_intent >= 2]
    if len(splittable) < 2:
        return None
    held = np.flatnonzero(texts_per_intent[group_label] >= 2)
    n_splits = int(min(folds, splittable.min()))
    group_fold = np.full(len(first), -1, dtype=np.intp)
    splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=random_state)
    for number, (_, test) in enumerate(splitter.split(held, group_label[held])):
        group_fold[held[test]] = number
    return group_fold[group]


def _features(texts: Sequence[str]) -> Any | None:
    """Tf-idf of every text, fitted without labels (so nothing leaks into the folds)."""
    words, chars = word_tfidf(), char_tfidf()
    candidates: list[Any] = [words]
    if len(texts) <= CHAR_NGRAMS_UP_TO:
        candidates.insert(0, FeatureUnion([("words", words), ("chars", chars)]))
    for vectorizer in candidates:
        try:
            return vectorizer.fit_transform(list(texts))
        except ValueError:  # no terms: too few texts for min_df, or no words at all
            continue
    return None


def _out_of_fold_decisions(
    features: Any, y: Indices, fold: Indices, n_classes: int, random_state: int
) -> tuple[Matrix, NDArray[np.bool_]]:
    """Each held-out example's decision values from a model fitted without its fold, and
    whether its own intent was in that model (else it cannot be judged)."""
    decisions = np.zeros((len(y), n_classes))
    judged = np.zeros(len(y), dtype=bool)
    # The folds run one after the other: liblinear draws from one process-wide random
    # generator, so folds on threads would give slightly different flags from run to run.
    for number in range(int(fold.max()) + 1):
        test = np.flatnonzero(fold == number)
        rng = np.random.default_rng([random_state, number])
        train = _sample(np.flatnonzero(fold != number), y, FOLD_TRAIN_LIMIT, rng)
        # dual=True always: "auto" switches to the primal solver once examples outnumber
        # features, ~10x slower here.
        svm = LinearSVC(
            C=SVM_C,
            class_weight="balanced",
            dual=True,
            tol=SVM_TOL,
            max_iter=SVM_MAX_ITER,
            random_state=random_state,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            svm.fit(features[train], y[train])
        known = svm.classes_.astype(np.intp)
        values = svm.decision_function(features[test])
        if values.ndim == 1:  # two intents: one column scoring classes_[1] against [0]
            values = np.column_stack([-values, values])
        block = np.repeat(values.min(axis=1, keepdims=True), n_classes, axis=1)
        block[:, known] = values  # an intent the fold never saw counts as least likely
        decisions[test] = block
        judged[test] = np.isin(y[test], known)
    return decisions, judged


def _sample(train: Indices, y: Indices, limit: int, rng: np.random.Generator) -> Indices:
    """At most about `limit` of the training rows: every intent keeps up to one quota of its
    examples, drawn at random, so small intents stay whole."""
    if len(train) <= limit:
        return train
    shuffled = rng.permutation(train)
    ordered = shuffled[np.argsort(y[shuffled], kind="stable")]
    intent = y[ordered]
    rank = np.arange(len(ordered)) - np.searchsorted(intent, intent, side="left")
    return np.sort(ordered[rank < _quota(np.bincount(intent), limit)])


def _quota(sizes: NDArray[np.int64], limit: int) -> int:
    """The largest per-intent quota q with sum(min(size, q)) <= limit (at least 1)."""
    low, high = 1, int(sizes.max())
    while low < high:
        middle = (low + high + 1) // 2
        if int(np.minimum(sizes, middle).sum()) <= limit:
            low = middle
        else:
            high = middle - 1
    return low


def _temperature(decisions: Matrix, y: Indices) -> float:
    """The softmax temperature that makes the out-of-fold decisions most likely (least NLL)."""
    given = decisions[np.arange(len(y)), y]

    def nll(log_beta: float) -> float:
        beta = float(np.exp(log_beta))
        return float(np.mean(logsumexp(beta * decisions, axis=1) - beta * given))

    result = minimize_scalar(nll, bounds=TEMPERATURE_BOUNDS, method="bounded")
    return float(np.exp(result.x))


def _confident_errors(
    proba: Matrix, y: Indices, rows: Indices, classes: NDArray[np.str_]
) -> list[Flag]:
    """Per given intent, as many of its examples as the confident joint says are mislabelled:
    those the model finds least likely to be that intent, likeliest error first."""
    at = np.arange(len(y))
    given = proba[at, y]
    expected = _expected_errors(proba, y, given)
    # Rank of each example among its intent's by self-confidence (least confident first).
    order = np.lexsort((given, y))
    rank = np.empty(len(y), dtype=np.intp)
    rank[order] = np.arange(len(y)) - np.searchsorted(y[order], y[order], side="left")
    others = proba.copy()
    others[at, y] = -1.0
    suggested = others.argmax(axis=1)
    # Flag only where another intent is likelier: the given one may just be hard to tell.
    hits = np.flatnonzero((rank < expected[y]) & (others[at, suggested] > given))
    ranked = hits[np.lexsort((rows[hits], given[hits]))]
    return [
        Flag(
            index=int(rows[i]),
            given=str(classes[y[i]]),
            suggested=str(classes[suggested[i]]),
            score=float(np.clip(1.0 - given[i], 0.0, 1.0)),
        )
        for i in ranked
    ]


def _expected_errors(proba: Matrix, y: Indices, given: Matrix) -> NDArray[np.int64]:
    """How many examples of each given intent are mislabelled, from the confident joint
    calibrated to the given labels' counts."""
    n_classes = proba.shape[1]
    count = np.bincount(y, minlength=n_classes)
    # Per-intent threshold: how likely the model finds an intent for the examples that have it.
    total = np.bincount(y, weights=given, minlength=n_classes)
    threshold = np.divide(total, count, out=np.full(n_classes, np.inf), where=count > 0)
    # The confident joint: each example counted under the likeliest intent it is confidently
    # (at or above that intent's threshold) likely to be, if any.
    confident = proba >= threshold
    counted = confident.any(axis=1)
    guess = np.where(confident, proba, -1.0).argmax(axis=1)
    joint = np.zeros((n_classes, n_classes))
    np.add.at(joint, (y[counted], guess[counted]), 1.0)
    # Calibration: examples below every threshold count like those above did.
    row = joint.sum(axis=1)
    wrong_share = np.divide(row - np.diag(joint), row, out=np.zeros(n_classes), where=row > 0)
    expected: NDArray[np.int64] = np.rint(wrong_share * count).astype(np.int64)
    return expected


# --- the shop's examples ------------------------------------------------------------------


def _labelled(session: Session, actor: Actor) -> tuple[list[int], list[str], list[str]]:
    """Ids, texts and labels of what training would learn from (core.training's selection)."""
    confident = (
        (col(Example.status) == ExampleStatus.PENDING.value)
        & col(Example.detected_intent).is_not(None)
        & (col(Example.confidence) >= get_settings().train_min_confidence)
    )
    rows = session.exec(
        select(  # type: ignore[call-overload]
            Example.id,
            Example.text,
            Example.correct_intent,
            Example.detected_intent,
            Example.intent_correct,
            Example.status,
        )
        .where(
            Example.tenant_id == actor.tenant_id,
            or_(col(Example.status).in_(training.TRAINABLE), confident),
        )
        .order_by(col(Example.id))
        .execution_options(yield_per=5_000)
    )
    ids, texts, labels = [], [], []
    for example_id, text, correct, detected, intent_correct, status in rows:
        trusted = status in training.TRAINABLE
        label = training.label_of(correct, detected, intent_correct, trusted)
        if label and normalize_text(text):
            ids.append(int(example_id))
            texts.append(text)
            labels.append(label)
    return ids, texts, labels


def _clear_flags(session: Session, actor: Actor) -> int:
    """Remove every flag of the shop; returns how many there were."""
    result = session.execute(
        update(Example)
        .where(col(Example.tenant_id) == actor.tenant_id, col(Example.issue_score).is_not(None))
        .values(issue_score=None, issue_suggestion=None, issue_found_at=None)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def detect(*, session: Session, actor: Actor) -> DetectionSummary:
    """Re-judge every labelled example of the shop and replace its label-issue flags (admin)."""
    require_role(actor, Role.ADMIN)
    ids, texts, labels = _labelled(session, actor)
    findings = judge_labels(texts, labels)
    found_at = utcnow()
    cleared = _clear_flags(session, actor)
    if findings.flags:
        # By primary key and without touching version: detection is not an edit, and a reviewer
        # holding the example open must not be told someone changed it.
        session.execute(
            update(Example),
            [
                {
                    "id": ids[flag.index],
                    "issue_score": flag.score,
                    "issue_suggestion": flag.suggested,
                    "issue_found_at": found_at,
                }
                for flag in findings.flags
            ],
        )
    summary = DetectionSummary(
        examined=len(ids),
        judged=findings.judged,
        flagged=len(findings.flags),
        cleared=cleared,
        intents=len(set(labels)),
        reason=findings.reason,
        found_at=found_at,
    )
    _audit(session, actor, summary)
    review_groups.refresh(session=session, actor=actor, text_hashes=None)
    return summary


def _audit(session: Session, actor: Actor, summary: DetectionSummary) -> None:
    audit.record(
        session=session,
        actor=actor,
        action=AUDIT_ACTION,
        entity_type="example",
        after={
            "examined": summary.examined,
            "judged": summary.judged,
            "flagged": summary.flagged,
            "cleared": summary.cleared,
            "intents": summary.intents,
        },
        reason=summary.reason,
    )


def list_issues(
    *, session: Session, actor: Actor, limit: int = 100, offset: int = 0
) -> list[IssueView]:
    """The shop's flagged examples, likeliest label error first (admin)."""
    require_role(actor, Role.ADMIN)
    rows = session.exec(
        select(  # type: ignore[call-overload]
            Example.id,
            Example.text,
            func.coalesce(col(Example.correct_intent), col(Example.detected_intent)),
            Example.issue_suggestion,
            Example.issue_score,
            Example.issue_found_at,
        )
        .where(Example.tenant_id == actor.tenant_id, col(Example.issue_score).is_not(None))
        .order_by(col(Example.issue_score).desc(), col(Example.id))
        .offset(max(offset, 0))
        .limit(max(limit, 0))
    ).all()
    return [
        IssueView(
            example_id=int(example_id),
            text=text,
            given_intent=given,
            suggested_intent=suggested or "",
            score=float(score),
            found_at=found_at,
        )
        for example_id, text, given, suggested, score, found_at in rows
    ]


def count_issues(*, session: Session, actor: Actor) -> int:
    """How many of the shop's examples are flagged (admin)."""
    require_role(actor, Role.ADMIN)
    return int(
        session.exec(
            select(func.count()).where(
                Example.tenant_id == actor.tenant_id, col(Example.issue_score).is_not(None)
            )
        ).one()
    )
