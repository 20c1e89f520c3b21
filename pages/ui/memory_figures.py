"""Figures of the Memory screen: the counts (the only part a manager sees, with the
distributions), and per-customer analytics with percentiles for admins."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from core import memory_patterns
from core.access import Actor
from core.memory_patterns import Distributions, MemoryOverview
from db.models import KnowledgeStatus
from pages.ui.actions import read
from pages.ui.charts import PEONY, ranked_bars
from pages.ui.memory_common import kind_label

STATS_PAGE = 100
SORTS = {"memories": "memories", "interactions": "messages", "rate": "success rate"}


def overview_metrics(actor: Actor) -> MemoryOverview:
    """The shop's counts as four figures; returns them for the charts below."""
    summary = read(actor, lambda s: memory_patterns.overview(session=s, actor=actor))
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Current memories", f"{summary.memories:,}", border=True)
    c2.metric("Customers with memories", f"{summary.customers:,}", border=True)
    c3.metric(
        "Patterns",
        f"{summary.patterns:,}",
        help="What several customers share, as of the last aggregation.",
        border=True,
    )
    approved = summary.knowledge.get(KnowledgeStatus.APPROVED.value, 0)
    waiting = summary.knowledge.get(KnowledgeStatus.PROPOSED.value, 0)
    c4.metric(
        "Approved knowledge",
        f"{approved:,}",
        help=f"{waiting:,} proposals wait for an admin.",
        border=True,
    )
    return summary


def kinds_and_knowledge(summary: MemoryOverview) -> None:
    """Current memories per kind, and knowledge per status (counts only)."""
    left, right = st.columns([2, 1])
    with left:
        st.markdown("**Current memories per kind**")
        if summary.by_kind:
            ranked_bars(
                [(kind_label(k), n) for k, n in summary.by_kind.items()],
                label="kind",
                value="memories",
                key="memory_kinds",
            )
        else:
            st.caption("None yet.")
    with right:
        st.markdown("**Knowledge**")
        st.dataframe(
            [
                {"status": s.value, "items": summary.knowledge.get(s.value, 0)}
                for s in KnowledgeStatus
            ],
            hide_index=True,
            width="stretch",
        )


def distribution_charts(actor: Actor) -> None:
    """How many customers have each count: memories, messages, success rate."""
    found = read(actor, lambda s: memory_patterns.distributions(session=s, actor=actor))
    if not found.memories:
        st.info(
            "No customers yet: the distributions appear once customers write to the assistant.",
            icon=":material/bar_chart:",
        )
        return
    c1, c2, c3 = st.columns(3)
    with c1:
        _bars(found.memories, "memories", "Customers by current memories", "memory_dist_mem")
    with c2:
        _bars(found.interactions, "messages", "Customers by messages sent", "memory_dist_int")
    with c3:
        _success_bars(found, "memory_dist_rate")


def _bars(counts: list[tuple[int, int]], what: str, title: str, key: str) -> None:
    frame = pd.DataFrame(counts, columns=[what, "customers"])
    chart = (
        alt.Chart(frame)
        .mark_bar(color=PEONY)
        .encode(
            x=alt.X(f"{what}:O", title=what, axis=alt.Axis(labelAngle=0, labelOverlap=True)),
            y=alt.Y("customers:Q", title="customers"),
            tooltip=[what, "customers"],
        )
        .properties(height=220, title=title)
    )
    st.altair_chart(chart, width="stretch", key=key)


def _success_bars(found: Distributions, key: str) -> None:
    if not found.success:
        st.caption("No conversation with a known outcome yet: no success rates.")
        return
    labels = [
        "100%" if tenth >= 10 else f"{tenth * 10}–{tenth * 10 + 9}%" for tenth, _ in found.success
    ]
    frame = pd.DataFrame({"success rate": labels, "customers": [n for _, n in found.success]})
    chart = (
        alt.Chart(frame)
        .mark_bar(color=PEONY)
        .encode(
            x=alt.X("success rate:O", sort=labels, axis=alt.Axis(labelAngle=0)),
            y=alt.Y("customers:Q", title="customers"),
            tooltip=["success rate", "customers"],
        )
        .properties(height=220, title="Customers by success rate")
    )
    st.altair_chart(chart, width="stretch", key=key)


def manager_view(actor: Actor) -> None:
    """All a manager sees: counts and distributions, never a customer or what they said."""
    summary = overview_metrics(actor)
    st.caption("Counts only: which customer said what is for admins.")
    kinds_and_knowledge(summary)
    distribution_charts(actor)


def analytics_tab(actor: Actor) -> None:
    summary = overview_metrics(actor)
    st.caption(
        "Per customer: current memories, messages sent, and the share of their conversations "
        "with a known outcome that ended resolved without escalation; each with its percentile "
        "(the share of the shop's customers at or below it)."
    )
    c1, c2 = st.columns([2, 1])
    sort = c1.selectbox(
        "Sort by", list(SORTS), format_func=lambda k: SORTS[k], key="memory_stats_sort"
    )
    page = int(c2.number_input("Page", min_value=1, value=1, step=1, key="memory_stats_page"))
    rows = read(
        actor,
        lambda s: memory_patterns.customer_stats(
            session=s, actor=actor, sort=sort, limit=STATS_PAGE, offset=(page - 1) * STATS_PAGE
        ),
    )
    if rows:
        _stats_table(rows)
        st.caption(
            f"Customers {(page - 1) * STATS_PAGE + 1:,} to {(page - 1) * STATS_PAGE + len(rows):,}."
        )
    elif page > 1:
        st.info(f"Page {page} is past the last customer.")
    else:
        st.info("No customers yet: they appear once customers write to the assistant.")
    kinds_and_knowledge(summary)
    distribution_charts(actor)


def _stats_table(rows: list[memory_patterns.CustomerStats]) -> None:
    percentile = st.column_config.NumberColumn(format="%.0f")
    st.dataframe(
        [
            {
                "customer": r.customer_id,
                "memories": r.memories,
                "memories percentile": r.memories_percentile,
                "messages": r.interactions,
                "messages percentile": r.interactions_percentile,
                "conversations with outcome": r.conversations,
                "success rate": r.success_rate,
                "success percentile": r.success_percentile,
            }
            for r in rows
        ],
        hide_index=True,
        width="stretch",
        column_config={
            "memories percentile": percentile,
            "messages percentile": percentile,
            "success rate": st.column_config.NumberColumn(format="percent"),
            "success percentile": percentile,
        },
    )
