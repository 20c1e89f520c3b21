"""Analytics: the page for managers and admins with a shop's data and empty, roles, ranges,
sorting, snapshots taken and compared through the page, and alert banners and history."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine
from sqlmodel import col, select
from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df

from core import registry, snapshots
from core.alerts import set_alert_thresholds
from core.model import IntentModel, fit
from core.text import text_hash
from db.engine import session_scope
from db.models import AlertEvent, Correction, Example, MetricSnapshot, RunStatus, TrainingRun
from tests.factories import Shop

PAGE = "pages/analytics.py"
NOW = datetime.now(UTC)


@dataclass(frozen=True)
class Msg:
    days_ago: float
    predicted: str | None
    confidence: float | None = None
    truth: str | None = None
    escalated: bool = False


def add_examples(engine: Engine, shop: Shop, rows: list[Msg]) -> list[int]:
    ids = []
    with session_scope(shop.admin, engine=engine) as s:
        for i, m in enumerate(rows):
            body = f"{shop.slug} message {m.days_ago} {i}"
            example = Example(
                tenant_id=shop.tenant_id,
                text=body,
                text_hash=text_hash(body),
                detected_intent=m.predicted,
                confidence=m.confidence,
                correct_intent=m.truth,
                reviewed=m.truth is not None,
                intent_correct=None if m.truth is None else m.truth == m.predicted,
                escalated=m.escalated,
                created_at=NOW - timedelta(days=m.days_ago),
            )
            s.add(example)
            s.flush()
            assert example.id is not None
            ids.append(example.id)
    return ids


def relabel(engine: Engine, shop: Shop, example_id: int, days_ago: float) -> None:
    with session_scope(shop.admin, engine=engine) as s:
        s.add(
            Correction(
                tenant_id=shop.tenant_id,
                example_id=example_id,
                field="intent",
                original_value="refund",
                corrected_value="order_status",
                was_mismatch=True,
                reviewer_id=shop.admin.user_id,
                created_at=NOW - timedelta(days=days_ago),
            )
        )


@functools.cache
def tiny_model() -> IntentModel:
    texts = ["where is my order", "track my order", "refund please", "my money back"]
    return fit(texts=texts, labels=["order_status", "order_status", "refund", "refund"])


def add_run(engine: Engine, shop: Shop, days_ago: float, macro_f1: float, deployed: bool) -> int:
    metrics = {
        "macro_f1": macro_f1,
        "accuracy": 0.9,
        "n_test": 50,
        "per_intent": {"order_status": {"f1": 0.91}, "refund": {"f1": 0.42}},
    }
    with session_scope(shop.admin, engine=engine) as s:
        run = TrainingRun(
            tenant_id=shop.tenant_id,
            status=RunStatus.COMPLETED.value,
            trigger="manual",
            metrics=metrics,
            deployed=deployed,
            created_at=NOW - timedelta(days=days_ago),
        )
        s.add(run)
        s.flush()
        assert run.id is not None
        if deployed:
            stored = registry.store_version(
                session=s, actor=shop.admin, model=tiny_model(), run_id=run.id, metrics=metrics
            )
            registry.activate(session=s, actor=shop.admin, version=stored.version)
        return run.id


def seed_shop(engine: Engine, shop: Shop) -> None:
    """This 30 days: 25 messages, 5 escalated, mean confidence 0.74, 15 judged of which 10
    right, 2 relabelled. The 30 days before: 10 messages, 5 escalated. A serving model."""
    current = (
        [Msg(1 + i, "order_status", 0.9, "order_status") for i in range(10)]
        + [Msg(11 + i, "refund", 0.5, "order_status") for i in range(5)]
        + [Msg(16 + i, "delivery_time", 0.7, escalated=i < 5) for i in range(10)]
    )
    ids = add_examples(engine, shop, current)
    for example_id in ids[10:12]:
        relabel(engine, shop, example_id, days_ago=2)
    add_examples(engine, shop, [Msg(35 + i, "refund", 0.5, escalated=i < 5) for i in range(10)])
    add_run(engine, shop, days_ago=20, macro_f1=0.72, deployed=False)
    add_run(engine, shop, days_ago=3, macro_f1=0.85, deployed=True)


def open_page(app, actor):
    at = app(actor)
    at.switch_page(PAGE)
    return at.run()


def metrics(at) -> dict[str, tuple[str, str | None]]:
    return {m.label: (m.value, m.delta) for m in at.metric}


def table(at, column: str):
    """The table that has this column."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def charts(at) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]


