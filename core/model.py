"""The intent classifier: one scikit-learn Pipeline, calibrated confidences, and why it decided.

Chosen by measurement on BANKING77 (train.csv -> test.csv, as benchmarks/classifier.py does),
2 cores. Accuracy in %, ECE over 15 bins of the top-1 confidence, fit time as a multiple of the
seed's fitted in the same run (1.1 s when the machine is quiet):

    seed: words 1-3 (10k) -> LinearSVC C=1, sigmoid, 3-fold ensemble    87.86  ECE 0.124  1x
    words 1-2 -> LinearSVC C=1, temperature                              89.45  ECE 0.039
    words + chars 2-5 -> LinearSVC C=1, sigmoid, one model               91.40  ECE 0.061
    words + chars 2-5 -> LogisticRegression C=20, temperature            91.62  ECE 0.018  ~25x
    words + chars 2-5 -> LinearSVC C=2 / 1 / 0.5, temperature, 3 folds   91.23 / 91.30 / 91.56  3.9x
    the same, chars min_df=3 / words min_df=2 / words 1-3 (at C=1)       91.43 / 91.33 / 91.56
    the same, chars max_df 0.5 / 0.2 / 0.1 (fewer non-zeros, faster)    91.43 / 91.23 / 90.78
    words + chars 3-5 -> LinearSVC C=0.5, temperature, 3 folds           91.20  ECE 0.028  2.6x
    words + chars 3-5 -> LinearSVC C=0.5, temperature, 2 folds           91.20  ECE 0.033  1.85x
    the same, temperature from one fold of two (TemperatureScaledSVM)    91.20  ECE 0.033  1.80x
    the same, chars 3-4 (chosen)                                         91.43  ECE 0.033  1.34x

LinearSVC runs the dual solver always (scikit-learn's dual="auto" picks the primal one once
examples outnumber features, 4x slower at 100,000 examples).
Rejected for speed: SGDClassifier (hinge, 2 threads: 91.30, barely faster than liblinear),
RidgeClassifier (86.7, slower), calibration folds on threads (not reproducible: liblinear's
random generator is process-wide) or on worker processes (1.7x, but spawns processes).
Generality (mean of 3 folds of a 5-fold CV on train.csv / 10 examples per intent / 5 to 80 per
intent, scored on test.csv): chars 3-5 90.5 / 73.2 / 75.5 with ECE 0.033 / 0.084 / 0.095; the
seed 86.2 / 62.9 / 61.8 with ECE 0.150 / 0.262 / 0.096. benchmarks/classifier.py's own
generality check (5-fold CV / 10 per intent): chars 3-4 90.07 / 70.97, ECE 0.036 / 0.090;
chars 3-5 90.04 / 70.68, ECE 0.037 / 0.096. Character n-grams are worth 6 points
with few examples, class_weight="balanced" 6.5 points on the imbalanced subset, and temperature
scaling keeps one linear model (fast, explainable) with a lower ECE than sigmoid everywhere.

Single messages go through `IntentModel.predict_top`, which computes the pipeline's tf-idf,
decision and temperature from the fitted attributes: Pipeline.predict_proba on one string
spends ~1.2 ms in scikit-learn's per-call input checks, this path ~0.07 ms. A test holds the
two to the same probabilities.
"""

from __future__ import annotations

import math
import string
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.svm import LinearSVC

from core.errors import InvalidInput

# Folds that estimate the temperature. Few examples: every fold is fitted; each fold model is
# much weaker than the full one, and more folds close that gap (10 per intent: ECE 0.098 /
# 0.081 / 0.076 with 2 / 3 / 5 folds) for well under a second. Many examples: one fold of two,
# one half-size fit on top of the full one.
CALIBRATION_FOLDS, HELD_OUT_FITS = 2, 1
# Held-out examples enough to fit the temperature (one number) on, instead of a fold fit: a
# training run's validation split from ~7,000 examples up (100k examples: fitting 41 -> 28 s).
HELD_OUT_MIN = 1_000
SMALL_DATA_FOLDS, SMALL_DATA_EXAMPLES = 5, 2_000
# Weight of an example a person corrected; belongs in core.config (TRELLIS_CORRECTED_WEIGHT).
CORRECTED_WEIGHT = 2.0
# Character 3-4-grams: as accurate as 3-5 on every measure in the table above, 20 % fewer
# non-zeros, so the SVM fits faster.
INTENT_CHAR_NGRAMS = (3, 4)
ECE_BINS = 15

