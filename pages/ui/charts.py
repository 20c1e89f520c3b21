"""Charts and figure blocks shared by pages, in the product's palette.

Time axes are UTC: the data carries ISO dates/times and every temporal scale is a "utc" scale,
so a browser in another time zone shows the same days the SQL buckets counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import altair as alt
import pandas as pd
import streamlit as st

from core.alerts import AlertView
from core.analytics import Comparison

PEONY = "#B5566F"
FERN = "#4C7A4C"
MARIGOLD = "#D98E04"
GREY = "#9A9A9A"
MARKER_COLORS = {"deployed": FERN, "rolled back": MARIGOLD}


def ranked_bars(
    counts: list[tuple[str, int]], *, label: str, value: str, key: str | None = None
) -> None:
    """Horizontal bars, largest first."""
    frame = pd.DataFrame(counts, columns=[label, value])
    chart = (
        alt.Chart(frame)
        .mark_bar(color=PEONY, cornerRadiusEnd=3)
        .encode(
            x=alt.X(f"{value}:Q", title=value),
            y=alt.Y(
                f"{label}:N",
                sort="-x",
                title=None,
                axis=alt.Axis(labelOverlap=False, labelLimit=220),
            ),
            tooltip=[label, value],
        )
        .properties(height=max(120, 34 * len(frame)))
    )
    st.altair_chart(chart, width="stretch", key=key)


def learning_curve(points: list[dict[str, float]], *, key: str | None = None) -> None:
    """Macro-F1 against the share of the training set, as the run reports the points."""
    frame = pd.DataFrame(points)
    chart = (
        alt.Chart(frame)
        .mark_line(point=True, color=PEONY)
        .encode(
            x=alt.X("fraction:Q", title="share of the training set", axis=alt.Axis(format="%")),
            y=alt.Y("macro_f1:Q", title="macro-F1", scale=alt.Scale(zero=False)),
            tooltip=["fraction", "macro_f1"],
        )
        .properties(height=240)
    )
    st.altair_chart(chart, width="stretch", key=key)


def confusion_heatmap(
    labels: list[str], matrix: list[list[int]], *, key: str | None = None
) -> None:
    import plotly.graph_objects as go

    fig = go.Figure(
        go.Heatmap(
            z=matrix,
            x=labels,
            y=labels,
            colorscale="RdPu",
            hovertemplate="true %{y}<br>predicted %{x}<br>%{z}<extra></extra>",
        )
    )
    fig.update_layout(
        xaxis_title="predicted",
        yaxis_title="true",
        height=520,
        yaxis_autorange="reversed",
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
    )
    st.plotly_chart(fig, width="stretch", key=key)


def calibration_curve(calibration: dict[str, list[float]], *, key: str | None = None) -> None:
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=[0, 1], y=[0, 1], mode="lines", name="perfect", line={"dash": "dot", "color": "#999"}
        )
    )
    fig.add_trace(
        go.Scatter(
            x=calibration["confidence"],
            y=calibration["accuracy"],
            mode="lines+markers",
            name="model",
            line={"color": PEONY},
        )
    )
    fig.update_layout(
        xaxis_title="confidence",
        yaxis_title="accuracy",
        height=320,
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
    )
    st.plotly_chart(fig, width="stretch", key=key)


# --- headline metrics and alert banners (Home and Analytics) --------------------------------


@dataclass(frozen=True)
class MetricSpec:
    name: str  # the field of core.analytics.Headline
    label: str
    kind: Literal["count", "rate"]
    color: Literal["normal", "inverse", "off"]  # is up good (normal), bad (inverse), neither?
    help: str


HEADLINE = (
    MetricSpec("total_messages", "Messages", "count", "off", "Customer messages received."),
    MetricSpec(
        "ai_resolved", "AI-resolved", "count", "normal", "Messages the assistant answered alone."
    ),
    MetricSpec("escalated", "Escalated", "count", "inverse", "Messages handed to a person."),
    MetricSpec(
        "escalation_rate", "Escalation rate", "rate", "inverse", "Escalated ÷ all messages."
    ),
    MetricSpec(
        "avg_confidence",
        "Average confidence",
        "rate",
        "normal",
        "The model's mean probability for the intent it picked.",
    ),
    MetricSpec(
        "intent_accuracy",
        "Intent accuracy",
        "rate",
        "normal",
        "Of the messages whose predicted intent was judged (by a review or a labelled "
        "example), the share the model got right.",
    ),
    MetricSpec(
        "correction_rate",
        "Correction rate",
        "rate",
        "off",
        "Messages a reviewer relabelled to another intent ÷ all messages. Rises when the "
        "model is wrong more often, and also when reviewers work through more messages.",
    ),
)


def _figure(kind: str, value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.1%}" if kind == "rate" else f"{int(value):,}"


def _change(kind: str, change: float | None) -> str | None:
    """The change as shown: counts as '+12', rates in percentage points; '0' when none."""
    if change is None:
        return None
    if kind == "rate":
        points = round(change * 100, 1)
        return "0" if points == 0 else f"{points:+.1f} pp"
    return "0" if change == 0 else f"{int(change):+,}"


def headline_metrics(comparison: Comparison, *, against: str) -> None:
    """The seven headline metrics, each with its change against the previous period (which
    `against` names: "Changes against the previous 7 days")."""
    now = comparison.current
    before = comparison.previous_since, comparison.previous_until
    st.caption(
        f"{against} ({before[0]:%Y-%m-%d %H:%M} to {before[1]:%Y-%m-%d %H:%M} UTC); rates "
        "change in percentage points (pp)."
    )
    for row in (HEADLINE[:4], HEADLINE[4:]):
        for column, spec in zip(st.columns(4), row, strict=False):
            column.metric(
                spec.label,
                _figure(spec.kind, getattr(now, spec.name)),
                _change(spec.kind, comparison.change[spec.name]),
                delta_color=spec.color,
                help=spec.help,
                border=True,
            )


def alert_banners(alerts: Sequence[AlertView]) -> None:
    """One warning per open alert: what crossed which threshold, and what to do about it.

    The message and the advice are Trellis's own text (numbers, dates, model versions), never
    text a user typed, so they may carry markdown such as `trellis review next`.
    """
    for alert in alerts:
        st.warning(
            f"**{alert.label}** · raised {alert.raised_at:%Y-%m-%d %H:%M} UTC  \n"
            f"{alert.message}  \n**What to do:** {alert.advice}",
            icon=":material/notifications_active:",
        )


# --- analytics charts ------------------------------------------------------------------------


def _utc_x(field: str, title: str | None = None) -> alt.X:
    return alt.X(
        f"{field}:T",
        title=title,
        scale=alt.Scale(type="utc"),
        axis=alt.Axis(format="%b %d", labelOverlap=True),
    )


def _y(field: str, percent: bool) -> alt.Y:
    """A value axis without a title: the chart's own title names the metric."""
    return alt.Y(f"{field}:Q", title=None, axis=alt.Axis(format=".0%" if percent else ",.0f"))


