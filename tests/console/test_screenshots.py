"""`make screenshots`: the console's main pages in English and Russian, saved as docs/console/<page>-<lang>.png
(run only when asked for: marker `screenshots`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.console.browser import add_customer_messages, add_inbox_dialogs, add_support_set
from tests.console.conftest import browser_sign_in

pytestmark = pytest.mark.screenshots
DOCS = Path(__file__).resolve().parents[2] / "docs" / "console"
PAGES = {"loyalty": "/loyalty?site=uyut", "loyalty-account": "/loyalty/accounts/1", "loyalty-pnl": "/loyalty/pnl?site=uyut",
         "dashboard": "/", "customers": "/customers", "customer": "/customers/1", "customer-messages": "",
         "order": "/orders/1",
         "apikeys": "/admin/apikeys", "tasks": "/tasks?view=open",
         "webhooks": "/admin/webhooks/1", "sites": "/admin/sites",
         "work": "/admin/work/webhooks", "journey": "/journeys/1",
         "inbox": "/inbox", "inbox-dialog": "", "inbox-report": "/inbox/report",
         "support-ticket": "/support/uyut/tickets/custom-field-type-en-0", "support-imports": "/support/imports",
         "support-report": "/support/report?site=uyut"}


@pytest.mark.parametrize("email, lang", [("admin@example.com", "en"), ("ru@example.com", "ru")])
def test_screenshots(browser, console_server, email: str, lang: str) -> None:  # noqa: ANN001
    DOCS.mkdir(parents=True, exist_ok=True)
    add_customer_messages(console_server.app)
    add_inbox_dialogs(console_server.app)
    add_support_set(console_server.app)
    context = browser.new_context(base_url=console_server.url, viewport={"width": 1280, "height": 860})
    page = context.new_page()
    try:
        browser_sign_in(page, email)
        for name, path in PAGES.items():
            if name == "loyalty-account":  # the member with the most points, for a page with lots and a ledger
                page.goto("/loyalty/members?site=uyut")
                path = page.evaluate("""() => [...document.querySelectorAll('main tbody tr')].map(r => [
                    Number(r.cells[5].textContent.replace(/\\D/g, '')), r.querySelector('a').getAttribute('href')])
                    .sort((a, b) => b[0] - a[0])[0][1]""")
            if name == "customer-messages":  # the profile's messages part, of the customer the shop wrote to
                page.goto("/customers?q=Sokolova")
                path = page.locator("#results a", has_text="Sokolova").first.get_attribute("href")
            if name == "inbox-dialog":  # the first dialog of the list, opened
                page.goto("/inbox")
                path = page.locator("a[href*='dialog=']").first.get_attribute("href")
            page.goto(path)
            if name.startswith("inbox"):  # its live stream never goes idle
                page.wait_for_load_state("load")
            else:
                page.wait_for_load_state("networkidle")
            if name == "customer-messages":
                page.locator("#messages-title").scroll_into_view_if_needed()
            page.wait_for_timeout(300)  # chart animation
            page.screenshot(path=DOCS / f"{name}-{lang}.png", full_page=False)
    finally:
        context.close()
