"""What the browser session holds: only the signed-in actor (plain data, never ORM objects)."""

from __future__ import annotations

import streamlit as st

from core.access import Actor
from core.auth import refresh_actor
from db.engine import session_scope

ACTOR_KEY = "actor"
SIGNED_OUT_KEY = "signed_out_reason"


def current_actor() -> Actor | None:
    actor = st.session_state.get(ACTOR_KEY)
    return actor if isinstance(actor, Actor) else None


def refreshed_actor() -> Actor | None:
    """The signed-in actor re-read from the database (role changes, deactivation)."""
    actor = current_actor()
    if actor is None:
        return None
    with session_scope(actor) as session:
        fresh = refresh_actor(session=session, actor=actor)
    if fresh is None:
        sign_out()
        st.session_state[SIGNED_OUT_KEY] = "Your account was deactivated; you are signed out."
    elif fresh != actor:
        st.session_state[ACTOR_KEY] = fresh
    return fresh


def sign_in(actor: Actor) -> None:
    st.session_state[ACTOR_KEY] = actor


def sign_out() -> None:
    """Forget everything this browser session held."""
    for key in list(st.session_state.keys()):
        del st.session_state[key]
