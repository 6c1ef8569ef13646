"""The console in a real browser (Playwright, Debian's chromium): sign-in by keyboard, the main pages, htmx
search, the XSS customer, an admin's API key, a viewer's read-only pages, accessibility, the RU switch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from retento.console.web import STATIC
from tests.console.browser import XSS
from tests.console.conftest import PASSWORD, browser_sign_in

pytestmark = pytest.mark.browser
MAIN_PAGES = ["/", "/customers", "/admin/users", "/admin/apikeys", "/account", "/messages", "/messages/campaigns",
              "/messages/channels", "/segments", "/segments/new", "/segments/rfm", "/cohorts",
              "/triggers", "/triggers/new", "/triggers/templates", "/tasks?view=open",
              "/admin/webhooks", "/admin/webhooks/1", "/admin/sites",
              "/admin/sites/uyut", "/loyalty", "/loyalty/members", "/loyalty/accounts/1", "/loyalty/pnl",
              "/admin/work", "/admin/work/webhooks", "/journeys", "/journeys/mechanics", "/journeys/1",
              "/journeys/1/edit", "/journeys/1/report", "/support", "/support/imports", "/support/report"]
AXE = Path(STATIC / "vendor" / "axe.min.js").read_text()
# Visible text outside user data (translate="no") with a Latin word in it: none may be left in Russian
LATIN_LEFT = """() => {
  const out = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode, el = node.parentElement;
    if (!el || el.closest('[translate="no"], script, style') || !el.checkVisibility()) continue;
    if (/[A-Za-z]{2,}/.test(node.textContent.replace(/\\b(API|RFM|LTV|ID|JSON|Telegram|WhatsApp|[A-Z]{3})\\b/g, '')))
      out.push(node.textContent.trim());
  }
  for (const el of document.querySelectorAll('[aria-label], [placeholder], [title]'))
    for (const a of ['aria-label', 'placeholder', 'title'])
      if (el.getAttribute(a) && !el.closest('[translate="no"]') &&
          /[A-Za-z]{2,}/.test(el.getAttribute(a).replace(/\\b(API|RFM|LTV|ID|JSON|[A-Z]{3})\\b/g, ''))) out.push(el.getAttribute(a));
  return out;
}"""


def test_sign_in_with_the_keyboard_alone(page) -> None:  # noqa: ANN001
    page.goto("/customers")
    assert "/signin" in page.url
    page.keyboard.type("operator@example.com")  # the email field has the focus
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url("**/customers")
    assert page.get_by_role("heading", name="Customers").is_visible()


def test_dashboard_draws_the_chart_and_loads_the_lifecycle(page) -> None:  # noqa: ANN001
    browser_sign_in(page, "marketer@example.com")
    page.goto("/")
    page.wait_for_selector("[data-chart][data-drawn] svg")
    page.wait_for_selector("#lifecycle .cards, #lifecycle p.muted:not(:has-text('Loading'))")
    page.wait_for_selector("#savings table, #savings p.muted:not(:has-text('Loading'))")
    page.wait_for_selector("#work table")
    assert page.get_by_role("heading", name="Background work").is_visible()


def test_search_updates_the_list_in_place_and_xss_is_text(page) -> None:  # noqa: ANN001
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    browser_sign_in(page, "operator@example.com")
    page.goto("/customers")
    page.get_by_label("Tag").fill("xss")
    with page.expect_response(lambda r: "/customers?" in r.url and r.request.headers.get("hx-request") == "true"):
        page.get_by_role("button", name="Find").click()
    link = page.locator("#results a", has_text="<script>").first
    assert XSS in link.inner_text()
    link.click()
    page.wait_for_url("**/customers/*")
    assert XSS in page.get_by_role("heading", level=1).inner_text()
    assert dialogs == []
    assert "script-src 'self'" in page.evaluate("() => fetch(location.href).then(r => r.headers.get("
                                              "'content-security-policy'))")


def test_admin_creates_and_revokes_an_api_key(page) -> None:  # noqa: ANN001
    browser_sign_in(page, "admin@example.com")
    page.goto("/admin/apikeys")
    page.get_by_label("Name").fill("shop module")
    page.get_by_label("customers:read").check()
    page.get_by_role("button", name="Create key").click()
    secret = page.locator("#new-secret").inner_text()
    assert secret.startswith("rtk_")
    response = page.request.get("/api/v1/customers", headers={"X-API-Key": secret})
    assert response.status == 200
    page.goto("/admin/apikeys")
    assert secret not in page.content()  # shown once
    row = page.locator("tr", has_text="shop module")
    row.get_by_role("button", name="Revoke").click()
    page.wait_for_url("**/admin/apikeys?saved=1")
    assert "Revoked" in page.locator("tr", has_text="shop module").inner_text()


def test_forms_work_with_the_keyboard_alone(page) -> None:  # noqa: ANN001
    """The customer's tags and an API key, reached and filled with Tab, typing, Space and Enter only."""
    browser_sign_in(page, "admin@example.com")
    page.goto("/customers/2")
    page.locator("#tags").focus()
    page.keyboard.press("Control+A")
    page.keyboard.type("typed, by-keyboard")
    page.keyboard.press("Enter")
    page.wait_for_url("**/customers/2?saved=1")
    assert page.locator(".tag", has_text="by-keyboard").is_visible()
    page.goto("/admin/apikeys")
    page.locator("#k-name").focus()
    page.keyboard.type("keyboard key")
    page.keyboard.press("Tab")
    page.keyboard.press("Space")  # the first scope
    focused = page.evaluate("document.activeElement.value")
    while page.evaluate("document.activeElement.type") != "submit":
        page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.wait_for_selector("#new-secret")
    assert focused in page.locator("tr", has_text="keyboard key").inner_text()


