"""A person's path through the app in a real browser: log in as each role, open every page."""

from __future__ import annotations

import re

import pytest

from core import demo
from pages.ui.registry import SCREENS
from tests.e2e.conftest import settle, shot

pytestmark = pytest.mark.e2e
BLOOM = [d for d in demo.demo_credentials() if d.shop == "Bloom & Co."]
SAVED = re.compile(r"(Confirmed|Relabelled as) .+ \(\d+ messages?\)\.")
IN_THE_FORM = """() => document.activeElement?.closest('[data-testid="stForm"]') != null"""
# Paths whose SQL differs between the backends (login under row-level security, the review
# queue and its locking, full-text search) run in the browser on both; the others once, on
# SQLite: their core and page tests run on both backends already.
SQLITE_ONLY = pytest.mark.parametrize("demo_server", ["sqlite"], indirect=True)


def _log_in(page, base_url: str, username: str, password: str) -> None:
    page.goto(base_url)
    page.get_by_label("Username", exact=True).fill(username)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_label("Password", exact=True).press("Enter")  # the form submits from the keyboard
    # Generous: under CI load, logging in while the other worker trains has taken over 30 s.
    page.get_by_role("heading", name="Home").wait_for(timeout=90_000)
    settle(page)


@pytest.mark.parametrize("login", BLOOM, ids=lambda d: d.role)
def test_each_demo_role_opens_its_pages_and_logs_out(demo_server, page, login):
    _log_in(page, demo_server, login.username, login.password)
    assert page.get_by_text("Bloom & Co.").first.is_visible()
    visible = [s for s in SCREENS if login.role in {r.value for r in s.roles}]
    nav = page.get_by_test_id("stSidebarNav")
    nav_titles = nav.inner_text()
    for hidden in (s for s in SCREENS if s not in visible):
        assert hidden.title not in nav_titles
    for screen in visible:
        nav.get_by_role("link", name=screen.title).click()
        page.get_by_role("heading", name=screen.title).wait_for()
        settle(page)
        assert page.get_by_test_id("stException").count() == 0
        shot(page, f"{login.role}-{screen.key}")
    page.get_by_role("button", name="Log out").click()
    page.get_by_role("button", name="Log in").wait_for()


@SQLITE_ONLY
def test_wrong_password_shows_one_generic_message(demo_server, page):
    page.goto(demo_server)
    page.get_by_label("Username", exact=True).fill(BLOOM[0].username)
    page.get_by_label("Password", exact=True).fill("definitely-wrong")
    page.get_by_role("button", name="Log in").click()
    page.get_by_text("Wrong username or password.").wait_for()


@SQLITE_ONLY
def test_signed_out_deep_link_lands_on_the_login_form(demo_server, page):
    page.goto(f"{demo_server}/settings")
    page.get_by_role("button", name="Log in").wait_for()
    page.get_by_text("Demo workspace logins").wait_for()
    settle(page)
    shot(page, "login")
    assert page.get_by_role("heading", name="Settings").count() == 0
    assert page.get_by_text("Page not found").count() == 0


@SQLITE_ONLY
def test_deep_link_opens_its_page_right_after_logging_in(demo_server, page):
    admin = next(d for d in BLOOM if d.role == "admin")
    page.goto(f"{demo_server}/settings")
    page.get_by_label("Username", exact=True).fill(admin.username)
    page.get_by_label("Password", exact=True).fill(admin.password)
    page.get_by_label("Password", exact=True).press("Enter")
    page.get_by_role("heading", name="Settings").wait_for()
    page.get_by_role("tab", name="Audit log").wait_for()  # drawn after the heading: wait


