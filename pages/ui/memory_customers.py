"""The Customers tab of the Memory screen: find a customer, see what the assistant remembers of
them with the message each memory came from (live), read a conversation, correct or delete a
memory, or forget the customer altogether."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from functools import partial
from typing import Any

import streamlit as st

from core import memory
from core.access import Actor
from core.memory import CustomerSummary, MemoryView
from core.memory_rules import MemoryKind
from db.models import MemoryState
from pages.ui.actions import flash, read, run_action
from pages.ui.memory_common import (
    FOUND_KEY,
    act_in_callback,
    forget_search,
    keep_pick,
    kind_label,
    show_notice,
)
from pages.ui.text import plain

QUERY_KEY = "memory_query"
CUSTOMER_KEY = "memory_customer"
HISTORY_KEY = "memory_history"
NOTICE = "memory_customer_notice"
LIVE_SECONDS = 5  # how often the open customer's memories are read again
FOUND = 50
NO_CUSTOMERS = (
    "No customers yet: memories appear as customers write to the assistant (messages that "
    "carry a customer id). To backfill from messages stored before, run “Extract from stored "
    "messages” on the Rules tab."
)
NO_MEMORIES = (
    "Nothing remembered of this customer yet. Memories appear as customers write; run "
    "“Extract from stored messages” on the Rules tab to backfill from stored messages."
)


def customers_tab(actor: Actor) -> None:
    query, searched = _search_form()
    found = _found(actor, query, fresh=searched)
    if not found:
        if query:
            st.info(
                f"No customer id, and no remembered value, contains “{plain(query)}”. Try part "
                "of a name or of an id.",
                icon=":material/search_off:",
            )
        else:
            st.info(NO_CUSTOMERS, icon=":material/psychology:")
        return
    chosen = _results(found, query)
    show_notice(NOTICE)
    _customer(actor, chosen)


def _search_form() -> tuple[str, bool]:
    with st.form("memory_search"):
        c1, c2 = st.columns([4, 1], vertical_alignment="bottom")
        query = c1.text_input(
            "Customer id, or something remembered about them",
            key=QUERY_KEY,
            max_chars=200,
            placeholder="e.g. cust-1, Anna, lilies",
            help="Matches part of a customer id or of a current memory's value, in any case.",
        )
        searched = c2.form_submit_button("Search", icon=":material/search:", type="primary")
    return (query or "").strip(), searched


def _found(actor: Actor, query: str, *, fresh: bool) -> list[CustomerSummary]:
    """The customers matching `query`. A search groups every conversation and current memory
    of the shop (about a second with 100,000 customers), so its result is kept for the clicks
    that follow (open a customer, edit a memory) and read again on Search, for a new query, or
    after a change made on this page (forget_search)."""
    kept = st.session_state.get(FOUND_KEY)
    if fresh or kept is None or kept[0] != query:
        found = read(
            actor,
            lambda s: memory.find_customers(session=s, actor=actor, query=query, limit=FOUND),
        )
        kept = (query, found)
        st.session_state[FOUND_KEY] = kept
    return list(kept[1])


def _results(found: Sequence[CustomerSummary], query: str) -> CustomerSummary:
    """The customers found as a table (a click opens one) and the picker; the one open."""
    ids = [c.customer_id for c in found]
    by_id = {c.customer_id: c for c in found}
    listed = hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]
    table = f"memory_customers_{listed}"  # a new list clears the table's pick
    st.dataframe(
        [
            {
                "customer": c.customer_id,
                "memories": c.memories,
                "conversations": c.conversations,
                "last seen": c.last_seen,
            }
            for c in found
        ],
        hide_index=True,
        width="stretch",
        key=table,
        on_select=partial(_open_row, table, tuple(ids)),
        selection_mode="single-row",
        column_config={"last seen": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm")},
    )
    count = f"The first {FOUND}" if len(found) == FOUND else f"{len(found)}"
    noun = "customer" if len(found) == 1 else "customers"
    st.caption(
        f"{count} {noun}"
        + (" found" if query else ", most remembered first")
        + ". Pick one in the table or below; Search again to refresh the counts."
    )
    keep_pick(CUSTOMER_KEY, ids)
    picked = st.selectbox("Customer", ids, key=CUSTOMER_KEY)
    return by_id[picked]


def _open_row(table: str, ids: tuple[str, ...]) -> None:
    """The table's callback: open the customer of the row clicked."""
    rows = st.session_state[table].selection.rows
    if rows and rows[0] < len(ids):
        st.session_state[CUSTOMER_KEY] = ids[rows[0]]


