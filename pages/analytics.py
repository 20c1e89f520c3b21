"""Analytics (manager, admin): is the assistant getting better? Headline metrics against the
previous period, trends with model deployments marked, intents, model history, snapshots and
alerts, for a range of UTC time."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import streamlit as st

from core import analytics, corrections, snapshots
from core.access import Actor, Role
from core.alerts import (
    RULES,
    AlertCheck,
    AlertView,
    alert_history,
    alert_thresholds,
    evaluate_alerts,
    open_alerts,
)
from core.analytics import Comparison, IntentRow, Marker
from core.snapshots import SnapshotView
from core.spreadsheet import safe_cell
from core.tenants import current_tenant
from db.models import AlertKind, SnapshotPeriod
from pages.ui.actions import flash, read, run_action
from pages.ui.charts import (
    HEADLINE,
    alert_banners,
    headline_metrics,
    model_history_chart,
    ranked_bars,
    reviewer_activity_chart,
    snapshot_chart,
    trend_chart,
)
from pages.ui.experiments import experiments_tab
from pages.ui.guard import require_page
from pages.ui.text import label

actor = require_page("analytics")
is_admin = actor.role is Role.ADMIN

PRESETS = {"24 h": timedelta(hours=24), "7 d": timedelta(days=7), "30 d": timedelta(days=30)}
CUSTOM = "Custom"
DEFAULT_PRESET = "30 d"
TOP = 10
PAIRS = 20
TRENDS = (  # (field of TrendPoint, title, as a percentage)
    ("total", "Messages", False),
    ("escalation_rate", "Escalation rate", True),
    ("avg_confidence", "Average confidence", True),
    ("intent_accuracy", "Intent accuracy", True),
    ("corrections", "Messages relabelled", False),
)
SORT_LABELS = {
    "volume": "volume",
    "intent": "intent name",
    "accuracy": "accuracy",
    "avg_confidence": "average confidence",
    "escalation_rate": "escalation rate",
    "f1": "F1 of the serving model",
}
PERIOD_WORDS = {
    SnapshotPeriod.HOURLY: "hour",
    SnapshotPeriod.DAILY: "day",
    SnapshotPeriod.WEEKLY: "week",
    SnapshotPeriod.MONTHLY: "month",
}


@dataclass(frozen=True)
class Window:
    since: datetime
    until: datetime
    against: str  # what the changes compare with: "Changes against the previous 30 days"

    def slug(self) -> str:
        return f"{self.since:%Y%m%d-%H%M}-{self.until:%Y%m%d-%H%M}"

    def words(self) -> str:
        return f"{self.since:%Y-%m-%d %H:%M} to {self.until:%Y-%m-%d %H:%M} UTC"


# --- small helpers ---------------------------------------------------------------------------


def _utc(moment: datetime) -> datetime:
    """SQLite hands datetimes back naive; they are UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _csv(rows: Sequence[dict[str, Any]]) -> str:
    """Rows as CSV a spreadsheet cannot mistake for formulas (numbers stay numbers)."""
    if not rows:
        return ""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {
                k: ("" if v is None else v if isinstance(v, int | float) else safe_cell(v))
                for k, v in row.items()
            }
        )
    return out.getvalue()


def _download(rows: Sequence[dict[str, Any]], name: str, key: str) -> None:
    st.download_button(
        "Download CSV",
        _csv(rows),
        file_name=f"trellis-{name}.csv",
        mime="text/csv",
        icon=":material/download:",
        key=key,
        on_click="ignore",
    )


# --- alerts at the top -----------------------------------------------------------------------


def _evaluate(actor: Actor) -> list[AlertCheck]:
    """Check the thresholds now (cheap: one aggregate over the last 7 days and the serving
    model's stored metrics), so the banner below is current."""
    done = run_action(actor, lambda s: evaluate_alerts(session=s, actor=actor))
    return done.value or []


# --- the range -------------------------------------------------------------------------------


