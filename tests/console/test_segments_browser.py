"""In a real browser: a marketer signs in, builds a segment with the rule builder and sees its live count change as
the rule changes (htmx, debounced), then saves it."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.console.conftest import browser_sign_in

pytestmark = pytest.mark.browser


def test_a_marketer_builds_a_segment_and_sees_its_live_count(page) -> None:  # noqa: ANN001
    browser_sign_in(page, "marketer@example.com")
    page.goto("/segments/new")
    page.get_by_label("Code").fill("xss-tagged")
    page.get_by_label("Name", exact=True).fill("Tagged xss")
    page.locator("#kind-0").select_option("tags")
    page.locator("#value-0").wait_for()  # the row now asks for the tags
    page.locator("#value-0").fill("xss")
    expect(page.locator("#live-count")).to_have_text("1")
    assert page.locator("#preview").get_by_text("<script>alert(1)</script>").first.is_visible()  # as text
    page.locator("#kind-1").select_option("orders")
    page.locator("#value-1").fill("many")
    expect(page.locator("#row-errors-1")).to_contain_text("value must be a number")
    page.locator("#value-1").fill("1")
    expect(page.locator("#live-count")).to_have_text("0")
    page.get_by_role("button", name="Remove").nth(1).click()
    expect(page.locator("#live-count")).to_have_text("1")
    page.get_by_role("button", name="Create segment").click()
    page.wait_for_url("**/segments/*?saved=1")
    assert page.get_by_role("heading", name="Segment: Tagged xss").is_visible()
