"""Trellis router: settings, database check, login gate, role-filtered navigation, sidebar."""

from __future__ import annotations

import streamlit as st

from core.config import get_settings
from core.logs import configure_logging
from pages.ui.health import require_database
from pages.ui.layout import sidebar_identity
from pages.ui.login import login_page
from pages.ui.registry import SCREENS
from pages.ui.session import refreshed_actor

st.set_page_config(page_title="Trellis", page_icon="🌷", layout="wide")
configure_logging(get_settings().log_level)
require_database()

actor = refreshed_actor()
if actor is None:
    # Every screen's address shows the login form while signed out, so a deep link lands on
    # its page right after logging in (instead of a "page not found" dialog).
    login = [st.Page(login_page, title="Log in", url_path="login", default=True)]
    login += [st.Page(login_page, title="Log in", url_path=s.key) for s in SCREENS]
    st.navigation(login, position="hidden").run()
else:
    # Pages a role may not see stay registered but hidden, so a deep link to one reaches the
    # page's guard and says "not allowed" instead of silently showing another page.
    pages = [
        st.Page(
            s.path,
            title=s.title,
            icon=s.icon,
            url_path=s.key,
            default=s.key == "home",
            visibility="visible" if actor.role in s.roles else "hidden",
        )
        for s in SCREENS
    ]
    # Every page the role may open stays listed: collapsed, the menu hides some behind "View more".
    current = st.navigation(pages, expanded=True)
    sidebar_identity(actor)
    current.run()
