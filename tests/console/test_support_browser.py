"""The support pages in a real browser (Playwright, Debian's chromium, the real e5 embedder): an admin imports a
small synthetic set through the imports page, opens a ticket, sees similar tickets and a suggestion with its
sources, types in the reply box and sees the documentation links change, marks the suggestion used with the
keyboard (its text goes into the reply box), and the usage report counts it; the ticket page with the assist has
no serious accessibility violation and no English left in Russian."""

from __future__ import annotations

import json
import re

import pytest

from retento.assist import synthetic
from tests.console.conftest import browser_sign_in
from tests.console.test_browser import LATIN_LEFT, axe_violations

pytestmark = pytest.mark.browser
SET = synthetic.generate(per_topic=2, queries_per_topic=1, duplicates=0, shops_per_industry=1)
TICKET = "/support/uyut/tickets/custom-field-type-en-0"


def jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()


def import_file(page, kind: str, name: str, body: bytes, **fields: str) -> None:  # noqa: ANN001
    page.goto("/support/imports")
    page.locator("#imp-site").select_option("uyut")
    page.locator(f"input[name=kind][value={kind}]").check()
    page.locator("#imp-file").set_input_files(files=[{"name": name, "mimeType": "text/plain", "buffer": body}])
    for field, value in fields.items():
        page.locator(f"#imp-{field}").fill(value)
    page.locator('form[action="/support/imports"] button[type=submit]').click()
    page.wait_for_url(re.compile(r"/support/imports\?job="))
    assert page.locator("ul.jobs li.current .notice").count() == 1  # done, no error


def import_the_set(page) -> None:  # noqa: ANN001
    """The small synthetic set into the shared shop (once: a re-import changes nothing)."""
    if page.goto(TICKET).status == 200:
        return
    en_doc = next(d for d in SET.docs if d["path"].startswith("en/"))
    import_file(page, "tickets", "tickets.jsonl", jsonl(SET.tickets))
    import_file(page, "tasks", "tasks.jsonl", jsonl(SET.tasks))
    import_file(page, "docs", "guide.md", en_doc["content"].encode(), base=synthetic.DOCS_URL, folder="en")


def used_count(page) -> int:  # noqa: ANN001
    page.goto("/support/report?site=uyut")
    return int(page.locator("#usage-used").inner_text())


def test_import_open_a_ticket_type_and_mark_a_suggestion_used(page) -> None:  # noqa: ANN001
    browser_sign_in(page, "admin@example.com")
    import_the_set(page)
    before = used_count(page)

    page.goto("/support?q=custom")
    page.get_by_role("link", name="custom-field-type-en-0").click()
    page.wait_for_url(f"**{TICKET}")
    similar = page.locator("ol.similar > li")
    similar.first.wait_for()
    assert similar.count() == 5 and "custom-field-type-en-0" not in page.locator("ol.similar").inner_text()
    assert page.locator("ol.similar > li a").first.inner_text().startswith("custom-field-type-")
    suggestion = page.locator("#suggestion-text").inner_text()
    assert "cannot be changed" in suggestion
    assert page.locator("ul.sources li", has_text="Past ticket").count() == 1
    assert "DEV-101" in page.locator("ul.tasks").inner_text()

    box = page.get_by_label("Reply to the customer")
    box.fill("Check the tag with tags.contains in the trigger condition")
    first = page.locator("#doc-links li").first
    first.wait_for()
    assert "Checking tags in conditions" in first.inner_text()
    box.fill("The customer did not receive the password reset email")
    page.wait_for_function("""() => { const li = document.querySelector('#doc-links li');
        return li && !li.textContent.includes('Checking tags in conditions'); }""")
    assert "Checking tags in conditions" not in page.locator("#doc-links li").first.inner_text()

    page.get_by_role("button", name="Use", exact=True).focus()  # the keyboard alone
    page.keyboard.press("Enter")
    page.get_by_role("status").filter(has_text="Marked used.").wait_for()
    assert box.input_value() == suggestion.strip()
    assert axe_violations(page) == []
    assert used_count(page) == before + 1


def test_the_ticket_page_in_russian(page) -> None:  # noqa: ANN001
    browser_sign_in(page, "ru@example.com")
    import_the_set(page)
    page.goto(TICKET)
    page.locator("#assist section").first.wait_for()
    page.wait_for_load_state("networkidle")
    assert page.evaluate(LATIN_LEFT) == []
    assert axe_violations(page) == []
