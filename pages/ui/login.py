"""The login screen: one form, one generic failure message, plain words about lockouts."""

from __future__ import annotations

import streamlit as st

from core import demo
from core.auth import authenticate
from core.errors import AccountLocked, LoginFailed
from db.engine import login_scope, session_scope
from pages.ui.session import SIGNED_OUT_KEY, sign_in


def login_page() -> None:
    _, middle, _ = st.columns([1, 2, 1])
    with middle:
        st.title("Trellis")
        st.caption("The training console for your shop's AI assistant.")
        reason = st.session_state.pop(SIGNED_OUT_KEY, None)
        if reason:
            st.warning(reason, icon=":material/logout:")
        with st.form("login", enter_to_submit=True):
            username = st.text_input("Username", autocomplete="username")
            password = st.text_input("Password", type="password", autocomplete="current-password")
            submitted = st.form_submit_button("Log in", type="primary")
        if submitted:
            _attempt(username, password)
        _demo_logins()


def _attempt(username: str, password: str) -> None:
    if not username or not password:
        st.error("Enter your username and password.")
        return
    try:
        with login_scope() as session:
            actor = authenticate(session=session, username=username, password=password)
    except (LoginFailed, AccountLocked) as exc:
        st.error(str(exc), icon=":material/lock:")
        return
    sign_in(actor)
    st.rerun()


def _demo_logins() -> None:
    """Demo passwords show only when this database holds the demo workspace."""
    with session_scope(None) as session:
        if not demo.demo_exists(session=session):
            return
    with st.expander("Demo workspace logins", expanded=True):
        st.caption("This database holds the demo workspace; these logins exist only here.")
        st.dataframe(
            [
                {"shop": d.shop, "username": d.username, "role": d.role, "password": d.password}
                for d in demo.demo_credentials()
            ],
            hide_index=True,
            width="stretch",
        )
