"""The Patterns and Knowledge tabs of the Memory screen: what many customers of the shop share,
rebuilt on demand, and the knowledge proposed from it that an admin approves, rejects or
withdraws."""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from core import memory_patterns
from core.access import Actor
from core.memory_patterns import DECISIONS, KnowledgeView, MemoryThresholds
from core.memory_rules import MemoryKind
from pages.ui.actions import flash, read, run_action
from pages.ui.memory_common import act_in_callback, keep_pick, kind_label, show_notice
from pages.ui.text import plain

NOTICE = "memory_knowledge_notice"
DECISION_BUTTONS = {  # decision -> (button, icon)
    "approve": ("Approve", ":material/check_circle:"),
    "reject": ("Reject", ":material/cancel:"),
    "withdraw": ("Withdraw", ":material/undo:"),
}
DONE = {"approve": "Approved", "reject": "Rejected", "withdraw": "Withdrew"}


def _thresholds_text(limits: MemoryThresholds) -> str:
    return (
        f"A pattern is a kind, key and value that at least {limits.pattern_customers} "
        f"customers hold as a current memory at confidence {limits.pattern_confidence:.2f} or "
        "more (names and dates are personal: never a pattern). It is proposed as knowledge "
        f"from {limits.knowledge_customers} customers whose "
        f"later conversations succeeded {limits.knowledge_success:.0%} of the time or more "
        "(thresholds: Settings → Memory)."
    )


# --- patterns --------------------------------------------------------------------------------


def patterns_tab(actor: Actor) -> None:
    limits = read(actor, lambda s: memory_patterns.memory_thresholds(session=s, actor=actor))
    st.caption(_thresholds_text(limits))
    c1, c2 = st.columns([1, 3], vertical_alignment="center")
    if c1.button("Aggregate now", type="primary", icon=":material/hub:", key="memory_aggregate"):
        _aggregate(actor)
    latest = read(actor, lambda s: memory_patterns.list_patterns(session=s, actor=actor, limit=1))
    c2.caption(
        f"Last aggregated {latest[0].computed_at:%Y-%m-%d %H:%M} UTC."
        if latest
        else "No pattern found at the last aggregation, or none run yet."
    )
    kind = st.selectbox(
        "Kind",
        [None, *(k.value for k in MemoryKind)],
        key="memory_pattern_kind",
        format_func=lambda k: "Every kind" if k is None else kind_label(k),
    )
    rows = read(actor, lambda s: memory_patterns.list_patterns(session=s, actor=actor, kind=kind))
    if not rows:
        st.info(
            "No patterns"
            + (f" of the kind {kind_label(kind)}" if kind else "")
            + " yet. Press “Aggregate now” to find what several customers share; with few "
            "customers, lower the thresholds in Settings → Memory.",
            icon=":material/hub:",
        )
        return
    st.dataframe(
        [
            {
                "kind": kind_label(p.kind),
                "key": p.key,
                "value": p.value,
                "customers": p.customers,
                "average confidence": p.avg_confidence,
                "later conversations": p.conversations,
                "success rate": p.success_rate,
            }
            for p in rows
        ],
        hide_index=True,
        width="stretch",
        column_config={
            "average confidence": st.column_config.NumberColumn(format="%.2f"),
            "later conversations": st.column_config.NumberColumn(
                help="Conversations its holders started after they first said it, whose "
                "outcome is known."
            ),
            "success rate": st.column_config.NumberColumn(
                format="percent", help="Of those conversations, resolved without escalation."
            ),
        },
    )
    st.caption(f"{len(rows)} patterns, most widely held first.")


def _aggregate(actor: Actor) -> None:
    with st.spinner("Counting what customers share…"):
        outcome = run_action(actor, lambda s: memory_patterns.aggregate(session=s, actor=actor))
    if outcome.ok and outcome.value is not None:
        done = outcome.value
        flash(
            f"Aggregated: {done.patterns:,} patterns; {done.proposed_knowledge:,} knowledge "
            f"proposals wait for an admin ({done.newly_proposed:,} new)."
        )


# --- knowledge -------------------------------------------------------------------------------


def knowledge_tab(actor: Actor) -> None:
    limits = read(actor, lambda s: memory_patterns.memory_thresholds(session=s, actor=actor))
    st.caption(
        "What the whole shop may rely on, proposed from patterns and decided by an admin. "
        + _thresholds_text(limits)
    )
    show_notice(NOTICE)
    items = read(actor, lambda s: memory_patterns.list_knowledge(session=s, actor=actor))
    if not items:
        st.info(
            "No knowledge proposed yet. Aggregation proposes it (Patterns → Aggregate now) once "
            "enough customers share a memory and their later conversations went well.",
            icon=":material/lightbulb:",
        )
        return
    _knowledge_table(items)
    _decide(actor, items)


def _knowledge_table(items: Sequence[KnowledgeView]) -> None:
    st.dataframe(
        [
            {
                "status": k.status,
                "kind": kind_label(k.kind),
                "key": k.key,
                "value": k.value,
                "customers": k.customers,
                "average confidence": k.avg_confidence,
                "success rate": k.success_rate,
                "conversations": k.conversations,
                "proposed": k.proposed_at,
                "decided": k.decided_at,
                "note": k.note or "",
            }
            for k in items
        ],
        hide_index=True,
        width="stretch",
        column_config={
            "average confidence": st.column_config.NumberColumn(format="%.2f"),
            "success rate": st.column_config.NumberColumn(format="percent"),
            "proposed": st.column_config.DatetimeColumn(format="YYYY-MM-DD"),
            "decided": st.column_config.DatetimeColumn(format="YYYY-MM-DD"),
        },
    )


def _what(k: KnowledgeView) -> str:
    return f"{kind_label(k.kind)} · {k.key}: {k.value}"


def _title(k: KnowledgeView) -> str:
    return f"{k.status} · {_what(k)}"


def _decide(actor: Actor, items: Sequence[KnowledgeView]) -> None:
    st.markdown("**Decide**")
    by_id = {k.id: k for k in items}
    key = "memory_knowledge_pick"
    keep_pick(key, list(by_id))
    item = by_id[
        st.selectbox("Knowledge", list(by_id), key=key, format_func=lambda i: _title(by_id[i]))
    ]
    allowed = [
        d for d, (_, before) in DECISIONS.items() if item.status in {s.value for s in before}
    ]
    note = f"memory_knowledge_note_{item.id}_{item.version}"
    with st.form(f"memory_knowledge_{item.id}_{item.version}"):
        st.text_input("Note (optional, kept in the audit log)", key=note, max_chars=500)
        for column, decision in zip(st.columns(max(len(allowed), 1)), allowed, strict=False):
            text, icon = DECISION_BUTTONS[decision]
            column.form_submit_button(
                text,
                icon=icon,
                type="primary" if decision == "approve" else "secondary",
                on_click=_decision,
                args=(actor, item, decision, note),
            )


def _decision(actor: Actor, item: KnowledgeView, decision: str, note: str) -> None:
    text = str(st.session_state.get(note) or "")
    act_in_callback(
        actor,
        lambda s, a: memory_patterns.decide(
            session=s,
            actor=a,
            knowledge_id=item.id,
            decision=decision,
            expected_version=item.version,
            note=text,
        ),
        lambda k: f"{DONE[decision]} “{plain(_what(k))}”.",
        notice=NOTICE,
    )
