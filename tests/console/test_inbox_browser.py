"""The inbox in two real browsers (Playwright, Debian's chromium; two browser contexts: two operators with their
own sessions) against the console served by uvicorn: a customer's Telegram message posted to the real webhook
endpoint appears in the first operator's list without a reload; the operator answers (the reply reaches the local
Telegram server through the outbox and the worker), assigns the dialog to the second operator, whose open list
shows it without a reload. Accessibility (axe-core) in English and Russian; the channel chart draws."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from retento.bootstrap import App, bootstrap
from retento.core.clock import FrozenClock
from retento.core.config import Settings
from retento.messaging.wiring import configure
from tests import factories as f
from tests.console.browser import Server
from tests.console.conftest import add_user, browser_sign_in
from tests.console.test_browser import AXE
from tests.inbox import helpers as h, payloads as pl
from tests.inbox.conftest import TG_SECRET
from tests.messaging.conftest import http_providers, settings_for, smtp_server  # noqa: F401 - fixtures

pytestmark = pytest.mark.browser
HOOK = {"X-Telegram-Bot-Api-Secret-Token": TG_SECRET, "Content-Type": "application/json"}


@pytest.fixture
def shop(sqlite_template: Path, tmp_path: Path, http_providers, smtp_server) -> Iterator[tuple[App, Server]]:  # noqa: F811
    path = tmp_path / "inbox.db"
    shutil.copy(sqlite_template, path)
    app = bootstrap(Settings(database_url=f"sqlite:///{path}", console_password_time_cost=1,
                             console_password_memory_kib=64), clock=FrozenClock("2026-03-02T09:00:00+00:00"))
    for v in http_providers.state.sent.values():
        v.clear()
    configure(app, settings_for(http_providers, smtp_server, telegram_webhook_secret=TG_SECRET))
    f.site(app, name="Uyut")
    customer = f.customer(app, first_name="Mario", last_name="Bros", telegram_id="5551234")
    f.order(app, number="A-1001", customer={"id": customer})
    for email, role, locale in (("anna@example.com", "operator", "en"), ("boris@example.com", "operator", "en"),
                                ("viewer@example.com", "viewer", "en"), ("ru@example.com", "admin", "ru")):
        add_user(app, email, role, locale=locale)
    server = Server(app).start()
    yield app, server
    server.stop()
    app.messaging.close()
    app.close()


def open_inbox(page, path: str = "/inbox") -> None:  # noqa: ANN001
    """Open the inbox and wait until its live stream is connected (the stream starts from now)."""
    with page.expect_response(lambda r: "/inbox/stream" in r.url):
        page.goto(path)


def axe_violations(page) -> list:  # noqa: ANN001
    """Serious and critical axe-core findings (the page keeps its live stream open: no network idle to wait for)."""
    page.wait_for_load_state("load")
    page.evaluate(AXE)
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3]) for v in result["violations"]
            if v["impact"] in ("serious", "critical")]


def test_two_operators_a_live_message_a_reply_and_a_handover(browser, shop, http_providers) -> None:  # noqa: ANN001, F811
    app, server = shop
    anna_ctx = browser.new_context(base_url=server.url, locale="en-US")
    boris_ctx = browser.new_context(base_url=server.url, locale="en-US")
    try:
        anna, boris = anna_ctx.new_page(), boris_ctx.new_page()
        for pg in (anna, boris):
            pg.set_default_timeout(15_000)
        browser_sign_in(anna, "anna@example.com")
        browser_sign_in(boris, "boris@example.com")
        open_inbox(anna)
        open_inbox(boris, "/inbox?state=all&who=me")  # his dialogs in every state
        assert anna.get_by_text("No dialogs here.").is_visible() and boris.get_by_text("No dialogs here.").is_visible()
        anna.evaluate("window.notReloaded = true")
        boris.evaluate("window.notReloaded = true")

        # the customer writes: the real webhook endpoint, as Telegram calls it
        sent_at = time.monotonic()
        answer = httpx.post(f"{server.url}/api/v1/messaging/webhooks/telegram", headers=HOOK, timeout=15,
                            content=pl.tg_update(1, message=pl.tg_message(10, "Where is my sofa?")))
        assert answer.status_code == 200
        item = anna.locator("#dialog-list a", has_text="Mario Bros")
        item.wait_for()
        seen_after = time.monotonic() - sent_at
        assert anna.evaluate("window.notReloaded") is True, "the list was refreshed in place, not reloaded"
        assert "1" in item.locator(".badge").inner_text()  # one unread message
        assert boris.locator("#dialog-list a", has_text="Mario Bros").count() == 0  # not his (yet)

        # Anna opens it, with the customer's card and orders beside the conversation, and answers
        item.click()
        anna.wait_for_url("**/inbox?*dialog=*")
        conversation = anna.locator("#conversation")
        assert conversation.get_by_text("Where is my sofa?").is_visible()
        assert anna.locator("aside.customer").get_by_role("link", name="A-1001").is_visible()
        assert anna.locator("aside.customer").get_by_role("link", name="Mario Bros").is_visible()
        anna.get_by_label("Reply to the customer").fill("It leaves the warehouse today.")
        anna.get_by_role("button", name="Send").click()
        anna.wait_for_url("**saved=1*")
        assert anna.locator("li.msg.out").get_by_text("It leaves the warehouse today.").is_visible()
        h.drain(app)  # the worker sends the outbox: the local Telegram server receives the reply
        (out,) = http_providers.sent("telegram")
        assert out["chat_id"] == "5551234" and out["body"]["text"] == "It leaves the warehouse today."

        # ... and hands the dialog over to Boris, whose list of his dialogs shows it without a reload
        anna.get_by_text("Note, assignment, state, tags").click()
        anna.get_by_label("Assignee").select_option(label="boris@example.com")
        anna.get_by_role("button", name="Assign").click()
        anna.wait_for_url("**saved=1*")
        mine = boris.locator("#dialog-list a", has_text="Mario Bros")
        mine.wait_for()
        assert boris.evaluate("window.notReloaded") is True
        mine.click()
        boris.wait_for_url("**dialog=*")
        assert boris.locator("#dialog-assignee").inner_text() == "boris@example.com"
        assert boris.locator("li.msg.out").get_by_text("It leaves the warehouse today.").is_visible()
        assert boris.locator("li.msg.out .status").inner_text() == "Sent"

        # a second customer message reaches Boris's open conversation without a reload
        boris.evaluate("window.notReloaded = true")
        httpx.post(f"{server.url}/api/v1/messaging/webhooks/telegram", headers=HOOK, timeout=15,
                   content=pl.tg_update(2, message=pl.tg_message(11, "Thank you!")))
        boris.locator("#conversation").get_by_text("Thank you!").wait_for()
        assert boris.evaluate("window.notReloaded") is True
        print(f"first message on the operator's screen {seen_after:.2f} s after the webhook")
    finally:
        anna_ctx.close()
        boris_ctx.close()


@pytest.mark.parametrize("email", ["anna@example.com", "ru@example.com"])
def test_inbox_pages_are_accessible_in_both_languages(browser, shop, email: str) -> None:  # noqa: ANN001
    app, server = shop
    httpx.post(f"{server.url}/api/v1/messaging/webhooks/telegram", headers=HOOK, timeout=15,
               content=pl.tg_update(1, message=pl.tg_message(10, "Hello", reply_to_message=pl.tg_message(9, "Hi"))))
    context = browser.new_context(base_url=server.url, locale="en-US")
    try:
        page = context.new_page()
        page.set_default_timeout(15_000)
        browser_sign_in(page, email)
        open_inbox(page)
        page.locator("ul.dialog-list a").first.click()
        page.wait_for_url("**dialog=*")
        assert page.get_by_role("heading", level=1).inner_text() == ("Входящие" if email.startswith("ru") else "Inbox")
        assert axe_violations(page) == []
        page.goto("/inbox/report")
        page.wait_for_selector("[data-chart][data-drawn] svg")
        assert axe_violations(page) == []
    finally:
        context.close()


def test_a_viewer_reads_without_forms(browser, shop) -> None:  # noqa: ANN001
    app, server = shop
    httpx.post(f"{server.url}/api/v1/messaging/webhooks/telegram", headers=HOOK, timeout=15,
               content=pl.tg_update(1, message=pl.tg_message(10, "Hello")))
    context = browser.new_context(base_url=server.url, locale="en-US")
    try:
        page = context.new_page()
        browser_sign_in(page, "viewer@example.com")
        open_inbox(page)
        page.locator("ul.dialog-list a").first.click()
        page.wait_for_url("**dialog=*")
        assert page.locator("#conversation").get_by_text("Hello").is_visible()
        assert page.get_by_role("button", name="Send").count() == 0
    finally:
        context.close()
