"""Home: who you are, your shop, and the numbers that matter to your role."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import streamlit as st

from core import analytics
from core.access import Actor, Role
from core.alerts import evaluate_alerts, open_alerts
from core.overview import Overview, shop_overview
from pages.ui.actions import read, run_action
from pages.ui.charts import alert_banners, headline_metrics, ranked_bars
from pages.ui.guard import require_page

actor = require_page("home")
overview = read(actor, lambda s: shop_overview(session=s, actor=actor))
WATCHERS = (Role.MANAGER, Role.ADMIN)  # the roles alerts are for


def _alerts(actor: Actor) -> None:
    """Check the thresholds now (one aggregate over the last 7 days), then show what is open."""
    run_action(actor, lambda s: evaluate_alerts(session=s, actor=actor))
    alert_banners(read(actor, lambda s: open_alerts(session=s, actor=actor)))


def _headline(actor: Actor) -> None:
    """The manager's headline: the last 7 days against the 7 before."""
    until = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    comparison = read(
        actor,
        lambda s: analytics.compare(
            session=s, actor=actor, since=until - timedelta(days=7), until=until
        ),
    )
    st.subheader("Last 7 days")
    headline_metrics(comparison, against="Changes against the 7 days before")
    st.page_link(
        "pages/analytics.py", label="Trends, intents and snapshots", icon=":material/monitoring:"
    )


def _delta(now: int, before: int) -> str | None:
    return f"{now - before:+d} vs previous 7 days" if before else None


def _traffic(o: Overview) -> None:
    c1, c2, c3 = st.columns(3)
    c1.metric(
        "Customer messages, last 7 days",
        o.messages_7d,
        _delta(o.messages_7d, o.messages_prev_7d),
        delta_color="off",
    )
    c2.metric("Conversations, last 7 days", o.conversations_7d)
    rate = o.escalation_rate_7d
    c3.metric(
        "Escalated to a person",
        "—" if rate is None else f"{rate:.0%}",
        help="Share of last week's customer messages the assistant handed to a person.",
    )


def _admin(o: Overview) -> None:
    c1, c2, c3 = st.columns(3)
    c1.metric("Messages awaiting review", o.pending_review)
    share = o.labelled_share
    c2.metric(
        "Labelled examples",
        o.labelled,
        None if share is None else f"{share:.0%} of all",
        delta_color="off",
        delta_arrow="off",
    )
    c3.metric("Active users", o.active_users)
    if o.pending_review:
        st.info("Reviewing messages the assistant was unsure of is how it gets better.")
    st.page_link(
        "pages/settings.py", label="Manage users and see the audit log", icon=":material/settings:"
    )


def _topics(o: Overview, actor: Actor) -> None:
    st.subheader("What customers asked about (last 30 days, labelled messages)")
    if not o.top_topics:
        hint = (
            "Label some messages so Trellis knows what customers ask about."
            if actor.role is Role.ADMIN
            else "An admin labels messages; topics appear here then."
        )
        st.info(f"No labelled messages in the last 30 days yet. {hint}")
        return
    ranked_bars(
        [(name.replace("_", " "), n) for name, n in o.top_topics], label="topic", value="messages"
    )


if actor.role in WATCHERS:
    _alerts(actor)
if overview.total_examples == 0:
    st.info(
        "No customer messages yet. Traffic arrives when the assistant records interactions; "
        + (
            "an admin can also create users in Settings."
            if actor.role is Role.ADMIN
            else "ask an admin to connect the assistant."
        )
    )
else:
    if actor.role is Role.MANAGER:
        _headline(actor)
    else:
        _traffic(overview)
    if actor.role is Role.ADMIN:
        _admin(overview)
    _topics(overview, actor)
