"""Settings (admin): the shop's users, its review, alert and memory thresholds, and the audit
log."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import streamlit as st
from sqlmodel import Session

from core import audit, users
from core.access import ALL_ROLES, Actor, Role
from core.alerts import RULES, alert_thresholds, set_alert_thresholds
from core.auth import refresh_actor
from core.config import get_settings
from core.errors import PermissionDenied, StaleEdit, TrellisError
from core.memory_patterns import MemoryThresholds, memory_thresholds, set_memory_thresholds
from core.shop_settings import review_thresholds, set_review_thresholds
from db.engine import session_scope
from db.models import AlertKind
from pages.ui.actions import FLASH_KEY, flash, read, run_action
from pages.ui.guard import require_page

actor = require_page("settings")
users_tab, review_tab, alerts_tab, memory_tab, audit_tab = st.tabs(
    ["Users", "Review", "Alerts", "Memory", "Audit log"]
)

THRESHOLDS_NOTICE = "review_thresholds_notice"  # what the last save of the thresholds said
ALERTS_NOTICE = "alert_thresholds_notice"  # the same for the alert thresholds
MEMORY_NOTICE = "memory_thresholds_notice"  # the same for the memory thresholds
ALERT_SLIDERS = {  # kind -> (slider label, why it matters)
    AlertKind.INTENT_ACCURACY: (
        "Alert when intent accuracy falls below",
        "Of the last 7 days' reviewed messages, the share whose predicted intent was right. "
        "Judged from 20 messages in the window.",
    ),
    AlertKind.ESCALATION_RATE: (
        "Alert when the escalation rate rises above",
        "The share of the last 7 days' messages the assistant handed to a person.",
    ),
    AlertKind.MACRO_F1: (
        "Alert when the serving model's macro-F1 falls below",
        "F1 averaged over intents on the serving model's held-out test messages: low when "
        "some intents are weak, even if common ones are fine.",
    ),
    AlertKind.MISCLASSIFICATION: (
        "Alert when the serving model's misclassification rises above",
        "The share of the serving model's held-out test messages it gets wrong.",
    ),
}


def _user_table(rows: list[users.UserView]) -> None:
    now = datetime.now(UTC)
    st.dataframe(
        [
            {
                "username": u.username,
                "name": u.display_name,
                "role": u.role.value,
                "active": u.is_active,
                "locked": bool(u.locked_until and u.locked_until > now),
                "last login": u.last_login_at,
            }
            for u in rows
        ],
        hide_index=True,
        width="stretch",
        column_config={"last login": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm")},
    )


def _add_user_form(actor: Actor) -> None:
    with st.form("add_user"):
        st.subheader("Add a user")
        c1, c2, c3 = st.columns(3)
        username = c1.text_input(
            "Username", help="3–64 characters: a-z, 0-9, dot, dash, underscore."
        )
        name = c2.text_input("Display name")
        role = c3.selectbox("Role", [r.value for r in ALL_ROLES], index=1)
        p1, p2 = st.columns(2)
        password = p1.text_input(
            "Password",
            type="password",
            autocomplete="new-password",
            help=f"At least {get_settings().min_password_length} characters.",
        )
        again = p2.text_input("Password again", type="password", autocomplete="new-password")
        submitted = st.form_submit_button("Add user", type="primary")
    if not submitted:
        return
    if password != again:
        st.error("The two passwords differ.")
        return
    outcome = run_action(
        actor,
        lambda s: users.create_user(
            session=s,
            actor=actor,
            data=users.parse_user_create(
                username=username, role=role, password=password, display_name=name
            ),
        ),
    )
    if outcome.ok and outcome.value:
        flash(f"Added {outcome.value.role.value} '{outcome.value.username}'.")


def _edit_user_form(actor: Actor, rows: list[users.UserView]) -> None:
    st.subheader("Change a user")
    chosen = st.selectbox(
        "User", rows, format_func=lambda u: f"{u.username} ({u.role.value})", key="edit_user"
    )
    if chosen is None:
        return
    # Keys carry the user id, so each user's form starts from that user's current values.
    uid = chosen.id
    with st.form(f"edit_user_form_{uid}"):
        role = st.selectbox(
            "Role",
            [r.value for r in ALL_ROLES],
            key=f"edit_role_{uid}",
            index=[r.value for r in ALL_ROLES].index(chosen.role.value),
        )
        active = st.toggle("Active (can log in)", value=chosen.is_active, key=f"edit_active_{uid}")
        new_password = st.text_input(
            "Reset password to (leave empty to keep)",
            type="password",
            autocomplete="new-password",
            key=f"edit_password_{uid}",
        )
        reason = st.text_input("Reason (kept in the audit log)", key=f"edit_reason_{uid}")
        confirm = st.checkbox(
            "Yes, apply these changes",
            key=f"edit_confirm_{uid}",
            help="Deactivating stops the user from logging in until reactivated.",
        )
        submitted = st.form_submit_button("Save changes", type="primary")
    if submitted:
        _apply_edit(actor, chosen, Role(role), active, new_password, reason, confirm)


def _apply_edit(
    actor: Actor,
    user: users.UserView,
    role: Role,
    active: bool,
    password: str,
    reason: str,
    confirm: bool,
) -> None:
    if not confirm:
        st.warning("Tick “Yes, apply these changes” to confirm.")
        return

    def apply(s: Session) -> users.UserView:
        view = user
        if role is not view.role:
            view = users.change_role(
                session=s,
                actor=actor,
                user_id=view.id,
                role=role,
                expected_version=view.version,
                reason=reason,
            )
        if active is not view.is_active:
            view = users.set_active(
                session=s,
                actor=actor,
                user_id=view.id,
                active=active,
                expected_version=view.version,
                reason=reason,
            )
        if password:
            view = users.reset_password(
                session=s,
                actor=actor,
                user_id=view.id,
                new_password=password,
                expected_version=view.version,
                reason=reason,
            )
        return view

    if run_action(actor, apply).ok:
        flash(f"Saved changes to '{user.username}'.")


def _audit_filters(actor: Actor) -> audit.AuditFilter:
    names, actions = read(actor, lambda s: audit.filter_choices(session=s, actor=actor))
    with st.form("audit_filters"):
        c1, c2, c3, c4 = st.columns(4)
        who = c1.selectbox("Who", ["Anyone", *names])
        what = c2.selectbox("Action", ["Any", *actions])
        today = datetime.now(UTC).date()
        span = c3.date_input("Dates", value=(today - timedelta(days=30), today))
        text = c4.text_input("Search", help="Matches the item and the reason.")
        st.form_submit_button("Apply filters")
    since = until = None
    if isinstance(span, tuple) and len(span) == 2:
        since = datetime.combine(span[0], time.min, tzinfo=UTC)
        until = datetime.combine(span[1] + timedelta(days=1), time.min, tzinfo=UTC)
    return audit.AuditFilter(
        actor_name=None if who == "Anyone" else who,
        action=None if what == "Any" else what,
        since=since,
        until=until,
        text=text.strip() or None,
    )


def _audit_log(actor: Actor) -> None:
    flt = _audit_filters(actor)
    size = get_settings().page_size
    page_no = st.number_input("Page", min_value=1, value=1, step=1, key="audit_page")
    page = read(
        actor,
        lambda s: audit.list_events(
            session=s, actor=actor, flt=flt, page=int(page_no), page_size=size
        ),
    )
    st.caption(f"{page.total} events · page {page.page} of {page.pages}")
    if not page.events:
        st.info("No audit events match these filters. Widen the dates or clear the filters.")
        return
    st.dataframe(
        [
            {
                "when": e.at,
                "who": e.actor_name,
                "action": e.action,
                "item": f"{e.entity_type} {e.entity_id}".strip(),
                "before": e.before,
                "after": e.after,
                "why": e.reason or "",
            }
            for e in page.events
        ],
        hide_index=True,
        width="stretch",
        column_config={"when": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss")},
    )
    csv_text = read(actor, lambda s: audit.export_csv(session=s, actor=actor, flt=flt))
    st.download_button(
        "Export to CSV",
        csv_text,
        file_name="trellis-audit-log.csv",
        mime="text/csv",
        icon=":material/download:",
    )


def _show_notice(key: str) -> None:
    """What the last save callback left: a stale edit (warning) or an error."""
    notice = st.session_state.pop(key, None)
    if notice and notice[0] == "stale":
        st.warning(notice[1], icon=":material/sync_problem:")
    elif notice:
        st.error(notice[1], icon=":material/error:")


def _review_thresholds(actor: Actor) -> None:
    current = read(actor, lambda s: review_thresholds(session=s, actor=actor))
    # Keys carry the version: when the saved thresholds change, the form starts from them.
    version = current.version
    _show_notice(THRESHOLDS_NOTICE)
    st.markdown(
        "A message the assistant answered goes to the **Review** queue when the model was "
        "unsure of it. These two thresholds say how unsure is unsure enough to need a person."
    )
    with st.form(f"review_thresholds_{version}"):
        st.slider(
            "Confidence below which a message needs a person",
            min_value=0.0,
            max_value=1.0,
            value=current.confidence,
            step=0.01,
            format="%.2f",
            key=f"review_confidence_{version}",
            help="The model's probability for the intent it picked. Raise it to review more "
            "messages (safer answers, more work); lower it to review fewer.",
        )
        st.slider(
            "Margin between the top two intents below which a message needs a person",
            min_value=0.0,
            max_value=1.0,
            value=current.margin,
            step=0.01,
            format="%.2f",
            key=f"review_margin_{version}",
            help="The first intent's probability minus the second's. A small margin means the "
            "model nearly picked another intent, even when it was fairly confident.",
        )
        st.form_submit_button(
            "Save thresholds", type="primary", on_click=_save_thresholds, args=(actor, version)
        )
    st.caption(
        f"Saved values: confidence {current.confidence:.2f}, margin {current.margin:.2f}"
        + ("" if current.version else " (the defaults: no admin has changed them yet)")
        + ". Changes apply to the queue at once and are kept in the audit log."
    )


def _save_thresholds(actor: Actor, version: int) -> None:
    """The Save button's callback, given the version its form showed; it runs before the
    rerun, which then shows the values saved (or, after a stale edit, the current ones)."""
    confidence = float(st.session_state[f"review_confidence_{version}"])
    margin = float(st.session_state[f"review_margin_{version}"])
    try:
        with session_scope(actor) as s:
            # A callback runs before the rerun re-reads the actor: a role taken away since the
            # page was drawn must already count.
            fresh = refresh_actor(session=s, actor=actor)
            if fresh is None:
                raise PermissionDenied("Your account was deactivated; nothing was saved.")
            saved = set_review_thresholds(
                session=s,
                actor=fresh,
                confidence=confidence,
                margin=margin,
                expected_version=version,
            )
    except StaleEdit as exc:
        st.session_state[THRESHOLDS_NOTICE] = ("stale", str(exc))
        return
    except TrellisError as exc:
        st.session_state[THRESHOLDS_NOTICE] = ("error", str(exc))
        return
    st.session_state[FLASH_KEY] = (
        f"Saved the review thresholds: confidence {saved.confidence:.2f}, "
        f"margin {saved.margin:.2f}."
    )


def _alert_key(kind: AlertKind, version: int) -> str:
    return f"alert_{kind.value}_{version}"


def _alert_thresholds(actor: Actor) -> None:
    current = read(actor, lambda s: alert_thresholds(session=s, actor=actor))
    # Keys carry the version: when the saved thresholds change, the form starts from them.
    version = current.version
    _show_notice(ALERTS_NOTICE)
    st.markdown(
        "Managers and admins see a **banner** on Home and Analytics while one of these metrics "
        "is past its threshold, with what to do about it; the Analytics page keeps the history "
        "of alerts raised and cleared. Each metric is judged on at least 20 messages."
    )
    with st.form(f"alert_thresholds_{version}"):
        for kind, (text, why) in ALERT_SLIDERS.items():
            _alert_slider(kind, text, why, current.of(kind), version)
        st.text_input(
            "Reason (kept in the audit log)", key=f"alert_reason_{version}", max_chars=500
        )
        st.form_submit_button(
            "Save alert thresholds",
            type="primary",
            on_click=_save_alert_thresholds,
            args=(actor, version),
        )
    st.caption(
        "Saved values: "
        + ", ".join(f"{RULES[k].label.lower()} {_shown(k, current.of(k))}" for k in AlertKind)
        + ("" if version else " (the defaults: no admin has changed them yet)")
        + ". Changes apply at the next check (every time Home or Analytics opens) and are kept "
        "in the audit log."
    )


def _alert_slider(kind: AlertKind, text: str, why: str, value: float, version: int) -> None:
    if RULES[kind].percent:  # shown in whole percent, saved as a share
        st.slider(
            text,
            min_value=0,
            max_value=100,
            value=round(value * 100),
            step=1,
            format="%d%%",
            key=_alert_key(kind, version),
            help=why,
        )
    else:
        st.slider(
            text,
            min_value=0.0,
            max_value=1.0,
            value=value,
            step=0.01,
            format="%.2f",
            key=_alert_key(kind, version),
            help=why,
        )


def _shown(kind: AlertKind, value: float) -> str:
    return f"{value:.0%}" if RULES[kind].percent else f"{value:.2f}"


def _slider_share(kind: AlertKind, version: int) -> float:
    raw = float(st.session_state[_alert_key(kind, version)])
    return raw / 100 if RULES[kind].percent else raw


def _save_alert_thresholds(actor: Actor, version: int) -> None:
    """The Save button's callback (see _save_thresholds): stale edits come back as a warning."""
    values = {kind.value: _slider_share(kind, version) for kind in AlertKind}
    reason = str(st.session_state.get(f"alert_reason_{version}") or "").strip() or None
    try:
        with session_scope(actor) as s:
            fresh = refresh_actor(session=s, actor=actor)
            if fresh is None:
                raise PermissionDenied("Your account was deactivated; nothing was saved.")
            saved = set_alert_thresholds(
                session=s, actor=fresh, expected_version=version, reason=reason, **values
            )
    except StaleEdit as exc:
        st.session_state[ALERTS_NOTICE] = ("stale", str(exc))
        return
    except TrellisError as exc:
        st.session_state[ALERTS_NOTICE] = ("error", str(exc))
        return
    st.session_state[FLASH_KEY] = (
        "Saved the alert thresholds: "
        + ", ".join(f"{RULES[k].label.lower()} {_shown(k, saved.of(k))}" for k in AlertKind)
        + "."
    )