def _window() -> tuple[Window, analytics.Bucket]:
    c1, c2, c3 = st.columns([2, 3, 1])
    preset = c1.segmented_control(
        "Period",
        [*PRESETS, CUSTOM],
        default=DEFAULT_PRESET,
        required=True,
        key="analytics_preset",
    )
    bucket = c3.segmented_control(
        "Trend per", ["day", "week"], default="day", required=True, key="analytics_bucket"
    )
    now = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    if preset in PRESETS:
        span = PRESETS[str(preset)]
        name = {"24 h": "24 hours", "7 d": "7 days", "30 d": "30 days"}[str(preset)]
        window = Window(now - span, now, f"Changes against the previous {name}")
    else:
        window = _custom(c2, now.date())
    return window, "week" if bucket == "week" else "day"


def _custom(column: Any, today: date) -> Window:
    picked = column.date_input(
        "Dates (UTC, both days included)",
        value=(today - timedelta(days=29), today),
        max_value=today,
        key="analytics_dates",
    )
    first, last = (picked[0], picked[-1]) if isinstance(picked, tuple) and picked else (today,) * 2
    if isinstance(picked, tuple) and len(picked) == 1:
        column.caption("Pick the last day too; until then the range is that one day.")
    since = datetime.combine(first, time.min, tzinfo=UTC)
    until = datetime.combine(last + timedelta(days=1), time.min, tzinfo=UTC)
    days = (until - since).days
    plural = "s" if days != 1 else ""
    return Window(since, until, f"Changes against the previous {days} day{plural}")


# --- overview --------------------------------------------------------------------------------


def _marker_rows(markers: Sequence[Marker]) -> list[dict[str, Any]]:
    return [
        {
            "at": _utc(m.at).isoformat(),
            "kind": "rolled back" if m.kind == "rolled_back" else "deployed",
            "what": f"v{m.version} {'rolled back to' if m.kind == 'rolled_back' else 'deployed'}"
            f" {_utc(m.at):%Y-%m-%d %H:%M} UTC",
        }
        for m in markers
    ]


def _overview(actor: Actor, window: Window, bucket: analytics.Bucket) -> Comparison:
    def query(s: Any) -> tuple[Comparison, list[analytics.TrendPoint], list[Marker]]:
        span = {"session": s, "actor": actor, "since": window.since, "until": window.until}
        return (
            analytics.compare(**span),
            analytics.trends(**span, bucket=bucket),
            analytics.model_markers(**span),
        )

    comparison, points, markers = read(actor, query)
    st.markdown(f"**{window.words()}**")
    headline_metrics(comparison, against=window.against)
    if comparison.current.total_messages == 0:
        st.info(
            f"No customer messages from {window.words()}. Pick a longer period above. If "
            "there are none at all, the assistant is not recording its conversations yet: "
            "connect it, or load some with `trellis ingest` or `trellis import`.",
            icon=":material/inbox:",
        )
    else:
        _trends(points, markers, bucket)
    return comparison


def _trends(points: Sequence[analytics.TrendPoint], markers: Sequence[Marker], bucket: str) -> None:
    st.subheader(f"Trends per {bucket}")
    marks = _marker_rows(markers)
    st.caption(
        f"Each point is a UTC {bucket} (the first and last may be partly outside the period). "
        + (
            "Dashed lines: a model started serving (green deployed, orange rolled back)."
            if marks
            else "No model was deployed or rolled back in this period."
        )
    )
    rows = [{"bucket": p.bucket_start, **_trend_values(p)} for p in points]
    columns = st.columns(2)
    for i, (field, title, percent) in enumerate(TRENDS):
        with columns[i % 2]:
            trend_chart(
                rows, marks, value=field, title=title, percent=percent, key=f"trend_{field}"
            )
    if marks:
        st.caption(" · ".join(m["what"] for m in marks))
    _download(rows, f"trends-per-{bucket}", "download_trends")


def _trend_values(p: analytics.TrendPoint) -> dict[str, Any]:
    return {
        "total": p.total,
        "escalation_rate": p.escalation_rate,
        "avg_confidence": p.avg_confidence,
        "intent_accuracy": p.intent_accuracy,
        "corrections": p.corrections,
    }


# --- intents ---------------------------------------------------------------------------------


def _intents(actor: Actor, window: Window, has_messages: bool) -> None:
    if not has_messages:
        st.info("No customer messages in this period, so no intents to show.")
        return
    span = {"actor": actor, "since": window.since, "until": window.until}
    top, pairs = read(
        actor,
        lambda s: (
            analytics.top_intents(session=s, **span, limit=TOP),
            analytics.top_misclassified(session=s, **span, limit=PAIRS),
        ),
    )
    left, right = st.columns(2)
    with left:
        _top_intents(top, window)
    with right:
        _misclassified(pairs, window)
    _per_intent(actor, window)


