"""Evaluating the serving model on a labelled file: exact metrics, import's reading rules,
unknown intents as errors, nothing written, roles, and `trellis evaluate`."""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import precision_recall_fscore_support
from sqlalchemy import func
from sqlmodel import select

from core import evaluate as evaluate_mod
from core import registry
from core.access import Actor, Role
from core.errors import FileRefused, InvalidInput, PermissionDenied
from core.evaluate import evaluate_file
from core.model import expected_calibration_error, fit
from db.engine import get_engine, session_scope
from db.models import AuditEvent, Example, ModelVersion
from tests.core.test_registry import PHRASES, tiny_model
from tests.factories import make_shop
from tests.factories import run_cli as run

BANKING77 = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "banking77"
TRAINING_ROWS = [(text, intent) for intent, texts in PHRASES.items() for text in texts]


def csv_bytes(rows, header=("text", "intent")) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


def serve_tiny(engine, shop) -> None:
    with session_scope(shop.admin, engine=engine) as s:
        stored = registry.store_version(
            session=s, actor=shop.admin, model=tiny_model(), run_id=None, metrics={}
        )
        registry.activate(session=s, actor=shop.admin, version=stored.version)


def evaluate(engine, actor, data: bytes, filename: str = "eval.csv"):
    with session_scope(actor, engine=engine) as s:
        return evaluate_file(session=s, actor=actor, stream=io.BytesIO(data), filename=filename)


def test_training_texts_score_perfectly_and_one_wrong_label_costs_exactly_one_row(engine):
    shop = make_shop(engine)
    serve_tiny(engine, shop)
    perfect = evaluate(engine, shop.admin, csv_bytes(TRAINING_ROWS))
    assert perfect.n == 12 and perfect.accuracy == 1.0 and perfect.macro_f1 == 1.0
    assert perfect.model_version == 1 and perfect.skipped == 0 and perfect.unknown_intents == []
    assert perfect.per_intent["order_status"] == {
        "precision": 1.0,
        "recall": 1.0,
        "f1": 1.0,
        "support": 4,
    }
    wrong = [*TRAINING_ROWS, ("where is my order", "refund_request")]
    scored = evaluate(engine, shop.admin, csv_bytes(wrong))
    assert scored.n == 13 and scored.accuracy == pytest.approx(12 / 13)
    refund = scored.per_intent["refund_request"]
    assert refund["support"] == 5 and refund["recall"] == pytest.approx(4 / 5)
    assert scored.per_intent["order_status"]["precision"] == pytest.approx(4 / 5)


def test_metrics_match_scikit_learn_and_the_model_ece_whatever_the_batch_size(engine, monkeypatch):
    shop = make_shop(engine)
    serve_tiny(engine, shop)
    rows = [
        *TRAINING_ROWS,
        ("my roses arrived damaged, money back please", "refund_request"),
        ("when will the tulips get here", "order_status"),
        ("how much water do orchids need", "flower_care"),
        ("do you deliver on sundays", "order_status"),
        ("the bouquet smells lovely", "flower_care"),
    ]
    whole = evaluate(engine, shop.admin, csv_bytes(rows))
    monkeypatch.setattr(evaluate_mod, "BATCH_ROWS", 2)
    batched = evaluate(engine, shop.admin, csv_bytes(rows))
    assert batched.as_json() == whole.as_json()

    texts, truth = [t for t, _ in rows], [i for _, i in rows]
    top = [r[0] for r in tiny_model().predict_many(texts, k=1)]
    predicted = [p for p, _ in top]
    labels = sorted(set(truth))
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, predicted, labels=labels, zero_division=0
    )
    correct = [t == p for t, p in zip(truth, predicted, strict=True)]
    assert whole.accuracy == pytest.approx(np.mean(correct))
    assert whole.macro_f1 == pytest.approx(np.mean(f1))
    for i, label in enumerate(labels):
        assert whole.per_intent[label]["precision"] == pytest.approx(precision[i])
        assert whole.per_intent[label]["recall"] == pytest.approx(recall[i])
        assert whole.per_intent[label]["support"] == support[i]
    ece = expected_calibration_error(confidences=[c for _, c in top], correct=correct)
    assert whole.ece == pytest.approx(ece)


def test_unknown_intents_count_as_errors_and_empty_rows_are_skipped(engine):
    shop = make_shop(engine)
    serve_tiny(engine, shop)
    rows = [
        *TRAINING_ROWS,
        ("do you make wedding bouquets", "wedding_flowers"),
        ("bridal flowers for june", "wedding_flowers"),
        ("", "order_status"),
        ("where is my order", ""),
        ("   ", "flower_care"),
    ]
    scored = evaluate(engine, shop.admin, csv_bytes(rows))
    assert scored.n == 14 and scored.skipped == 3
    assert scored.accuracy == pytest.approx(12 / 14)
    assert scored.unknown_intents == ["wedding_flowers"]
    assert scored.per_intent["wedding_flowers"] == {
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "support": 2,
    }
    assert scored.macro_f1 < 1.0
    assert scored.weakest(1)[0][0] == "wedding_flowers"


