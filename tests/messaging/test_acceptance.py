"""The seed scenario (PRODUCT.md section 4): 50,000 members, email at 0.03 RUB with 20% read, WhatsApp at
5.6 RUB with 90% read. Reads arrive the way they do in production: email opens through the tracking pixel,
WhatsApp reads through signed Cloud API status webhooks."""

import time
from decimal import Decimal
from email import message_from_bytes

import pytest

from retento.core.db.transactions import transaction
from retento.customers import service as customers
from retento.messaging import service
from retento.messaging.schemas import CampaignIn
from tests import factories as f
from tests.messaging import helpers as h, providers as p

N = 50_000


def _members(app) -> list[int]:
    ids = []
    consents = {"email": {"granted": True, "source": "loyalty"}, "whatsapp": {"granted": True, "source": "loyalty"}}
    with transaction(app.sessions) as s:
        proto = customers.parse_create(s, {"site": "shop", "first_name": "Member", "email": "m@example.com",
                                           "phone": "+79160000000", "consents": consents})
        for start in range(0, N, 5000):  # validated once; copies differ only in (already normal) contacts
            items = [proto.model_copy(update={"email": f"m{i}@example.com", "phone": f"+7916{1_000_000 + i:07d}"})
                     for i in range(start, start + 5000)]
            ids += [c.id for c in customers.create_many(s, items=items, ctx=f.API, now=app.clock.now())]
    return ids


def _html(raw: bytes) -> str:
    for part in message_from_bytes(raw).walk():
        if part.get_content_type() == "text/html":
            return part.get_payload(decode=True).decode()
    raise AssertionError("no HTML part")


@pytest.mark.slow  # 50,000 members: minutes
def test_seed_scenario_cascade_saves_what_the_source_says(mapp, client, smtp_server, http_providers):
    t0 = time.monotonic()
    h.setup_site(mapp, prices={"email": "0.03", "whatsapp": "5.6"})
    h.template(mapp, "points", "email", language="ru")
    h.template(mapp, "points", "whatsapp", language="ru", body="У вас {{ loyalty.balance }} бонусов",
               provider_template="loyalty_points")
    cascade_id = h.cascade(mapp, [("email", "points", 24), ("whatsapp", "points", 24)])
    ids = _members(mapp)
    with transaction(mapp.sessions) as s:
        camp = service.create_campaign(s, data=CampaignIn(cascade_id=cascade_id, name="Loyalty, November",
                                                          customer_ids=ids), now=mapp.clock.now())
    t_setup = time.monotonic()
    print(f"\nsetup {t_setup - t0:.1f}s", flush=True)
    h.drain(mapp, limit=1000)
    assert len(smtp_server.messages) == N
    t_email = time.monotonic()
    print(f"email {t_email - t_setup:.1f}s", flush=True)

    # 20% open the email: their client loads the pixel from the HTML it received
    for i in range(0, N, 5):
        html = _html(smtp_server.messages[i]["raw"])
        pixel = html[html.index("/api/v1/messaging/o/"):html.index('.gif"') + 4]
        assert client.get(pixel).status_code == 200
    t_open = time.monotonic()
    print(f"opens {t_open - t_email:.1f}s", flush=True)

    mapp.clock.advance(hours=25)
    h.drain(mapp, limit=1000)
    sent = http_providers.sent("whatsapp")
    assert len(sent) == 40_000 and all(m["body"]["type"] == "template" for m in sent)
    t_wa = time.monotonic()
    print(f"whatsapp {t_wa - t_open:.1f}s", flush=True)

    # WhatsApp reports delivered for all, read for 90%, in batched signed webhooks
    for status, share in (("delivered", sent), ("read", [m for i, m in enumerate(sent) if i % 10])):
        for i in range(0, len(share), 1000):
            body = p.whatsapp_statuses([{"id": m["id"], "status": status, "to": m["to"]} for m in share[i:i + 1000]])
            r = client.post("/api/v1/messaging/webhooks/whatsapp", content=body,
                            headers={"X-Hub-Signature-256": p.meta_signature(body)})
            assert r.status_code == 200
    mapp.clock.advance(hours=25)
    h.drain(mapp, limit=1000)
    t_hooks = time.monotonic()

    rep = client.get(f"/api/v1/messaging/campaigns/{camp.id}/report").json()
    ch = {c["channel"]: c for c in rep["channels"]}
    assert rep["members"] == N and rep["currency"] == "RUB"
    assert (ch["email"]["sent"], ch["email"]["read"], Decimal(ch["email"]["cost"])) == (N, 10_000, Decimal("1500.00"))
    assert ch["email"]["delivered"] is None  # SMTP acceptance is not delivery: "not reported"
    assert Decimal(ch["email"]["cost_per_read"]) == Decimal("0.15")
    assert (ch["whatsapp"]["sent"], ch["whatsapp"]["delivered"], ch["whatsapp"]["read"]) == (40_000, 40_000, 36_000)
    assert Decimal(ch["whatsapp"]["cost"]) == Decimal("224000.00")
    assert Decimal(ch["whatsapp"]["cost_per_read"]) == Decimal("6.22")
    assert rep["most_expensive_channel"] == "whatsapp"
    assert Decimal(rep["baseline_cost"]) == Decimal("280000.00")
    assert Decimal(rep["gross_saving"]) == Decimal("56000.00")
    assert Decimal(rep["net_saving"]) == Decimal("54500.00")
    assert rep["outcomes"] == {"read": 46_000, "exhausted": 4_000}
    assert client.get(f"/api/v1/messaging/cascades/{cascade_id}/report").json()["net_saving"] == rep["net_saving"]
    print(f"\nsetup {t_setup - t0:.1f}s, email {t_email - t_setup:.1f}s, opens {t_open - t_email:.1f}s, "
          f"whatsapp {t_wa - t_open:.1f}s, webhooks {t_hooks - t_wa:.1f}s")
