"""Corrections (admin): every change reviewers made, filtered and paged; revert one or undo its
batch; export; how much each reviewer did per day."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, time, timedelta

import altair as alt
import pandas as pd
import streamlit as st

from core import corrections, review
from core.access import Actor
from core.config import get_settings
from core.corrections import ActivityRow, CorrectionFilter, CorrectionRow, ReviewerChoice
from pages.ui.actions import flash, read, run_action
from pages.ui.guard import require_page
from pages.ui.text import label, plain

actor = require_page("corrections")

TABLE, PAGE = "corrections_table", "corrections_page"
FIELD_LABELS = {"intent": "intent", "response": "response", "status": "status"}
EMPTY = "No corrections yet: they appear here when an admin reviews messages on the Review page."


def _filters(actor: Actor) -> CorrectionFilter:
    people = read(actor, lambda s: corrections.reviewers(session=s, actor=actor))
    intents = read(actor, lambda s: corrections.intents(session=s, actor=actor))
    with st.form("correction_filters"):
        c1, c2, c3, c4 = st.columns(4)
        who: ReviewerChoice | None = c1.selectbox(
            "Reviewer", [None, *people], format_func=lambda p: "Anyone" if p is None else p.name
        )
        intent: str | None = c2.selectbox(
            "Intent",
            [None, *intents],
            format_func=lambda i: "Any" if i is None else i,
            help="Corrections that changed a message from or to this intent.",
        )
        field: str | None = c3.selectbox(
            "What changed",
            [None, *FIELD_LABELS],
            format_func=lambda f: "Anything" if f is None else FIELD_LABELS[f],
        )
        today = datetime.now(UTC).date()
        span = c4.date_input("Dates (UTC)", value=(today - timedelta(days=30), today))
        m1, m2, _ = st.columns([1, 1, 2])
        mismatch = m1.checkbox(
            "Mismatches only",
            help="Corrections where the model's intent was wrong or its answer was rewritten.",
        )
        reverted = m2.checkbox("Include reverted", value=True)
        st.form_submit_button("Apply filters")
    since, until = _range(span)
    return CorrectionFilter(
        reviewer_id=who.id if who else None,
        intent=intent,
        field=field,
        since=since,
        until=until,
        mismatch_only=mismatch,
        include_reverted=reverted,
    )


def _range(span: object) -> tuple[datetime | None, datetime | None]:
    """The picked days as [since, until) in UTC; none while only one end is picked."""
    if not (isinstance(span, tuple) and len(span) == 2):
        return None, None
    first, last = span
    assert isinstance(first, date) and isinstance(last, date)
    since = datetime.combine(first, time.min, tzinfo=UTC)
    return since, datetime.combine(last + timedelta(days=1), time.min, tzinfo=UTC)


def _table(rows: list[CorrectionRow]) -> CorrectionRow | None:
    """The page's corrections as a table; the row picked in it, if any.

    A pick is a row position: the table's key follows the corrections it lists, so when they
    change (a new correction, another page) the pick clears instead of moving to another row.
    """
    listed = ",".join(str(r.id) for r in rows).encode()
    event = st.dataframe(
        [
            {
                "when": r.created_at,
                "reviewer": r.reviewer,
                "example": r.example_text,
                "changed": r.field,
                "before": r.original_value or "",
                "after": r.corrected_value or "",
                "mismatch": r.was_mismatch,
                "note": r.note or "",
                "batch": r.batch_size,
                "reverted": f"by {r.reverted_by}" if r.reverted else "",
            }
            for r in rows
        ],
        hide_index=True,
        width="stretch",
        key=f"{TABLE}_{hashlib.sha256(listed).hexdigest()[:16]}",
        on_select="rerun",
        selection_mode="single-row",
        column_config={
            "when": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm"),
            "example": st.column_config.TextColumn(width="large"),
            "batch": st.column_config.NumberColumn(help="Examples changed by the same action."),
        },
    )
    picked = event.selection.rows
    return rows[picked[0]] if picked and picked[0] < len(rows) else None


def _details(actor: Actor, row: CorrectionRow) -> None:
    st.subheader(f"Correction {row.id} · example {row.example_id}")
    st.caption(
        plain(f"{row.created_at:%Y-%m-%d %H:%M} UTC by {row.reviewer}")
        + (plain(f" · note: {row.note}") if row.note else "")
    )
    st.text(row.example_text)
    before, after = st.columns(2)
    before.caption(f"{row.field.capitalize()} before")
    before.text(_shown(row, row.original_value))
    after.caption(f"{row.field.capitalize()} after")
    after.text(_shown(row, row.corrected_value))
    if row.reverted:
        assert row.reverted_at is not None
        st.info(
            plain(f"Reverted on {row.reverted_at:%Y-%m-%d %H:%M} UTC by {row.reverted_by}."),
            icon=":material/undo:",
        )
    else:
        _revert_one(actor, row)
    if row.batch_size > 1 and row.batch_standing > 0:
        _undo_batch(actor, row)


def _shown(row: CorrectionRow, value: str | None) -> str:
    if value is None:
        return "(none)"
    return label(value) if row.field == "intent" else value


def _revert_one(actor: Actor, row: CorrectionRow) -> None:
    sure = st.checkbox(
        "Yes, put this example back as it was before this correction",
        key=f"confirm_revert_{row.id}",
    )
    if not st.button(
        "Revert this correction",
        key=f"revert_{row.id}",
        icon=":material/undo:",
        disabled=not sure,
    ):
        return
    if not sure:  # a disabled button cannot be clicked in a browser; be sure anyway
        st.warning("Tick the confirmation first.")
        return
    outcome = run_action(
        actor, lambda s: review.revert_correction(session=s, actor=actor, correction_id=row.id)
    )
    if outcome.ok:
        flash(f"Reverted correction {row.id}: example {row.example_id} is as it was before it.")


def _undo_batch(actor: Actor, row: CorrectionRow) -> None:
    n = row.batch_standing
    examples = "example" if n == 1 else "examples"
    sure = st.checkbox(
        f"Yes, undo everything this action changed ({n} {examples})",
        key=f"confirm_batch_{row.id}",
        help="Each example goes back to how it was before the action, if nobody changed it since.",
    )
    if not st.button(
        f"Undo its whole batch ({n} {examples})",
        key=f"undo_batch_{row.id}",
        icon=":material/undo:",
        disabled=not sure,
    ):
        return
    if not sure or row.batch_id is None:
        st.warning("Tick the confirmation first.")
        return
    batch_id = row.batch_id
    outcome = run_action(
        actor, lambda s: review.undo_batch(session=s, actor=actor, batch_id=batch_id)
    )
    if outcome.ok:
        flash(f"Undid the batch: {outcome.value} {examples} restored.")


def _download(actor: Actor, filters: CorrectionFilter) -> None:
    # The CSV is built only when clicked (on a worker thread), not on every rerun.
    st.download_button(
        "Export to CSV",
        lambda: read(
            actor, lambda s: corrections.export_csv(session=s, actor=actor, filters=filters)
        ),
        file_name="trellis-corrections.csv",
        mime="text/csv",
        icon=":material/download:",
        on_click="ignore",
    )


def _activity(actor: Actor, filters: CorrectionFilter) -> None:
    st.subheader("Reviewer activity")
    rows = read(
        actor,
        lambda s: corrections.reviewer_activity(
            session=s, actor=actor, since=filters.since, until=filters.until
        ),
    )
    if not rows:
        st.info("Nobody corrected anything in these dates.")
        return
    st.caption("Corrections per day (UTC) and reviewer, reverted ones included.")
    _activity_chart(rows)


def _activity_chart(rows: list[ActivityRow]) -> None:
    """Stacked bars: corrections per day, one colour per reviewer."""
    named: dict[str, set[int | None]] = {}
    for r in rows:
        named.setdefault(r.reviewer, set()).add(r.reviewer_id)

    def who(r: ActivityRow) -> str:  # two people of one name stay two colours
        return r.reviewer if len(named[r.reviewer]) == 1 else f"{r.reviewer} (#{r.reviewer_id})"

    frame = pd.DataFrame(
        [
            {
                "day": r.day,
                "reviewer": who(r),
                "corrections": r.corrections,
                "mismatches": r.mismatches,
            }
            for r in rows
        ]
    )
    chart = (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("utcyearmonthdate(day):T", title=None, axis=alt.Axis(format="%b %d")),
            y=alt.Y("sum(corrections):Q", title="corrections", stack="zero"),
            color=alt.Color("reviewer:N", title="reviewer"),
            tooltip=["day:N", "reviewer:N", "corrections:Q", "mismatches:Q"],
        )
        .properties(height=260)
    )
    st.altair_chart(chart, width="stretch", key="corrections_activity")


def _log(actor: Actor) -> None:
    filters = _filters(actor)
    size = get_settings().page_size
    number = st.number_input("Page", min_value=1, value=1, step=1, key=PAGE)
    page = read(
        actor,
        lambda s: corrections.list_corrections(
            session=s, actor=actor, filters=filters, page=int(number), page_size=size
        ),
    )
    st.caption(f"{page.total} corrections · page {page.page} of {page.pages}")
    if not page.total:
        st.info("No corrections match these filters. Widen the dates or clear the filters.")
    elif not page.rows:
        st.info(f"Page {page.page} is past the last page ({page.pages}).")
    else:
        st.caption("Pick a row to revert it or undo its batch.")
        picked = _table(page.rows)
        _download(actor, filters)
        if picked is not None:
            _details(actor, picked)
    _activity(actor, filters)


if read(actor, lambda s: corrections.any_corrections(session=s, actor=actor)):
    _log(actor)
else:
    st.info(EMPTY, icon=":material/history:")
    st.page_link("pages/review.py", label="Open the Review page", icon=":material/rate_review:")
