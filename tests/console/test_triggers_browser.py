"""A marketer in the browser: a trigger with a wrong condition (the check as typed marks the wrong part), then a
right one, dry-run over the demo shop's orders, saved."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.console.conftest import browser_sign_in

pytestmark = pytest.mark.browser


def test_a_marketer_writes_a_wrong_then_a_right_condition_dry_runs_and_saves(page) -> None:  # noqa: ANN001
    browser_sign_in(page, "marketer@example.com")
    page.goto("/triggers/new")
    page.get_by_label("Name", exact=True).fill("big orders from the browser")
    page.get_by_label("order_created", exact=True).check()
    condition = page.get_by_label("Condition", exact=True)
    condition.fill('order.status != "cancelled" && order.totl > 5000')
    mark = page.locator("#condition-check mark")
    mark.wait_for()
    assert mark.inner_text() == "order.totl"
    assert "order has no field 'totl'" in page.locator("#condition-check").inner_text()
    condition.fill('order.status != "cancelled" && order.total > 5000')
    page.locator("#condition-check .notice").wait_for()
    assert page.locator("#condition-check mark").count() == 0
    page.get_by_label("Actions (YAML)").fill("- type: add_tag\n  target: order\n  tag: big\n")
    page.get_by_label("Over").select_option("orders")
    page.get_by_role("button", name="Dry run").click()
    result = page.locator("#dry-run-result")
    expect(result).to_have_text(re.compile(r"^Matched "))  # a longer run shows "So far: ..." between its steps
    found = re.fullmatch(r"Matched ([\d,]+) of ([\d,]+) evaluated\.", result.inner_text())
    assert found, result.inner_text()
    matched, evaluated = (int(x.replace(",", "")) for x in found.groups())
    assert evaluated == 500 and 0 < matched < evaluated
    assert page.locator("#dry-run a[href^='/orders/']").count() == min(matched, 10)
    page.get_by_role("button", name="Save trigger").click()
    page.wait_for_url(re.compile(r"/triggers/\d+\?saved=1$"))
    assert "big orders from the browser" in page.get_by_role("heading", level=1).inner_text()