def _top_intents(top: Sequence[analytics.IntentCount], window: Window) -> None:
    st.subheader("Top intents")
    if not top:
        st.info("No message in this period has an intent yet: train a model or label messages.")
        return
    st.caption("By current label: the reviewed intent, else the predicted one.")
    ranked_bars(
        [(label(t.intent), t.messages) for t in top],
        label="intent",
        value="messages",
        key="top_intents",
    )
    rows = [{"intent": t.intent, "messages": t.messages} for t in top]
    _download(rows, f"top-intents-{window.slug()}", "download_top_intents")


def _misclassified(pairs: Sequence[analytics.Misclassification], window: Window) -> None:
    st.subheader("Top misclassified")
    if not pairs:
        st.info(
            "No reviewed message of this period was misclassified. Reviews on the Review page "
            "tell Trellis which predictions were wrong."
        )
        return
    rows = [
        {"true intent": p.true_intent, "predicted as": p.predicted, "messages": p.messages}
        for p in pairs
    ]
    st.caption("Reviewed messages the model got wrong: their true intent → what it predicted.")
    st.dataframe(rows, hide_index=True, width="stretch", key="misclassified_table")
    _download(rows, f"misclassified-{window.slug()}", "download_misclassified")


def _per_intent(actor: Actor, window: Window) -> None:
    st.subheader("Per intent")
    c1, c2, _ = st.columns([2, 1, 3])
    sort_by = c1.selectbox(
        "Sort by", list(SORT_LABELS), format_func=SORT_LABELS.__getitem__, key="intent_sort"
    )
    descending = c2.toggle(
        "Descending", value=True, key="intent_desc", help="Highest first; for names, Z to A."
    )
    table: list[IntentRow] = read(
        actor,
        lambda s: analytics.per_intent(
            session=s,
            actor=actor,
            since=window.since,
            until=window.until,
            sort_by=sort_by,
            descending=descending,
        ),
    )
    rows = [
        {
            "intent": r.intent,
            "volume": r.volume,
            "accuracy": r.accuracy,
            "avg confidence": r.avg_confidence,
            "escalation rate": r.escalation_rate,
            "F1": r.f1,
        }
        for r in table
    ]
    st.caption(
        "Accuracy counts reviewed messages only; F1 is the serving model's on its test split. "
        "Empty cells: nothing to measure. Click a column header to sort in the table too."
    )
    percent = st.column_config.NumberColumn(format="percent")
    st.dataframe(
        rows,
        hide_index=True,
        width="stretch",
        key="per_intent_table",
        column_config={
            "accuracy": percent,
            "avg confidence": percent,
            "escalation rate": percent,
            "F1": st.column_config.NumberColumn(format="%.3f"),
        },
    )
    _download(rows, f"per-intent-{window.slug()}", "download_per_intent")


# --- models and reviewers --------------------------------------------------------------------


def _models(actor: Actor, window: Window) -> None:
    st.subheader("Model history")
    runs = read(actor, lambda s: analytics.model_history(session=s, actor=actor))
    if not runs:
        st.info(
            "No completed training runs yet. "
            + (
                "Train one on the Training page, or run `trellis train`."
                if is_admin
                else "An admin trains the first model on the Training page."
            ),
            icon=":material/model_training:",
        )
    else:
        rows = [
            {
                "run": r.run_id,
                "at": _utc(r.created_at).isoformat(),
                "macro_f1": r.macro_f1,
                "outcome": "deployed" if r.deployed else "not deployed",
                "trigger": r.trigger,
            }
            for r in runs
        ]
        st.caption("Macro-F1 of every completed run on its test split; diamonds were deployed.")
        model_history_chart(rows, key="model_history")
        _download(rows, "model-history", "download_model_history")
    _reviewers(actor, window)


