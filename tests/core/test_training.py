"""Training runs: selection, split, fit, evaluation against the serving model, the deploy gate,
failures that leave the serving model alone, one run at a time, live progress, the CLI."""

from __future__ import annotations

import json
import random
import time
from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine
from sqlmodel import select

from core import model as model_module
from core import registry, training
from core.access import Actor
from core.cli import main
from core.config import get_settings
from core.errors import InvalidInput, PermissionDenied
from core.model import fit as real_fit
from core.text import text_hash
from db.engine import get_engine, session_scope
from db.models import Example, ExampleSource, ExampleStatus, ModelVersion, TrainingRun, utcnow
from tests.factories import Shop, make_shop

CORES = {
    "order_status": [
        "where is my order",
        "has my bouquet shipped yet",
        "can you track my delivery",
        "my flowers have not arrived",
        "when will my order be delivered",
        "is my order out for delivery",
        "what is the status of my order",
        "the courier has not come yet",
    ],
    "flower_care": [
        "how do I keep roses fresh",
        "how often should I water my tulips",
        "my lilies are wilting already",
        "should I trim the stems of the bouquet",
        "what is the plant food sachet for",
        "how long do peonies last in a vase",
        "the water in the vase turned cloudy",
        "can I put the orchid in direct sun",
    ],
    "refund_request": [
        "I want my money back",
        "please refund my order",
        "can I get a refund for the roses",
        "the flowers arrived dead and I want a refund",
        "how do I return a damaged arrangement",
        "I was charged twice, refund one payment",
        "cancel my order and refund me",
        "I would like a full refund",
    ],
    "opening_hours": [
        "what time do you open",
        "are you open on sunday",
        "when does the shop close today",
        "are you open on bank holidays",
        "what are your opening hours",
        "can I visit the shop this evening",
        "is the store open late on friday",
        "what time do you close on saturday",
    ],
    "wedding_flowers": [
        "do you do wedding bouquets",
        "I need flowers for my wedding in june",
        "can you decorate a church for a wedding",
        "how much is a bridal bouquet",
        "do you make buttonholes for the groomsmen",
        "we want peonies for our wedding arch",
        "can we book a wedding flower consultation",
        "do you deliver to the wedding venue",
    ],
}
WRAPPERS = ("{}", "hi, {}?", "{} please", "hello there {}")


def phrasings(intents: list[str] | None = None, per_intent: int = 32) -> dict[str, list[str]]:
    """Real florist messages: each core phrasing in a few wrappings."""
    return {
        intent: [w.format(core) for core in cores for w in WRAPPERS][:per_intent]
        for intent, cores in CORES.items()
        if intents is None or intent in intents
    }


def add_examples(
    engine: Engine,
    shop: Shop,
    data: dict[str, list[str]],
    *,
    source: str = ExampleSource.IMPORTED.value,
    reviewed: bool = True,
) -> None:
    """Examples a person reviewed and labelled (or, reviewed=False, unlabelled live traffic)."""
    with session_scope(shop.admin, engine=engine) as s:
        for intent, texts in data.items():
            for text in texts:
                s.add(
                    Example(
                        tenant_id=shop.tenant_id,
                        text=text,
                        text_hash=text_hash(text),
                        correct_intent=intent if reviewed else None,
                        reviewed=reviewed,
                        reviewed_at=utcnow() if reviewed else None,
                        status=(
                            ExampleStatus.REVIEWED if reviewed else ExampleStatus.PENDING
                        ).value,
                        source=source,
                    )
                )


def plant_serving_model(engine: Engine, shop: Shop) -> None:
    """A good model (trained on the same kind of data) serving as version 1."""
    data = phrasings()
    texts = [t for ts in data.values() for t in ts]
    labels = [i for i, ts in data.items() for _ in ts]
    with session_scope(shop.admin, engine=engine) as s:
        stored = registry.store_version(
            session=s,
            actor=shop.admin,
            model=real_fit(texts=texts, labels=labels),
            run_id=None,
            metrics={},
        )
        registry.activate(session=s, actor=shop.admin, version=stored.version)


def run_now(engine: Engine, actor: Actor, **options: object) -> training.RunView:
    with session_scope(actor, engine=engine) as s:
        started = training.start_run(session=s, actor=actor, options=training.RunOptions(**options))
    return training.execute_run(engine=engine, actor=actor, run_id=started.id)