@SQLITE_ONLY
def test_admin_uploads_checks_and_imports_a_file(demo_server, page, tmp_path):
    admin = next(d for d in BLOOM if d.role == "admin")
    _log_in(page, demo_server, admin.username, admin.password)
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Data").click()
    page.get_by_role("heading", name="Data").wait_for()
    csv_file = tmp_path / "new-examples.csv"
    csv_file.write_text(
        "text,intent\nDo you sell orchids in pots?,pricing\n"
        "Can I add a card to my bouquet?,gift_message\n,pricing\n"
    )
    page.locator("input[type=file]").set_input_files(str(csv_file))
    page.get_by_role("button", name="Check the whole file").click()
    page.get_by_text("1 row cannot be imported").wait_for()
    shot(page, "admin-data-check")
    page.get_by_role("button", name="Import the 2 valid, skip 1 row").click()
    page.get_by_text("Imported 2 rows from new-examples.csv").wait_for()
    settle(page)
    shot(page, "admin-data-imported")


@SQLITE_ONLY
def test_admin_trains_in_the_browser_and_sees_the_run_live(demo_server, page):
    admin = next(d for d in BLOOM if d.role == "admin")
    _log_in(page, demo_server, admin.username, admin.password)
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Training").click()
    page.get_by_role("heading", name="Training").wait_for()
    settle(page)
    page.get_by_role("button", name="Train").click()
    page.get_by_text("started; it trains while you work").wait_for()
    # The fragment polls the database every 2 s: the result appears without a click.
    page.get_by_text("Shadow replay").first.wait_for(timeout=120_000)
    assert page.get_by_text("Learning curve").first.is_visible()
    assert page.get_by_test_id("stVegaLiteChart").count() >= 1
    settle(page)
    shot(page, "admin-training")


@SQLITE_ONLY
def test_florist_asks_the_playground(demo_server, page):
    florist = next(d for d in BLOOM if d.role == "florist")
    _log_in(page, demo_server, florist.username, florist.password)
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Playground").click()
    page.get_by_role("heading", name="Playground").wait_for()
    page.get_by_label("Customer message").fill("Can you deliver sympathy flowers today?")
    page.get_by_role("button", name="Ask the model").click()
    page.get_by_text("Model version").wait_for()
    settle(page)
    shot(page, "florist-playground")


def test_admin_reviews_three_items_from_the_keyboard(demo_server, page):
    admin = next(d for d in BLOOM if d.role == "admin")
    _log_in(page, demo_server, admin.username, admin.password)
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Review").click()
    page.get_by_role("heading", name="Review").wait_for()
    settle(page)
    shot(page, "admin-review")
    # 1: the shortcut saves the preselected intent (the model's prediction, or for a likely
    # label issue the intent that fits better; which comes first depends on the tests before),
    # once the page has put the cursor into the form (a script in an iframe, after the run)
    page.wait_for_function(IN_THE_FORM)
    page.keyboard.press("Control+Enter")
    page.get_by_text(SAVED).first.wait_for()
    settle(page)
    # 2: Enter in a text field of the form saves as well
    page.get_by_label("Note (optional)").fill("checked in the browser")
    page.get_by_label("Note (optional)").press("Enter")
    page.get_by_text(SAVED).first.wait_for()
    settle(page)
    # 3: reject, then undo it
    page.get_by_role("button", name="Reject").click()
    page.get_by_text("Rejected (").first.wait_for()
    settle(page)
    page.get_by_role("button", name="Undo: Rejected").click()
    page.get_by_text("back as it was").wait_for()
    settle(page)
    assert page.get_by_test_id("stException").count() == 0


@SQLITE_ONLY
def test_manager_opens_analytics_and_the_charts_render(demo_server, page):
    manager = next(d for d in BLOOM if d.role == "manager")
    _log_in(page, demo_server, manager.username, manager.password)
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Analytics").click()
    page.get_by_role("heading", name="Analytics").wait_for()
    settle(page)
    charts = page.get_by_test_id("stVegaLiteChart")
    charts.first.locator("canvas, svg").first.wait_for()  # vega drew, not just a placeholder
    assert charts.count() >= 5  # the five trends of the demo's 30 days
    metrics = page.get_by_test_id("stMetric")
    metrics.nth(6).wait_for()
    assert metrics.count() == 7
    assert page.get_by_test_id("stException").count() == 0
    shot(page, "manager-analytics")
    page.get_by_role("tab", name="Intents").click()
    page.get_by_text("Top misclassified").wait_for()
    page.get_by_role("tab", name="Models & reviewers").click()
    page.get_by_text("Macro-F1 of every completed run").wait_for()
    settle(page)
    assert page.get_by_test_id("stException").count() == 0
    shot(page, "manager-analytics-models")


