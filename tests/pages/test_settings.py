"""Settings: an admin manages the shop's users; each change lands in the audit log."""

from __future__ import annotations

from sqlmodel import select

from db.engine import session_scope
from db.models import AuditEvent, User


def _settings(app, actor):
    at = app(actor)
    at.switch_page("pages/settings.py")
    return at.run()


def _form_input(at, label):
    return next(w for w in at.text_input if w.label == label)


def test_admin_adds_a_user_and_sees_it_listed(app, shops, app_db):
    bloom, fern = shops
    at = _settings(app, bloom.admin)
    _form_input(at, "Username").input("rosa.petal")
    _form_input(at, "Display name").input("Rosa Petal")
    _form_input(at, "Password").input("a-long-password")
    _form_input(at, "Password again").input("a-long-password")
    next(b for b in at.button if b.label == "Add user").click()
    at = at.run()
    assert not at.exception
    assert "Added florist 'rosa.petal'" in at.success[0].value
    listed = at.dataframe[0].value
    assert "rosa.petal" in list(listed["username"])
    with session_scope(bloom.admin, engine=app_db) as s:
        assert s.exec(select(User).where(User.username == "rosa.petal")).one().role == "florist"
    with session_scope(fern.admin, engine=app_db) as s:
        assert s.exec(select(User).where(User.username == "rosa.petal")).first() is None


def test_mismatched_passwords_write_nothing(app, shops, app_db):
    bloom, _ = shops
    at = _settings(app, bloom.admin)
    _form_input(at, "Username").input("ivy")
    _form_input(at, "Password").input("a-long-password")
    _form_input(at, "Password again").input("another-password")
    next(b for b in at.button if b.label == "Add user").click()
    at = at.run()
    assert "differ" in at.error[0].value
    with session_scope(bloom.admin, engine=app_db) as s:
        assert s.exec(select(User).where(User.username == "ivy")).first() is None


def test_admin_changes_a_role_with_confirmation_and_it_is_audited(app, shops, app_db):
    bloom, _ = shops
    at = _settings(app, bloom.admin)
    picker = at.selectbox(key="edit_user")
    picker.select_index(picker.options.index(f"{bloom.florist.username} (florist)"))
    at = at.run()
    uid = bloom.florist.user_id
    assert at.selectbox(key=f"edit_role_{uid}").value == "florist"
    at.selectbox(key=f"edit_role_{uid}").select("manager")
    at.text_input(key=f"edit_reason_{uid}").input("covers the front desk")
    next(b for b in at.button if b.label == "Save changes").click()
    at = at.run()
    assert "Tick" in at.warning[0].value  # no confirmation, nothing changed
    with session_scope(bloom.admin, engine=app_db) as s:
        assert s.exec(select(User).where(User.id == uid)).one().role == "florist"
    at.checkbox(key=f"edit_confirm_{uid}").check()
    next(b for b in at.button if b.label == "Save changes").click()
    at = at.run()
    assert not at.exception
    assert "Saved changes" in at.success[0].value
    with session_scope(bloom.admin, engine=app_db) as s:
        assert s.exec(select(User).where(User.id == bloom.florist.user_id)).one().role == "manager"
        event = s.exec(select(AuditEvent).where(AuditEvent.action == "user.role")).one()
    assert event.actor_name == bloom.admin.username
    assert (event.before, event.after, event.reason) == (
        {"role": "florist"},
        {"role": "manager"},
        "covers the front desk",
    )


def test_audit_log_lists_events_and_exports_csv(app, shops, app_db):
    bloom, fern = shops
    from core import audit

    with session_scope(bloom.admin, engine=app_db) as s:
        audit.record(
            session=s,
            actor=bloom.admin,
            action="user.role",
            entity_type="user",
            entity_id="=HYPERLINK(1)",
            reason="check",
        )
    with session_scope(fern.admin, engine=app_db) as s:
        audit.record(
            session=s,
            actor=fern.admin,
            action="user.create",
            entity_type="user",
            entity_id="fern-only",
        )
    at = _settings(app, bloom.admin)
    assert not at.exception
    table = at.dataframe[1].value
    assert list(table["action"]) == ["user.role"]
    assert "fern-only" not in str(table.to_dict())
    assert "1 events" in " ".join(c.value for c in at.caption)
    assert at.get("download_button")