def _marker_rules(markers: Sequence[dict[str, Any]]) -> alt.Chart:
    """Dashed vertical lines where a model started serving; markers carry at, kind, what."""
    return (
        alt.Chart(pd.DataFrame(list(markers)))
        .mark_rule(strokeDash=[5, 3], strokeWidth=2)
        .encode(
            x=_utc_x("at"),
            color=alt.Color(
                "kind:N",
                title=None,
                scale=alt.Scale(domain=list(MARKER_COLORS), range=list(MARKER_COLORS.values())),
                legend=alt.Legend(orient="top"),
            ),
            tooltip=[alt.Tooltip("what:N", title="model")],
        )
    )


def trend_chart(
    points: Sequence[dict[str, Any]],
    markers: Sequence[dict[str, Any]],
    *,
    value: str,
    title: str,
    percent: bool,
    key: str,
) -> None:
    """One metric per bucket (points carry 'bucket', an ISO date, and `value`; a missing value
    leaves a gap), with the model markers as vertical lines."""
    frame = pd.DataFrame([{"bucket": p["bucket"], value: p[value]} for p in points])
    line = (
        alt.Chart(frame)
        .mark_line(point=alt.OverlayMarkDef(color=PEONY), color=PEONY)
        .encode(
            x=_utc_x("bucket"),
            y=_y(value, percent),
            tooltip=[
                alt.Tooltip("bucket:N", title="from (UTC)"),
                alt.Tooltip(f"{value}:Q", title=title, format=".1%" if percent else ",d"),
            ],
        )
    )
    chart = alt.layer(line, _marker_rules(markers)) if markers else line
    st.altair_chart(chart.properties(height=220, title=title), width="stretch", key=key)


