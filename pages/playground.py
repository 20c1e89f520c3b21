"""Playground: type a message, see what the serving model answers, and why."""

from __future__ import annotations

import streamlit as st

from core import registry
from pages.ui.actions import read
from pages.ui.charts import ranked_bars
from pages.ui.guard import require_page
from pages.ui.responses import suggestions_panel

actor = require_page("playground")

with st.form("try_message"):
    text = st.text_area(
        "Customer message", placeholder="Can you deliver white lilies today?", max_chars=2000
    )
    asked = st.form_submit_button("Ask the model", type="primary")

if asked and not text.strip():
    st.warning("Type a customer message first.")
elif asked:
    found = read(actor, lambda s: registry.explain(session=s, actor=actor, text=text))
    if found is None:
        st.info("No model serves your shop yet. An admin trains one on the Training page.")
    else:
        prediction, why = found
        st.subheader(f"{prediction.intent.replace('_', ' ')} · {prediction.confidence:.0%}")
        st.caption(f"Model version {prediction.model_version}")
        ranked_bars(
            [(i.replace("_", " "), round(p * 100, 1)) for i, p in prediction.top],
            label="intent",
            value="percent",
        )
        st.subheader(
            f"Why {why.intent.replace('_', ' ')} and not {why.runner_up.replace('_', ' ')}"
        )
        toward, away = st.columns(2)
        toward.markdown("**Words that pushed toward it**")
        toward.dataframe(
            [{"words": g, "weight": round(w, 3)} for g, w in why.toward],
            hide_index=True,
            width="stretch",
        )
        away.markdown(f"**Words that pointed to {why.runner_up.replace('_', ' ')}**")
        away.dataframe(
            [{"words": g, "weight": round(w, 3)} for g, w in why.away],
            hide_index=True,
            width="stretch",
        )
    suggestions_panel(actor, text)