@SQLITE_ONLY
def test_florist_edits_previews_and_saves_a_prompt_template_in_the_studio(demo_server, page):
    florist = next(d for d in BLOOM if d.role == "florist")
    _log_in(page, demo_server, florist.username, florist.password)
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Templates").click()
    page.get_by_role("heading", name="Templates").wait_for()
    settle(page)
    page.get_by_role("tab", name="Prompt templates").click()
    text = page.get_by_label("Prompt text", exact=True).filter(visible=True).first
    text.fill("A {style} bouquet of {flowers} for {occasion}, in a {container}")
    text.press("Tab")  # leave the field, so the form holds the text before the click
    # (a button's accessible name starts with its icon: "visibility Preview")
    page.get_by_role("button", name="Preview").filter(visible=True).first.click()
    page.get_by_text("No value for {container}").wait_for()
    settle(page)
    shot(page, "florist-templates-preview")
    rendered = page.get_by_test_id("stCode").filter(has_text="bouquet of").first.inner_text()
    assert rendered.startswith("A romantic bouquet of") and rendered.endswith("{container}")
    note = page.get_by_label("Note for the new version", exact=True).filter(visible=True).first
    note.fill("Name the container")
    note.press("Tab")
    page.get_by_role("button", name="Save as new version").filter(visible=True).first.click()
    page.get_by_text("It waits as a draft until an admin promotes it").wait_for()
    # the Prompt templates tab stays open after the save, with version 2 as a draft
    page.get_by_text("Only an admin can promote").filter(visible=True).first.wait_for()
    assert page.get_by_role("tab", name="Prompt templates", selected=True).is_visible()
    settle(page)
    assert page.get_by_test_id("stException").count() == 0
    shot(page, "florist-templates-saved")


def test_admin_creates_a_response_template_searches_it_and_sees_it_suggested(demo_server, page):
    # An admin, not a florist: only a production version is suggested, and only an admin may
    # make version 1 production at once (a florist's new template waits as a draft).
    admin = next(d for d in BLOOM if d.role == "admin")
    _log_in(page, demo_server, admin.username, admin.password)
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Templates").click()
    page.get_by_role("heading", name="Templates").wait_for()
    settle(page)
    page.get_by_role("tab", name="Responses").click()
    page.get_by_text("Create a new response template").filter(visible=True).click()
    form = page.get_by_test_id("stForm").filter(has_text="Create response template")
    form.get_by_label("Name", exact=True).fill("Sunday delivery")
    form.get_by_label("Category", exact=True).fill("Delivery")
    form.get_by_label("Response text", exact=True).fill(
        "Hi {customer_name}, yes: we deliver on Sundays before noon."
    )
    phrases = form.get_by_label("Trigger phrases, one per line", exact=True)
    phrases.fill("deliver on sunday")
    phrases.press("Tab")
    form.get_by_text("Make version 1 production now").click()
    form.get_by_role("button", name="Create response template").click()
    page.get_by_text("Created the response template").wait_for()
    settle(page)
    search = page.get_by_label("Search response templates", exact=True)
    search.fill("sunday deliv")
    search.press("Enter")
    page.get_by_text("1 found, best first").wait_for()
    settle(page)
    assert page.get_by_test_id("stException").count() == 0
    shot(page, "admin-response-search")
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Playground").click()
    page.get_by_role("heading", name="Playground").wait_for()
    page.get_by_label("Customer message").fill("Do you deliver on Sunday?")
    page.get_by_role("button", name="Ask the model").click()
    page.get_by_role("heading", name="Suggested response templates").wait_for()
    settle(page)
    grid = page.get_by_test_id("stDataFrame").filter(has_text="Sunday delivery")
    # The grid writes its cells' text after it has drawn them, which under load takes a while.
    grid.first.wait_for(timeout=90_000)
    assert grid.count() == 1
    assert page.get_by_test_id("stException").count() == 0
    shot(page, "admin-playground-suggestions")