def chart_rows(at, field: str) -> list[dict]:
    """The data rows of the first chart whose data has this field."""
    for chart in at.get("vega_lite_chart"):
        for dataset in chart.proto.datasets:
            frame = convert_arrow_bytes_to_pandas_df(dataset.data.data)
            if field in frame.columns:
                return frame.to_dict("records")
    raise AssertionError(f"no chart has {field}")


def chart_titles(at) -> list[str]:
    titles = []
    for spec in charts(at):
        title = spec.get("title")
        titles.append(title.get("text") if isinstance(title, dict) else title)
    return titles


def buttons(at, starts: str):
    return [b for b in at.button if b.label.startswith(starts)]


# --- with data ---------------------------------------------------------------------------------


def test_manager_sees_headline_with_changes_trends_and_markers(app, shops, app_db):
    bloom, fern = shops
    seed_shop(app_db, bloom)
    add_examples(app_db, fern, [Msg(1, "refund", 0.1, escalated=True) for _ in range(7)])
    at = open_page(app, bloom.manager)
    assert not at.exception
    assert at.title[0].value == "Analytics"
    shown = metrics(at)
    assert shown["Messages"] == ("25", "+15")
    assert shown["AI-resolved"] == ("20", "+15")
    assert shown["Escalated"] == ("5", "0")
    assert shown["Escalation rate"] == ("20.0%", "-30.0 pp")
    assert shown["Average confidence"] == ("74.0%", "+24.0 pp")
    assert shown["Intent accuracy"] == ("66.7%", "")  # nothing was judged the period before
    assert shown["Correction rate"] == ("8.0%", "+8.0 pp")
    escalation = next(m for m in at.metric if m.label == "Escalation rate")
    assert "color: GREEN" in str(escalation.proto)  # inverse: fewer escalations are good news
    titles = chart_titles(at)
    for trend in ("Messages", "Escalation rate", "Average confidence", "Intent accuracy"):
        assert trend in titles
    assert "Messages relabelled" in titles
    trend_specs = [s for s in charts(at) if s.get("title") and "layer" in s]
    assert len(trend_specs) == 5  # each trend carries the deployment marker layer
    [marker] = chart_rows(at, "what")
    assert marker["kind"] == "deployed" and marker["what"].startswith("v1 deployed")
    assert any("v1 deployed" in c.value for c in at.caption)


def test_intents_tables_model_history_and_downloads(app, shops, app_db):
    bloom, fern = shops
    seed_shop(app_db, bloom)
    add_examples(app_db, fern, [Msg(1, "fern_secret", 0.1, "other") for _ in range(3)])
    at = open_page(app, bloom.manager)
    assert not at.exception
    pairs = table(at, "predicted as")
    assert list(zip(pairs["true intent"], pairs["predicted as"], pairs["messages"])) == [
        ("order_status", "refund", 5)
    ]
    per_intent = table(at, "F1")
    assert list(per_intent["intent"]) == ["order_status", "delivery_time"]  # by volume
    first = per_intent.iloc[0]
    assert (first["volume"], round(first["accuracy"], 3), first["F1"]) == (15, 0.667, 0.91)
    second = per_intent.iloc[1]
    assert second["escalation rate"] == 0.5 and second["accuracy"] != second["accuracy"]  # NaN
    assert "fern_secret" not in str(per_intent.to_dict())
    assert [(v["macro_f1"], v["outcome"]) for v in chart_rows(at, "macro_f1")] == [
        (0.72, "not deployed"),
        (0.85, "deployed"),
    ]
    labels = {b.label for b in at.get("download_button")}
    assert labels == {"Download CSV"}
    assert len(at.get("download_button")) >= 5  # trends, top intents, pairs, per intent, runs
    reviewers = chart_rows(at, "reviewer")  # managers see who reviewed how much
    assert [(r["reviewer"], r["corrections"]) for r in reviewers] == [(bloom.admin.display_name, 2)]