def _memory_key(name: str, version: int) -> str:
    return f"memory_{name}_{version}"


def _memory_thresholds(actor: Actor) -> None:
    current = read(actor, lambda s: memory_thresholds(session=s, actor=actor))
    # Keys carry the version: when the saved thresholds change, the form starts from them.
    version = current.version
    _show_notice(MEMORY_NOTICE)
    st.markdown(
        "On the **Memory** page, a *pattern* is something several customers told the assistant "
        "(the same kind, key and value, such as an allergy to lilies); *knowledge* is proposed "
        "from a pattern that enough customers share and whose holders' later conversations went "
        "well. Nothing becomes knowledge until an admin approves it there."
    )
    with st.form(f"memory_thresholds_{version}"):
        c1, c2 = st.columns(2)
        c1.number_input(
            "Customers a pattern needs",
            min_value=2,
            max_value=100_000,
            value=current.pattern_customers,
            step=1,
            key=_memory_key("pattern_customers", version),
            help="How many customers must hold the same memory for it to be a pattern.",
        )
        c2.slider(
            "Memory confidence a pattern counts from",
            min_value=0.0,
            max_value=1.0,
            value=current.pattern_confidence,
            step=0.01,
            format="%.2f",
            key=_memory_key("pattern_confidence", version),
            help="Memories extracted with less confidence than this are left out of patterns.",
        )
        c3, c4 = st.columns(2)
        c3.number_input(
            "Customers knowledge needs",
            min_value=2,
            max_value=100_000,
            value=current.knowledge_customers,
            step=1,
            key=_memory_key("knowledge_customers", version),
            help="At least as many as a pattern needs.",
        )
        c4.slider(
            "Success rate knowledge needs",
            min_value=0,
            max_value=100,
            value=round(current.knowledge_success * 100),
            step=1,
            format="%d%%",
            key=_memory_key("knowledge_success", version),
            help="Of the holders' conversations after they said it, with a known outcome, the "
            "share resolved without escalation.",
        )
        st.form_submit_button(
            "Save memory thresholds",
            type="primary",
            on_click=_save_memory_thresholds,
            args=(actor, version),
        )
    st.caption(
        f"Saved values: patterns from {current.pattern_customers} customers at confidence "
        f"{current.pattern_confidence:.2f}; knowledge from {current.knowledge_customers} "
        f"customers and a {current.knowledge_success:.0%} success rate"
        + ("" if version else " (the defaults: no admin has changed them yet)")
        + ". Changes apply from the next aggregation and are kept in the audit log."
    )


