"""The Library tab of Templates: styles and prompt templates every shop shares, anonymously;
adopt one, publish yours, change or withdraw what your shop published."""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from core import library, templates
from core.access import Actor
from core.library import LibraryItemView
from core.templates import TemplateView
from db.models import TemplateKind
from pages.ui.actions import flash, read
from pages.ui.studio import run_checked
from pages.ui.text import plain

KINDS = {None: "Styles and prompts", TemplateKind.STYLE: "Styles", TemplateKind.PROMPT: "Prompts"}
NOUN = {TemplateKind.STYLE: "style", TemplateKind.PROMPT: "prompt template"}
KEEP = 0  # "keep the published content" in the republish picker
SHOWN = 100


def _noun(kind: TemplateKind) -> str:
    """A kind as people say it (other kinds the library may hold: "<kind> template")."""
    return NOUN.get(kind, f"{kind.value} template")


def _quoted(name: str) -> str:
    return f"“{plain(name)}”"


def _title(item: LibraryItemView) -> str:
    return f"{item.name} · {_noun(item.kind)}" + (" · yours" if item.is_mine else "")


def library_tab(actor: Actor, own: Sequence[TemplateView]) -> None:
    """The library; `own` are the shop's active styles and prompt templates (to publish)."""
    st.caption(
        "Styles and prompt templates shared by every shop using Trellis, without saying which "
        "shop published them. Each approved or rejected design made with an adopted copy counts "
        "for the original; the best-proven come first (the lower bound of their approval rate, "
        "then the latest approval). Only the publishing shop changes or withdraws an item."
    )
    c1, c2 = st.columns([1, 2])
    kind = c1.selectbox("Show", list(KINDS), format_func=lambda k: KINDS[k], key="library_kind")
    text = c2.text_input("Search names and descriptions", key="library_search", max_chars=100)
    items = read(
        actor,
        lambda s: library.browse(session=s, actor=actor, kind=kind, text=text or None, limit=SHOWN),
    )
    if not items:
        st.info(
            "Nothing in the library"
            + (" matches this search." if text or kind else " yet.")
            + " Publish one of your styles or prompt templates below to share it.",
            icon=":material/local_library:",
        )
    else:
        _table(items)
        if len(items) == SHOWN:
            st.caption(f"The best {SHOWN} are shown; search to find others.")
        _adopt(actor, items)
    _publish(actor, own)
    mine = [i for i in items if i.is_mine]
    if mine:
        _manage(actor, mine, own)


def _table(items: Sequence[LibraryItemView]) -> None:
    st.dataframe(
        [
            {
                "rank": n,
                "name": i.name,
                "kind": _noun(i.kind),
                "description": i.description,
                "approval rate": i.success_rate,
                "decided designs": i.uses,
                "adopted": i.adoptions,
                "last approval": i.last_successful_use,
                "yours": i.is_mine,
            }
            for n, i in enumerate(items, start=1)
        ],
        hide_index=True,
        width="stretch",
        column_config={
            "approval rate": st.column_config.ProgressColumn(
                format="percent",
                min_value=0,
                max_value=1,
                help="Approved among the designs shops decided on, made with adopted copies.",
            ),
            "last approval": st.column_config.DatetimeColumn(format="YYYY-MM-DD"),
        },
    )


def _adopt(actor: Actor, items: Sequence[LibraryItemView]) -> None:
    st.subheader("Adopt into your shop")
    by_id = {i.id: i for i in items}
    chosen = by_id[
        st.selectbox(
            "Library item", list(by_id), format_func=lambda i: _title(by_id[i]), key="adopt_pick"
        )
    ]
    with st.expander("What it holds"):
        st.code("\n".join(templates.content_lines(chosen.kind, chosen.content)), language=None)
    with st.form(f"adopt_{chosen.id}"):
        name = st.text_input(
            "Name of your copy",
            value=chosen.name,
            max_chars=100,
            help="Your shop's copy is a new template you then edit freely.",
        )
        adopted = st.form_submit_button("Adopt", type="primary", icon=":material/download:")
    if adopted:
        outcome = run_checked(
            actor,
            lambda s: library.adopt(session=s, actor=actor, item_id=chosen.id, name=name or None),
        )
        if outcome.ok and outcome.value is not None:
            copy = outcome.value
            st.session_state[f"open_{copy.kind.value}"] = copy.id
            flash(
                f"Adopted as your {_noun(copy.kind)} {_quoted(copy.name)}: version 1, not yet "
                "production. Open it on its tab to edit it."
            )


