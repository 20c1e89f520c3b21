"""What the browser session holds: only the signed-in actor (plain data, never ORM objects)."""

from __future__ import annotations

import streamlit as st

from core.access import Actor

ACTOR_KEY = "actor"


def current_actor() -> Actor | None:
    actor = st.session_state.get(ACTOR_KEY)
    return actor if isinstance(actor, Actor) else None


def sign_in(actor: Actor) -> None:
    st.session_state[ACTOR_KEY] = actor


def sign_out() -> None:
    """Forget everything this browser session held."""
    for key in list(st.session_state.keys()):
        del st.session_state[key]
