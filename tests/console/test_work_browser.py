"""An admin in the browser: the work queues with their counts, a queue's dead letters, one retried and one dropped
after its confirmation page."""

from __future__ import annotations

import pytest

from tests.console.conftest import browser_sign_in

pytestmark = pytest.mark.browser


def test_an_admin_retries_one_dead_letter_and_drops_another(page) -> None:  # noqa: ANN001
    browser_sign_in(page, "admin@example.com")
    page.goto("/admin/users")
    page.get_by_role("link", name="Work queues").click()
    row = page.locator("tr", has_text="webhook deliveries")
    assert row.locator("td.num.error").inner_text() == "2"  # two dead letters
    page.get_by_role("link", name="webhooks", exact=True).click()
    rows = page.locator("tbody tr[id^=row-]")
    assert rows.count() == 2 and "does not resolve" in rows.first.inner_text()
    first, second = (r.get_attribute("id").removeprefix("row-") for r in rows.all())
    page.get_by_role("button", name=f"Retry {first}").click()
    assert page.get_by_role("status").inner_text().endswith(f"#{first}")
    page.get_by_role("link", name=f"Drop {second}").click()
    assert page.get_by_role("heading", name="Drop dead work?").is_visible()
    page.get_by_role("link", name="Cancel").click()
    assert page.locator(f"#row-{second}").is_visible()  # cancelled: still there
    page.get_by_role("link", name=f"Drop {second}").click()
    page.get_by_role("button", name="Drop for good").focus()
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/admin/work/webhooks?dropped={second}")
    assert page.locator("tbody tr[id^=row-]").count() == 0