def _publish(actor: Actor, own: Sequence[TemplateView]) -> None:
    st.subheader("Publish one of yours")
    if not own:
        st.caption("Your shop has no active style or prompt template to publish.")
        return
    by_id = {v.id: v for v in own}
    chosen = by_id[
        st.selectbox(
            "Your template",
            list(by_id),
            format_func=lambda i: f"{by_id[i].name} · {_noun(by_id[i].kind)}",
            key="publish_pick",
        )
    ]
    numbers = list(range(chosen.latest_number, 0, -1))
    default = chosen.production_number or chosen.latest_number
    with st.form(f"publish_{chosen.id}_{chosen.latest_number}"):
        number = st.selectbox(
            "Version to publish",
            numbers,
            index=numbers.index(default),
            format_func=lambda n: (
                f"version {n}" + (" (production)" if n == chosen.production_number else "")
            ),
        )
        description = st.text_area("Description for other shops", value=chosen.description)
        published = st.form_submit_button("Publish", icon=":material/upload:")
    if published:
        outcome = run_checked(
            actor,
            lambda s: library.publish(
                session=s,
                actor=actor,
                template_id=chosen.id,
                number=number,
                description=description,
            ),
        )
        if outcome.ok:
            flash(
                f"Published {_quoted(chosen.name)} (version {number}) to the library; every shop "
                "can adopt it, without seeing which shop published it."
            )


def _manage(actor: Actor, mine: Sequence[LibraryItemView], own: Sequence[TemplateView]) -> None:
    st.subheader("What your shop published")
    by_id = {i.id: i for i in mine}
    item = by_id[
        st.selectbox(
            "Published item", list(by_id), format_func=lambda i: _title(by_id[i]), key="own_pick"
        )
    ]
    # The library names no source template; the shop's template of that kind and name is it
    # unless renamed since (then only the description can change here).
    source = next((v for v in own if v.kind is item.kind and v.name == item.name), None)
    numbers = [KEEP, *(range(source.latest_number, 0, -1) if source else [])]
    with st.form(f"republish_{item.id}_{item.version}"):
        description = st.text_area("Description", value=item.description)
        number = st.selectbox(
            "Content",
            numbers,
            format_func=lambda n: (
                "Keep the content as published" if n == KEEP else f"Republish from your version {n}"
            ),
        )
        saved = st.form_submit_button("Save")
    if saved:
        outcome = run_checked(
            actor,
            lambda s: library.update_item(
                session=s,
                actor=actor,
                item_id=item.id,
                expected_version=item.version,
                number=number or None,
                description=description,
            ),
        )
        if outcome.ok:
            flash(f"Updated {_quoted(item.name)} in the library.")
    _withdraw(actor, item)


def _withdraw(actor: Actor, item: LibraryItemView) -> None:
    confirm = st.checkbox(
        f"Yes, withdraw {_quoted(item.name)} from the library (shops that adopted it keep their "
        "copies)",
        key=f"confirm_withdraw_{item.id}",
    )
    if st.button("Withdraw", key=f"withdraw_{item.id}", disabled=not confirm):
        outcome = run_checked(
            actor,
            lambda s: library.withdraw(
                session=s, actor=actor, item_id=item.id, expected_version=item.version
            ),
        )
        if outcome.ok:
            flash(f"Withdrew {_quoted(item.name)} from the library.")