def test_per_intent_table_sorts_through_core(app, shops, app_db):
    bloom, _ = shops
    seed_shop(app_db, bloom)
    at = open_page(app, bloom.manager)
    at.selectbox(key="intent_sort").select("escalation_rate")
    at = at.run()
    assert list(table(at, "F1")["intent"]) == ["delivery_time", "order_status"]
    at.selectbox(key="intent_sort").select("intent")
    at = at.run()
    assert list(table(at, "F1")["intent"]) == ["order_status", "delivery_time"]  # Z to A
    at.toggle(key="intent_desc").set_value(False)
    at = at.run()
    assert list(table(at, "F1")["intent"]) == ["delivery_time", "order_status"]


def test_shorter_and_custom_periods_change_the_numbers(app, shops, app_db):
    bloom, _ = shops
    seed_shop(app_db, bloom)
    at = open_page(app, bloom.manager)
    at.button_group(key="analytics_preset").set_value("7 d")
    at = at.run()
    assert not at.exception
    assert metrics(at)["Messages"][0] == "6"  # days 1 to 6 ago
    at.button_group(key="analytics_preset").set_value("Custom")
    at = at.run()
    today = NOW.date()
    at.date_input(key="analytics_dates").set_value((today - timedelta(days=40), today))
    at = at.run()
    assert not at.exception
    assert metrics(at)["Messages"][0] == "31"  # everything from 40 days ago on
    assert any("Changes against the previous 41 days" in c.value for c in at.caption)
    at.button_group(key="analytics_bucket").set_value("week")
    at = at.run()
    assert not at.exception
    assert any("Trends per week" in h.value for h in at.subheader)


def test_admin_sees_reviewer_activity(app, shops, app_db):
    bloom, _ = shops
    seed_shop(app_db, bloom)
    at = open_page(app, bloom.admin)
    assert not at.exception
    rows = chart_rows(at, "reviewer")
    assert [(r["reviewer"], r["corrections"]) for r in rows] == [(bloom.admin.display_name, 2)]


# --- empty, roles ------------------------------------------------------------------------------


def test_empty_shop_says_what_to_do_everywhere(app, shops):
    bloom, _ = shops
    at = open_page(app, bloom.manager)
    assert not at.exception
    assert metrics(at)["Messages"] == ("0", "0")
    assert metrics(at)["Escalation rate"] == ("—", "")
    infos = " ".join(i.value for i in at.info)
    assert "No customer messages from" in infos
    assert "No completed training runs yet" in infos
    assert f"trellis snapshot --tenant {bloom.slug} --period daily" in infos
    assert "No alert has been raised yet" in infos
    assert not at.get("vega_lite_chart")
    assert not buttons(at, "Take snapshot now")  # managers read snapshots; admins take them
    assert not at.warning  # no alert banner


def test_florist_is_not_allowed(app, shops, app_db):
    bloom, _ = shops
    seed_shop(app_db, bloom)
    at = open_page(app, bloom.florist)
    assert not at.exception
    assert "Not allowed" in at.error[0].value
    assert not at.metric and not at.get("vega_lite_chart") and not at.dataframe


# --- snapshots ---------------------------------------------------------------------------------


def test_admin_takes_a_snapshot_once_through_the_page(app, shops, app_db):
    bloom, _ = shops
    seed_shop(app_db, bloom)
    at = open_page(app, bloom.admin)
    buttons(at, "Take snapshot now")[0].click()
    at = at.run()
    assert not at.exception
    assert "Took the snapshot of the day from" in at.success[0].value
    buttons(at, "Take snapshot now")[0].click()
    at = at.run()
    assert "existed already" in at.success[0].value
    with session_scope(bloom.admin, engine=app_db) as s:
        rows = s.exec(select(MetricSnapshot)).all()
    assert [(r.period, r.tenant_id) for r in rows] == [("daily", bloom.tenant_id)]