def model_history_chart(runs: Sequence[dict[str, Any]], *, key: str) -> None:
    """Macro-F1 of each completed run over time; deployed runs stand out."""
    frame = pd.DataFrame(list(runs))
    base = alt.Chart(frame).encode(
        x=_utc_x("at", "run started (UTC)"),
        y=alt.Y(
            "macro_f1:Q", title="macro-F1", scale=alt.Scale(zero=False), axis=alt.Axis(format=".2f")
        ),
    )
    line = base.mark_line(color=GREY, strokeDash=[2, 2])
    dots = base.mark_point(filled=True, size=90).encode(
        color=alt.Color(
            "outcome:N",
            title=None,
            scale=alt.Scale(domain=["deployed", "not deployed"], range=[FERN, GREY]),
            legend=alt.Legend(orient="top"),
        ),
        shape=alt.Shape(
            "outcome:N",
            scale=alt.Scale(domain=["deployed", "not deployed"], range=["diamond", "circle"]),
            legend=None,
        ),
        tooltip=[
            alt.Tooltip("run:Q", title="run"),
            alt.Tooltip("macro_f1:Q", title="macro-F1", format=".3f"),
            alt.Tooltip("outcome:N", title="outcome"),
            alt.Tooltip("trigger:N", title="trigger"),
        ],
    )
    st.altair_chart(alt.layer(line, dots).properties(height=260), width="stretch", key=key)


def snapshot_chart(
    rows: Sequence[dict[str, Any]], *, value: str, title: str, percent: bool, key: str
) -> None:
    """One metric across snapshots (rows carry 'start', an ISO time, and `value`)."""
    frame = pd.DataFrame([{"start": r["start"], value: r[value]} for r in rows])
    chart = (
        alt.Chart(frame)
        .mark_line(point=alt.OverlayMarkDef(color=PEONY), color=PEONY)
        .encode(
            x=_utc_x("start", "period start (UTC)"),
            y=_y(value, percent),
            tooltip=[
                alt.Tooltip("start:N", title="period start"),
                alt.Tooltip(f"{value}:Q", title=title, format=".1%" if percent else ",d"),
            ],
        )
        .properties(height=260, title=title)
    )
    st.altair_chart(chart, width="stretch", key=key)


def reviewer_activity_chart(rows: Sequence[dict[str, Any]], *, key: str) -> None:
    """Stacked bars: corrections per UTC day (rows carry day, reviewer, corrections,
    mismatches), one colour per reviewer."""
    chart = (
        alt.Chart(pd.DataFrame(list(rows)))
        .mark_bar()
        .encode(
            x=alt.X("utcyearmonthdate(day):T", title=None, axis=alt.Axis(format="%b %d")),
            y=alt.Y("sum(corrections):Q", title="corrections", stack="zero"),
            color=alt.Color("reviewer:N", title="reviewer"),
            tooltip=["day:N", "reviewer:N", "corrections:Q", "mismatches:Q"],
        )
        .properties(height=260)
    )
    st.altair_chart(chart, width="stretch", key=key)
