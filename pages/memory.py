"""Memory (admin; managers see counts only): what the assistant learned about each customer,
with the message each memory came from; what many customers share (patterns); knowledge an
admin approves; the rules that extract memories; per-customer analytics."""

from __future__ import annotations

import streamlit as st

from core.access import Role
from pages.ui.guard import require_page
from pages.ui.memory_customers import customers_tab
from pages.ui.memory_extraction import rules_tab
from pages.ui.memory_figures import analytics_tab, manager_view
from pages.ui.memory_knowledge import knowledge_tab, patterns_tab

TAB_KEY = "memory_tab"
TABS = {
    "Customers": customers_tab,
    "Patterns": patterns_tab,
    "Knowledge": knowledge_tab,
    "Rules": rules_tab,
    "Customer analytics": analytics_tab,
}

actor = require_page("memory")

if actor.role is not Role.ADMIN:
    manager_view(actor)  # how much the assistant remembers, never whom or what
else:
    # Only the open tab runs: the others read figures over every customer of the shop, which
    # would slow down each click in the open one.
    for tab, draw in zip(
        st.tabs(list(TABS), key=TAB_KEY, on_change="rerun"), TABS.values(), strict=True
    ):
        if tab.open:
            with tab:
                draw(actor)
