"""The same header on every page and the sidebar identity block."""

from __future__ import annotations

import streamlit as st

from core.access import Actor
from pages.ui.session import sign_out


def page_header(title: str, actor: Actor, subtitle: str | None = None) -> None:
    st.title(title)
    st.caption(subtitle or f"{actor.tenant_name} · signed in as {actor.label} ({actor.role.value})")


def sidebar_identity(actor: Actor) -> None:
    """Draw who is signed in, with the Log out button."""
    with st.sidebar:
        st.markdown(f"**{actor.tenant_name}**")
        st.caption(f"{actor.label} · {actor.role.value}")
        # A callback runs before the next script run, which then draws the login form.
        st.button(
            "Log out", icon=":material/logout:", key="logout", width="stretch", on_click=sign_out
        )
