"""Pieces the florist studio's screens share (Catalog, Templates, Designs): images by address,
a core action whose refused template is shown with its positions, a table editor's pending
edits, and the preview of a prompt that is not saved yet."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

import streamlit as st
from sqlmodel import Session
from streamlit.errors import StreamlitAPIException

from core import placeholders, templates
from core.access import Actor
from core.errors import StaleEdit, TrellisError
from core.placeholders import TemplateError, Variable
from core.studio import http_url
from db.engine import session_scope
from db.models import TemplateKind
from pages.ui.actions import Outcome
from pages.ui.text import plain

T = TypeVar("T")


# --- images ------------------------------------------------------------------------------------


def show_image(url: str | None, *, alt: str) -> None:
    """An image by its http(s) address, or a caption saying why there is none.

    Only a checked http(s) address reaches st.image: given any other text, st.image would try
    to open it as a file on the server. A remote image that fails to load shows its `alt` text
    in the browser, and the caption under it names the site it should come from.
    """
    if not url:
        st.caption("No image yet.")
        return
    try:
        address = http_url(url)
    except ValueError:
        st.caption("No image: its address is not an http(s) address.")
        return
    try:
        st.image(address, alt=alt, width="stretch")
    except (StreamlitAPIException, OSError, ValueError):
        st.caption("The image could not be shown.")
        return
    st.caption(f"Image from {plain(urlsplit(address).hostname or '')}")


# --- running a core action -------------------------------------------------------------------


def run_checked(
    actor: Actor, action: Callable[[Session], T], *, text: str = "", what: str = "prompt text"
) -> Outcome[T]:
    """Like pages.ui.actions.run_action, with messages shown as literal text, and a refused
    template listing every problem with its line and column beside the text it was in."""
    try:
        with session_scope(actor) as session:
            return Outcome(True, action(session))
    except TemplateError as exc:
        template_problems(exc, text, what=what)
    except StaleEdit as exc:
        st.warning(plain(str(exc)), icon=":material/sync_problem:")
    except TrellisError as exc:
        # Core's messages quote what people typed (names, values): shown literally.
        st.error(plain(str(exc)), icon=":material/error:")
    return Outcome(False)


def template_problems(exc: TemplateError, text: str, *, what: str = "prompt text") -> None:
    count = len(exc.problems)
    st.error(
        f"Nothing was saved: the {what} has {count} problem{'s' if count != 1 else ''}.",
        icon=":material/error:",
    )
    st.dataframe(
        [{"line": p.line, "column": p.column, "problem": p.message} for p in exc.problems],
        hide_index=True,
        width="stretch",
    )
    if text:
        st.code(text, language=None, line_numbers=True, wrap_lines=True)


# --- table editors ---------------------------------------------------------------------------


def pending_edits(key: str) -> dict[str, Any]:
    """What a st.data_editor holds beyond its data (edited, added and deleted rows)."""
    state = st.session_state.get(key) or {}
    return {
        "edited_rows": {int(k): v for k, v in dict(state.get("edited_rows") or {}).items()},
        "added_rows": list(state.get("added_rows") or []),
        "deleted_rows": list(state.get("deleted_rows") or []),
    }


def has_edits(key: str) -> bool:
    return any(pending_edits(key).values())


def blank(value: object) -> bool:
    """An empty cell: None, NaN (pandas' empty number) or blank text."""
    if value is None:
        return True
    if isinstance(value, float) and value != value:
        return True
    return isinstance(value, str) and not value.strip()


# --- previews of unsaved prompts -------------------------------------------------------------


@dataclass(frozen=True)
class Draft:
    """A prompt as the form holds it: its text and declared variables (plain data)."""

    text: str
    variables: tuple[dict[str, str], ...] = ()


@dataclass(frozen=True)
class DraftPreview:
    """A rendered draft (plain data, kept in the session for the values form)."""

    text: str
    style_name: str | None
    values: dict[str, str] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)
    missing: tuple[str, ...] = ()
    used: tuple[str, ...] = ()  # the variables the text uses, in order of first use


def declared_variables(draft: Draft) -> list[Variable]:
    """The draft's declared variables plus the standard ones its text uses without declaring
    them; TemplateError (with positions) for any other placeholder."""
    declared = placeholders.parse_variables(list(draft.variables))
    return templates.with_standard_variables(draft.text, declared)


def preview_draft(
    session: Session,
    actor: Actor,
    draft: Draft,
    *,
    given: Mapping[str, str],
    style: tuple[str, Mapping[str, Any]] | None,
) -> DraftPreview:
    """The draft rendered by core (templates.preview_draft), with the style's name.
    `style` is (name, parameters); None uses no style."""
    rendered = templates.preview_draft(
        session=session,
        actor=actor,
        text=draft.text,
        variables=list(draft.variables),
        values=given,
        style=style[1] if style else None,
    )
    return DraftPreview(
        text=rendered.text,
        style_name=style[0] if style else None,
        values=rendered.values,
        origins=rendered.origins,
        missing=rendered.missing,
        used=rendered.used,
    )


def style_for_preview(
    session: Session, actor: Actor, style_id: int | None
) -> tuple[str, dict[str, Any]] | None:
    """The chosen style's latest parameters, or the shop's most used active style's."""
    if style_id is not None:
        chosen = templates.get_template(session=session, actor=actor, template_id=style_id)
        return chosen.name, chosen.content
    styles = templates.list_templates(session=session, actor=actor, kind=TemplateKind.STYLE)
    if not styles:
        return None
    best = sorted(styles, key=lambda s: (-s.usage_count, s.id))[0]
    return best.name, best.content


ORIGINS = {"given": "you gave it", "style": "from the style", "catalog": "from the catalog"}


def show_preview(preview: DraftPreview) -> None:
    """The rendered prompt as literal text, and the variables nobody gave a value."""
    st.markdown(
        "**Preview**" + (f" · style {_quoted(preview.style_name)}" if preview.style_name else "")
    )
    st.code(preview.text, language=None, wrap_lines=True)
    if preview.missing:
        st.warning(
            "No value for "
            + ", ".join("{" + n + "}" for n in preview.missing)
            + ": it stays as written. Give one below (the generator will need one).",
            icon=":material/edit_note:",
        )


def _quoted(name: str) -> str:
    return f"“{plain(name)}”"
