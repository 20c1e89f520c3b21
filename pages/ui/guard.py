"""The first line of every page: signed in, and allowed to see this page."""

from __future__ import annotations

import streamlit as st

from core.access import Actor
from pages.ui.actions import show_flash
from pages.ui.layout import page_header
from pages.ui.registry import screen
from pages.ui.session import refreshed_actor


def require_page(key: str) -> Actor:
    """The signed-in actor, or stop: to the router when signed out, 'not allowed' otherwise.

    After a restart a deep link runs the page file without app.py; switching to app.py puts
    the server back under st.navigation, whose login gate then applies.
    """
    # Re-read here, not only in app.py: a page may run without app.py (deep link after a
    # restart), and a deactivation or role change must apply on the very next click.
    actor = refreshed_actor()
    if actor is None:
        st.switch_page("app.py")
    assert actor is not None
    spec = screen(key)
    if actor.role not in spec.roles:
        page_header(spec.title, actor)
        st.error(
            f"Not allowed: the {spec.title} page is for "
            f"{', '.join(r.value for r in spec.roles)} users, and you are {actor.role.value}.",
            icon=":material/block:",
        )
        st.stop()
    page_header(spec.title, actor)
    show_flash()
    return actor
