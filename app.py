"""Trellis router: settings, database check, login gate, role-filtered navigation, sidebar."""

from __future__ import annotations

import streamlit as st

from core.config import get_settings
from core.logs import configure_logging
from pages.ui.health import require_database
from pages.ui.layout import sidebar_identity
from pages.ui.login import login_page
from pages.ui.registry import SCREENS
from pages.ui.session import current_actor

st.set_page_config(page_title="Trellis", page_icon="🌷", layout="wide")
configure_logging(get_settings().log_level)
require_database()

actor = current_actor()
if actor is None:
    st.navigation([st.Page(login_page, title="Log in", url_path="login")], position="hidden").run()
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
    current = st.navigation(pages)
    sidebar_identity(actor)
    current.run()
