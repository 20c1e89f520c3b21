"""Review (admin): the queue of messages that need a person, one keystroke per decision;
bulk relabel with undo; label issues; knowledge gaps; learning insights."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

import pandas as pd
import streamlit as st
import streamlit.components.v1 as components

from core import gaps, insights, label_issues, review
from core.access import Actor
from core.errors import StaleEdit, TrellisError
from core.review import Action, QueueFilter, QueueItem, Reason
from db.engine import session_scope
from pages.ui.actions import flash, read, run_action
from pages.ui.guard import require_page
from pages.ui.responses import suggestions_panel
from pages.ui.text import label, plain

actor = require_page("review")

SKIPS, PIN, LOADED, STALE, LAST, NOTICE = (
    "review_skips",
    "review_pin",
    "review_loaded",
    "review_stale",
    "review_last",
    "review_notice",
)
NEW_INTENT = "➕ New intent…"
UP_NEXT = 10
BULK_PAGE = 200


# --- actions (callbacks: they run before the rerun that shows the next item) ---------------


def _do(actor: Actor, work: Any, done: str) -> None:
    """Run a review action in one session; remember the outcome for the next run to show."""
    st.session_state.pop(STALE, None)
    try:
        with session_scope(actor) as session:
            result = work(session)
    except StaleEdit as exc:
        st.session_state[STALE] = (str(exc), exc.current)
        return
    except TrellisError as exc:
        st.session_state[NOTICE] = ("error", str(exc))
        return
    st.session_state.pop(PIN, None)
    batch = getattr(result, "batch_id", None)
    if batch:
        st.session_state[LAST] = (batch, done)
    run = getattr(result, "retrain_run", None)
    extra = f" Enough new reviews: retraining started (run {run.id})." if run else ""
    st.session_state[NOTICE] = ("success", done + extra)


def _submit(actor: Actor, action: Action, example_id: int) -> None:
    loaded = st.session_state.get(LOADED, {})
    if loaded.get("example_id") != example_id:
        st.session_state[NOTICE] = ("error", "That item is no longer shown; nothing was saved.")
        return
    choice = st.session_state.get(f"intent_{example_id}")
    new_name = (st.session_state.get(f"new_intent_{example_id}") or "").strip()
    response = st.session_state.get(f"response_{example_id}") or ""
    note = st.session_state.get(f"note_{example_id}") or None
    group = bool(st.session_state.get(f"group_{example_id}"))
    intent, create = (new_name, True) if choice == NEW_INTENT else (choice, False)
    if action is Action.CORRECT and (create or intent != loaded.get("label")):
        action = Action.CHANGE_INTENT
    what = {
        Action.CORRECT: f"Confirmed {label(intent)}",
        Action.CHANGE_INTENT: f"Relabelled as {label(intent)}",
        Action.FIX_RESPONSE: "Response fixed",
        Action.ESCALATE: "Escalated",
        Action.REJECT: "Rejected",
    }[action]
    size = loaded.get("group_size", 1) if group else 1
    done = f"{what} ({size} message{'s' if size != 1 else ''})."
    _do(
        actor,
        lambda s: review.act(
            session=s,
            actor=actor,
            example_id=example_id,
            action=action,
            version=loaded["version"],
            intent=intent if action is Action.CHANGE_INTENT else None,
            create_intent=create,
            response=response if action is Action.FIX_RESPONSE else None,
            note=note,
            group=group,
        ),
        done,
    )


def _skip(text_hash: str) -> None:
    st.session_state.setdefault(SKIPS, []).append(text_hash)
    st.session_state.pop(PIN, None)
    st.session_state.pop(STALE, None)


def _undo(actor: Actor, batch: str) -> None:
    st.session_state.pop(LAST, None)
    _do(
        actor,
        lambda s: review.undo_batch(session=s, actor=actor, batch_id=batch),
        "Undone: every example is back as it was.",
    )


def _pin(example_id: int) -> None:
    st.session_state[PIN] = example_id
    st.session_state.pop(STALE, None)


# --- the queue ----------------------------------------------------------------------------


def _filters(actor: Actor, intents: list[str]) -> QueueFilter:
    with st.expander("Filters", icon=":material/filter_list:"):
        c1, c2, c3 = st.columns(3)
        reason = c1.selectbox(
            "Reason",
            [None, *Reason],
            format_func=lambda r: "Any reason" if r is None else review.REASON_LABELS[r],
            key="f_reason",
        )
        intent = c2.selectbox(
            "Current intent",
            [None, *intents],
            key="f_intent",
            format_func=lambda i: "Any" if i is None else label(i),
        )
        predicted = c3.selectbox(
            "Predicted intent",
            [None, *intents],
            key="f_predicted",
            format_func=lambda i: "Any" if i is None else label(i),
        )
        c4, c5, c6 = st.columns(3)
        low, high = c4.slider("Confidence", 0.0, 1.0, (0.0, 1.0), 0.05, key="f_conf")
        source = c5.selectbox(
            "Source",
            [None, "live", "imported", "synthetic"],
            key="f_source",
            format_func=lambda v: "Any" if v is None else v,
        )
        days = c6.date_input("Date range", value=(), key="f_dates")
        since = until = None
        if isinstance(days, tuple) and len(days) == 2:
            since = datetime.combine(days[0], time.min, UTC)
            until = datetime.combine(days[1], time.min, UTC) + timedelta(days=1)
        skipped = st.session_state.get(SKIPS, [])
        if skipped and st.button(f"Show the {len(skipped)} skipped item(s) again", key="unskip"):
            st.session_state[SKIPS] = []
            st.rerun()
    return QueueFilter(
        intent=intent,
        predicted=predicted,
        min_confidence=low if low > 0 else None,
        max_confidence=high if high < 1 else None,
        source=source,
        since=since,
        until=until,
        reason=reason,
        skip_groups=tuple(st.session_state.get(SKIPS, [])),
    )


def _notices(actor: Actor) -> None:
    notice = st.session_state.pop(NOTICE, None)
    if notice:
        kind, text = notice
        (st.success if kind == "success" else st.error)(
            text, icon=":material/check_circle:" if kind == "success" else ":material/error:"
        )
    last = st.session_state.get(LAST)
    if last:
        st.button(
            f"Undo: {last[1]}",
            icon=":material/undo:",
            key="undo_last",
            on_click=_undo,
            args=(actor, last[0]),
        )
    stale = st.session_state.get(STALE)
    if stale:
        message, current = stale
        st.warning(message, icon=":material/sync_problem:")
        if isinstance(current, QueueItem):
            st.button(
                f"Review example {current.example_id} as it is now",
                key="review_current_state",
                on_click=_pin,
                args=(current.example_id,),
            )


def _counts(page: review.QueuePage) -> None:
    cols = st.columns(len(Reason) + 1)
    cols[0].metric("Waiting", f"{page.groups:,}", help=f"{page.messages:,} messages in all")
    for column, reason in zip(cols[1:], Reason, strict=True):
        column.metric(review.REASON_LABELS[reason].capitalize(), f"{page.by_reason[reason]:,}")


def _card(actor: Actor, item: QueueItem, intents: list[str]) -> None:
    st.session_state[LOADED] = {
        "example_id": item.example_id,
        "version": item.version,
        "label": item.label,
        "group_size": item.group_size,
    }
    with st.container(border=True):
        reasons = " · ".join(review.REASON_LABELS[r] for r in item.reasons) or "picked by you"
        st.caption(
            f"Example {item.example_id} · {reasons} · {item.source} · "
            f"{item.created_at:%Y-%m-%d %H:%M} UTC"
            + (f" · occurs {item.group_size}× (near-identical)" if item.group_size > 1 else "")
        )
        st.markdown(f"### {plain(item.text)}")
        left, right = st.columns([3, 2])
        with left:
            if item.top:
                st.dataframe(
                    [{"intent": label(i), "probability": p} for i, p in item.top],
                    hide_index=True,
                    width="stretch",
                    column_config={
                        "probability": st.column_config.ProgressColumn(
                            format="percent", min_value=0, max_value=1
                        )
                    },
                )
            else:
                st.caption("No model had predicted this message.")
            if item.issue_suggestion:
                st.info(
                    f"Probably mislabelled as {label(item.label)}: "
                    f"{label(item.issue_suggestion)} fits better (score {item.issue_score:.2f}).",
                    icon=":material/report:",
                )
        with right:
            st.markdown("**The assistant answered**")
            st.text(item.ai_response or "(no answer recorded)")
            suggestions_panel(actor, item.text, compact=True)
            if item.conversation_id is not None:
                with st.expander("Conversation"):
                    context = read(
                        actor,
                        lambda s: review.conversation_context(
                            session=s, actor=actor, example_id=item.example_id
                        ),
                    )
                    for message in context:
                        who = ("▶ " if message.is_reviewed else "") + message.role
                        st.caption(f"{who} · {message.created_at:%H:%M}")
                        st.text(message.text)
        _form(actor, item, intents)


def _form(actor: Actor, item: QueueItem, intents: list[str]) -> None:
    eid = item.example_id
    options = sorted(set(intents) | ({item.label} if item.label else set()))
    preferred = item.issue_suggestion or item.label
    with st.form(f"review_form_{eid}", border=False):
        c1, c2 = st.columns([2, 1])
        c1.selectbox(
            "Intent (Ctrl+Enter saves)",
            [*options, NEW_INTENT],
            index=options.index(preferred) if preferred in options else len(options),
            format_func=lambda i: i if i == NEW_INTENT else label(i),
            key=f"intent_{eid}",
        )
        c2.text_input(
            "New intent name", key=f"new_intent_{eid}", placeholder="only for “New intent…”"
        )
        st.text_area(
            "Right response (for Fix response)",
            value=item.correct_response or item.ai_response or "",
            key=f"response_{eid}",
            height=80,
        )
        st.text_input("Note (optional)", key=f"note_{eid}", max_chars=2000)
        if item.group_size > 1:
            st.checkbox(
                f"Apply to all {item.group_size} near-identical messages",
                value=True,
                key=f"group_{eid}",
            )
        buttons = st.columns(5)
        for column, (action, text, icon, key) in zip(
            buttons,
            (
                (Action.CORRECT, "Save intent", ":material/check:", "Ctrl+Enter"),
                (Action.FIX_RESPONSE, "Fix response", ":material/edit:", "Alt+F"),
                (Action.ESCALATE, "Escalate", ":material/support_agent:", "Alt+E"),
                (Action.REJECT, "Reject", ":material/block:", "Alt+X"),
            ),
            strict=False,
        ):
            column.form_submit_button(
                text,
                type="primary" if action is Action.CORRECT else "secondary",
                icon=icon,
                shortcut=key,
                on_click=_submit,
                args=(actor, action, eid),
            )
        buttons[4].form_submit_button(
            "Skip",
            icon=":material/skip_next:",
            shortcut="Alt+S",
            on_click=_skip,
            args=(item.text_hash,),
        )
    # Keyboard first: put the cursor in the intent box of each new item. A fixed script (the
    # item id is an int, only there so each item re-runs it); no user text goes into it.
    focus = (
        "const f = window.parent.document.querySelector('[data-testid=\"stForm\"] input');"
        "if (f) { f.focus(); }"
    )
    components.html(f"<script>/* item {eid} */ {focus}</script>", height=0)


def queue_tab(actor: Actor, intents: list[str]) -> review.QueuePage:
    """The item to review now and what comes next; returns the queue's first BULK_PAGE items
    (one query serves this tab and the Bulk relabel tab)."""
    filters = _filters(actor, intents)
    page = read(
        actor, lambda s: review.queue(session=s, actor=actor, filters=filters, page_size=BULK_PAGE)
    )
    _counts(page)
    pin = st.session_state.get(PIN)
    item: QueueItem | None
    if pin is not None:
        item = read(actor, lambda s: review.get_item(session=s, actor=actor, example_id=pin))
    else:
        item = page.items[0] if page.items else None
    if item is None:
        st.success(
            "Nothing waits for review"
            + (
                " under these filters."
                if filters != QueueFilter()
                else ": the assistant is sure of "
                "everything it answered. Label issues and knowledge gaps are on their own tabs."
            ),
            icon=":material/task_alt:",
        )
        return page
    _card(actor, item, intents)
    rest = [i for i in page.items[:UP_NEXT] if i.example_id != item.example_id]
    if rest:
        st.markdown("**Up next** (select one to review it now)")
        picked = st.dataframe(
            [
                {
                    "text": i.text,
                    "×": i.group_size,
                    "why": ", ".join(review.REASON_LABELS[r] for r in i.reasons),
                    "predicted": label(i.predicted),
                    "confidence": i.confidence,
                }
                for i in rest
            ],
            hide_index=True,
            width="stretch",
            on_select="rerun",
            selection_mode="single-row",
            key=f"up_next_{item.example_id}",
            column_config={"confidence": st.column_config.NumberColumn(format="percent")},
        )
        rows = picked.selection.rows if picked else []
        if rows:
            _pin(rest[rows[0]].example_id)
            st.rerun()
    return page


# --- bulk ---------------------------------------------------------------------------------

BULK_TICKED = "bulk_ticked"  # the rows ticked in the editor as last drawn


def _bulk(actor: Actor) -> None:
    chosen: list[dict[str, Any]] = st.session_state.get(BULK_TICKED, [])
    if not chosen:
        st.session_state[NOTICE] = ("error", "Tick at least one row to relabel.")
        return
    choice = st.session_state.get("bulk_intent")
    new_name = (st.session_state.get("bulk_new_intent") or "").strip()
    intent, create = (new_name, True) if choice == NEW_INTENT else (choice or "", False)
    whole_groups = bool(st.session_state.get("bulk_groups"))
    versions = {r["id"]: r["version"] for r in chosen}

    def work(session: Any) -> review.BulkResult:
        ids = list(versions)
        if whole_groups:
            ids += review.group_members(
                session=session, actor=actor, text_hashes=[r["hash"] for r in chosen]
            )
        return review.bulk_relabel(
            session=session,
            actor=actor,
            example_ids=ids,
            intent=intent,
            create_intent=create,
            expected_versions=versions,
            note=st.session_state.get("bulk_note") or None,
        )

    _do(actor, work, f"Relabelled the selection as {label(intent)}.")


def bulk_tab(actor: Actor, intents: list[str], page: review.QueuePage) -> None:
    st.caption(
        "Tick rows of the queue (under the filters of the Queue tab) and give them one intent "
        "in one step. Undo restores every example exactly as it was."
    )
    if not page.items:
        st.info("The queue is empty under these filters: nothing to relabel.")
        return
    edited = st.data_editor(
        pd.DataFrame(
            [
                {
                    "select": False,
                    "text": i.text,
                    "×": i.group_size,
                    "intent": label(i.label),
                    "confidence": i.confidence,
                    "why": ", ".join(review.REASON_LABELS[r] for r in i.reasons),
                }
                for i in page.items
            ]
        ),
        hide_index=True,
        width="stretch",
        disabled=["text", "×", "intent", "confidence", "why"],
        column_config={
            "select": st.column_config.CheckboxColumn("✓", help="Relabel this row"),
            "confidence": st.column_config.NumberColumn(format="percent"),
        },
        key="bulk_editor",
    )
    st.session_state[BULK_TICKED] = [
        {"id": i.example_id, "version": i.version, "hash": i.text_hash}
        for i, ticked in zip(page.items, edited["select"], strict=True)
        if ticked
    ]
    st.caption(f"Showing the first {len(page.items)} of {page.groups:,} items.")
    c1, c2 = st.columns(2)
    c1.selectbox(
        "New intent",
        [*intents, NEW_INTENT],
        key="bulk_intent",
        format_func=lambda i: i if i == NEW_INTENT else label(i),
    )
    c2.text_input("New intent name", key="bulk_new_intent", placeholder="only for “New intent…”")
    st.checkbox(
        "Include every near-identical message of each ticked row", value=True, key="bulk_groups"
    )
    st.text_input("Note for the relabel (optional)", key="bulk_note")
    st.button(
        "Relabel ticked rows",
        type="primary",
        icon=":material/label:",
        on_click=_bulk,
        args=(actor,),
        key="bulk_go",
    )


# --- label issues, gaps, insights --------------------------------------------------------


def issues_tab(actor: Actor) -> None:
    st.caption(
        "Examples whose label is probably wrong, found by cross-validated predictions "
        "(confident learning) after every training run. Each also waits in the queue."
    )
    if st.button("Find label issues now", icon=":material/search:", key="detect_issues"):
        with st.spinner("Cross-validating every labelled example…"):
            outcome = run_action(actor, lambda s: label_issues.detect(session=s, actor=actor))
        if outcome.ok and outcome.value is not None:
            found = outcome.value
            flash(
                found.reason
                or f"Checked {found.judged:,} of {found.examined:,} labelled examples: "
                f"{found.flagged:,} probably mislabelled."
            )
    found = read(actor, lambda s: label_issues.list_issues(session=s, actor=actor, limit=200))
    if not found:
        st.info("No label issues flagged. Run the detection after importing or correcting data.")
        return
    picked = st.dataframe(
        [
            {
                "text": i.text,
                "labelled": label(i.given_intent),
                "probably": label(i.suggested_intent),
                "score": i.score,
            }
            for i in found
        ],
        hide_index=True,
        width="stretch",
        on_select="rerun",
        selection_mode="single-row",
        key="issues_table",
        column_config={"score": st.column_config.ProgressColumn(min_value=0, max_value=1)},
    )
    rows = picked.selection.rows if picked else []
    if rows:
        chosen = found[rows[0]]
        st.button(
            f"Review example {chosen.example_id} in the queue",
            on_click=_pin,
            args=(chosen.example_id,),
            key="issue_review",
        )


def gaps_tab(actor: Actor, intents: list[str]) -> None:
    st.caption(
        "Escalated and low-confidence messages grouped by meaning: topics the assistant has no "
        "good intent for. Create an intent from one, map it to an existing intent, or dismiss it."
    )
    if st.button("Find knowledge gaps now", icon=":material/hub:", key="find_gaps"):
        with st.spinner("Clustering escalated and uncertain messages…"):
            outcome = run_action(actor, lambda s: gaps.find_gaps(session=s, actor=actor))
        if outcome.ok and outcome.value is not None:
            flash(f"Found {len(outcome.value)} knowledge gap(s).")
    found = read(actor, lambda s: gaps.list_gaps(session=s, actor=actor))
    if not found:
        st.info("No open knowledge gaps. Press “Find knowledge gaps now” to look for some.")
        return
    for gap in found:
        title = (
            f"{plain(gap.label) or 'Unnamed topic'} — {gap.size} messages, "
            f"{gap.escalation_rate:.0%} escalated, severity {gap.severity:.1f}"
        )
        with st.expander(title):
            for text in gap.representatives:
                st.text(f"• {text}")
            if gap.nearest_intents:
                st.caption(
                    "Closest intents: "
                    + ", ".join(f"{label(i)} ({score:.2f})" for i, score in gap.nearest_intents)
                )
            c1, c2, c3 = st.columns(3)
            with c1.form(f"gap_new_{gap.id}", border=False):
                name = st.text_input("New intent", key=f"gap_name_{gap.id}")
                if st.form_submit_button("Create and label"):
                    _resolve(actor, gap.id, name, create=True)
            with c2.form(f"gap_map_{gap.id}", border=False):
                target = st.selectbox(
                    "Existing intent", intents, key=f"gap_target_{gap.id}", format_func=label
                )
                if st.form_submit_button("Map to it"):
                    _resolve(actor, gap.id, target or "", create=False)
            if c3.button("Dismiss", key=f"gap_dismiss_{gap.id}"):
                outcome = run_action(
                    actor, lambda s, g=gap.id: gaps.dismiss_gap(session=s, actor=actor, gap_id=g)
                )
                if outcome.ok:
                    flash("Gap dismissed; its messages will not be clustered again.")


def _resolve(actor: Actor, gap_id: int, intent: str, *, create: bool) -> None:
    outcome = run_action(
        actor,
        lambda s: gaps.resolve_gap(
            session=s, actor=actor, gap_id=gap_id, intent=intent, create_intent=create
        ),
    )
    if outcome.ok:
        flash(f"Labelled the gap's messages as {label(intent)}.")


def insights_tab(actor: Actor) -> None:
    found = read(actor, lambda s: insights.learning_insights(session=s, actor=actor))
    if not found:
        st.info(
            "No recommendations yet: they come from reviewed examples, corrections and "
            "knowledge gaps."
        )
        return
    for insight in found:
        show = {"high": st.error, "medium": st.warning}.get(insight.level, st.info)
        show(plain(insight.message), icon=":material/lightbulb:")


intents = read(actor, lambda s: review.intents(session=s, actor=actor))
_notices(actor)
queue_t, bulk_t, issues_t, gaps_t, insights_t = st.tabs(
    ["Queue", "Bulk relabel", "Label issues", "Knowledge gaps", "Insights"]
)
with queue_t:
    first_page = queue_tab(actor, intents)
with bulk_t:
    bulk_tab(actor, intents, first_page)
with issues_t:
    issues_tab(actor)
with gaps_t:
    gaps_tab(actor, intents)
with insights_t:
    insights_tab(actor)
