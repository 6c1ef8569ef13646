"""An admin in the browser: an outgoing webhook subscribed with the keyboard (its secret shown once), its delivery
log opened, the subscription disabled and enabled again."""

from __future__ import annotations

import pytest

from tests.console.conftest import browser_sign_in

pytestmark = pytest.mark.browser


def test_an_admin_subscribes_a_url_and_disables_it(page) -> None:  # noqa: ANN001
    browser_sign_in(page, "admin@example.com")
    page.goto("/admin/users")
    page.get_by_role("link", name="Outgoing webhooks").click()
    page.locator("#w-url").focus()
    page.keyboard.type("https://erp.flora.example/hooks")
    page.keyboard.press("Tab")
    while page.evaluate("document.activeElement.value") != "customer_created":
        page.keyboard.press("Tab")
    page.keyboard.press("Space")
    page.get_by_label("Description").fill("flora erp")
    page.get_by_role("button", name="Create subscription").click()
    secret = page.locator("#new-secret").inner_text()
    assert secret.startswith("whsec_")
    page.goto("/admin/webhooks")
    assert secret not in page.content()
    page.get_by_role("link", name="https://erp.flora.example/hooks").click()
    assert page.get_by_role("heading", name="Delivery log").is_visible()
    assert "customer_created" in page.locator("dl.facts").inner_text()
    page.get_by_role("button", name="Disable").click()
    page.wait_for_url("**?saved=1")
    assert "Disabled" in page.locator("dl.facts").inner_text()
    page.get_by_role("button", name="Enable").click()
    page.wait_for_url("**?saved=1")
    assert "Active" in page.locator("dl.facts").inner_text()
