"""Evaluate the serving model on a labelled file (text + intent) without importing it.

The file is read exactly as an import reads it (core.dataset's reader: formats, encodings, size
limit, clean-up, structural errors refused with the line). Rows stream through the model in
batches and only counts are kept, so memory stays flat whatever the file's size. Writes nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
from sqlmodel import Session

from core import dataset, registry
from core.access import Actor, Role, require_role
from core.config import get_settings
from core.errors import FileRefused, InvalidInput
from core.model import ECE_BINS, IntentModel

__all__ = ["BATCH_ROWS", "Evaluation", "evaluate_file"]

BATCH_ROWS = 2_000


@dataclass(frozen=True)
class Evaluation:
    """The serving model scored on a file. Intents the model does not know count as errors."""

    n: int
    accuracy: float
    macro_f1: float
    per_intent: dict[str, dict[str, float | int]]  # {intent: {precision, recall, f1, support}}
    ece: float
    skipped: int  # rows without text or intent (or otherwise unreadable as a row)
    model_version: int
    unknown_intents: list[str]

    def as_json(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "accuracy": round(self.accuracy, 4),
            "macro_f1": round(self.macro_f1, 4),
            "per_intent": {
                intent: {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}
                for intent, row in self.per_intent.items()
            },
            "ece": round(self.ece, 4),
            "skipped": self.skipped,
            "unknown_intents": self.unknown_intents,
            "model_version": self.model_version,
        }

    def weakest(self, count: int = 10) -> list[tuple[str, dict[str, float | int]]]:
        """The intents with the lowest F1 (the most examples first among equals)."""
        rows = sorted(self.per_intent.items(), key=lambda kv: (kv[1]["f1"], -kv[1]["support"]))
        return rows[:count]


class _Tally:
    """Counts enough to compute accuracy, per-intent P/R/F1 and ECE at the end."""

    def __init__(self) -> None:
        self.support: Counter[str] = Counter()
        self.predicted: Counter[str] = Counter()
        self.hits: Counter[str] = Counter()
        self.bin_count = np.zeros(ECE_BINS, dtype=np.int64)
        self.bin_conf = np.zeros(ECE_BINS, dtype=np.float64)
        self.bin_hits = np.zeros(ECE_BINS, dtype=np.float64)

    def add(self, model: IntentModel, texts: list[str], truth: list[str]) -> None:
        top = model.predict_many(texts, k=1)
        predicted = [row[0][0] for row in top]
        confidence = np.fromiter((row[0][1] for row in top), dtype=np.float64, count=len(top))
        correct = np.fromiter(
            (t == p for t, p in zip(truth, predicted, strict=True)), dtype=bool, count=len(top)
        )
        self.support.update(truth)
        self.predicted.update(predicted)
        self.hits.update(t for t, ok in zip(truth, correct, strict=True) if ok)
        # The bins of core.model.expected_calibration_error: (lower, upper], 0 in the first.
        which = np.clip(np.ceil(confidence * ECE_BINS).astype(int) - 1, 0, ECE_BINS - 1)
        np.add.at(self.bin_count, which, 1)
        np.add.at(self.bin_conf, which, confidence)
        np.add.at(self.bin_hits, which, correct.astype(np.float64))

    def result(self, skipped: int, version: int, known: set[str]) -> Evaluation:
        n = sum(self.support.values())
        per_intent: dict[str, dict[str, float | int]] = {}
        for intent in sorted(self.support):
            tp, support, guessed = self.hits[intent], self.support[intent], self.predicted[intent]
            precision = tp / guessed if guessed else 0.0
            recall = tp / support
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
            per_intent[intent] = {
                "precision": precision,
                "recall": recall,
                "f1": f1,
                "support": support,
            }
        return Evaluation(
            n=n,
            accuracy=sum(self.hits.values()) / n,
            macro_f1=float(np.mean([row["f1"] for row in per_intent.values()])),
            per_intent=per_intent,
            ece=float(np.abs(self.bin_hits - self.bin_conf).sum() / n),
            skipped=skipped,
            model_version=version,
            unknown_intents=sorted(set(self.support) - known),
        )


def _labelled_rows(
    stream: BinaryIO, filename: str, tenant_id: int, skipped: list[int]
) -> Iterator[tuple[str, str]]:
    """(text, intent) of every usable row, read and cleaned as an import would; skipped[0]
    counts the rows left out."""
    settings = get_settings()
    opened = dataset._open(stream, filename, None, settings)
    if opened.spec.kind != "examples":
        raise FileRefused(
            "line 1: this file holds conversations; evaluation needs labelled examples "
            "(text and intent)."
        )
    rows = dataset._Rows(opened.spec, settings, tenant_id)
    total = 0
    for raw in opened.rows:
        total += 1
        if total > settings.max_import_rows:
            raise FileRefused(
                f"line {raw.line}: the file has more than {settings.max_import_rows:,} rows "
                "(TRELLIS_MAX_IMPORT_ROWS); split it."
            )
        try:
            if raw.problem:
                raise dataset._RowError(raw.problem)
            text = rows.message_text(raw.values)
            intent = dataset._string(
                raw.values, "intent", required=True, max_length=dataset.MAX_INTENT_LENGTH
            )
        except dataset._RowError:
            skipped[0] += 1
            continue
        yield text, intent


def evaluate_file(*, session: Session, actor: Actor, stream: BinaryIO, filename: str) -> Evaluation:
    """The serving model's accuracy, macro-F1, per-intent scores and ECE on a labelled file
    (admin, manager). A structural error refuses the file (FileRefused, with the line)."""
    require_role(actor, Role.ADMIN, Role.MANAGER)
    loaded = registry.serving_model(session=session, actor=actor)
    if loaded is None:
        raise InvalidInput(
            f"No model serves in {actor.tenant_name or 'your shop'} yet: "
            "train one with `trellis train`."
        )
    view, model = loaded
    tally, skipped = _Tally(), [0]
    texts: list[str] = []
    truth: list[str] = []
    for text, intent in _labelled_rows(stream, filename, actor.tenant_id, skipped):
        texts.append(text)
        truth.append(intent)
        if len(texts) >= BATCH_ROWS:
            tally.add(model, texts, truth)
            texts, truth = [], []
    if texts:
        tally.add(model, texts, truth)
    if not tally.support:
        raise InvalidInput(
            f"The file has no rows with both a text and an intent ({skipped[0]} skipped); "
            "nothing to evaluate."
        )
    return tally.result(skipped[0], view.version, set(model.intents))
