"""An admin in the browser: a site created and edited, and a user limited to it on the users page."""

from __future__ import annotations

import pytest

from tests.console.conftest import browser_sign_in

pytestmark = pytest.mark.browser


def test_an_admin_creates_edits_a_site_and_limits_a_user_to_it(page) -> None:  # noqa: ANN001
    browser_sign_in(page, "admin@example.com")
    page.goto("/admin/users")
    page.get_by_role("link", name="Sites", exact=True).click()
    page.locator("#s-code").focus()
    page.keyboard.type("tula")
    page.keyboard.press("Tab")
    page.keyboard.type("Tula outlet")
    page.keyboard.press("Tab")
    page.keyboard.press("Control+A")
    page.keyboard.type("RUB")
    page.get_by_role("button", name="Create site").click()
    page.wait_for_url("**/admin/sites?saved=1")
    page.get_by_role("link", name="Edit tula").click()
    page.get_by_label("Name", exact=True).fill("Tula outlet store")
    page.get_by_label("Time zone").fill("Europe/Samara")
    page.get_by_role("button", name="Save site").click()
    page.wait_for_url("**/admin/sites?saved=1")
    row = page.locator("tr", has_text="tula")
    assert "Tula outlet store" in row.inner_text() and "Europe/Samara" in row.inner_text()

    page.goto("/admin/users")
    row = page.locator("tr", has_text="viewer@example.com")
    row.get_by_label("tula").check()
    row.get_by_role("button", name="Save sites").click()
    page.wait_for_url("**/admin/users?saved=1")
    assert page.locator("tr", has_text="viewer@example.com").get_by_label("tula").is_checked()
    row = page.locator("tr", has_text="viewer@example.com")
    row.get_by_label("tula").uncheck()  # back to every site, for the other tests
    row.get_by_role("button", name="Save sites").click()
    page.wait_for_url("**/admin/users?saved=1")