def test_a_viewer_sees_no_forms_that_change_data(page) -> None:  # noqa: ANN001
    browser_sign_in(page, "viewer@example.com")
    for path in ["/", "/customers/1", "/orders/1"]:
        page.goto(path)
        actions = page.eval_on_selector_all("form[method=post]", "fs => fs.map(f => f.getAttribute('action'))")
        assert actions == ["/signout"], (path, actions)
    assert page.get_by_role("link", name="Admin").count() == 0
    assert page.goto("/admin/apikeys").status == 403


def axe_violations(page) -> list:  # noqa: ANN001
    page.wait_for_load_state("networkidle")
    page.evaluate(AXE)  # through the debugging protocol: the pages' CSP allows no inline script
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3]) for v in result["violations"]
            if v["impact"] in ("serious", "critical")]


def test_sign_in_page_has_no_serious_accessibility_violations(page) -> None:  # noqa: ANN001
    page.goto("/signin")
    assert axe_violations(page) == []


@pytest.mark.parametrize("email", ["admin@example.com", "ru@example.com"])
def test_main_pages_have_no_serious_accessibility_violations(page, email: str) -> None:  # noqa: ANN001
    browser_sign_in(page, email)
    for path in MAIN_PAGES + ["/customers/1", "/orders/1"]:
        page.goto(path)
        bad = axe_violations(page)
        assert bad == [], f"{path}: {json.dumps(bad, ensure_ascii=False)}"


def test_russian_leaves_no_english_on_the_main_pages(page) -> None:  # noqa: ANN001
    """Every visible string outside user data (marked translate="no") is Russian: no Latin word is left."""
    browser_sign_in(page, "ru@example.com")
    for path in MAIN_PAGES + ["/customers/1", "/orders/1"]:
        page.goto(path)
        page.wait_for_load_state("networkidle")
        assert page.evaluate("document.documentElement.lang") == "ru"
        left = page.evaluate(LATIN_LEFT)
        assert left == [], f"{path}: {left}"
