"""Charts shared by pages, in the product's palette."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

PEONY = "#B5566F"


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