def test_jsonl_reads_like_an_import(engine):
    shop = make_shop(engine)
    serve_tiny(engine, shop)
    lines = [json.dumps({"text": t, "intent": i}) for t, i in TRAINING_ROWS]
    scored = evaluate(engine, shop.admin, "\n".join(lines).encode(), "eval.jsonl")
    assert scored.n == 12 and scored.accuracy == 1.0


def test_no_serving_model_says_to_train_one(engine):
    shop = make_shop(engine)
    with pytest.raises(InvalidInput, match=r"No model serves.*trellis train"):
        evaluate(engine, shop.admin, csv_bytes(TRAINING_ROWS))


def _written(engine, shop) -> tuple[int, int, int]:
    with session_scope(shop.admin, engine=engine) as s:
        return (
            s.exec(select(func.count()).select_from(Example)).one(),
            s.exec(select(func.count()).select_from(AuditEvent)).one(),
            s.exec(select(func.count()).select_from(ModelVersion)).one(),
        )


def test_a_broken_file_is_refused_with_its_line_and_nothing_is_written(engine):
    shop = make_shop(engine)
    serve_tiny(engine, shop)
    before = _written(engine, shop)
    broken = b'text,intent\nwhere is my order,order_status\n"unclosed quote,order_status\n'
    with pytest.raises(FileRefused, match="line 3"):
        evaluate(engine, shop.admin, broken)
    with pytest.raises(FileRefused, match="line 1: missing required column"):
        evaluate(engine, shop.admin, b"message,label\nhi,greet\n")
    with pytest.raises(FileRefused, match="line 2: malformed JSON"):
        evaluate(engine, shop.admin, b'{"text": "a", "intent": "b"}\n{oops\n', "x.jsonl")
    evaluate(engine, shop.admin, csv_bytes(TRAINING_ROWS))
    assert _written(engine, shop) == before


def test_manager_may_evaluate_and_florist_may_not(engine):
    shop = make_shop(engine)
    serve_tiny(engine, shop)
    assert evaluate(engine, shop.actor(Role.MANAGER), csv_bytes(TRAINING_ROWS)).n == 12
    with pytest.raises(PermissionDenied):
        evaluate(engine, shop.actor(Role.FLORIST), csv_bytes(TRAINING_ROWS))


# --- the command line ---------------------------------------------------------------------


def _serve(url: str, model) -> None:
    actor = Actor.cli(1)
    with session_scope(actor, engine=get_engine(url)) as s:
        stored = registry.store_version(
            session=s, actor=actor, model=model, run_id=None, metrics={}
        )
        registry.activate(session=s, actor=actor, version=stored.version)


def test_cli_json_shape_and_human_summary(cli_shop, tmp_path):
    path = tmp_path / "eval.csv"
    path.write_bytes(csv_bytes([*TRAINING_ROWS, ("bridal flowers", "wedding_flowers")]))
    assert run("evaluate", str(path), "--tenant", "bloom").exit_code == 2  # no model yet
    _serve(cli_shop, tiny_model())
    result = run("evaluate", str(path), "--tenant", "bloom", "--json")
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert {"n", "accuracy", "macro_f1", "per_intent"} <= set(payload)
    assert payload["n"] == 13 and payload["accuracy"] == round(12 / 13, 4)
    assert payload["unknown_intents"] == ["wedding_flowers"] and payload["model_version"] == 1
    assert set(payload["per_intent"]["order_status"]) == {"precision", "recall", "f1", "support"}
    human = run("evaluate", str(path), "--tenant", "bloom")
    assert human.exit_code == 0 and "accuracy 92.3%" in human.stdout
    assert "Weakest intents" in human.stdout and "wedding_flowers" in human.stdout


def test_cli_refuses_a_broken_file_with_exit_1(cli_shop, tmp_path):
    _serve(cli_shop, tiny_model())
    path = tmp_path / "broken.csv"
    path.write_bytes(b'text,intent\n"never closed,order_status\n')
    result = run("evaluate", str(path), "--tenant", "bloom", "--json")
    assert result.exit_code == 1 and "line 2" in result.stderr


def _banking77(name: str, per_intent: int) -> list[tuple[str, str]]:
    kept: dict[str, list[str]] = defaultdict(list)
    with (BANKING77 / name).open(encoding="utf-8") as src:
        for row in csv.DictReader(src):
            if len(kept[row["intent"]]) < per_intent:
                kept[row["intent"]].append(row["text"])
    return [(text, intent) for intent, texts in kept.items() for text in texts]


def test_banking77_sample_evaluates_through_the_cli(cli_shop, tmp_path):
    train = _banking77("train.csv", 25)
    model = fit(texts=[t for t, _ in train], labels=[i for _, i in train])
    _serve(cli_shop, model)
    test = _banking77("test.csv", 8)
    path = tmp_path / "test-sample.csv"
    path.write_bytes(csv_bytes(test))
    result = run("evaluate", str(path), "--tenant", "bloom", "--json")
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["n"] == len(test) == 77 * 8 and len(payload["per_intent"]) == 77
    assert payload["unknown_intents"] == [] and payload["skipped"] == 0
    assert 0.6 < payload["accuracy"] <= 1 and 0.6 < payload["macro_f1"] <= 1
    assert 0 <= payload["ece"] < 0.25