def serving(engine: Engine, shop: Shop) -> int | None:
    with session_scope(shop.admin, engine=engine) as s:
        view = registry.serving_version(session=s, actor=shop.admin)
    return view.version if view else None


def wait_for(engine: Engine, actor: Actor, run_id: int) -> list[training.RunView]:
    seen = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with session_scope(actor, engine=engine) as s:
            view = training.get_run(session=s, actor=actor, run_id=run_id)
        seen.append(view)
        if view.status in ("completed", "failed"):
            return seen
        time.sleep(0.02)
    raise AssertionError("the run did not finish within 60 s")


# --- the whole run ------------------------------------------------------------------------


def test_first_model_deploys_serves_and_reports_everything(engine):
    shop = make_shop(engine)
    add_examples(engine, shop, phrasings())
    run = run_now(engine, shop.admin)
    assert run.status == "completed" and run.deployed and run.model_version == 1
    assert run.stage == "done" and run.progress == 1.0 and run.error is None
    assert run.counts["after_cleaning"] == 160 and run.counts["intents"] == 5
    assert (run.counts["train"], run.counts["validation"], run.counts["test"]) == (110, 25, 25)
    m = run.metrics
    assert m is not None and m["n_test"] == 25 and m["macro_f1"] > 0.6
    assert set(m["per_intent"]) == set(CORES) and len(m["confusion"]["labels"]) == 5
    assert len(m["calibration"]["bins"]) == len(m["calibration"]["count"])
    assert sum(m["calibration"]["count"]) == 25
    assert run.baseline_metrics is None and run.gate is not None
    assert run.gate["mcnemar_p"] is None and "first model" in run.gate["reasons"][0]
    assert [p["fraction"] for p in run.points][-1] == 1.0 and len(run.points) == 4
    json.dumps([run.metrics, run.gate, run.counts, run.shadow, run.points])
    with session_scope(shop.florist, engine=engine) as s:
        prediction = registry.predict(session=s, actor=shop.florist, text="where is my order?")
    assert prediction is not None and prediction.intent == "order_status"


def test_a_large_validation_split_calibrates_the_model(engine, monkeypatch):
    # Runs on many examples calibrate on their validation split instead of a fold fit.
    monkeypatch.setattr(model_module, "HELD_OUT_MIN", 25)
    shop = make_shop(engine)
    add_examples(engine, shop, phrasings())
    assert run_now(engine, shop.admin).counts["validation"] == 25
    with session_scope(shop.admin, engine=engine) as s:
        _, served = registry.serving_model(session=s, actor=shop.admin)
    classifier = served.pipeline[-1]
    assert classifier.held_out_fits == 0 and classifier.beta_ != 1.0


def test_selection_cleans_dedupes_and_reports_thin_intents(engine):
    shop = make_shop(engine)
    data = phrasings(["order_status", "flower_care"])
    data["opening_hours"] = ["what time do you open", "are you open on sunday"]
    add_examples(engine, shop, data)
    # Repeats (after normalizing), an empty text, unreviewed traffic below the confidence floor
    with session_scope(shop.admin, engine=engine) as s:
        for text, detected, confidence in [
            ("  WHERE is my   order ", None, None),
            ("   ", None, None),
            ("is the shop open today", "opening_hours", 0.5),
            ("are you open tomorrow morning", "opening_hours", 0.95),
        ]:
            s.add(
                Example(
                    tenant_id=shop.tenant_id,
                    text=text,
                    text_hash=text_hash(text),
                    correct_intent="order_status" if detected is None else None,
                    detected_intent=detected,
                    confidence=confidence,
                    status=(
                        ExampleStatus.APPROVED if detected is None else ExampleStatus.PENDING
                    ).value,
                )
            )
    run = run_now(engine, shop.admin)
    counts = run.counts
    assert counts["selected"] == 64 + 2 + 3  # the 0.5-confidence guess stays out
    assert counts["duplicates_dropped"] == 1 and counts["empty_or_long_dropped"] == 1
    assert counts["thin_intents"] == [["opening_hours", 3]]
    assert run.status == "completed"


