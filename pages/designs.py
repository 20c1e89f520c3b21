"""Designs (florist, admin; managers read): the gallery of what the generator made, filtered
and paged in SQL, with ratings, comments, decisions and favorites; usage per day and model type
and the results of each template and style."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import streamlit as st

from core import designs
from core.access import Actor
from core.designs import Decision, DesignView, GalleryFilter, GalleryOptions, GalleryPage
from core.studio import EDITORS
from db.models import TemplateKind
from pages.ui.actions import flash, read
from pages.ui.charts import ranked_bars
from pages.ui.guard import require_page
from pages.ui.studio import run_checked, show_image
from pages.ui.studio_charts import rating_lines, usage_bars
from pages.ui.text import plain

actor = require_page("designs")
can_review = actor.role in EDITORS

PAGE_SIZE = 12
PER_ROW = 3
PAGE_KEY, FILTER_KEY = "gallery_page", "gallery_filter"
RATINGS: list[int | str | None] = [None, "unrated", 5, 4, 3, 2, 1, 0]
DECISIONS: dict[Decision | None, str] = {
    None: "Any",
    "approved": "Approved",
    "rejected": "Rejected",
    "undecided": "Not decided",
}
BADGES = {"approved": "✅ approved", "rejected": "⛔ rejected", "undecided": "not decided"}
PERIODS = {"7 days": 7, "30 days": 30, "90 days": 90}
KEEP = "keep"  # a review that leaves the decision as it is


def _stars(rating: int | None) -> str:
    return "not rated" if rating is None else "★" * rating + "☆" * (5 - rating) + f" {rating}/5"


def _rating_choice(choice: int | str | None) -> str:
    if choice is None:
        return "Any rating"
    if choice == "unrated":
        return "Not rated yet"
    return f"{choice} only" if choice == 0 else f"{choice} or more"


# --- the gallery -----------------------------------------------------------------------------


def _filters(options: GalleryOptions) -> GalleryFilter:
    styles, prompts = dict(options.styles), dict(options.templates)
    with st.expander("Filters", icon=":material/filter_list:"):
        c1, c2, c3, c4 = st.columns(4)
        style = c1.selectbox(
            "Style",
            [None, *styles],
            format_func=lambda i: "Any style" if i is None else styles[i],
            key="f_style",
        )
        template = c2.selectbox(
            "Prompt template",
            [None, *prompts],
            format_func=lambda i: "Any template" if i is None else prompts[i],
            key="f_template",
        )
        occasion = c3.selectbox(
            "Occasion",
            [None, *options.occasions],
            format_func=lambda o: "Any occasion" if o is None else o,
            key="f_occasion",
        )
        rating = c4.selectbox("Rating", RATINGS, format_func=_rating_choice, key="f_rating")
        c5, c6, c7 = st.columns(3)
        decision = c5.selectbox(
            "Decision", list(DECISIONS), format_func=lambda d: DECISIONS[d], key="f_decision"
        )
        model = c6.selectbox(
            "Model type",
            [None, *options.model_types],
            format_func=lambda m: "Any model" if m is None else m,
            key="f_model",
        )
        c7.write("")
        favorites = c7.checkbox("Favorites only", key="f_favorites")
    return GalleryFilter(
        style_id=style,
        template_id=template,
        occasion=occasion,
        model_type=model,
        min_rating=rating if isinstance(rating, int) else None,
        unrated=rating == "unrated",
        decision=decision,
        favorites=favorites,
    )


def _page(actor: Actor, filters: GalleryFilter) -> GalleryPage:
    """The requested page of designs; a new filter starts again at page 1."""
    if st.session_state.get(FILTER_KEY) != filters:
        st.session_state[FILTER_KEY] = filters
        st.session_state[PAGE_KEY] = 1
    number = st.session_state.get(PAGE_KEY, 1)

    def query(session: Any) -> GalleryPage:
        found = designs.gallery(
            session=session, actor=actor, filters=filters, page=number, page_size=PAGE_SIZE
        )
        if not found.items and found.total and number > found.pages:  # the last page shrank
            found = designs.gallery(
                session=session,
                actor=actor,
                filters=filters,
                page=found.pages,
                page_size=PAGE_SIZE,
            )
        return found

    found = read(actor, query)
    st.session_state[PAGE_KEY] = found.page
    return found


def _pager(found: GalleryPage) -> None:
    left, middle, right = st.columns([1, 3, 1])
    if left.button("Previous", icon=":material/chevron_left:", disabled=found.page <= 1):
        st.session_state[PAGE_KEY] = found.page - 1
        st.rerun()
    count = f"{found.total:,} design" + ("" if found.total == 1 else "s")
    middle.caption(f"Page {found.page} of {found.pages} · {count}")
    if right.button("Next", icon=":material/chevron_right:", disabled=found.page >= found.pages):
        st.session_state[PAGE_KEY] = found.page + 1
        st.rerun()


def gallery_tab(actor: Actor) -> None:
    options = read(actor, lambda s: designs.gallery_options(session=s, actor=actor))
    filters = _filters(options)
    found = _page(actor, filters)
    if not found.total:
        if filters == GalleryFilter():
            st.info(
                "No designs yet. The generator reports each design it makes "
                "(`trellis design record designs.jsonl`); they appear here to rate, comment on "
                "and approve.",
                icon=":material/photo_library:",
            )
        else:
            st.info("No design matches these filters. Clear a filter to see more.")
        return
    _pager(found)
    for start in range(0, len(found.items), PER_ROW):
        row = found.items[start : start + PER_ROW]
        for column, design in zip(st.columns(PER_ROW), row, strict=False):
            with column:
                _card(actor, design)


def _card(actor: Actor, d: DesignView) -> None:
    with st.container(border=True):
        show_image(d.image_url, alt=f"Design {d.design_id} (the image did not load)")
        st.markdown(
            f"**{_stars(d.rating)}** · {BADGES[d.decision]}"
            + (" · ♥ favorite" if d.favorite else "")
        )
        made_with = [
            f"{d.template_name} v{d.template_number}" if d.template_name else None,
            f"style {d.style_name}" if d.style_name else None,
            d.occasion,
            d.model_type,
            f"{d.created_at:%Y-%m-%d %H:%M} UTC",
            f"{d.tokens:,} tokens · ${d.cost:,.2f}",
        ]
        st.caption(plain(" · ".join(part for part in made_with if part)))
        with st.expander("Prompt"):
            st.text(d.prompt)
        if d.comment and not can_review:
            st.text(f"Comment: {d.comment}")
        if can_review:
            _review_form(actor, d)


def _review_form(actor: Actor, d: DesignView) -> None:
    # Keys carry the time of the last review, so a change made elsewhere redraws the form.
    stamp = f"{d.id}_{int(d.reviewed_at.timestamp()) if d.reviewed_at else 0}"
    with st.form(f"design_{stamp}", border=False):
        left, right = st.columns([3, 2], vertical_alignment="bottom")
        rating = left.selectbox(
            "Rating",
            [None, 0, 1, 2, 3, 4, 5],
            index=0 if d.rating is None else d.rating + 1,
            format_func=lambda r: "Not rated" if r is None else _stars(r),
            key=f"rating_{stamp}",
        )
        comment = st.text_input(
            "Comment", value=d.comment or "", max_chars=designs.MAX_COMMENT, key=f"comment_{stamp}"
        )
        favorite = right.checkbox("Favorite", value=d.favorite, key=f"favorite_{stamp}")
        buttons = st.columns(3)
        saved = buttons[0].form_submit_button("Save", key=f"save_{stamp}")
        approve = buttons[1].form_submit_button(
            "Approve", type="primary", key=f"approve_{stamp}", disabled=d.approved is True
        )
        reject = buttons[2].form_submit_button(
            "Reject", key=f"reject_{stamp}", disabled=d.approved is False
        )
        undecide = False
        if d.approved is not None:
            undecide = st.form_submit_button("Clear the decision", key=f"undecide_{stamp}")
    if saved or approve or reject or undecide:
        decision: bool | str | None = (
            True if approve else False if reject else None if undecide else KEEP
        )
        _review(actor, d, rating, comment, favorite, decision)


def _review(
    actor: Actor,
    d: DesignView,
    rating: int | None,
    comment: str,
    favorite: bool,
    decision: bool | str | None,
) -> None:
    """Everything the card's form changed, in one session."""
    done: list[str] = []

    def work(session: Any) -> None:
        ids = {"session": session, "actor": actor, "design_id": d.id}
        if rating != d.rating:
            designs.rate_design(**ids, rating=rating)
            done.append("rating cleared" if rating is None else f"rated {rating}")
        if comment.strip() != (d.comment or ""):
            designs.comment_design(**ids, comment=comment)
            done.append("comment saved" if comment.strip() else "comment removed")
        if favorite != d.favorite:
            designs.set_favorite(**ids, favorite=favorite)
            done.append("marked favorite" if favorite else "no longer a favorite")
        if decision != KEEP:
            assert decision is None or isinstance(decision, bool)
            designs.decide_design(**ids, approved=decision)
            done.append({True: "approved", False: "rejected", None: "decision cleared"}[decision])

    if run_checked(actor, work).ok:
        what = ", ".join(done) if done else "nothing changed"
        flash(f"Design {plain(d.design_id)}: {what}.")


