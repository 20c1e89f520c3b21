"""Intent classifier quality and speed: BANKING77 train.csv -> fit, test.csv -> evaluate.

Prints one JSON object. Reference, side by side in the same process and run: the seed's
pipeline (word 1-3-gram tf-idf, 10,000 features, LinearSVC C=1 balanced, sigmoid
CalibratedClassifierCV cv=3). Both are fitted three times, interleaved, and the median fit time
counts (the machine is shared). Single-message latency: 300 test messages one at a time through
IntentModel.predict_top after 20 warm-up calls. Goals (the training issue): accuracy >= reference
+ 3 points, ECE <= 0.05, fit <= 2x reference, single-message p50 <= 1/10 of reference, artifact
<= 10 MB. "generality" repeats accuracy and ECE on a 5-fold CV of train.csv and on 10 examples
per intent, because the model will meet intent data sets nobody tuned it on.
"""

from __future__ import annotations

import csv
import json
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import BANKING77

from core.artifacts import dump_model, load_model, sha256_of
from core.model import IntentModel, build_reference_pipeline, expected_calibration_error, fit

FIT_ROUNDS = 3
LATENCY_MESSAGES, WARM_UP = 300, 20
MB = 10**6


def read(name: str) -> tuple[list[str], list[str]]:
    with (BANKING77 / name).open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [row["text"] for row in rows], [row["intent"] for row in rows]


def fit_trellis(texts: Sequence[str], labels: Sequence[str]) -> IntentModel:
    return fit(texts=texts, labels=labels)


def fit_reference(texts: Sequence[str], labels: Sequence[str]) -> IntentModel:
    return IntentModel(pipeline=build_reference_pipeline().fit(list(texts), list(labels)))


Fitter = Callable[[Sequence[str], Sequence[str]], IntentModel]


def quality(model: IntentModel, texts: Sequence[str], labels: Sequence[str]) -> dict[str, float]:
    proba = model.probabilities(texts)
    predicted = np.asarray(model.intents)[proba.argmax(axis=1)]
    correct = predicted == np.asarray(labels)
    return {
        "accuracy": round(float(correct.mean()), 4),
        "macro_f1": round(float(f1_score(labels, predicted, average="macro")), 4),
        "ece": round(expected_calibration_error(confidences=proba.max(axis=1), correct=correct), 4),
    }


def predict_p50_ms(model: IntentModel, texts: Sequence[str]) -> float:
    for text in texts[:WARM_UP]:
        model.predict_top(text)
    seconds = []
    for text in texts[:LATENCY_MESSAGES]:
        start = time.perf_counter()
        model.predict_top(text, k=5)
        seconds.append(time.perf_counter() - start)
    return round(statistics.median(seconds) * 1000, 3)


def fit_both(train: tuple[list[str], list[str]]) -> dict[str, tuple[IntentModel, float]]:
    """Fit each pipeline FIT_ROUNDS times, interleaved; the median time and the last model."""
    fitters: dict[str, Fitter] = {"trellis": fit_trellis, "reference": fit_reference}
    times: dict[str, list[float]] = {name: [] for name in fitters}
    models: dict[str, IntentModel] = {}
    for _ in range(FIT_ROUNDS):
        for name, fitter in fitters.items():
            start = time.perf_counter()
            models[name] = fitter(*train)
            times[name].append(time.perf_counter() - start)
    return {name: (models[name], statistics.median(times[name])) for name in fitters}


def generality(fitter: Fitter, train: tuple[list[str], list[str]], test: Any) -> dict[str, Any]:
    texts, labels = np.asarray(train[0], dtype=object), np.asarray(train[1], dtype=object)
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0).split(texts, labels)
    scores = [
        quality(fitter(list(texts[a]), list(labels[a])), list(texts[b]), list(labels[b]))
        for a, b in folds
    ]
    seen: Counter[str] = Counter()
    few = [i for i, label in enumerate(labels) if seen.update([label]) or seen[label] <= 10]
    few_shot = quality(fitter(list(texts[few]), list(labels[few])), *test)
    return {
        "cv5_accuracy": round(statistics.mean(s["accuracy"] for s in scores), 4),
        "cv5_ece": round(statistics.mean(s["ece"] for s in scores), 4),
        "ten_per_intent_accuracy": few_shot["accuracy"],
        "ten_per_intent_ece": few_shot["ece"],
    }


def main() -> None:
    train, test = read("train.csv"), read("test.csv")
    fitted = fit_both(train)
    result: dict[str, Any] = {
        "benchmark": "classifier",
        "dataset": "banking77",
        "train_rows": len(train[0]),
        "test_rows": len(test[0]),
        "intents": len(set(train[1])),
    }
    for name, (model, fit_seconds) in fitted.items():
        artifact = dump_model(model)
        result[name] = {
            **quality(model, *test),
            "fit_seconds": round(fit_seconds, 2),
            "predict_p50_ms": predict_p50_ms(model, test[0]),
            "artifact_bytes": len(artifact),
        }
    artifact = dump_model(fitted["trellis"][0])
    start = time.perf_counter()
    load_model(artifact, sha256=sha256_of(artifact))
    result["trellis"]["artifact_load_seconds"] = round(time.perf_counter() - start, 2)
    ours, ref = result["trellis"], result["reference"]
    result["goals"] = {
        "accuracy_at_least_reference_plus_3_points": ours["accuracy"] >= ref["accuracy"] + 0.03,
        "ece_at_most_0.05": ours["ece"] <= 0.05,
        "fit_at_most_2x_reference": ours["fit_seconds"] <= 2 * ref["fit_seconds"],
        "predict_p50_at_most_tenth_of_reference": ours["predict_p50_ms"]
        <= ref["predict_p50_ms"] / 10,
        "artifact_at_most_10_mb": ours["artifact_bytes"] <= 10 * MB,
    }
    result["generality"] = {
        "trellis": generality(fit_trellis, train, test),
        "reference": generality(fit_reference, train, test),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
