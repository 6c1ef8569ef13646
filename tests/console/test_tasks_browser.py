"""An operator in the browser, keyboard only: a task created for a manager, completed, then found under Done."""

from __future__ import annotations

import pytest

from tests.console.conftest import browser_sign_in

pytestmark = pytest.mark.browser


def test_an_operator_creates_and_completes_a_task_with_the_keyboard(page) -> None:  # noqa: ANN001
    browser_sign_in(page, "operator@example.com")
    page.goto("/tasks")
    assert "view=open" in page.url or page.locator('nav a[aria-current="page"]', has_text="Open").count()
    assert page.locator("tr", has_text="Call about the delayed sofa").is_visible()
    page.locator("#t-title").focus()
    page.keyboard.type("Ring back about the armchair")
    page.keyboard.press("Tab")
    page.keyboard.type("The customer asked for a call after six")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "t-due"
    while page.evaluate("document.activeElement.id") != "t-manager":  # past the date's and time's parts
        page.keyboard.press("Tab")
    page.keyboard.press("ArrowDown")  # the first manager
    chosen = page.evaluate("document.activeElement.selectedOptions[0].textContent")
    page.keyboard.press("Tab")
    page.keyboard.type("1")  # customer id
    while page.evaluate("document.activeElement.type") != "submit":
        page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.wait_for_url("**/tasks?view=open&saved=*")
    row = page.locator("tr", has_text="Ring back about the armchair")
    assert chosen in row.inner_text() and "Customer 1" in row.inner_text()
    row.get_by_role("button", name="Complete").focus()
    with page.expect_navigation(url="**/tasks?view=open&saved=*"):  # the same URL as before: wait for the load
        page.keyboard.press("Enter")
    assert page.locator("tr", has_text="Ring back about the armchair").count() == 0
    page.get_by_role("link", name="Done").click()
    assert "Completed" in page.locator("tr", has_text="Ring back about the armchair").inner_text()
    page.get_by_role("link", name="Overdue").click()
    assert page.locator("tr", has_text="Call about the delayed sofa").is_visible()
    assert page.locator("tr", has_text="Confirm the delivery address").count() == 0