def _reviewers(actor: Actor, window: Window) -> None:
    st.subheader("Reviewer activity")
    activity = read(
        actor,
        lambda s: corrections.reviewer_activity(
            session=s, actor=actor, since=window.since, until=window.until
        ),
    )
    if not activity:
        st.info("Nobody corrected anything in this period. Corrections come from the Review page.")
        return
    rows = [
        {
            "day": a.day,
            "reviewer": a.reviewer,
            "corrections": a.corrections,
            "mismatches": a.mismatches,
        }
        for a in activity
    ]
    st.caption("Corrections per UTC day and reviewer (reverted ones count: the review happened).")
    reviewer_activity_chart(rows, key="reviewer_activity")
    _download(rows, f"reviewer-activity-{window.slug()}", "download_reviewers")


# --- snapshots -------------------------------------------------------------------------------


def _snapshot_name(v: SnapshotView) -> str:
    fmt = "%Y-%m-%d %H:00" if v.period is SnapshotPeriod.HOURLY else "%Y-%m-%d"
    return f"{PERIOD_WORDS[v.period]} from {v.period_start:{fmt}}"


def _snapshots(actor: Actor) -> None:
    period = st.segmented_control(
        "Snapshots of each",
        list(SnapshotPeriod),
        format_func=lambda p: PERIOD_WORDS[SnapshotPeriod(p)],
        default=SnapshotPeriod.DAILY,
        required=True,
        key="snapshot_period",
    )
    kind = SnapshotPeriod(period or SnapshotPeriod.DAILY)
    views = read(
        actor, lambda s: snapshots.list_snapshots(session=s, actor=actor, period=kind.value)
    )
    if not views:
        _no_snapshots(actor, kind)
    else:
        _snapshot_history(views, kind)
        _snapshot_compare(actor, views)
    if is_admin:
        _take_snapshot(actor, kind)


def _no_snapshots(actor: Actor, kind: SnapshotPeriod) -> None:
    slug = read(actor, lambda s: current_tenant(session=s, actor=actor).slug)
    st.info(
        f"No {kind.value} snapshots yet. A snapshot freezes the headline metrics of each "
        f"complete {PERIOD_WORDS[kind]}. Schedule\n\n"
        f"`trellis snapshot --tenant {slug} --period {kind.value}`\n\n"
        "from cron (every minute is safe: each period is taken once)"
        + (", or take one below." if is_admin else "; an admin can also take one here."),
        icon=":material/photo_camera:",
    )


def _snapshot_history(views: Sequence[SnapshotView], kind: SnapshotPeriod) -> None:
    specs = {m.name: m for m in HEADLINE}
    metric = st.selectbox(
        "Metric", list(specs), format_func=lambda n: specs[n].label, key="snapshot_metric"
    )
    spec = specs[metric]
    rows = [
        {"start": v.period_start.isoformat(), "snapshot": _snapshot_name(v), **v.metrics()}
        for v in reversed(views)  # oldest first
    ]
    st.caption(f"The latest {len(views)} {kind.value} snapshots, frozen when taken.")
    snapshot_chart(
        rows,
        value=metric,
        title=spec.label,
        percent=spec.kind == "rate",
        key=f"snapshot_chart_{kind.value}",
    )
    _download(rows, f"snapshots-{kind.value}", "download_snapshots")


def _snapshot_compare(actor: Actor, views: Sequence[SnapshotView]) -> None:
    st.subheader("Compare two snapshots")
    if len(views) < 2:
        st.caption("Comparing needs two snapshots of this period; one exists so far.")
        return
    c1, c2 = st.columns(2)
    a = c1.selectbox("Snapshot A", views, index=1, format_func=_snapshot_name, key="snap_a")
    b = c2.selectbox("Snapshot B", views, index=0, format_func=_snapshot_name, key="snap_b")
    found = read(
        actor, lambda s: snapshots.compare_snapshots(session=s, actor=actor, a_id=a.id, b_id=b.id)
    )
    specs = {m.name: m for m in HEADLINE}
    shown, raw = [], []
    for change in found.changes:
        spec = specs[change.metric]
        rate = spec.kind == "rate"
        shown.append(
            {
                "metric": spec.label,
                # One column holds counts and rates alike: text, formatted per metric.
                "A": _snapshot_value(change.a, rate),
                "B": _snapshot_value(change.b, rate),
                "change (B − A)": _snapshot_change(change.change, rate),
            }
        )
        raw.append({"metric": change.metric, "a": change.a, "b": change.b, "change": change.change})
    st.caption(f"A: {_snapshot_name(found.a)} · B: {_snapshot_name(found.b)}")
    st.dataframe(shown, hide_index=True, width="stretch", key="snapshot_compare")
    _download(raw, f"snapshots-{found.a.id}-vs-{found.b.id}", "download_snapshot_compare")


