"""Every channel's send against its local provider server, its errors, and its status reports."""

from urllib.parse import parse_qsl

from retento.messaging.channels import twilio
from retento.messaging.channels.twilio import segments
from retento.messaging.channels.vk import random_id
from tests.messaging import helpers as h, providers as p


def _one_step(app, channel, **tpl):
    h.setup_site(app)
    h.template(app, "t", channel, **tpl)
    return h.cascade(app, [(channel, "t", 1)])


def test_telegram_send_and_no_read_receipts(mapp, client, http_providers):
    cid = _one_step(mapp, "telegram", body="Привет, {{ customer.first_name }}")
    h.start(mapp, cid, h.customer(mapp))
    blocked = h.customer(mapp, external_id="x", telegram_id="403")
    h.start(mapp, cid, blocked)
    h.drain(mapp)
    (tg,) = http_providers.sent("telegram")
    assert tg["chat_id"] == "5551234" and tg["body"]["text"] == "Привет, Анна"
    ok, bad = h.messages(mapp)
    assert ok.status == "sent" and ok.provider_id == f"5551234:{tg['message_id']}"
    assert bad.status == "failed" and "bot was blocked by the user" in bad.reason
    rep = client.get(f"/api/v1/messaging/cascades/{cid}/report").json()
    (line,) = rep["channels"]
    assert line["read"] is None and line["delivered"] is None and line["cost_per_read"] is None  # not reported


def test_telegram_rate_limit_is_retried_after_retry_after(mapp, http_providers):
    cid = _one_step(mapp, "telegram")
    h.start(mapp, cid, h.customer(mapp, telegram_id="429"))
    h.drain(mapp)
    (msg,) = h.messages(mapp)
    assert msg.status == "queued" and msg.attempts == 1 and "429" in msg.reason
    assert (msg.not_before - mapp.clock.now()).total_seconds() == 7


def test_vk_send_read_by_callback_and_secret_check(mapp, client, http_providers):
    cid = _one_step(mapp, "vk", body="Ваши бонусы")
    anna = h.customer(mapp)
    h.start(mapp, cid, anna)
    h.start(mapp, cid, h.customer(mapp, external_id="n", vk_id="901"))
    h.drain(mapp)
    (vk,) = http_providers.sent("vk")
    assert vk["peer_id"] == "7770001" and vk["form"]["random_id"] == str(random_id("run:1:0"))
    ok, denied = h.messages(mapp)
    assert ok.provider_id == str(vk["id"]) and denied.status == "failed" and "901" in denied.reason

    assert client.post("/api/v1/messaging/webhooks/vk", json={"type": "confirmation", "group_id": 1,
                                                           "secret": "vk-secret"}).text == "c0nf1rm"
    event = {"type": "message_read", "object": {"from_id": 7770001, "peer_id": 7770001,
                                                "read_message_id": vk["id"]}, "group_id": 1, "event_id": "e1"}
    assert client.post("/api/v1/messaging/webhooks/vk", json={**event, "secret": "nope"}).status_code == 401
    assert h.messages(mapp)[0].read_at is None
    for _ in range(2):
        r = client.post("/api/v1/messaging/webhooks/vk", json={**event, "secret": "vk-secret"})
        assert r.status_code == 200 and r.text == "ok"
    assert h.messages(mapp)[0].status == "read"
    # message_deny: the user forbade messages from the community, so VK consent is withdrawn
    client.post("/api/v1/messaging/webhooks/vk", json={"type": "message_deny", "object": {"user_id": 7770001},
                                                    "group_id": 1, "secret": "vk-secret"})
    h.start(mapp, cid, anna, idempotency_key="again")
    h.drain(mapp)
    assert len(http_providers.sent("vk")) == 1


