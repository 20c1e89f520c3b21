"""My account: change your own password."""

from __future__ import annotations

import streamlit as st

from core.users import change_own_password
from pages.ui.actions import flash, run_action
from pages.ui.guard import require_page

actor = require_page("account")
st.write(
    f"Username **{actor.username}** · role **{actor.role.value}** · shop **{actor.tenant_name}**"
)

with st.form("change_password", clear_on_submit=True):
    st.subheader("Change your password")
    current = st.text_input("Current password", type="password", autocomplete="current-password")
    new = st.text_input("New password", type="password", autocomplete="new-password")
    again = st.text_input("New password again", type="password", autocomplete="new-password")
    submitted = st.form_submit_button("Change password", type="primary")

if submitted:
    if new != again:
        st.error("The two new passwords differ.")
    elif run_action(
        actor,
        lambda s: change_own_password(
            session=s, actor=actor, current_password=current, new_password=new
        ),
    ).ok:
        flash("Your password is changed.")
