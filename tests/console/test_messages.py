"""Console Messages pages over HTTP: templates saved and previewed per channel and language for a real customer,
channel prices and policy, a cascade built and sent to a segment, and its report after real sends through the
local SMTP and WhatsApp servers (worker driven by explicit ticks, clock moved by hand)."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from retento.core.db.transactions import transaction
from retento.messaging import statuses
from retento.messaging.wiring import configure
from retento.segments import service as segments
from retento.segments.schemas import SegmentCreate
from tests import factories as f
from tests.console.conftest import World, sign_in
from tests.messaging import helpers as h
from tests.messaging.conftest import http_providers, settings_for, smtp_server  # noqa: F401 (fixtures)

HX = {"HX-Request": "true", "HX-Target": "preview"}


def _template(client: TestClient, csrf: str, **form: str) -> int:
    data = {"csrf_token": csrf, "site": "north", "language": "ru", **form}
    answer = client.post("/messages/templates", data=data)
    assert answer.status_code == 303, answer.text
    return int(re.search(r"/messages/templates/(\d+)", answer.headers["location"]).group(1))


def _customer(world: World, name: str, email: str, phone: str, **kw: object) -> int:
    return f.customer(world.app, site="north", first_name=name, email=email, phone=phone, tags=["vip"],
                      consents={ch: {"granted": True, "source": "checkout"} for ch in ("email", "whatsapp")}, **kw)


def test_templates_are_saved_refused_when_broken_and_previewed_per_channel_and_language(world, client) -> None:
    csrf = sign_in(client, "marketer@example.com")
    anna = _customer(world, "Анна", "anna@example.com", "+79161234567")
    email_ru = _template(client, csrf, name="points", channel="email", subject="{{ customer.first_name }}, бонусы",
                         body="Здравствуйте, {{ customer.first_name }}!", html="<p>Привет, {{ customer.first_name }}</p>")
    _template(client, csrf, name="points", channel="email", language="en", subject="Points, {{ customer.first_name }}",
              body="Hello {{ customer.first_name }}")
    _template(client, csrf, name="points", channel="whatsapp", body="{{ customer.first_name }}\n350")

    listing = client.get("/messages?site=north")
    assert listing.status_code == 200 and len(re.findall(r'href="/messages/templates/\d+"', listing.text)) == 3

    preview = client.get(f"/messages/templates/{email_ru}?customer_id={anna}", headers=HX)
    assert preview.status_code == 200 and "<h1" not in preview.text  # the fragment alone
    assert "Анна, бонусы" in preview.text and "Points, Анна" in preview.text and "Анна\n350" in preview.text
    assert 'srcdoc="&lt;p&gt;Привет, Анна&lt;/p&gt;"' in preview.text  # HTML shown in a sandboxed frame
    sample = client.get(f"/messages/templates/{email_ru}")  # no customer: the sample one
    assert "Здравствуйте, Анна!" in sample.text

    other_site = f.customer(world.app, site="south", first_name="Eve")
    wrong = client.get(f"/messages/templates/{email_ru}?customer_id={other_site}", headers=HX)
    assert "customer_id" in wrong.text and "not found on the template" in wrong.text
    assert "customer_id" in client.get(f"/messages/templates/{email_ru}?customer_id=abc", headers=HX).text

    broken = client.post("/messages/templates", data={"csrf_token": csrf, "site": "north", "name": "points",
                                                      "channel": "email", "language": "ru", "subject": "x",
                                                      "body": "{{ customer.nope }"})
    assert broken.status_code == 400 and "<code translate=\"no\">body</code>" in broken.text
    no_subject = client.post("/messages/templates", data={"csrf_token": csrf, "site": "north", "name": "n",
                                                          "channel": "email", "body": "x"})
    assert no_subject.status_code == 400 and "subject" in no_subject.text
    assert client.get("/messages/templates/999999").status_code == 404


def test_channel_prices_and_policy_are_set_through_the_service(world, client) -> None:
    csrf = sign_in(client, "marketer@example.com")
    answer = client.post("/messages/channels/prices", data={"csrf_token": csrf, "site": "north", "currency": "RUB",
                                                            "email_price": "0.03", "email_read_rate": "0.2",
                                                            "whatsapp_price": "5.6"})
    assert answer.status_code == 303
    answer = client.post("/messages/channels/policy", data={"csrf_token": csrf, "site": "north", "quiet_start": "22:00",
                                                            "quiet_end": "08:30", "cap_count": "2",
                                                            "cap_period_hours": "48", "default_language": "en"})
    assert answer.status_code == 303
    page = client.get("/messages/channels?site=north").text
    for shown in ('value="0.0300"', 'value="0.2000"', 'value="5.6000"', 'value="22:00"', 'value="08:30"',
                  'value="2"', 'value="48"', 'value="en"'):
        assert shown in page, shown

    bad = client.post("/messages/channels/prices", data={"csrf_token": csrf, "site": "north", "currency": "RUB",
                                                         "sms_price": "-1", "vk_read_rate": "2", "vk_price": "1"})
    assert bad.status_code == 400 and "sms.price" in bad.text and "vk.expected_read_rate" in bad.text
    bad = client.post("/messages/channels/policy", data={"csrf_token": csrf, "site": "north", "quiet_start": "25:00",
                                                         "quiet_end": "08:00"})
    assert bad.status_code == 400 and "quiet_start" in bad.text
    none = client.post("/messages/channels/policy", data={"csrf_token": csrf, "site": "north", "cap_period_hours": "24"})
    assert none.status_code == 303  # no quiet hours, no cap
    assert 'id="cap_count" name="cap_count" type="number" min="1" value=""' in client.get("/messages/channels").text


def test_a_cascade_sent_to_a_segment_reports_sends_reads_cost_and_the_saving(world, client, http_providers,  # noqa: F811
                                                                              smtp_server) -> None:  # noqa: F811
    app = world.app
    configure(app, settings_for(http_providers, smtp_server))
    smtp_server.messages.clear()
    csrf = sign_in(client, "marketer@example.com")
    client.post("/messages/channels/prices", data={"csrf_token": csrf, "site": "north", "currency": "RUB",
                                                   "email_price": "0.03", "whatsapp_price": "5.6"})
    client.post("/messages/channels/policy", data={"csrf_token": csrf, "site": "north", "cap_period_hours": "24"})
    _template(client, csrf, name="points", channel="email", subject="Бонусы", body="Здравствуйте!")
    _template(client, csrf, name="points", channel="whatsapp", body="Бонусы")
    for i in range(5):
        _customer(world, f"C{i}", f"c{i}@example.com", f"+7916123450{i}")
    f.customer(world.app, site="north", first_name="Not VIP", email="x@example.com")
    with transaction(app.sessions) as s:
        segments.create(s, data=SegmentCreate(site="north", code="vip", name="VIP",
                                              rules={"tags": {"any": ["vip"]}}), now=app.clock.now())

    step = {"step0_channel": "email", "step0_template": "points", "step0_wait_hours": "2", "step0_go_on": "not_read",
            "step1_channel": "whatsapp", "step1_template": "points", "step1_wait_hours": "24"}
    bad = client.post("/messages/cascades", data={"csrf_token": csrf, "site": "north", "name": "Bonus",
                                                  **step, "step1_template": "nope"})
    assert bad.status_code == 400 and "steps.1.template" in bad.text
    made = client.post("/messages/cascades", data={"csrf_token": csrf, "site": "north", "name": "Bonus", **step})
    assert made.status_code == 303
    page = client.get("/messages/campaigns?site=north").text
    cascade_id = re.search(r'name="cascade_id"><option value="(\d+)"', page).group(1)

    no_segment = client.post("/messages/campaigns", data={"csrf_token": csrf, "site": "north", "name": "x",
                                                          "cascade_id": cascade_id, "audience": "segment"})
    assert no_segment.status_code == 400 and "segment" in no_segment.text
    bad_rule = client.post("/messages/campaigns", data={"csrf_token": csrf, "site": "north", "name": "x",
                                                        "cascade_id": cascade_id, "audience": "rules",
                                                        "rules": '{"tags": {"some": 1}}'})
    assert bad_rule.status_code == 400 and "rules.tags" in bad_rule.text
    sent = client.post("/messages/campaigns", data={"csrf_token": csrf, "site": "north", "name": "December",
                                                    "cascade_id": cascade_id, "audience": "segment",
                                                    "segment": "vip"})
    assert sent.status_code == 303
    report_url = sent.headers["location"]

    h.drain(app)
    assert len(smtp_server.messages) == 5
    emails = h.messages(app, channel="email")
    with transaction(app.sessions) as s:  # two customers open the email
        statuses.record(s, updates=[statuses.Update(m.id, "read", app.clock.now()) for m in emails[:2]],
                        now=app.clock.now())
    app.clock.advance(hours=3)
    h.drain(app)
    assert len(h.messages(app, channel="whatsapp")) == 3

    report = client.get(report_url)
    assert report.status_code == 200
    rows = {m.group(1): m.group(2) for m in re.finditer(r'<th scope="row">([^<]+)</th>(.*?)</tr>', report.text, re.S)}
    cells = {k: re.findall(r'<td class="num">([^<]*)</td>', v) for k, v in rows.items()}
    assert cells["Email"][0] == "5" and cells["Email"][2] == "2" and cells["WhatsApp"][0] == "3"
    # cost 5 × 0.03 + 3 × 5.6 = 16.95; WhatsApp to all 5 = 28.00; saving 11.05
    assert "16.95" in re.search(r'id="total-cost">([^<]+)<', report.text).group(1)
    assert "11.05" in re.search(r'id="saving">([^<]+)<', report.text).group(1)
    assert 'data-chart="counts-data"' in report.text and '"name": "Sent"' in report.text
    listing = client.get("/messages/campaigns?site=north").text
    assert "December" in listing and "16.95" in listing
    savings = client.get("/dashboard/savings")  # the dashboard reads the same report (read-only session)
    assert savings.status_code == 200 and "11.05" in savings.text
    app.messaging.close()


def test_a_viewer_reads_the_pages_without_forms_that_change_data(world, client) -> None:
    csrf = sign_in(client, "marketer@example.com")
    tid = _template(client, csrf, name="points", channel="sms", body="Hi")
    client.cookies.clear()
    sign_in(client, "viewer@example.com")
    for path in ["/messages", f"/messages/templates/{tid}", "/messages/campaigns", "/messages/channels"]:
        page = client.get(path)
        assert page.status_code == 200, path
        assert re.findall(r'<form[^>]*method="post"[^>]*action="([^"]+)"', page.text) == ["/signout"], path