def test_snapshot_history_and_comparison(app, shops, app_db):
    bloom, _ = shops
    seed_shop(app_db, bloom)
    with session_scope(bloom.admin, engine=app_db) as s:
        for days_ago in (11, 2):  # the day before each: 12 and 3 days ago, a message each
            snapshots.take_snapshot(
                session=s, actor=bloom.admin, period="daily", at=NOW - timedelta(days=days_ago)
            )
    at = open_page(app, bloom.manager)
    assert not at.exception
    assert len(chart_rows(at, "start")) == 2
    compared = table(at, "change (B − A)")
    by_metric = dict(zip(compared["metric"], compared["change (B − A)"], strict=True))
    assert by_metric["Messages"] == "+0"
    assert by_metric["Intent accuracy"] == "+100.0 pp"  # wrong (A) then right (B)
    assert not buttons(at, "Take snapshot now")
    at.button_group(key="snapshot_period").set_value("weekly")
    at = at.run()
    assert any("No weekly snapshots yet" in i.value for i in at.info)


# --- alerts ------------------------------------------------------------------------------------


def escalating_week(engine: Engine, shop: Shop) -> None:
    """20 messages in the last 7 days, half escalated: over the 30 % default threshold."""
    add_examples(
        engine, shop, [Msg(0.1 + i * 0.2, "refund", 0.5, escalated=i < 10) for i in range(20)]
    )


def test_alert_banner_with_advice_and_history_on_open(app, shops, app_db):
    bloom, fern = shops
    escalating_week(app_db, bloom)
    at = open_page(app, bloom.manager)
    assert not at.exception
    [banner] = at.warning
    assert "Escalation rate" in banner.value and "50%" in banner.value
    assert "Knowledge gaps" in banner.value  # what to do
    history = table(at, "value when cleared")
    assert list(history["cleared"]) == ["open"]
    checks = table(at, "alerts when")
    # Home, the first page the app opens, raised it already; Analytics finds it open.
    results = dict(zip(checks["metric"], checks["result"], strict=True))
    assert results["Escalation rate"] == "still open"
    at.run()  # opening again keeps the one alert
    with session_scope(bloom.admin, engine=app_db) as s:
        assert len(s.exec(select(AlertEvent)).all()) == 1
        set_alert_thresholds(
            session=s,
            actor=bloom.admin,
            intent_accuracy=0.7,
            escalation_rate=0.6,
            macro_f1=0.7,
            misclassification=0.15,
            expected_version=0,
        )
    at = open_page(app, bloom.manager)
    assert not at.warning  # back within the new threshold: cleared on open
    assert list(table(at, "value when cleared")["cleared"]) != ["open"]
    with session_scope(fern.manager, engine=app_db) as s:
        assert s.exec(select(AlertEvent).where(col(AlertEvent.cleared_at).is_(None))).all() == []


def test_csv_downloads_are_spreadsheet_safe(app, shops, app_db, monkeypatch):
    """Intent names come from imports: one that looks like a formula is quoted in every CSV,
    while numbers stay numbers."""
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    files: dict[str, bytes | str] = {}
    load = MemoryMediaFileStorage.load_and_get_id

    def keep(self, data, mimetype, kind, filename=None):
        files[filename or ""] = data
        return load(self, data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", keep)
    bloom, _ = shops
    add_examples(app_db, bloom, [Msg(1, "=HYPERLINK(1)", 0.5, "+cmd|calc")] * 2)
    at = open_page(app, bloom.manager)
    assert not at.exception
    per_intent = next(v for k, v in files.items() if k.startswith("trellis-per-intent-"))
    text = per_intent.decode() if isinstance(per_intent, bytes) else per_intent
    assert text.splitlines()[1].startswith("'+cmd|calc,2,0.0,0.5,0.0,")
    pairs = next(v for k, v in files.items() if k.startswith("trellis-misclassified-"))
    text = pairs.decode() if isinstance(pairs, bytes) else pairs
    assert text.splitlines()[1] == "'+cmd|calc,'=HYPERLINK(1),2"