def test_split_is_stratified_reproducible_and_keeps_tiny_intents_in_training():
    examples = [training.Labelled(f"text {i}", "big", False) for i in range(40)] + [
        training.Labelled("only one", "tiny", False)
    ]
    first = training.stratified_split(examples)
    assert first == training.stratified_split(examples)
    train, validation, test, train_only = first
    assert (len(train), len(validation), len(test)) == (29, 6, 6)
    assert train_only == ["tiny"] and any(e.intent == "tiny" for e in train)


def test_the_gate_refuses_a_regression_and_the_serving_model_stays(engine, monkeypatch):
    shop = make_shop(engine)
    plant_serving_model(engine, shop)
    add_examples(engine, shop, phrasings())

    def fit_on_shuffled_labels(*, texts, labels, **kwargs):
        shuffled = list(labels)
        random.Random(1).shuffle(shuffled)
        return real_fit(texts=texts, labels=shuffled, **kwargs)

    monkeypatch.setattr(training, "fit", fit_on_shuffled_labels)
    run = run_now(engine, shop.admin)
    assert run.status == "completed" and not run.deployed
    assert run.gate is not None and not run.gate["deploy"]
    assert any("macro-F1" in r and "below" in r for r in run.gate["reasons"])
    assert run.baseline_metrics is not None
    assert run.baseline_metrics["macro_f1"] > run.metrics["macro_f1"]  # type: ignore[index]
    assert run.gate["old_only_correct"] > run.gate["new_only_correct"]
    assert 0 <= run.gate["mcnemar_p"] < 0.05
    assert run.model_version == 2 and serving(engine, shop) == 1  # stored, not serving


def test_a_model_as_good_as_the_serving_one_deploys_with_its_reasons(engine):
    shop = make_shop(engine)
    plant_serving_model(engine, shop)
    add_examples(engine, shop, phrasings())
    run = run_now(engine, shop.admin)
    assert run.deployed and serving(engine, shop) == 2
    assert run.gate is not None and run.gate["deploy"]
    assert run.gate["mcnemar_p"] is not None


def _metrics(macro_f1: float, per_intent: dict[str, tuple[float, int]]) -> dict:
    return {
        "macro_f1": macro_f1,
        "per_intent": {i: {"f1": f1, "support": n} for i, (f1, n) in per_intent.items()},
    }


def test_the_gate_refuses_a_well_tested_intent_that_lost_too_much():
    settings = get_settings()
    old = _metrics(0.80, {"refund_request": (0.90, 25), "flower_care": (0.70, 25)})
    new = _metrics(0.80, {"refund_request": (0.70, 25), "flower_care": (0.90, 25)})
    gate = training.deploy_gate(
        metrics=new, baseline=old, train_examples=500, intents=2, settings=settings
    )
    assert not gate["deploy"]
    assert any("refund_request" in r for r in gate["reasons"])
    # The same drop on an intent with few test examples is noise, not a regression.
    few = settings.model_copy(update={"gate_min_support": 30})
    gate = training.deploy_gate(
        metrics=new, baseline=old, train_examples=500, intents=2, settings=few
    )
    assert gate["deploy"]


def test_a_first_model_needs_enough_examples(engine):
    shop = make_shop(engine)
    add_examples(engine, shop, phrasings(["order_status", "refund_request"], per_intent=6))
    run = run_now(engine, shop.admin)
    assert run.status == "completed" and not run.deployed
    assert run.gate is not None and any("at least 20" in r for r in run.gate["reasons"])
    assert serving(engine, shop) is None and run.model_version == 1


def test_shadow_replay_reports_disagreements_with_the_serving_model(engine, monkeypatch):
    monkeypatch.setenv("TRELLIS_SHADOW_MESSAGES", "5")
    shop = make_shop(engine)
    plant_serving_model(engine, shop)
    add_examples(engine, shop, phrasings())
    from core.ingest import record_interaction

    with session_scope(shop.admin, engine=engine) as s:  # live traffic, as the assistant sends it
        for i in range(8):
            record_interaction(
                session=s,
                actor=shop.admin,
                text=f"where is my order number {i}",
                conversation_id=f"c-{i}",
            )
    run = run_now(engine, shop.admin)
    assert run.shadow is not None and run.shadow["messages"] == 5
    assert 0 <= run.shadow["disagreement"] <= 1
    assert all({"from", "to", "count"} <= set(flip) for flip in run.shadow["flips"])


