"""Charts of the designs the generator made, per UTC day and model type (Designs, Usage)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict

import altair as alt
import pandas as pd
import streamlit as st

from core.designs import UsageRow
from db.models import ModelType
from pages.ui.charts import FERN, MARIGOLD, PEONY

MODEL_COLORS = {ModelType.DALLE3.value: PEONY, ModelType.GPT4.value: FERN, "custom": MARIGOLD}


def _color() -> alt.Color:
    return alt.Color(
        "model_type:N",
        title="model type",
        scale=alt.Scale(domain=list(MODEL_COLORS), range=list(MODEL_COLORS.values())),
        legend=alt.Legend(orient="top"),
    )


def _day() -> alt.X:
    # ISO dates are read as UTC midnight; a UTC scale shows the days SQL counted.
    return alt.X(
        "day:T",
        title=None,
        scale=alt.Scale(type="utc"),
        axis=alt.Axis(format="%b %d", labelOverlap=True),
    )


def usage_bars(
    rows: Sequence[UsageRow], *, value: str, title: str, number_format: str, key: str
) -> None:
    """One bar per day, stacked by model type."""
    frame = pd.DataFrame([asdict(r) for r in rows])
    chart = (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=_day(),
            y=alt.Y(f"sum({value}):Q", title=None, axis=alt.Axis(format=number_format)),
            color=_color(),
            tooltip=[
                alt.Tooltip("day:N", title="day (UTC)"),
                alt.Tooltip("model_type:N", title="model type"),
                alt.Tooltip(f"{value}:Q", title=title, format=number_format),
            ],
        )
        .properties(height=260, title=title)
    )
    st.altair_chart(chart, width="stretch", key=key)


def rating_lines(rows: Sequence[UsageRow], *, key: str) -> None:
    """The average rating per day and model type (days without a rating leave a gap)."""
    frame = pd.DataFrame([asdict(r) for r in rows if r.avg_rating is not None])
    if frame.empty:
        st.caption("No design of this period was rated yet.")
        return
    chart = (
        alt.Chart(frame)
        .mark_line(point=True)
        .encode(
            x=_day(),
            y=alt.Y("avg_rating:Q", title=None, scale=alt.Scale(domain=[0, 5])),
            color=_color(),
            tooltip=[
                alt.Tooltip("day:N", title="day (UTC)"),
                alt.Tooltip("model_type:N", title="model type"),
                alt.Tooltip("avg_rating:Q", title="average rating", format=".2f"),
            ],
        )
        .properties(height=260, title="Average rating (0–5)")
    )
    st.altair_chart(chart, width="stretch", key=key)