def _save_memory_thresholds(actor: Actor, version: int) -> None:
    """The Save button's callback (see _save_thresholds): stale edits come back as a warning."""
    new = MemoryThresholds(
        pattern_customers=int(st.session_state[_memory_key("pattern_customers", version)]),
        pattern_confidence=float(st.session_state[_memory_key("pattern_confidence", version)]),
        knowledge_customers=int(st.session_state[_memory_key("knowledge_customers", version)]),
        knowledge_success=int(st.session_state[_memory_key("knowledge_success", version)]) / 100,
    )
    try:
        with session_scope(actor) as s:
            fresh = refresh_actor(session=s, actor=actor)
            if fresh is None:
                raise PermissionDenied("Your account was deactivated; nothing was saved.")
            saved = set_memory_thresholds(session=s, actor=fresh, new=new, expected_version=version)
    except StaleEdit as exc:
        st.session_state[MEMORY_NOTICE] = ("stale", str(exc))
        return
    except TrellisError as exc:
        st.session_state[MEMORY_NOTICE] = ("error", str(exc))
        return
    st.session_state[FLASH_KEY] = (
        f"Saved the memory thresholds: patterns from {saved.pattern_customers} customers at "
        f"confidence {saved.pattern_confidence:.2f}; knowledge from {saved.knowledge_customers} "
        f"customers and a {saved.knowledge_success:.0%} success rate."
    )


with users_tab:
    rows = read(actor, lambda s: users.list_users(session=s, actor=actor))
    _user_table(rows)
    _add_user_form(actor)
    _edit_user_form(actor, rows)

with review_tab:
    _review_thresholds(actor)

with alerts_tab:
    _alert_thresholds(actor)

with memory_tab:
    _memory_thresholds(actor)

with audit_tab:
    _audit_log(actor)
