"""In a real browser, on the demo shop's loyalty program: a marketer sees the preview follow the settings as typed
(htmx) and saves them with the keyboard, credits points on a member's account with the keyboard alone, and reads
the P&L with its charts drawn."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.console.conftest import browser_sign_in

pytestmark = pytest.mark.browser


def test_a_marketer_previews_and_saves_the_program_settings(page) -> None:  # noqa: ANN001
    browser_sign_in(page, "marketer@example.com")
    page.goto("/loyalty?site=uyut")
    preview = page.locator("#preview")
    expect(preview).to_contain_text("Бронза")
    page.locator("#sample_amount").fill("10000")
    page.locator("#sample_points").fill("5000")
    page.locator("#sample_points").press("Tab")
    expect(preview).to_contain_text("3,000.00")  # 30% of 10,000 may be paid
    expect(preview).to_contain_text("210.00")  # 7,000 left at 3% (Бронза)
    page.locator("#f-levels-0-percent").fill("4")
    page.locator("#f-levels-0-percent").press("Tab")
    expect(preview).to_contain_text("280.00")  # the settings as typed, not saved yet
    page.locator("#f-max_redeem_share").fill("150")
    page.locator("#f-max_redeem_share").press("Tab")
    expect(preview).to_contain_text("max_redeem_share")
    page.locator("#f-max_redeem_share").fill("30")
    page.locator("#f-welcome_bonus").focus()
    page.keyboard.press("Enter")  # submits the settings form
    page.wait_for_url("**/loyalty?site=uyut&saved=1")
    assert page.locator("#f-levels-0-percent").input_value() == "4"


def test_a_marketer_credits_points_with_the_keyboard(page) -> None:  # noqa: ANN001
    browser_sign_in(page, "marketer@example.com")
    page.goto("/loyalty/members?site=uyut")
    page.locator("table a[href^='/loyalty/accounts/']").first.click()
    page.wait_for_url("**/loyalty/accounts/*")
    before = page.locator(".card .value").first.inner_text()
    page.locator("#credit-amount").focus()
    page.keyboard.type("10")
    page.keyboard.press("Tab")
    page.keyboard.type("apology for a late delivery")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Credit points"
    page.keyboard.press("Enter")
    page.wait_for_url("**saved=credit")
    assert page.get_by_role("status").inner_text() == "Points credited."
    assert page.locator(".card .value").first.inner_text() != before
    assert page.locator("table", has_text="apology for a late delivery").is_visible()


def test_pnl_draws_its_charts(page) -> None:  # noqa: ANN001
    browser_sign_in(page, "viewer@example.com")
    page.goto("/loyalty/pnl?site=uyut")
    expect(page.locator("[data-chart][data-drawn] svg")).to_have_count(3)
    assert page.get_by_role("heading", name="Lifecycle before and after the launch").is_visible()
    actions = page.eval_on_selector_all("form[method=post]", "fs => fs.map(f => f.getAttribute('action'))")
    assert actions == ["/signout"]
