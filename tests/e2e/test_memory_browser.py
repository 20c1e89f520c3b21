"""The Memory page in a real browser: the demo admin finds a customer, reads a memory's source
message, and corrects the memory; the history keeps the old value.

SQLite only: the page's queries run on both backends in tests/core and tests/pages, and one
more demo workspace on PostgreSQL would cost CI minutes without testing anything new here."""

from __future__ import annotations

import pytest

from core import demo
from tests.e2e.conftest import settle, shot

pytestmark = pytest.mark.e2e
ADMIN = next(d for d in demo.demo_credentials() if d.shop == "Bloom & Co." and d.role == "admin")
NEW_VALUE = "Peonies, said in the browser test"


def _log_in(page, base_url: str) -> None:
    page.goto(base_url)
    page.get_by_label("Username", exact=True).fill(ADMIN.username)
    page.get_by_label("Password", exact=True).fill(ADMIN.password)
    page.get_by_label("Password", exact=True).press("Enter")
    page.get_by_role("heading", name="Home").wait_for()
    settle(page)


def _choose(page, label: str, skip: str = "") -> str:
    """Pick the first option of the selectbox `label` not starting with `skip`, from the
    keyboard (the page's live list redraws every few seconds; keys do not hold on to an
    element that may be drawn anew)."""
    box = page.get_by_role("combobox", name=label, exact=True)
    for _ in range(3):
        settle(page)
        box.click()
        box.press("ArrowDown")  # opens the list on its first option (a click only focuses it)
        options = page.get_by_role("option")
        options.first.wait_for()
        texts = [t.strip() for t in options.all_inner_texts()]
        index = next(i for i, t in enumerate(texts) if t != "—" and not t.startswith(skip or "\0"))
        focused = [options.nth(i).get_attribute("data-focused") for i in range(len(texts))]
        at = focused.index("true") if "true" in focused else 0
        for _ in range(abs(index - at)):
            box.press("ArrowDown" if index > at else "ArrowUp")
        box.press("Enter")
        settle(page)
        if box.input_value() == texts[index]:
            return texts[index]
        box.press("Escape")
    raise AssertionError(f"could not pick {texts[index]!r} in {label!r}")


@pytest.mark.parametrize("demo_server", ["sqlite"], indirect=True)
def test_admin_reads_a_memory_with_its_source_and_corrects_it(demo_server, page):
    _log_in(page, demo_server)
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Memory").click()
    page.get_by_role("heading", name="Memory").wait_for()
    settle(page)
    # The demo's customers are listed most remembered first; the first one is open.
    customer = page.get_by_role("combobox", name="Customer", exact=True).input_value()
    assert customer.startswith("cust-"), customer
    search = page.get_by_label("Customer id, or something remembered about them", exact=True)
    search.fill(customer)
    search.press("Enter")
    page.get_by_text("1 customer found").wait_for()
    settle(page)
    memories = page.get_by_test_id("stDataFrame").filter(has_text="source message")
    memories.wait_for()
    # A conversation a memory came from: its first customer message is the memory's source.
    _choose(page, "View a conversation the memories came from")
    first = page.get_by_test_id("stText").first.inner_text()
    assert memories.filter(has_text=first[:40]).count() == 1
    shot(page, "admin-memory-customer")
    # Correct a memory (not a date: its value must be a date); the old one becomes history.
    picked = _choose(page, "Memory to correct or delete", skip="important date")
    old = picked.split(": ", 1)[1]
    page.get_by_label("Value", exact=True).fill(NEW_VALUE)
    page.get_by_role("button", name="Save the new value").click()
    page.get_by_text(f"is now “{NEW_VALUE}”").wait_for()
    settle(page)
    memories.filter(has_text=NEW_VALUE).wait_for()
    page.get_by_text("Show history").click()
    settle(page)
    history = page.get_by_test_id("stDataFrame").filter(has_text="superseded")
    history.filter(has_text=old).first.wait_for()
    assert page.get_by_test_id("stException").count() == 0
    shot(page, "admin-memory-history")
