"""An operator merges a duplicate from the customer card in the browser, keyboard only: finds it by phone,
confirms on the next page, and lands on the kept customer with the duplicate's order."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from retento.bootstrap import App, bootstrap
from retento.core.clock import FrozenClock
from retento.core.config import Settings
from tests import factories as f
from tests.console.browser import Server
from tests.console.conftest import add_user, browser_sign_in

pytestmark = pytest.mark.browser


@pytest.fixture
def shop(sqlite_template: Path, tmp_path: Path) -> Iterator[tuple[App, Server, int, int]]:
    path = tmp_path / "merge.db"
    shutil.copy(sqlite_template, path)
    app = bootstrap(Settings(database_url=f"sqlite:///{path}", console_password_time_cost=1,
                             console_password_memory_kib=64), clock=FrozenClock("2026-03-02T09:00:00+00:00"))
    f.site(app, name="Uyut")
    keep = f.customer(app, first_name="Anna", last_name="Ivanova", email="anna@example.com")
    dup = f.customer(app, first_name="Аня", phone="+79161234567")
    f.order(app, number="A-2002", customer={"id": dup})
    add_user(app, "operator@example.com", "operator")
    server = Server(app).start()
    yield app, server, keep, dup
    server.stop()
    app.close()


def test_an_operator_merges_a_duplicate_with_the_keyboard(browser, shop) -> None:  # noqa: ANN001
    _, server, keep, dup = shop
    context = browser.new_context(base_url=server.url, locale="en-US")
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        browser_sign_in(page, "operator@example.com")
        page.goto(f"/customers/{keep}")
        page.get_by_label("Duplicate: id, phone or email").focus()
        page.keyboard.type("+7 916 123-45-67")
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent") == "Find the duplicate"
        page.keyboard.press("Enter")
        page.wait_for_url(f"**/customers/{keep}/merge")
        assert page.get_by_role("heading", level=1).inner_text() == f"Merge customer {dup} into customer {keep}?"
        assert page.evaluate("document.activeElement.textContent") == f"Merge into customer {keep}"  # autofocus
        page.keyboard.press("Enter")
        page.wait_for_url(f"**/customers/{keep}?merged={dup}")
        assert page.get_by_role("status").inner_text() == f"Customer {dup} was merged into this customer."
        assert page.locator("tr", has_text="A-2002").is_visible()
        page.goto(f"/customers/{dup}")
        page.wait_for_url(f"**/customers/{keep}?merged={dup}")
    finally:
        context.close()
