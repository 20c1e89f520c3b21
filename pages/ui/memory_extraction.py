"""The Rules tab of the Memory screen: the shop's extraction rules with what each produced, turn
one on or off, add one (its phrase checked first), and backfill from stored messages."""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

import core.memory_rules
from core import memory
from core.access import Actor
from core.errors import TrellisError
from core.memory import RuleView
from core.memory_rules import MemoryKind
from db.engine import get_engine
from pages.ui.actions import flash, read, run_action
from pages.ui.memory_common import act_in_callback, forget_search, kind_label, show_notice
from pages.ui.text import plain

NOTICE = "memory_rules_notice"
FORM_ROUND = "memory_rule_form_round"  # moves on after a rule is added: the form starts empty
PHRASE_HELP = (
    "Words as the customer writes them, with one slot for what to remember: {value} (free "
    "text), {name} (a person's name) or {date}; or a {key} alone. [a|b] picks one of the words; "
    "[a |] makes one optional. Example: [I'm|I am] allergic to {value}"
)
KEY_HELP = (
    "What the memory is about, the same for every customer: a fixed word such as prefers, or "
    "{value} / {key} to use what was captured (e.g. {value} for allergies: one memory per "
    "allergen)."
)


def rules_tab(actor: Actor) -> None:
    st.caption(
        "Each customer message runs through the shop's active rules; a match becomes a memory "
        "of that customer, with the message it came from. Rules are phrases, never regular "
        "expressions: nothing typed here can slow the assistant down or match more than it says."
    )
    show_notice(NOTICE)
    rules = read(actor, lambda s: memory.list_rules(session=s, actor=actor))
    _table(rules)
    _switches(actor, rules)
    _add_form(actor)
    with st.expander("The phrase language", icon=":material/help:"):
        # Trellis's own documentation (core.memory_rules), not text anyone typed.
        st.markdown(core.memory_rules.__doc__ or "")
    _backfill(actor)


def _table(rules: Sequence[RuleView]) -> None:
    st.dataframe(
        [
            {
                "name": r.name,
                "kind": kind_label(r.kind),
                "phrase": r.phrase,
                "key": r.key,
                "confidence": r.confidence,
                "active": r.is_active,
                "built in": r.builtin,
                "memories produced": r.memories,
            }
            for r in rules
        ],
        hide_index=True,
        width="stretch",
        column_config={
            "phrase": st.column_config.TextColumn(width="large"),
            "confidence": st.column_config.NumberColumn(format="%.2f"),
            "memories produced": st.column_config.NumberColumn(
                help="Memories it wrote, history included."
            ),
        },
    )


def _switches(actor: Actor, rules: Sequence[RuleView]) -> None:
    st.markdown("**Turn rules on or off**")
    st.caption(
        "A rule turned off extracts nothing more; the memories it wrote stay until an admin "
        "deletes them."
    )
    columns = st.columns(3)
    for index, rule in enumerate(rules):
        # The key carries the version: once the rule changes, the switch starts from it.
        key = f"memory_rule_active_{rule.id}_{rule.version}"
        columns[index % 3].toggle(
            plain(rule.name),
            value=rule.is_active,
            key=key,
            help=f"{kind_label(rule.kind)}: {plain(rule.phrase)}",
            on_change=_set_active,
            args=(actor, rule, key),
        )


def _set_active(actor: Actor, rule: RuleView, key: str) -> None:
    active = bool(st.session_state.get(key))
    act_in_callback(
        actor,
        lambda s, a: memory.set_rule_active(
            session=s, actor=a, rule_id=rule.id, active=active, expected_version=rule.version
        ),
        lambda r: f"Rule “{plain(r.name)}” is {'on' if r.is_active else 'off'}.",
        notice=NOTICE,
    )


def _add_form(actor: Actor) -> None:
    round_ = st.session_state.get(FORM_ROUND, 0)
    with st.form(f"memory_rule_add_{round_}"):
        st.markdown("**Add a rule**")
        c1, c2 = st.columns(2)
        name = c1.text_input("Name", max_chars=100, placeholder="e.g. Loves X")
        kind = c2.selectbox(
            "Kind", [k.value for k in MemoryKind], format_func=kind_label, key=f"rule_kind_{round_}"
        )
        phrase = st.text_input(
            "Phrase", max_chars=core.memory_rules.MAX_PHRASE_LENGTH, help=PHRASE_HELP
        )
        c3, c4 = st.columns(2)
        key = c3.text_input(
            "Key", max_chars=core.memory_rules.MAX_KEY_TEMPLATE_LENGTH, help=KEY_HELP
        )
        confidence = c4.slider("Confidence", 0.05, 1.0, 0.8, 0.05, format="%.2f")
        added = st.form_submit_button("Add rule", type="primary", icon=":material/add:")
    if not added:
        return
    outcome = run_action(
        actor,
        lambda s: memory.add_rule(
            session=s,
            actor=actor,
            name=name,
            kind=kind,
            phrase=phrase,
            key=key,
            confidence=confidence,
        ),
    )
    if not outcome.ok:
        if phrase:  # the refusal names a column: show the phrase with it
            st.code(phrase, language=None)
        return
    assert outcome.value is not None
    st.session_state[FORM_ROUND] = round_ + 1
    flash(
        f"Added the rule “{plain(outcome.value.name)}”: it applies to messages from now on. "
        "Run “Extract from stored messages” to apply it to older ones."
    )


def _backfill(actor: Actor) -> None:
    st.markdown("**Backfill**")
    st.caption(
        "Runs the active rules over every customer message stored, a batch at a time: for "
        "rules added after the messages came, or messages imported. Safe to run again: a message "
        "never yields the same memory twice, and deleted memories stay deleted."
    )
    if not st.button(
        "Extract from stored messages", icon=":material/manage_search:", key="memory_extract"
    ):
        return
    bar = st.progress(0.0, text="Reading stored customer messages…")

    def progress(done: int, total: int) -> None:
        bar.progress(min(1.0, done / max(total, 1)), text=f"{done:,} of {total:,} messages read")

    try:
        result = memory.extract_stored(engine=get_engine(), actor=actor, progress=progress)
    except TrellisError as exc:
        st.error(plain(str(exc)), icon=":material/error:")
        return
    forget_search()
    flash(f"Read {result.messages:,} customer messages: {result.memories:,} new memories.")
