"""A cascade end to end through the real local providers: email first, WhatsApp only if the email is not read."""

import re
from datetime import timedelta

from tests.messaging import helpers as h, providers as p


def _setup(app):
    h.setup_site(app)
    h.template(app, "bonus", "email")
    h.template(app, "bonus", "whatsapp", body="Анна, у вас 350 бонусов")
    return h.cascade(app, [("email", "bonus", 24), ("whatsapp", "bonus", 24)])


def test_email_with_parts_headers_pixel_and_click_tracking(mapp, client, smtp_server):
    cid = _setup(mapp)
    anna = h.customer(mapp, channels=("email", "whatsapp"))
    h.start(mapp, cid, anna, context={"loyalty": {"balance": "350"}})
    h.drain(mapp)
    (mail,) = smtp_server.messages
    msg = smtp_server.parsed(0)
    assert mail["to"] == ["anna@example.com"]
    assert mail["from"].startswith("news+bounce-") and mail["from"].endswith("@shop.example")
    assert msg["Subject"] == "Бонусы для Анна"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsub = re.search(r"<(http://testserver/api/v1/messaging/u/[^>]+)>", msg["List-Unsubscribe"]).group(1)
    assert "<mailto:unsubscribe@shop.example?subject=unsubscribe-" in msg["List-Unsubscribe"]
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert "Здравствуйте, Анна! Баланс: 350" in text
    pixel = re.search(r'src="http://testserver(/api/v1/messaging/o/[^"]+\.gif)"', html).group(1)
    click = re.search(r'href="http://testserver(/api/v1/messaging/c/[^"]+)"', html).group(1).replace("&amp;", "&")

    (email,) = h.messages(mapp)
    assert (email.status, str(email.cost), email.currency) == ("sent", "0.0300", "RUB")

    r = client.get(click, follow_redirects=False)
    assert r.status_code == 302 and r.headers["location"] == "https://shop.example/bonus?a=1&b=2"
    assert client.get(click.replace("&s=", "&s=x"), follow_redirects=False).status_code == 400  # no open redirect
    assert client.get(pixel).headers["content-type"] == "image/gif"
    (email,) = h.messages(mapp)
    assert email.status == "clicked" and email.read_at is not None and email.clicked_at is not None
    timeline = client.get(f"/api/v1/messaging/messages/{email.id}").json()["timeline"]
    assert [t["status"] for t in timeline] == ["queued", "sent", "delivered", "read", "clicked"]

    mapp.clock.advance(hours=25)
    h.drain(mapp)
    assert [m.channel for m in h.messages(mapp)] == ["email"]  # left the cascade on the click

    # one-click unsubscribe (RFC 8058): a POST with List-Unsubscribe=One-Click withdraws email consent
    r = client.post(unsub.removeprefix("http://testserver"), content="List-Unsubscribe=One-Click",
                    headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200
    h.start(mapp, cid, anna, idempotency_key="second")
    h.drain(mapp)
    assert [m.channel for m in h.messages(mapp)] == ["email", "whatsapp"]  # no email without consent
    assert len(smtp_server.messages) == 1


def test_whatsapp_goes_only_to_who_did_not_read_and_statuses_come_by_webhook(mapp, client, http_providers):
    cid = _setup(mapp)
    reader = h.customer(mapp, external_id="r", channels=("email", "whatsapp"))
    other = h.customer(mapp, external_id="o", channels=("email", "whatsapp"), phone="+79161234568")
    rr, ro = h.start(mapp, cid, reader), h.start(mapp, cid, other)
    h.drain(mapp)
    mail_reader = h.messages(mapp, customer_id=reader)[0]
    from retento.messaging.tracking import token
    client.get(f"/api/v1/messaging/o/{token('s3cret', mail_reader.id)}.gif")
    assert h.run(mapp, rr).outcome == "read"

    mapp.clock.advance(hours=23)
    h.drain(mapp)
    assert http_providers.sent("whatsapp") == []  # window still open
    mapp.clock.advance(hours=2)
    h.drain(mapp)
    (wa,) = http_providers.sent("whatsapp")
    assert wa["to"] == "79161234568" and wa["body"]["type"] == "text"
    assert wa["body"]["text"]["body"] == "Анна, у вас 350 бонусов"
    msg = h.messages(mapp, channel="whatsapp")[0]
    assert msg.provider_id == wa["id"] and msg.status == "sent" and str(msg.cost) == "5.6000"

    body = p.whatsapp_statuses([{"id": wa["id"], "status": "delivered", "to": wa["to"]},
                                {"id": wa["id"], "status": "read", "to": wa["to"]}])
    bad = client.post("/api/v1/messaging/webhooks/whatsapp", content=body,
                      headers={"X-Hub-Signature-256": p.meta_signature(body, "wrong")})
    assert bad.status_code == 401
    assert h.messages(mapp, channel="whatsapp")[0].status == "sent"  # nothing stored
    for _ in range(2):  # a replayed webhook changes nothing
        r = client.post("/api/v1/messaging/webhooks/whatsapp", content=body,
                        headers={"X-Hub-Signature-256": p.meta_signature(body)})
        assert r.status_code == 200
        msg = h.messages(mapp, channel="whatsapp")[0]
        assert msg.status == "read" and msg.delivered_at is not None
    assert h.run(mapp, ro).outcome == "read"


def test_webhook_verification_handshake(client):
    r = client.get("/api/v1/messaging/webhooks/whatsapp",
                   params={"hub.mode": "subscribe", "hub.verify_token": "verify-me", "hub.challenge": "1158201444"})
    assert r.status_code == 200 and r.text == "1158201444"
    r = client.get("/api/v1/messaging/webhooks/whatsapp",
                   params={"hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "1"})
    assert r.status_code == 403


def test_step_skipped_without_contact_and_failure_goes_on_at_once(mapp, http_providers):
    cid = _setup(mapp)
    no_email = h.customer(mapp, email=None, channels=("email", "whatsapp"))
    rid = h.start(mapp, cid, no_email)
    h.drain(mapp)
    assert [m.channel for m in h.messages(mapp)] == ["whatsapp"]  # email skipped, WhatsApp at once
    bounce = h.customer(mapp, external_id="b", email="bounce@example.com", whatsapp_id="+79990000000",
                        channels=("email", "whatsapp"))
    rb = h.start(mapp, cid, bounce)
    h.drain(mapp)
    mails = h.messages(mapp, customer_id=bounce)
    assert mails[0].status == "failed" and mails[0].reason.startswith("bounced: 550")
    assert mails[1].channel == "whatsapp" and mails[1].status == "failed"
    assert "131026" in mails[1].reason
    assert h.run(mapp, rb).outcome == "exhausted"
    mapp.clock.advance(timedelta(hours=25))
    h.drain(mapp)
    assert h.run(mapp, rid).outcome == "exhausted"
