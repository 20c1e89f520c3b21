"""Pieces the Memory screen's tabs share: a versioned action run from a widget callback, the
notice it leaves for the next run, and how memory kinds read."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import streamlit as st
from sqlmodel import Session

from core.access import Actor
from core.auth import refresh_actor
from core.errors import PermissionDenied, StaleEdit, TrellisError
from db.engine import session_scope
from pages.ui.actions import FLASH_KEY
from pages.ui.text import plain

T = TypeVar("T")
FOUND_KEY = "memory_found"  # (query, customers found) of the Customers tab's last search


def forget_search(message: str = "") -> str:
    """Drop the kept search result (memory counts changed); returns `message`, for callbacks."""
    st.session_state.pop(FOUND_KEY, None)
    return message


def kind_label(kind: str) -> str:
    """A memory kind as people read it: important_date -> important date."""
    return kind.replace("_", " ")


def act_in_callback(
    actor: Actor,
    work: Callable[[Session, Actor], T],
    done: Callable[[T], str],
    *,
    notice: str,
) -> None:
    """Run a versioned core action from a widget callback, which runs before the rerun that
    draws the page again: the rerun shows `done(result)` as the page's success note, or the
    stale edit or error under `notice` (see `show_notice`).

    A callback, not the script body: a form keyed by the row's version is not drawn again once
    the version moved on, so a submit checked in the body would be lost without a word; here
    the action runs with the version the admin saw and a stale edit says so."""
    try:
        with session_scope(actor) as session:
            # The actor as it is now: a role taken away since the page was drawn counts.
            fresh = refresh_actor(session=session, actor=actor)
            if fresh is None:
                raise PermissionDenied("Your account was deactivated; nothing was saved.")
            result = work(session, fresh)
    except StaleEdit as exc:
        st.session_state[notice] = ("stale", str(exc))
        return
    except TrellisError as exc:
        st.session_state[notice] = ("error", str(exc))
        return
    st.session_state[FLASH_KEY] = done(result)


def keep_pick(key: str, options: Sequence[object]) -> None:
    """Before drawing the picker `key` over `options`: when what it held is gone (deleted,
    replaced, another search), pick the first option. Set, not cleared: a cleared picker would
    keep showing the vanished option in the browser while the page acts on the first one."""
    if options and st.session_state.get(key) not in options:
        st.session_state[key] = options[0]


def show_notice(key: str) -> None:
    """What the last callback under `key` left: a stale edit (warning) or an error, shown
    literally (core's messages quote what people typed)."""
    notice = st.session_state.pop(key, None)
    if notice and notice[0] == "stale":
        st.warning(plain(notice[1]), icon=":material/sync_problem:")
    elif notice:
        st.error(plain(notice[1]), icon=":material/error:")
