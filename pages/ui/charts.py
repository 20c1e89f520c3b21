"""Charts shared by pages, in the product's palette."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

PEONY = "#B5566F"


def ranked_bars(counts: list[tuple[str, int]], *, label: str, value: str) -> None:
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
    st.altair_chart(chart, width="stretch")