# --- one customer ----------------------------------------------------------------------------


def _customer(actor: Actor, summary: CustomerSummary) -> None:
    cid = summary.customer_id
    st.subheader(f"Customer {plain(cid)}", anchor=False)
    seen = f"{summary.last_seen:%Y-%m-%d %H:%M} UTC" if summary.last_seen else "never"
    st.caption(f"{summary.conversations} conversations · last seen {seen}")
    history = st.toggle(
        "Show history (memories replaced by newer ones, and deleted ones)", key=HISTORY_KEY
    )
    live_memories(actor, cid, history)
    views = read(
        actor,
        lambda s: memory.customer_memories(session=s, actor=actor, customer_id=cid, history=True),
    )
    _conversation(actor, cid, views)
    current = [v for v in views if v.state == MemoryState.CURRENT.value]
    if current:
        _change(actor, cid, current)
    _forget(actor, cid)


@st.fragment(run_every=LIVE_SECONDS)
def live_memories(actor: Actor, customer_id: str, history: bool) -> None:
    """The customer's memories, read again every few seconds: new ones appear by themselves."""
    views = read(
        actor,
        lambda s: memory.customer_memories(
            session=s, actor=actor, customer_id=customer_id, history=history
        ),
    )
    if not views:
        st.info(NO_MEMORIES, icon=":material/psychology:")
        return
    st.dataframe(
        [_row(v, history) for v in views],
        hide_index=True,
        width="stretch",
        column_config={
            "confidence": st.column_config.NumberColumn(format="%.2f"),
            "source message": st.column_config.TextColumn(width="large"),
            "said": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm"),
            "held since": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm"),
            "ended": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm"),
        },
    )
    current = sum(v.state == MemoryState.CURRENT.value for v in views)
    st.caption(
        f"{current} current memor{'y' if current == 1 else 'ies'}"
        + (f", {len(views) - current} in the history" if history else "")
        + f" · read again every {LIVE_SECONDS} s."
    )


def _row(v: MemoryView, history: bool) -> dict[str, Any]:
    row: dict[str, Any] = {"state": v.state} if history else {}
    row |= {
        "kind": kind_label(v.kind),
        "key": v.key,
        "value": v.value,
        "confidence": v.confidence,
        "mentions": v.mentions,
        "rule": v.rule_name or ("written by an admin" if v.message_id is None else ""),
        "source message": v.message_text or "",
        "conversation": v.conversation or "",
        "said": v.observed_at,
        "held since": v.since,
    }
    if history:
        row["ended"] = v.ended_at
    return row


def _conversation(actor: Actor, cid: str, views: Sequence[MemoryView]) -> None:
    """Pick one of the conversations the memories came from and read its messages."""
    latest: dict[str, datetime] = {}
    for v in views:
        if v.conversation and v.conversation not in latest:
            latest[v.conversation] = v.observed_at
    if not latest:
        return
    ordered = sorted(latest, key=lambda c: latest[c], reverse=True)
    chosen = st.selectbox(
        "View a conversation the memories came from",
        [None, *ordered],
        key=f"memory_conversation_{cid}",
        format_func=lambda c: "—" if c is None else c,
    )
    if chosen is None:
        return
    messages = read(
        actor,
        lambda s: memory.conversation_messages(session=s, actor=actor, external_id=chosen),
    )
    with st.container(border=True):
        st.caption(f"Conversation {plain(chosen)} · {len(messages)} messages")
        for role, text, at in messages:
            st.caption(f"{plain(role)} · {at:%Y-%m-%d %H:%M} UTC")
            st.text(text or "(blank: the customer was forgotten)")


# --- correcting and deleting one memory ------------------------------------------------------


def _describe(v: MemoryView) -> str:
    return f"{kind_label(v.kind)} · {v.key}: {v.value}"


