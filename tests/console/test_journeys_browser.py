"""A marketer in the browser: installs a ready-made mechanic in one click, finds it in the list and as a flow
diagram whose steps are reached with the keyboard, edits a step with a wrong value (the error shown at that step)
then a right one (a new version, drawn on the diagram), and reads the report with its charts drawn."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.console.conftest import browser_sign_in

pytestmark = pytest.mark.browser


def test_install_see_edit_wrong_then_right_and_read_the_report(page) -> None:  # noqa: ANN001
    browser_sign_in(page, "marketer@example.com")
    page.goto("/journeys/mechanics")
    page.locator("section", has=page.locator("#m-abandoned-cart")).get_by_role("button", name="Install").click()
    page.wait_for_url(re.compile(r"/journeys/\d+\?installed=created$"))
    assert page.get_by_role("status").inner_text() == "Installed."
    journey = page.url.split("?")[0]

    page.goto("/journeys")
    page.get_by_role("link", name="abandoned-cart").click()
    page.wait_for_url(journey)
    nodes = page.locator("svg.flow a.node")
    expect(nodes).to_have_count(4)
    # each step is a link whose name reads the step: its name, type, parameters and counts
    expect(page.locator("#node-hour")).to_have_accessible_name("hour Wait (start) 1 h reached 0 · here now 0")
    page.locator("#node-hour").focus()
    page.keyboard.press("Tab")  # the next step of the diagram
    assert page.evaluate("document.activeElement.id") == "node-cart"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "node-day"
    page.keyboard.press("Enter")  # to the step's form
    page.wait_for_url(re.compile(r"/edit#step-day$"))

    step = page.locator("#step-day")
    step.get_by_label("Then until local time (HH:MM)").fill("25:00")
    step.get_by_role("button", name="Save this step").click()
    step = page.locator("#step-day")
    expect(step.locator(".error")).to_have_text("at: must be a time as HH:MM, e.g. 10:00")
    assert "Problems: 1" in page.get_by_role("alert").first.inner_text()
    field = step.get_by_label("Then until local time (HH:MM)")
    assert field.get_attribute("aria-invalid") == "true" and field.input_value() == "25:00"
    field.fill("10:00")
    field.press("Enter")  # submits the step's form
    page.wait_for_url(re.compile(r"/edit\?saved=new-version#step-day$"))
    assert page.get_by_role("status").inner_text() == "Saved as a new version. Version 2."

    page.get_by_role("link", name="Back to the flow diagram").click()
    expect(page.locator("#node-day")).to_contain_text("at 10:00")
    assert page.get_by_role("button", name="Move onto version 2").is_visible()
    page.get_by_role("link", name="Funnel and money report").click()
    expect(page.locator("[data-chart][data-drawn] svg")).to_have_count(2)
    assert page.get_by_role("heading", name="Against the source's benchmarks").is_visible()
