"""Role-filtered navigation, refused deep links, and every page for every role."""

from __future__ import annotations

import pytest

from core.access import ALL_ROLES, Role
from pages.ui.registry import SCREENS


@pytest.mark.parametrize("role", ALL_ROLES, ids=lambda r: r.value)
@pytest.mark.parametrize("screen", SCREENS, ids=lambda s: s.key)
def test_every_page_renders_for_every_role(app, shops, role, screen):
    """Smoke: each page either renders without exception or says 'not allowed'."""
    bloom, _ = shops
    at = app(bloom.actor(role))
    at.switch_page(str(screen.path))
    at = at.run()
    assert not at.exception, at.exception
    refused = any("Not allowed" in e.value for e in at.error)
    assert refused == (role not in screen.roles)
    assert at.title[0].value == screen.title


def test_signed_out_app_offers_only_the_login_form(app, shops):
    """Signed out, the app shows the login form and no screen (deep links: see tests/e2e)."""
    at = app()
    assert not at.exception
    assert [b.label for b in at.button] == ["Log in"]
    assert [t.value for t in at.title] == ["Trellis"]
    assert not at.sidebar.button


@pytest.mark.parametrize("role", [Role.FLORIST, Role.MANAGER], ids=lambda r: r.value)
def test_settings_deep_link_is_not_allowed_and_shows_no_user_data(app, shops, role):
    bloom, _ = shops
    at = app(bloom.actor(role))
    at.switch_page("pages/settings.py")
    at = at.run()
    assert "Not allowed" in at.error[0].value
    assert not at.dataframe and not at.tabs