Probabilities = NDArray[np.float64]


def word_tfidf(**options: Any) -> TfidfVectorizer:
    """Word 1-2-grams, sublinear tf: the intent model's word features (also used to cluster
    and to cross-validate labels)."""
    return TfidfVectorizer(
        ngram_range=(1, 2), sublinear_tf=True, strip_accents="unicode", lowercase=True, **options
    )


def char_tfidf(*, ngram_range: tuple[int, int] = (3, 5), **options: Any) -> TfidfVectorizer:
    """Character n-grams (3-5 unless told) within word boundaries: robust to typos and unseen
    word forms. The intent model uses 3-4-grams (INTENT_CHAR_NGRAMS); clustering and label
    checks keep 3-5, which their thresholds were measured with."""
    return TfidfVectorizer(
        analyzer="char_wb",
        ngram_range=ngram_range,
        min_df=2,
        sublinear_tf=True,
        strip_accents="unicode",
        lowercase=True,
        **options,
    )


def build_pipeline(
    *, random_state: int = 0, calibration_folds: int = CALIBRATION_FOLDS, held_out_fits: int = 1
) -> Pipeline:
    """Word + character tf-idf into a linear SVM with temperature-scaled probabilities."""
    chars = char_tfidf(ngram_range=INTENT_CHAR_NGRAMS)
    features = FeatureUnion([("words", word_tfidf()), ("chars", chars)])
    return Pipeline(
        [
            ("features", features),
            ("classifier", _classifier(random_state, calibration_folds, held_out_fits)),
        ]
    )


def _classifier(random_state: int, calibration_folds: int, held_out_fits: int) -> Any:
    if calibration_folds < 2:
        # An intent with one example leaves nothing to calibrate on: the logistic model's own
        # probabilities are the honest fallback (IntentModel.calibrated says so).
        return LogisticRegression(C=10.0, class_weight="balanced", random_state=random_state)
    return TemperatureScaledSVM(
        folds=calibration_folds, held_out_fits=held_out_fits, random_state=random_state
    )