def test_empty_audit_filter_says_what_to_do(app, shops):
    bloom, _ = shops
    at = _settings(app, bloom.admin)
    assert any("No audit events" in i.value for i in at.info)


# --- the Review tab: the shop's review thresholds ------------------------------------------


def _thresholds(engine, actor):
    from core.shop_settings import review_thresholds

    with session_scope(actor, engine=engine) as s:
        return review_thresholds(session=s, actor=actor)


def _slider(at, starts):
    return next(w for w in at.slider if w.label.startswith(starts))


def _save_thresholds(at):
    next(b for b in at.button if b.label == "Save thresholds").click()
    return at.run()


def test_admin_saves_review_thresholds_for_their_shop_only(app, shops, app_db):
    bloom, fern = shops
    at = _settings(app, bloom.admin)
    assert _slider(at, "Confidence").value == 0.6  # the defaults until someone saves
    assert _slider(at, "Margin").value == 0.1
    _slider(at, "Confidence").set_value(0.75)
    _slider(at, "Margin").set_value(0.2)
    at = _save_thresholds(at)
    assert not at.exception
    assert "Saved the review thresholds: confidence 0.75, margin 0.20" in at.success[0].value
    saved = _thresholds(app_db, bloom.admin)
    assert (saved.confidence, saved.margin, saved.version) == (0.75, 0.2, 1)
    assert _thresholds(app_db, fern.admin).version == 0  # another shop keeps its own
    assert _slider(at, "Confidence").value == 0.75
    _slider(at, "Margin").set_value(0.15)  # a second save builds on the first
    at = _save_thresholds(at)
    assert not at.warning
    assert (_thresholds(app_db, bloom.admin).margin, _thresholds(app_db, bloom.admin).version) == (
        0.15,
        2,
    )
    with session_scope(bloom.admin, engine=app_db) as s:
        events = s.exec(
            select(AuditEvent).where(AuditEvent.action == "settings.review_thresholds")
        ).all()
    assert [e.after for e in events] == [
        {"confidence": 0.75, "margin": 0.2},
        {"confidence": 0.75, "margin": 0.15},
    ]


def test_stale_thresholds_are_refused_with_a_warning_and_the_current_values(app, shops, app_db):
    from core.shop_settings import set_review_thresholds

    bloom, _ = shops
    at = _settings(app, bloom.admin)
    with session_scope(bloom.admin, engine=app_db) as s:  # another admin saves meanwhile
        set_review_thresholds(
            session=s, actor=bloom.admin, confidence=0.5, margin=0.05, expected_version=0
        )
    _slider(at, "Confidence").set_value(0.9)
    at = _save_thresholds(at)
    assert not at.exception
    assert "Another admin changed the review thresholds" in at.warning[0].value
    assert not at.success
    current = _thresholds(app_db, bloom.admin)
    assert (current.confidence, current.margin, current.version) == (0.5, 0.05, 1)
    assert (_slider(at, "Confidence").value, _slider(at, "Margin").value) == (0.5, 0.05)
    _slider(at, "Confidence").set_value(0.9)  # saving again, from the current values, works
    at = _save_thresholds(at)
    assert not at.warning
    assert _thresholds(app_db, bloom.admin).confidence == 0.9


