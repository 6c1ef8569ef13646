"""In a real browser: a marketer builds an email -> WhatsApp cascade, sends it to a segment and reads its report,
while the test drives the worker with explicit ticks against the local SMTP and WhatsApp servers."""

from __future__ import annotations

import pytest

from retento.core.db.transactions import transaction
from retento.messaging import service, statuses
from retento.messaging.schemas import PolicyIn, PriceIn, TemplateIn
from retento.messaging.wiring import configure
from retento.segments import service as segments
from retento.segments.schemas import SegmentCreate
from tests import factories as f
from tests.console.browser import Server, shop_app
from tests.console.conftest import browser_sign_in
from tests.messaging import helpers as h
from tests.messaging.conftest import http_providers, settings_for, smtp_server  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def messaging_shop(sqlite_template, tmp_path_factory, http_providers, smtp_server):  # noqa: ANN001, ANN201, F811
    app = shop_app(sqlite_template, tmp_path_factory.mktemp("console-messages"))
    configure(app, settings_for(http_providers, smtp_server))
    now = app.clock.now()
    with transaction(app.sessions) as s:
        for channel, price in (("email", "0.03"), ("whatsapp", "5.6")):
            service.set_price(s, site="uyut", channel=channel, data=PriceIn(price=price, currency="RUB"), now=now)
        service.set_policy(s, site="uyut", data=PolicyIn(quiet_start=None, quiet_end=None), now=now)
    for i in range(4):
        f.customer(app, site="uyut", first_name=f"Promo{i}", email=f"promo{i}@example.com", phone=f"+7916555000{i}",
                   tags=["promo"], consents={ch: {"granted": True, "source": "checkout"} for ch in ("email", "whatsapp")})
    for channel in ("email", "whatsapp"):
        with transaction(app.sessions) as s:
            service.save_template(s, data=TemplateIn(
                site="uyut", name="promo", channel=channel, language="ru", body="Скидка для {{ customer.first_name }}",
                subject="Скидка" if channel == "email" else None), now=now)
    with transaction(app.sessions) as s:
        segments.create(s, data=SegmentCreate(site="uyut", code="promo", name="Promo",
                                              rules={"tags": {"any": ["promo"]}}), now=now)
    server = Server(app).start()
    yield app, server
    server.stop()
    app.close()


def test_a_marketer_builds_an_email_then_whatsapp_cascade_to_a_segment_and_reads_its_report(
        browser, messaging_shop, smtp_server) -> None:  # noqa: ANN001, F811
    app, server = messaging_shop
    context = browser.new_context(base_url=server.url, locale="en-US")
    page = context.new_page()
    page.set_default_timeout(15_000)
    browser_sign_in(page, "marketer@example.com")
    page.goto("/messages/campaigns?site=uyut")
    page.get_by_label("Name", exact=True).fill("Promo cascade")
    step1 = page.get_by_role("group", name="Step 1")
    step1.get_by_label("Channel").select_option("email")
    step1.get_by_label("Template").select_option("promo")
    step1.get_by_label("Waiting window, hours").fill("2")
    step2 = page.get_by_role("group", name="Step 2")
    step2.get_by_label("Channel").select_option("whatsapp")
    step2.get_by_label("Template").select_option("promo")
    page.get_by_role("button", name="Create cascade").click()
    page.wait_for_url("**saved=1**")
    assert "Promo cascade" in page.locator("#cascades-title + table").inner_text()

    page.get_by_label("Campaign name").fill("Promo December")
    page.get_by_role("radio", name="Segment").check()
    page.get_by_role("combobox", name="Segment").select_option("promo")
    page.get_by_role("button", name="Send", exact=True).click()
    page.wait_for_url("**/messages/campaigns/*")

    smtp_server.messages.clear()
    h.drain(app)  # the campaign starts and the emails go out
    assert len(smtp_server.messages) == 4
    emails = h.messages(app, channel="email")
    with transaction(app.sessions) as s:  # one customer opens the email
        statuses.record(s, updates=[statuses.Update(emails[0].id, "read", app.clock.now())], now=app.clock.now())
    app.clock.advance(hours=3)
    h.drain(app)  # WhatsApp to the three who did not read
    page.reload()
    table = page.locator("#by-channel")
    assert table.locator("tr", has_text="Email").locator("td").nth(0).inner_text() == "4"
    assert table.locator("tr", has_text="Email").locator("td").nth(2).inner_text() == "1"
    assert table.locator("tr", has_text="WhatsApp").locator("td").nth(0).inner_text() == "3"
    assert "16.92" in page.locator("#total-cost").inner_text()  # 4 × 0.03 + 3 × 5.6
    assert "5.48" in page.locator("#saving").inner_text()  # 4 × 5.6 − 16.92
    page.wait_for_selector("[data-chart='counts-data'][data-drawn] svg")
    page.wait_for_selector("[data-chart='cost-data'][data-drawn] svg")
    context.close()
