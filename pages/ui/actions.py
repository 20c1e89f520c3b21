"""Running one core action from a page: one session, clear errors instead of tracebacks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import streamlit as st
from sqlmodel import Session

from core.access import Actor
from core.errors import StaleEdit, TrellisError
from db.engine import session_scope
from pages.ui.text import plain

T = TypeVar("T")


@dataclass(frozen=True)
class Outcome(Generic[T]):
    ok: bool
    value: T | None = None


def run_action(actor: Actor, action: Callable[[Session], T]) -> Outcome[T]:
    """Run `action` in one session; show a Trellis error as a message instead of raising."""
    try:
        with session_scope(actor) as session:
            return Outcome(True, action(session))
    except StaleEdit as exc:
        st.warning(plain(str(exc)), icon=":material/sync_problem:")
    except TrellisError as exc:
        # Core's messages quote what people typed (names, values): shown literally.
        st.error(plain(str(exc)), icon=":material/error:")
    return Outcome(False)


FLASH_KEY = "flash"


def flash(message: str) -> None:
    """Show `message` as a success note after the next rerun (which redraws fresh data)."""
    st.session_state[FLASH_KEY] = message
    st.rerun()


def show_flash() -> None:
    message = st.session_state.pop(FLASH_KEY, None)
    if message:
        st.success(message, icon=":material/check_circle:")


def read(actor: Actor, query: Callable[[Session], T]) -> T:
    """Run a read-only query in one session (errors propagate to the app's error page)."""
    with session_scope(actor) as session:
        return query(session)