def test_an_admin_demoted_since_the_page_loaded_cannot_save_thresholds(app, shops, app_db):
    from dataclasses import replace

    from core import users
    from core.access import Role

    bloom, _ = shops
    at = _settings(app, bloom.admin)
    other_admin = replace(bloom.florist, role=Role.ADMIN)
    with session_scope(bloom.admin, engine=app_db) as s:
        assert other_admin.user_id is not None
        users.change_role(
            session=s,
            actor=bloom.admin,
            user_id=other_admin.user_id,
            role=Role.ADMIN,
            expected_version=1,
        )
    with session_scope(other_admin, engine=app_db) as s:  # ...who demotes the first admin
        assert bloom.admin.user_id is not None
        users.change_role(
            session=s,
            actor=other_admin,
            user_id=bloom.admin.user_id,
            role=Role.MANAGER,
            expected_version=1,
        )
    _slider(at, "Confidence").set_value(0.9)
    at = _save_thresholds(at)
    assert not at.exception
    assert _thresholds(app_db, bloom.admin).version == 0  # nothing saved
    assert any("Not allowed" in e.value for e in at.error)


# --- the Alerts tab: the shop's alert thresholds -------------------------------------------


def _alert_limits(engine, actor):
    from core.alerts import alert_thresholds

    with session_scope(actor, engine=engine) as s:
        return alert_thresholds(session=s, actor=actor)


def _save_alerts(at):
    next(b for b in at.button if b.label == "Save alert thresholds").click()
    return at.run()


def test_admin_saves_alert_thresholds_audited_for_their_shop_only(app, shops, app_db):
    bloom, fern = shops
    at = _settings(app, bloom.admin)
    assert [t.label for t in at.tabs] == ["Users", "Review", "Alerts", "Memory", "Audit log"]
    assert _slider(at, "Alert when intent accuracy").value == 70  # seed defaults, in percent
    assert _slider(at, "Alert when the escalation rate").value == 30
    assert _slider(at, "Alert when the serving model's macro-F1").value == 0.7
    assert _slider(at, "Alert when the serving model's misclassification").value == 15
    _slider(at, "Alert when the escalation rate").set_value(45)
    _slider(at, "Alert when the serving model's macro-F1").set_value(0.6)
    at.text_input(key="alert_reason_0").input("busy season")
    at = _save_alerts(at)
    assert not at.exception
    assert "Saved the alert thresholds" in at.success[0].value
    assert "escalation rate 45%" in at.success[0].value
    saved = _alert_limits(app_db, bloom.admin)
    assert saved.values() == {
        "intent_accuracy": 0.7,
        "escalation_rate": 0.45,
        "macro_f1": 0.6,
        "misclassification": 0.15,
    }
    assert saved.version == 1
    assert _alert_limits(app_db, fern.admin).version == 0
    assert _slider(at, "Alert when the escalation rate").value == 45  # the form shows them
    with session_scope(bloom.admin, engine=app_db) as s:
        [event] = s.exec(
            select(AuditEvent).where(AuditEvent.action == "settings.alert_thresholds")
        ).all()
    assert (event.after["escalation_rate"], event.reason) == (0.45, "busy season")
    assert _thresholds(app_db, bloom.admin).version == 0  # the review thresholds untouched


def test_stale_alert_thresholds_are_refused_with_a_warning_and_the_current_values(
    app, shops, app_db
):
    from core.alerts import set_alert_thresholds

    bloom, _ = shops
    at = _settings(app, bloom.admin)
    with session_scope(bloom.admin, engine=app_db) as s:  # another admin saves meanwhile
        set_alert_thresholds(
            session=s,
            actor=bloom.admin,
            intent_accuracy=0.8,
            escalation_rate=0.2,
            macro_f1=0.75,
            misclassification=0.1,
            expected_version=0,
        )
    _slider(at, "Alert when the escalation rate").set_value(50)
    at = _save_alerts(at)
    assert not at.exception
    assert "Another admin changed the alert thresholds" in at.warning[0].value
    assert not at.success
    assert _alert_limits(app_db, bloom.admin).escalation_rate == 0.2
    assert _slider(at, "Alert when the escalation rate").value == 20  # now the current values
    assert _slider(at, "Alert when intent accuracy").value == 80
    _slider(at, "Alert when the escalation rate").set_value(50)  # saving again works
    at = _save_alerts(at)
    assert not at.warning
    assert _alert_limits(app_db, bloom.admin).values()["escalation_rate"] == 0.5
