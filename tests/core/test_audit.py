"""The audit log: scoped to the shop, filterable, paged, and exported spreadsheet-safe."""

from __future__ import annotations

import csv
import io
import logging
from datetime import timedelta

import pytest

from core import audit
from core.access import Role
from core.errors import PermissionDenied
from core.logs import configure_logging
from core.spreadsheet import safe_cell
from db.engine import session_scope
from db.models import utcnow
from tests.factories import make_shop


def _events(engine, shop, n, action="user.role"):
    with session_scope(shop.admin, engine=engine) as s:
        for i in range(n):
            audit.record(
                session=s,
                actor=shop.admin,
                action=action,
                entity_type="user",
                entity_id=f"user{i}",
                before={"role": "florist"},
                after={"role": "manager"},
                reason=f"reason {i}",
            )


def test_list_is_scoped_paged_and_newest_first(engine):
    bloom, fern = make_shop(engine, "Bloom"), make_shop(engine, "Fern")
    _events(engine, bloom, 7)
    _events(engine, fern, 3, action="user.create")
    with session_scope(bloom.admin, engine=engine) as s:
        first = audit.list_events(
            session=s, actor=bloom.admin, flt=audit.AuditFilter(), page=1, page_size=5
        )
        second = audit.list_events(
            session=s, actor=bloom.admin, flt=audit.AuditFilter(), page=2, page_size=5
        )
    assert (first.total, first.pages, len(first.events), len(second.events)) == (7, 2, 5, 2)
    assert {e.tenant_id for e in first.events + second.events} == {bloom.tenant_id}
    ids = [e.id for e in first.events + second.events]
    assert ids == sorted(ids, reverse=True)


def test_filters_by_action_actor_text_and_dates(engine):
    shop = make_shop(engine)
    _events(engine, shop, 3)
    _events(engine, shop, 2, action="user.create")
    now = utcnow()
    with session_scope(shop.admin, engine=engine) as s:

        def count(**kw):
            return audit.list_events(session=s, actor=shop.admin, flt=audit.AuditFilter(**kw)).total

        assert count(action="user.create") == 2
        assert count(actor_name=shop.admin.username) == 5
        assert count(actor_name="someone-else") == 0
        assert count(text="reason 2") == 1
        assert count(since=now - timedelta(hours=1), until=now + timedelta(hours=1)) == 5
        assert count(since=now + timedelta(hours=1)) == 0


@pytest.mark.parametrize("role", [Role.FLORIST, Role.MANAGER])
def test_only_admins_read_the_log(engine, role):
    shop = make_shop(engine)
    with session_scope(shop.actor(role), engine=engine) as s, pytest.raises(PermissionDenied):
        audit.list_events(session=s, actor=shop.actor(role), flt=audit.AuditFilter())


def test_csv_export_neutralizes_formulas(engine):
    shop = make_shop(engine)
    with session_scope(shop.admin, engine=engine) as s:
        audit.record(
            session=s,
            actor=shop.admin,
            action="user.role",
            entity_type="user",
            entity_id='=HYPERLINK("http://x")',
            reason="+1 because -2 @me",
        )
        text = audit.export_csv(session=s, actor=shop.admin, flt=audit.AuditFilter())
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == list(audit.CSV_COLUMNS)
    assert rows[1][4] == '\'=HYPERLINK("http://x")'
    assert rows[1][7] == "'+1 because -2 @me"


@pytest.mark.parametrize("raw", ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"])
def test_safe_cell_quotes_every_formula_start(raw):
    assert safe_cell(raw) == "'" + raw
    assert safe_cell("plain text") == "plain text"


def test_log_level_setting_applies(monkeypatch):
    configure_logging("WARNING")
    assert logging.getLogger("core.auth").getEffectiveLevel() == logging.WARNING
    configure_logging("DEBUG")
    assert logging.getLogger("core.auth").getEffectiveLevel() == logging.DEBUG
    configure_logging("INFO")