class TemperatureScaledSVM(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """A linear SVM fitted on every example, with probabilities softmax(beta * decision).

    The inverse temperature beta is fitted on held-out decisions: the examples are split into
    `folds` stratified folds, and for the first `held_out_fits` of them an SVM fitted on the
    other folds scores the fold. One fold of two costs one half-size fit where
    CalibratedClassifierCV(cv=2, ensemble=False) costs two, for the same accuracy and ECE
    (BANKING77: beta 6.84 vs 6.83, ECE 0.0330 vs 0.0333). With few examples every fold is
    fitted: each fold model is much weaker than the full one, and more folds close that gap.
    Only one scalar is learned from the held-out decisions, so half the data is plenty.
    With held_out_fits=0 no fold is fitted: the caller then calls calibrate() with examples of
    its own the SVM never saw (core.model.fit does, given a training run's validation split).

    LinearSVC runs its dual solver always: with many examples and fewer n-gram features,
    dual="auto" switches to the primal solver, 4x slower (100k examples: 237 s vs 57 s).
    The fits run one after the other: liblinear draws from one process-wide random generator,
    so fits on threads give slightly different models from run to run.
    """

    def __init__(
        self, *, C: float = 0.5, folds: int = 2, held_out_fits: int = 1, random_state: int = 0
    ) -> None:
        self.C = C
        self.folds = folds
        self.held_out_fits = held_out_fits
        self.random_state = random_state

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> TemperatureScaledSVM:
        labels = np.asarray(y)
        weights = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        self.svm_ = self._svm().fit(X, labels, sample_weight=weights)
        self.classes_ = self.svm_.classes_
        self.beta_ = 1.0
        if self.held_out_fits < 1:  # the caller calibrates on its own held-out data
            return self
        folds = StratifiedKFold(self.folds, shuffle=True, random_state=self.random_state)
        splits = list(folds.split(np.zeros(len(labels)), labels))[: self.held_out_fits]
        logits, truth, held_weights = [], [], []
        for train, held in splits:
            part = self._svm().fit(X[train], labels[train], sample_weight=_rows(weights, train))
            if not np.array_equal(part.classes_, self.classes_):
                raise ValueError("Every intent needs an example in every calibration fold.")
            logits.append(_logits(part.decision_function(X[held])))
            truth.append(np.searchsorted(self.classes_, labels[held]))
            held_weights.append(_rows(weights, held))
        self.beta_ = _inverse_temperature(
            np.vstack(logits),
            np.concatenate(truth),
            None if weights is None else np.concatenate(held_weights),
        )
        return self

    def calibrate(self, X: Any, y: Any) -> TemperatureScaledSVM:
        """Fit the temperature on held-out examples the SVM never saw (labels it knows)."""
        labels = np.asarray(y)
        known = np.isin(labels, self.classes_)
        logits = _logits(self.decision_function(X[known]))
        truth = np.searchsorted(self.classes_, labels[known])
        self.beta_ = _inverse_temperature(logits, truth, None)
        return self

    def decision_function(self, X: Any) -> NDArray[np.float64]:
        return np.asarray(self.svm_.decision_function(X), dtype=np.float64)

    def predict_proba(self, X: Any) -> Probabilities:
        return _softmax(self.beta_ * _logits(self.decision_function(X)))

    def predict(self, X: Any) -> NDArray[Any]:
        return np.asarray(self.classes_[self.predict_proba(X).argmax(axis=1)])

    def _svm(self) -> LinearSVC:
        return LinearSVC(
            C=self.C, class_weight="balanced", dual=True, random_state=self.random_state
        )


def _rows(weights: NDArray[np.float64] | None, index: NDArray[np.intp]) -> Any:
    return None if weights is None else weights[index]


def _logits(decision: NDArray[Any]) -> NDArray[np.float64]:
    """Decision values as one column per class (a binary SVM's one column becomes -d, d)."""
    values = np.asarray(decision, dtype=np.float64)
    if values.ndim == 1:
        return np.column_stack([-values, values])
    return values


def _softmax(logits: NDArray[np.float64]) -> Probabilities:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return np.asarray(exp / exp.sum(axis=-1, keepdims=True), dtype=np.float64)


def _inverse_temperature(
    logits: NDArray[np.float64], truth: NDArray[np.intp], weights: NDArray[np.float64] | None
) -> float:
    """The beta minimising the (weighted) log loss of softmax(beta * logits), as
    scikit-learn's temperature calibration fits it: a bounded search over log beta."""
    rows = np.arange(len(truth))

    def log_loss(log_beta: float) -> float:
        losses = -log_softmax(math.exp(log_beta) * logits, axis=1)[rows, truth]
        return float(np.average(losses, weights=weights))

    found = minimize_scalar(log_loss, bounds=(-10.0, 10.0), method="bounded")
    return float(math.exp(found.x))


def build_reference_pipeline() -> Pipeline:
    """The seed's pipeline, kept to measure against: word 1-3-grams into a calibrated SVM."""
    return Pipeline(
        [
            ("tfidf", TfidfVectorizer(ngram_range=(1, 3), max_features=10_000)),
            (
                "classifier",
                CalibratedClassifierCV(
                    LinearSVC(C=1.0, class_weight="balanced", random_state=0), cv=3
                ),
            ),
        ]
    )


@dataclass(frozen=True)
class Explanation:
    """Why a message got its intent: the words that pushed toward it, and those that pushed
    toward the runner-up instead (negative weights)."""

    intent: str
    confidence: float
    runner_up: str
    runner_up_confidence: float
    toward: list[tuple[str, float]]
    away: list[tuple[str, float]]


class IntentModel:
    """A fitted pipeline plus what serving needs to know about it; plain attributes for skops."""

    def __init__(self, *, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.calibrated = isinstance(pipeline[-1], (TemperatureScaledSVM, CalibratedClassifierCV))
        self.direct = _direct_path_applies(pipeline)

    @property
    def intents(self) -> list[str]:
        """The intents the model knows, in the column order of its probabilities."""
        return [str(intent) for intent in self.pipeline.classes_]

    def probabilities(self, texts: Sequence[str]) -> Probabilities:
        """Probability of every intent (columns as in `intents`) for many messages at once."""
        return np.asarray(self.pipeline.predict_proba(list(texts)), dtype=np.float64)

    def predict_top(self, text: str, *, k: int = 5) -> list[tuple[str, float]]:
        """The k likeliest intents of one message with their probabilities, likeliest first."""
        if self.direct:
            proba = _direct_probabilities(self.pipeline, text)
        else:
            proba = self.probabilities([text])[0]
        return _top(self.pipeline.classes_, proba, k)

    def predict_many(self, texts: Sequence[str], *, k: int = 5) -> list[list[tuple[str, float]]]:
        """predict_top for many messages, computed as one batch."""
        classes = self.pipeline.classes_
        return [_top(classes, row, k) for row in self.probabilities(texts)]

    def explain(self, text: str, *, k: int = 8) -> Explanation:
        """The k words and word pairs that pushed most toward the prediction and away from it."""
        proba = self.probabilities([text])[0]
        first, second = (int(i) for i in np.argsort(-proba, kind="stable")[:2])
        direction = _coefficient_difference(self.pipeline, first, second)
        credit = sorted(_contributions(self.pipeline[0], text, direction).items(), key=_by_weight)
        classes = self.pipeline.classes_
        return Explanation(
            intent=str(classes[first]),
            confidence=float(proba[first]),
            runner_up=str(classes[second]),
            runner_up_confidence=float(proba[second]),
            toward=[(gram, weight) for gram, weight in credit if weight > 0][:k],
            away=[(gram, weight) for gram, weight in reversed(credit) if weight < 0][:k],
        )


def fit(
    *,
    texts: Sequence[str],
    labels: Sequence[str],
    weights: Sequence[float] | None = None,
    random_state: int = 0,
    held_out: tuple[Sequence[str], Sequence[str]] | None = None,
) -> IntentModel:
    """Fit the default pipeline; weights (e.g. from example_weights) scale each example.

    `held_out` (texts, labels) the model does not train on -- a training run's validation
    split -- calibrates its confidence when there are HELD_OUT_MIN of them: no extra fit."""
    sample_weight = _check_training_data(texts, labels, weights)
    smallest = min(Counter(labels).values())
    small = len(texts) <= SMALL_DATA_EXAMPLES
    wanted = SMALL_DATA_FOLDS if small else CALIBRATION_FOLDS
    folds = min(wanted, smallest) if smallest >= 2 else 0
    on_held_out = folds >= 2 and held_out is not None and len(held_out[0]) >= HELD_OUT_MIN
    pipeline = build_pipeline(
        random_state=random_state,
        calibration_folds=folds,
        held_out_fits=0 if on_held_out else folds if small else HELD_OUT_FITS,
    )
    try:
        pipeline.fit(
            list(texts), np.asarray(labels, dtype=str), classifier__sample_weight=sample_weight
        )
    except ValueError as exc:
        if "empty vocabulary" in str(exc):
            raise InvalidInput("The examples contain no words to learn from.") from exc
        raise
    if on_held_out and held_out is not None:
        held_texts, held_labels = held_out
        pipeline[-1].calibrate(pipeline[:-1].transform(list(held_texts)), held_labels)
    return IntentModel(pipeline=compact(pipeline))


def example_weights(
    *, corrected: Sequence[bool], corrected_weight: float = CORRECTED_WEIGHT
) -> list[float]:
    """Sample weights: an example a person corrected counts corrected_weight times."""
    return [corrected_weight if flag else 1.0 for flag in corrected]


def compact(pipeline: Pipeline) -> Pipeline:
    """Drop fitted attributes prediction never reads (the vectorizers' stop_words_)."""
    for step in _vectorizers_of(pipeline[0]):
        if hasattr(step, "stop_words_"):  # scikit-learn < 1.9 keeps every pruned term here
            del step.stop_words_
    return pipeline


def expected_calibration_error(
    *,
    confidences: Sequence[float] | NDArray[Any],
    correct: Sequence[bool] | NDArray[Any],
    bins: int = ECE_BINS,
) -> float:
    """ECE: the gap between confidence and accuracy, averaged over equal-width confidence bins."""
    conf = np.asarray(confidences, dtype=np.float64)
    hits = np.asarray(correct, dtype=np.float64)
    if conf.ndim != 1 or conf.shape != hits.shape or conf.size == 0 or bins < 1:
        raise InvalidInput("ECE needs as many confidences as outcomes, and at least one.")
    if np.any((conf < 0) | (conf > 1)):
        raise InvalidInput("Confidences must lie between 0 and 1.")
    # Bins are (lower, upper]; a confidence of exactly 0 falls into the first one.
    which = np.clip(np.ceil(conf * bins).astype(int) - 1, 0, bins - 1)
    gap = 0.0
    for b in np.unique(which):
        members = which == b
        gap += members.sum() * abs(hits[members].mean() - conf[members].mean())
    return float(gap / conf.size)


def _check_training_data(
    texts: Sequence[str], labels: Sequence[str], weights: Sequence[float] | None
) -> NDArray[np.float64] | None:
    if len(texts) != len(labels):
        raise InvalidInput("Every example needs exactly one intent.")
    if len(set(labels)) < 2:
        raise InvalidInput("Training needs examples of at least two intents.")
    if weights is None:
        return None
    sample_weight = np.asarray(weights, dtype=np.float64)
    if sample_weight.shape != (len(texts),):
        raise InvalidInput("Every example needs exactly one weight.")
    if not np.all(np.isfinite(sample_weight) & (sample_weight > 0)):
        raise InvalidInput("Example weights must be positive numbers.")
    return sample_weight


def _top(classes: NDArray[Any], proba: Probabilities, k: int) -> list[tuple[str, float]]:
    order = np.argsort(-proba, kind="stable")[: max(k, 0)]
    return [(str(classes[i]), float(proba[i])) for i in order]


def _by_weight(item: tuple[str, float]) -> tuple[float, str]:
    return (-item[1], item[0])


def _linear_model(pipeline: Pipeline) -> Any:
    last = pipeline[-1]
    if isinstance(last, TemperatureScaledSVM):
        return last.svm_
    if isinstance(last, CalibratedClassifierCV):  # artifacts saved before TemperatureScaledSVM
        return last.calibrated_classifiers_[0].estimator
    return last


def _inverse_temperature_of(last: Any) -> float:
    if isinstance(last, TemperatureScaledSVM):
        return float(last.beta_)
    return float(last.calibrated_classifiers_[0].calibrators[0].beta_)


def _coefficient_difference(pipeline: Pipeline, first: int, second: int) -> NDArray[np.float64]:
    """Weights whose dot product with a message's features is decision[first] - decision[second]."""
    coef = _linear_model(pipeline).coef_
    dense: NDArray[np.float64] = np.asarray(
        coef.toarray() if hasattr(coef, "toarray") else coef, dtype=np.float64
    )
    if dense.shape[0] == 1:  # binary: one row that scores classes_[1] against classes_[0]
        difference = dense[0] if first == 1 else -dense[0]
    else:
        difference = dense[first] - dense[second]
    return np.asarray(difference, dtype=np.float64)


def _contributions(features: Any, text: str, direction: NDArray[np.float64]) -> dict[str, float]:
    """Each feature's value times its weight; character n-grams are credited to their words."""
    credit: defaultdict[str, float] = defaultdict(float)
    offset = 0
    for vectorizer in _vectorizers_of(features):
        row = vectorizer.transform([text])
        names = vectorizer.get_feature_names_out()
        amounts = {
            str(names[col]): float(value * direction[offset + col])
            for col, value in zip(row.indices, row.data, strict=True)
        }
        if vectorizer.analyzer == "char_wb":
            _credit_words(vectorizer, text, amounts, credit)
        else:
            for gram, amount in amounts.items():
                credit[gram] += amount
        offset += len(names)
    return dict(credit)


def _vectorizers_of(features: Any) -> list[TfidfVectorizer]:
    if isinstance(features, FeatureUnion):
        return [step for _, step in features.transformer_list]
    return [features]


def _credit_words(
    vectorizer: TfidfVectorizer,
    text: str,
    amounts: dict[str, float],
    credit: defaultdict[str, float],
) -> None:
    """Split each character n-gram's amount over the words it occurs in."""
    analyze = vectorizer.build_analyzer()
    words = vectorizer.build_preprocessor()(text).split()
    grams_per_word = [Counter(g for g in analyze(word) if g in amounts) for word in words]
    total = Counter[str]()
    for grams in grams_per_word:
        total.update(grams)
    for word, grams in zip(words, grams_per_word, strict=True):
        key = word.strip(string.punctuation) or word
        for gram, count in grams.items():
            credit[key] += amounts[gram] * count / total[gram]


def _direct_path_applies(pipeline: Pipeline) -> bool:
    """Whether _direct_probabilities reproduces this pipeline (the default pipeline does)."""
    last = pipeline[-1]
    legacy = isinstance(last, CalibratedClassifierCV) and last.method == "temperature"
    if not (legacy or isinstance(last, TemperatureScaledSVM)):
        return False
    if not isinstance(pipeline[0], FeatureUnion) or pipeline[0].transformer_weights:
        return False
    vectorizers = _vectorizers_of(pipeline[0])
    return len(vectorizers) == len(pipeline[0].transformer_list) and all(
        isinstance(v, TfidfVectorizer) and not v.binary and v.use_idf and v.norm == "l2"
        for v in vectorizers
    )


def _direct_probabilities(pipeline: Pipeline, text: str) -> Probabilities:
    """Pipeline.predict_proba for one message without scikit-learn's per-call validation."""
    columns: list[NDArray[np.intp]] = []
    values: list[NDArray[np.float64]] = []
    offset = 0
    for vectorizer in _vectorizers_of(pipeline[0]):
        cols, vals = _tfidf_row(vectorizer, text)
        columns.append(cols + offset)
        values.append(vals)
        offset += len(vectorizer.vocabulary_)
    svm = _linear_model(pipeline)
    cols, vals = np.concatenate(columns), np.concatenate(values)
    decision = svm.coef_[:, cols] @ vals + svm.intercept_
    logits = np.array([-decision[0], decision[0]]) if decision.shape[0] == 1 else decision
    return _softmax(_inverse_temperature_of(pipeline[-1]) * logits)


def _tfidf_row(
    vectorizer: TfidfVectorizer, text: str
) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
    """One message's tf-idf as (columns, values), as TfidfVectorizer.transform computes it."""
    vocabulary = vectorizer.vocabulary_
    counts = Counter(vocabulary[g] for g in vectorizer.build_analyzer()(text) if g in vocabulary)
    cols = np.fromiter(counts.keys(), dtype=np.intp, count=len(counts))
    tf = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
    if vectorizer.sublinear_tf:
        tf = np.log(tf) + 1.0
    vals = tf * vectorizer.idf_[cols]
    norm = math.sqrt(float(vals @ vals))
    return cols, (vals / norm if norm > 0 else vals)