# --- failures -----------------------------------------------------------------------------


def test_a_failing_fit_fails_the_run_and_leaves_the_serving_model(engine, monkeypatch):
    shop = make_shop(engine)
    plant_serving_model(engine, shop)
    add_examples(engine, shop, phrasings())

    def broken_fit(**_kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(training, "fit", broken_fit)
    run = run_now(engine, shop.admin)
    assert run.status == "failed" and not run.deployed and run.finished_at is not None
    assert run.error is not None and "out of memory" in run.error
    assert serving(engine, shop) == 1 and run.model_version is None


def test_a_failing_artifact_write_fails_the_run_and_leaves_the_serving_model(engine, monkeypatch):
    shop = make_shop(engine)
    plant_serving_model(engine, shop)
    add_examples(engine, shop, phrasings())

    def broken_store(**_kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(registry, "store_version", broken_store)
    run = run_now(engine, shop.admin)
    assert run.status == "failed" and "disk full" in (run.error or "")
    assert run.metrics is not None  # what was learned before the failure stays visible
    assert serving(engine, shop) == 1


def test_a_failure_while_saving_rolls_the_stored_version_back(engine, monkeypatch):
    shop = make_shop(engine)
    add_examples(engine, shop, phrasings())

    def broken_activate(**_kwargs):
        raise RuntimeError("connection lost")

    monkeypatch.setattr(registry, "activate", broken_activate)
    run = run_now(engine, shop.admin)
    assert run.status == "failed" and "connection lost" in (run.error or "")
    with session_scope(shop.admin, engine=engine) as s:
        assert s.exec(select(ModelVersion)).all() == []
    assert serving(engine, shop) is None


def test_too_few_examples_to_test_fail_with_the_reason(engine):
    shop = make_shop(engine)
    add_examples(
        engine, shop, {"order_status": ["where is my order"], "refund_request": ["refund"]}
    )
    run = run_now(engine, shop.admin)
    assert run.status == "failed" and "test split" in (run.error or "")


# --- one run at a time, roles, tenants --------------------------------------------------------


def test_a_second_run_is_refused_while_one_is_active(engine):
    shop = make_shop(engine)
    with session_scope(shop.admin, engine=engine) as s:
        first = training.start_run(session=s, actor=shop.admin)
    with session_scope(shop.admin, engine=engine) as s, pytest.raises(InvalidInput) as refused:
        training.start_run(session=s, actor=shop.admin)
    assert str(refused.value) == "A training run is already in progress for this shop."
    with session_scope(shop.manager, engine=engine) as s:
        active = training.active_run(session=s, actor=shop.manager)
    assert active is not None and active.id == first.id and active.status == "pending"
    training.execute_run(engine=engine, actor=shop.admin, run_id=first.id)
    with session_scope(shop.admin, engine=engine) as s:
        again = training.start_run(session=s, actor=shop.admin)
        assert again.id != first.id


def test_an_abandoned_run_does_not_block_the_shop_for_ever(engine):
    shop = make_shop(engine)
    with session_scope(shop.admin, engine=engine) as s:
        old = training.start_run(session=s, actor=shop.admin)
        row = s.exec(select(TrainingRun)).one()
        row.created_at = utcnow() - timedelta(hours=1)
        s.add(row)
    with session_scope(shop.admin, engine=engine) as s:
        training.start_run(session=s, actor=shop.admin)
        view = training.get_run(session=s, actor=shop.admin, run_id=old.id)
    assert view.status == "failed" and "Abandoned" in (view.error or "")


def test_only_admins_start_runs_and_florists_do_not_read_them(engine):
    shop = make_shop(engine)
    with session_scope(shop.florist, engine=engine) as s, pytest.raises(PermissionDenied):
        training.start_run(session=s, actor=shop.florist)
    with session_scope(shop.florist, engine=engine) as s, pytest.raises(PermissionDenied):
        training.list_runs(session=s, actor=shop.florist)


def test_a_run_never_sees_another_shops_examples(engine):
    bloom, fern = make_shop(engine, "Bloom"), make_shop(engine, "Fern")
    add_examples(engine, bloom, phrasings(["order_status", "flower_care", "refund_request"]))
    add_examples(engine, fern, phrasings(["wedding_flowers", "opening_hours"]))
    run = run_now(engine, bloom.admin)
    with session_scope(bloom.admin, engine=engine) as s:
        (version,) = registry.list_versions(session=s, actor=bloom.admin)
        runs = training.list_runs(session=s, actor=bloom.admin)
    assert run.counts["selected"] == 96
    assert sorted(version.intents) == ["flower_care", "order_status", "refund_request"]
    with session_scope(fern.admin, engine=engine) as s:
        assert training.list_runs(session=s, actor=fern.admin) == []
    assert [r.id for r in runs] == [run.id]


# --- live progress, the CLI, auto-retrain ---------------------------------------------------


def test_progress_is_visible_from_another_session_while_the_run_works(threaded_engine, monkeypatch):
    engine = threaded_engine
    shop = make_shop(engine)
    add_examples(engine, shop, phrasings())

    def slow_fit(**kwargs):
        time.sleep(0.3)  # long enough for the poller to see every step
        return real_fit(**kwargs)

    monkeypatch.setattr(training, "fit", slow_fit)
    with session_scope(shop.admin, engine=engine) as s:
        started = training.start_run(session=s, actor=shop.admin)
    worker = training.launch_run(engine=engine, actor=shop.admin, run_id=started.id)
    seen = wait_for(engine, shop.manager, started.id)
    worker.join(10)
    running = [v for v in seen if v.status == "running"]
    assert {"learning_curve", "fitting"} <= {v.stage for v in running}
    assert any(0 < len(v.points) < 4 for v in running)  # points arrive one by one
    assert [v.progress for v in seen] == sorted(v.progress for v in seen)
    assert seen[-1].status == "completed" and len(seen[-1].points) == 4
    assert seen[-1].duration_s is not None and seen[-1].duration_s > 0


def test_cli_train_prints_the_json_contract(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'train.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    runner = CliRunner()
    runner.invoke(main, ["init-db"], catch_exceptions=False)
    runner.invoke(main, ["tenant", "create", "--name", "Bloom"], catch_exceptions=False)
    actor = Actor.cli(1)
    shop = Shop(1, "bloom", "Bloom", actor, actor, actor)
    add_examples(get_engine(url), shop, phrasings())
    result = runner.invoke(main, ["train", "--tenant", "bloom", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert set(payload) == {
        "run_id",
        "status",
        "deployed",
        "accuracy",
        "macro_f1",
        "baseline_macro_f1",
        "duration_s",
        "reason",
    }
    assert payload["status"] == "completed" and payload["deployed"] is True
    assert "first model" in payload["reason"] and "done" in result.stderr


def test_cli_train_exits_1_when_the_run_fails(tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    runner = CliRunner()
    runner.invoke(main, ["init-db"], catch_exceptions=False)
    runner.invoke(main, ["tenant", "create", "--name", "Bloom"], catch_exceptions=False)
    result = runner.invoke(main, ["train", "--tenant", "bloom", "--json"], catch_exceptions=False)
    assert result.exit_code == 1
    assert json.loads(result.stdout)["status"] == "failed"


def test_auto_retrain_starts_once_after_enough_reviews(threaded_engine, monkeypatch):
    engine = threaded_engine
    monkeypatch.setenv("TRELLIS_AUTO_RETRAIN_AFTER", "150")
    shop = make_shop(engine)
    add_examples(engine, shop, phrasings(per_intent=28))  # 140 reviews: not yet
    with session_scope(shop.florist, engine=engine) as s:
        assert training.maybe_auto_retrain(session=s, actor=shop.florist) is None
    add_examples(engine, shop, {"flower_care": [f"do roses like {x} water" for x in "ab"]})
    add_examples(engine, shop, phrasings(per_intent=32))  # duplicates count as reviews too
    with session_scope(shop.florist, engine=engine) as s:
        queued = training.maybe_auto_retrain(session=s, actor=shop.florist)
    assert queued is not None and queued.trigger == "auto"
    final = wait_for(engine, shop.admin, queued.id)[-1]
    assert final.status == "completed" and final.deployed
    with session_scope(shop.florist, engine=engine) as s:
        assert training.maybe_auto_retrain(session=s, actor=shop.florist) is None