def _snapshot_value(value: float | None, rate: bool) -> str:
    if value is None:
        return "—"
    return f"{value:.1%}" if rate else f"{int(value):,}"


def _snapshot_change(change: float | None, rate: bool) -> str:
    if change is None:
        return "—"
    return f"{change * 100:+.1f} pp" if rate else f"{int(change):+,}"


def _take_snapshot(actor: Actor, kind: SnapshotPeriod) -> None:
    st.caption(
        f"Take the {kind.value} snapshot of the last complete {PERIOD_WORDS[kind]} now "
        "(nothing changes if it exists already)."
    )
    if not st.button("Take snapshot now", icon=":material/photo_camera:", key="take_snapshot"):
        return
    done = run_action(
        actor, lambda s: snapshots.take_snapshot(session=s, actor=actor, period=kind.value)
    )
    if done.ok and done.value is not None:
        view, created = done.value
        if created:
            flash(f"Took the snapshot of the {_snapshot_name(view)}.")
        else:
            flash(f"The snapshot of the {_snapshot_name(view)} existed already; nothing changed.")


# --- alerts ----------------------------------------------------------------------------------


def _fmt(kind: AlertKind, value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.1%}" if RULES[kind].percent else f"{value:.2f}"


def _alerts(actor: Actor, checks: Sequence[AlertCheck]) -> None:
    limits, history = read(
        actor,
        lambda s: (
            alert_thresholds(session=s, actor=actor),
            alert_history(session=s, actor=actor),
        ),
    )
    st.subheader("Checked just now")
    st.caption(
        "Live metrics over the last 7 days; model metrics of the serving model's test set. "
        "A metric needs enough messages to be judged."
        + ("" if limits.version else " The thresholds are the defaults.")
    )
    st.dataframe(
        [
            {
                "metric": RULES[c.kind].label,
                "value": _fmt(c.kind, c.value),
                "alerts when": f"{'above' if RULES[c.kind].above else 'below'} "
                f"{_fmt(c.kind, limits.of(c.kind))}",
                "result": c.outcome.value.replace("_", " "),
                "note": c.note,
            }
            for c in checks
        ],
        hide_index=True,
        width="stretch",
        key="alert_checks",
    )
    if is_admin:
        st.page_link(
            "pages/settings.py",
            label="Change the thresholds in Settings → Alerts",
            icon=":material/tune:",
        )
    _alert_history(history)


def _alert_history(history: Sequence[AlertView]) -> None:
    st.subheader("History")
    if not history:
        st.info("No alert has been raised yet in your shop.", icon=":material/notifications:")
        return
    rows = [
        {
            "metric": a.label,
            "raised": _utc(a.raised_at).strftime("%Y-%m-%d %H:%M"),
            "value": _fmt(a.kind, a.value),
            "threshold": _fmt(a.kind, a.threshold),
            "cleared": _utc(a.cleared_at).strftime("%Y-%m-%d %H:%M") if a.cleared_at else "open",
            "value when cleared": _fmt(a.kind, a.cleared_value),
            "message": a.message,
        }
        for a in history
    ]
    st.caption("Newest first; times in UTC.")
    st.dataframe(rows, hide_index=True, width="stretch", key="alert_history")
    _download(rows, "alert-history", "download_alert_history")


# --- the page --------------------------------------------------------------------------------

checks = _evaluate(actor)
alert_banners(read(actor, lambda s: open_alerts(session=s, actor=actor)))
window, bucket = _window()
overview_tab, intents_tab, models_tab, tests_tab, snapshots_tab, alerts_tab = st.tabs(
    ["Overview", "Intents", "Models & reviewers", "A/B tests", "Snapshots", "Alerts"]
)
with overview_tab:
    comparison = _overview(actor, window, bucket)
with intents_tab:
    _intents(actor, window, comparison.current.total_messages > 0)
with models_tab:
    _models(actor, window)
with tests_tab:
    experiments_tab(actor, manage=False)
with snapshots_tab:
    _snapshots(actor)
with alerts_tab:
    _alerts(actor, checks)