# --- usage and results -----------------------------------------------------------------------


def usage_tab(actor: Actor) -> None:
    period = st.segmented_control(
        "Period (UTC days)", list(PERIODS), default="30 days", key="usage_period"
    )
    days = PERIODS[period or "30 days"]
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    until = today + timedelta(days=1)
    since = until - timedelta(days=days)

    def query(session: Any) -> tuple[Any, Any, Any]:
        window = {"session": session, "actor": actor, "since": since, "until": until}
        return (
            designs.usage_by_day(**window),
            designs.template_stats(**window, kind=TemplateKind.PROMPT),
            designs.template_stats(**window, kind=TemplateKind.STYLE),
        )

    rows, prompts, styles = read(actor, query)
    if not rows:
        st.info(
            f"No designs were made in the last {days} days, so there is no usage to show. "
            "Pick a longer period, or report designs with `trellis design record`.",
            icon=":material/monitoring:",
        )
        return
    c1, c2, c3 = st.columns(3)
    c1.metric("Designs", f"{sum(r.generations for r in rows):,}")
    c2.metric("Tokens", f"{sum(r.tokens for r in rows):,}")
    c3.metric("Cost", f"${sum(r.cost for r in rows):,.2f}")
    left, right = st.columns(2)
    with left:
        usage_bars(rows, value="generations", title="Designs", number_format=",d", key="u_n")
        usage_bars(rows, value="tokens", title="Tokens", number_format=",d", key="u_tokens")
    with right:
        usage_bars(rows, value="cost", title="Cost ($)", number_format=",.2f", key="u_cost")
        rating_lines(rows, key="u_rating")
    st.subheader("Results by prompt template")
    _results(prompts, "prompt template")
    st.subheader("Results by style")
    _results(styles, "style")


def _results(stats: list[designs.TemplateStats], noun: str) -> None:
    used = [s for s in stats if s.uses]
    if not used:
        st.caption(f"No design of this period names a {noun}.")
        return
    st.dataframe(
        [
            {
                noun: s.name,
                "designs": s.uses,
                "average rating": s.avg_rating,
                "approved": s.approved,
                "rejected": s.rejected,
                "approval rate": s.approval_rate,
            }
            for s in used
        ],
        hide_index=True,
        width="stretch",
        column_config={
            "average rating": st.column_config.NumberColumn(format="%.2f"),
            "approval rate": st.column_config.ProgressColumn(
                format="percent",
                min_value=0,
                max_value=1,
                help="Approved among the designs someone approved or rejected.",
            ),
        },
    )
    if len(used) > 1:
        ranked_bars([(s.name, s.uses) for s in used], label=noun, value="designs")


gallery, usage = st.tabs(["Gallery", "Usage"], key="designs_tabs", on_change="rerun")
with gallery:
    if not can_review:
        st.caption("You can look at the designs; florists and admins rate and approve them.")
    gallery_tab(actor)
with usage:
    usage_tab(actor)