def _change(actor: Actor, cid: str, current: Sequence[MemoryView]) -> None:
    st.markdown("**Correct or delete a memory**")
    by_id = {v.id: v for v in current}
    key = f"memory_pick_{cid}"
    keep_pick(key, list(by_id))
    view = by_id[
        st.selectbox(
            "Memory to correct or delete",
            list(by_id),
            key=key,
            format_func=lambda i: _describe(by_id[i]),
        )
    ]
    field = f"memory_value_{view.id}_{view.version}"
    with st.form(f"memory_edit_{view.id}_{view.version}"):
        st.text_input(
            "Value",
            value=view.value,
            key=field,
            max_chars=memory.MAX_VALUE_LENGTH,
            help=(
                "A date such as 2027-05-03, --05-03 (no year) or May 3."
                if view.kind == MemoryKind.IMPORTANT_DATE.value
                else "What the customer meant. The correction replaces the memory; the old "
                "value stays in the history."
            ),
        )
        st.form_submit_button(
            "Save the new value",
            type="primary",
            icon=":material/edit:",
            on_click=_save_edit,
            args=(actor, view, field, key),
        )
    _delete_button(actor, view)


def _delete_button(actor: Actor, view: MemoryView) -> None:
    confirm = f"memory_delete_sure_{view.id}_{view.version}"
    sure = st.checkbox(
        f"Yes, delete the memory “{plain(_describe(view))}”",
        key=confirm,
        help="It stays in the history as deleted, so extracting its message again does not "
        "bring it back.",
    )
    st.button(
        "Delete this memory",
        icon=":material/delete:",
        key=f"memory_delete_{view.id}_{view.version}",
        disabled=not sure,
        on_click=_delete,
        args=(actor, view, confirm),
    )


def _save_edit(actor: Actor, view: MemoryView, field: str, pick: str) -> None:
    value = str(st.session_state.get(field) or "")

    def done(new: MemoryView) -> str:
        st.session_state[pick] = new.id  # the picker stays on the memory, now the correction
        return (
            f"Saved: {plain(kind_label(new.kind))} “{plain(new.key)}” is now “{plain(new.value)}”; "
            "the old value stays in the history."
        )

    act_in_callback(
        actor,
        lambda s, a: memory.edit_memory(
            session=s, actor=a, memory_id=view.id, value=value, expected_version=view.version
        ),
        done,
        notice=NOTICE,
    )


def _delete(actor: Actor, view: MemoryView, confirm: str) -> None:
    if not st.session_state.get(
        confirm
    ):  # a disabled button cannot be clicked in a browser; be sure anyway
        st.session_state[NOTICE] = ("error", "Tick the confirmation first; nothing was deleted.")
        return
    act_in_callback(
        actor,
        lambda s, a: memory.delete_memory(
            session=s, actor=a, memory_id=view.id, expected_version=view.version
        ),
        lambda _: forget_search(
            f"Deleted the memory “{plain(_describe(view))}”; the history keeps it as deleted."
        ),
        notice=NOTICE,
    )


# --- forgetting the customer -----------------------------------------------------------------


def _forget(actor: Actor, cid: str) -> None:
    with st.expander("Danger zone: forget this customer", icon=":material/warning:"):
        st.markdown(
            "Forgetting deletes **every memory** of this customer, history included, and "
            "blanks the text of **every message** of their conversations and of the examples "
            "made from them. It cannot be undone; the audit log keeps that it happened."
        )
        typed = st.text_input(
            "Type the customer id to confirm", key=f"memory_forget_typed_{cid}", max_chars=200
        )
        if not st.button(
            "Forget this customer",
            type="primary",
            icon=":material/person_remove:",
            key=f"memory_forget_{cid}",
        ):
            return
        if typed.strip() != cid:
            st.warning(
                "The id typed is not this customer's; nothing was forgotten.",
                icon=":material/block:",
            )
            return
        outcome = run_action(
            actor, lambda s: memory.forget_customer(session=s, actor=actor, customer_id=cid)
        )
        if outcome.ok and outcome.value is not None:
            done = outcome.value
            forget_search()
            flash(
                f"Forgot customer {plain(done.customer_id)}: {done.memories:,} memories "
                f"deleted, {done.messages:,} messages and {done.examples:,} examples blanked."
            )