def test_sms_segments_price_and_status_callback(mapp, client, http_providers):
    h.setup_site(mapp)
    h.template(mapp, "lat", "sms", body="A" * 161)
    h.template(mapp, "cyr", "sms", body="Я" * 71)
    c1, c2 = h.cascade(mapp, [("sms", "lat", 1)]), h.cascade(mapp, [("sms", "cyr", 1)])
    anna = h.customer(mapp)
    h.start(mapp, c1, anna)
    h.start(mapp, c2, anna)
    h.start(mapp, c1, h.customer(mapp, external_id="bad", phone="+15005550001"))
    h.drain(mapp)
    lat, cyr = http_providers.sent("sms")
    assert lat["form"]["StatusCallback"] == "http://testserver/api/v1/messaging/webhooks/twilio"
    m1, m2, m3 = h.messages(mapp)
    assert (m1.units, str(m1.cost)) == (2, "7.0000")  # 161 GSM-7 chars: 2 segments of 153
    assert (m2.units, str(m2.cost)) == (2, "7.0000")  # 71 Cyrillic chars: 2 segments of 67
    assert m3.status == "failed" and "21211" in m3.reason

    url = "http://testserver/api/v1/messaging/webhooks/twilio"
    form = {"MessageSid": lat["sid"], "MessageStatus": "delivered", "AccountSid": p.TWILIO_SID,
            "To": lat["to"], "ApiVersion": "2010-04-01"}
    bad = client.post("/api/v1/messaging/webhooks/twilio", data=form, headers={"X-Twilio-Signature": "AAAA"})
    assert bad.status_code == 401 and h.messages(mapp)[0].delivered_at is None
    r = client.post("/api/v1/messaging/webhooks/twilio", data=form,
                    headers={"X-Twilio-Signature": twilio.signature(p.TWILIO_AUTH, url, form)})
    assert r.status_code == 204 and h.messages(mapp)[0].status == "delivered"
    form2 = {**form, "MessageSid": cyr["sid"], "MessageStatus": "undelivered", "ErrorCode": "30003"}
    client.post("/api/v1/messaging/webhooks/twilio", data=form2,
                headers={"X-Twilio-Signature": twilio.signature(p.TWILIO_AUTH, url, form2)})
    assert h.messages(mapp)[1].status == "failed" and h.messages(mapp)[1].reason == "twilio 30003"


def test_segment_rules():
    assert segments("a" * 160) == 1 and segments("a" * 161) == 2 and segments("a" * 306) == 2
    assert segments("a" * 307) == 3
    assert segments("я" * 70) == 1 and segments("я" * 71) == 2 and segments("я" * 134) == 2
    assert segments("{" * 80) == 1 and segments("{" * 81) == 2  # extension characters take two septets
    assert segments("Привет! Your code: 1234") == 1
    assert segments("a" * 159 + "€") == 2


def test_push_send_and_unregistered_token_is_dropped(mapp, client, http_providers):
    cid = _one_step(mapp, "push", subject="Бонусы", body="Сгорают завтра")
    anna, bob = h.customer(mapp), h.customer(mapp, external_id="b")
    assert client.post("/api/v1/messaging/devices", json={"customer_id": anna, "token": "fcm-token-anna-0001"}
                       ).status_code == 201
    client.post("/api/v1/messaging/devices", json={"customer_id": bob, "token": "unregistered-token-bob"})
    h.start(mapp, cid, anna)
    h.start(mapp, cid, bob)
    h.drain(mapp)
    (push,) = http_providers.sent("push")
    assert push["message"]["token"] == "fcm-token-anna-0001"
    assert push["message"]["notification"] == {"title": "Бонусы", "body": "Сгорают завтра"}
    ok, gone = h.messages(mapp)
    assert ok.provider_id == push["name"] and gone.status == "failed" and "UNREGISTERED" in gone.reason
    h.start(mapp, cid, bob, idempotency_key="again")
    h.drain(mapp)
    assert len(h.messages(mapp)) == 2  # no token left for bob: the step is skipped


def test_whatsapp_template_message_shape(mapp, http_providers):
    cid = _one_step(mapp, "whatsapp", body="{{ customer.first_name }}\n350", provider_template="loyalty_points")
    h.start(mapp, cid, h.customer(mapp))
    h.drain(mapp)
    (wa,) = http_providers.sent("whatsapp")
    assert wa["body"]["template"] == {"name": "loyalty_points", "language": {"code": "ru"}, "components": [
        {"type": "body", "parameters": [{"type": "text", "text": "Анна"}, {"type": "text", "text": "350"}]}]}


def test_twilio_signature_matches_twilio_docs_example():
    # The example from Twilio's webhook security docs.
    params = {"CallSid": "CA1234567890ABCDE", "Caller": "+14158675310", "Digits": "1234", "From": "+14158675310",
              "To": "+18005551212"}
    assert twilio.signature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", params) == \
        "GvWf1cFY/Q7PnoempGyD5oXAezc="
    assert dict(parse_qsl("a=1")) == {"a": "1"}
