"""The rest of each provider's contract: the subscription handshakes (WhatsApp's GET challenge, VK's confirmation,
from the reference bodies), WhatsApp's edits and deletions (`type: edit` / `revoke`), VK's attachments, quotes
and callback buttons (whose payload VK sends as an object) with the customer found by their VK id, Instagram's
edits, quick replies and postbacks; each stored once whatever the provider retries, and a body the provider would
not send is 400 with nothing stored."""

from __future__ import annotations

import json

from tests import factories as f
from tests.inbox import helpers as h, payloads as pl
from tests.messaging import providers as p

REFERENCE = "/work/shared/reference/providers"


def test_telegram_reference_update_is_stored(iapp, web, api):
    raw = open(f"{REFERENCE}/telegram_update_message_private_text.nutgram.json", "rb").read()
    for _ in range(2):
        assert h.telegram(web, raw).status_code == 200
    d = h.only_dialog(api)
    assert (d["channel"], d["peer"], d["title"]) == ("telegram", "12345678", "Mario Bros")
    (m,) = h.messages(api, d["id"])
    assert (m["provider_id"], m["text"], m["sent_at"]) == ("123456", "aaaaaaaaaa", "2021-09-16T19:01:44+00:00")


def test_whatsapp_verification_challenge_and_vk_confirmation(iapp, web, api):
    r = web.get(f"{h.HOOKS}/whatsapp", params={"hub.mode": "subscribe", "hub.verify_token": "verify-me",
                                               "hub.challenge": "1158201444"})
    assert r.status_code == 200 and r.text == "1158201444"
    r = web.get(f"{h.HOOKS}/whatsapp", params={"hub.mode": "subscribe", "hub.verify_token": "guess",
                                               "hub.challenge": "1"})
    assert r.status_code == 403
    ref = json.load(open(f"{REFERENCE}/vk_callback_confirmation.vksdk.json", "rb"))
    r = h.vk(web, json.dumps({**ref, "secret": "vk-secret"}).encode())
    assert r.status_code == 200 and r.text == "c0nf1rm"
    assert h.vk(web, json.dumps(ref).encode()).status_code == 401  # the reference's own secret is not ours
    assert h.dialogs(api) == []


def test_whatsapp_edit_and_revoke_change_the_stored_message(iapp, web, api):
    first = pl.wa_text("wamid.orig1", "Хочу синий")
    pic = {"from": "79161234567", "id": "wamid.pic1", "timestamp": str(pl.T0 + 1), "type": "image",
           "image": {"caption": "вот такой", "mime_type": "image/jpeg", "sha256": "abc=", "id": "1479537139650973"}}
    h.whatsapp(web, pl.wa_inbound([first, pic]))
    edit = {"from": "79161234567", "id": "wamid.edit1", "timestamp": str(pl.T0 + 60), "type": "edit",
            "edit": {"original_message_id": "wamid.orig1",
                     "message": {"type": "text", "text": {"body": "Хочу зелёный"}}}}
    caption = {"from": "79161234567", "id": "wamid.edit2", "timestamp": str(pl.T0 + 70), "type": "edit",
               "edit": {"original_message_id": "wamid.pic1", "message": {
                   "context": {"id": "wamid.orig1"}, "type": "image",
                   "image": {"caption": "нет, вот такой", "mime_type": "image/jpeg", "sha256": "abc=",
                             "id": "1479537139650973", "url": "https://lookaside.fbsbx.com/whatsapp_business/1"}}}}
    for _ in range(2):  # Meta repeats a webhook it got no 200 for
        assert h.whatsapp(web, pl.wa_inbound([edit, caption])).status_code == 200
    d = h.only_dialog(api)
    text, image = h.messages(api, d["id"])
    assert (text["text"], [e["text"] for e in text["edits"]]) == ("Хочу зелёный", ["Хочу синий"])
    assert text["edited_at"] == "2026-03-02T09:01:00+00:00"
    assert (image["text"], image["media"]["id"], len(image["edits"])) == ("нет, вот такой", "1479537139650973", 1)
    revoke = {"from": "79161234567", "id": "wamid.rev1", "timestamp": str(pl.T0 + 90), "type": "revoke",
              "revoke": {"original_message_id": "wamid.orig1"}}
    for _ in range(2):
        assert h.whatsapp(web, pl.wa_inbound([revoke])).status_code == 200
    text, image = h.messages(api, d["id"])  # no new message: the first one is gone
    assert text["deleted_at"] is not None and text["text"] is None and image["text"] == "нет, вот такой"
    assert d["unread"] == 2
    # an edit that does not say what it edits is not what WhatsApp sends: 400, nothing stored
    bad = {"from": "79161234567", "id": "wamid.edit3", "timestamp": str(pl.T0 + 99), "type": "edit"}
    r = h.whatsapp(web, pl.wa_inbound([bad, pl.wa_text("wamid.new", "ещё")]))
    assert r.status_code == 400 and "messages.0" in r.text, r.text
    assert len(h.messages(api, d["id"])) == 2


def test_vk_attachment_quote_and_callback_object_payload_for_the_customer_with_that_vk_id(iapp, web, api):
    cid = f.customer(iapp, first_name="Пётр", vk_id="7770001")
    h.vk(web, pl.vk_new(600, "Какой размер?"))
    photo = {"type": "photo", "photo": {"id": 457239017, "owner_id": 7770001, "album_id": -3, "date": pl.T0,
                                        "sizes": [{"type": "x", "width": 604, "height": 453, "url": "https://x"}]}}
    quoted = {"id": 600, "date": pl.T0, "from_id": 7770001, "peer_id": 7770001, "text": "Какой размер?",
              "conversation_message_id": 600}
    for _ in range(2):
        assert h.vk(web, pl.vk_new(601, "вот этот", attachments=[photo], reply_message=quoted)).status_code == 200
    event = {"user_id": 7770001, "peer_id": 7770001, "event_id": "a1b2c3d4e5f6", "conversation_message_id": 602,
             "payload": {"button": "size", "value": "XL"}}
    for _ in range(2):
        assert h.vk(web, pl.vk_event("message_event", event, event_id="evt1")).status_code == 200
    d = h.only_dialog(api)
    assert d["customer_id"] == cid
    _, pic, press = h.messages(api, d["id"])
    assert (pic["kind"], pic["text"], pic["reply_to"]) == ("image", "вот этот", "600")
    assert pic["media"] == {"type": "image", "file_id": "photo7770001_457239017"}
    assert (press["kind"], json.loads(press["payload"])) == ("callback", {"button": "size", "value": "XL"})
    # a button payload longer than a message keeps: not what VK sends (its limit is 255 characters)
    long = {**event, "event_id": "zz", "payload": {"x": "y" * 2000}}
    r = h.vk(web, pl.vk_event("message_event", long, event_id="evt2"))
    assert r.status_code == 400 and "object.payload" in r.text
    assert len(h.messages(api, d["id"])) == 3


def test_instagram_edit_quick_reply_and_postback(iapp, web, api):
    h.instagram(web, pl.ig_body([pl.ig_message("aWdf.10", "Доставка в Казань?")]))
    edit = {"sender": {"id": "9000111222"}, "recipient": {"id": p.IG_ID},
            "timestamp": (pl.T0 + 30) * 1000, "message_edit": {"mid": "aWdf.10", "text": "Доставка в Самару?",
                                                                "num_edit": 1}}
    quick = pl.ig_message("aWdf.11", "Да", ts=(pl.T0 + 40) * 1000, quick_reply={"payload": "DELIVERY_YES"})
    postback = {"sender": {"id": "9000111222"}, "recipient": {"id": p.IG_ID},
                "timestamp": (pl.T0 + 50) * 1000,
                "postback": {"mid": "aWdf.12", "title": "Статус заказа", "payload": "ORDER_STATUS"}}
    for _ in range(2):
        assert h.instagram(web, pl.ig_body([edit, quick, postback])).status_code == 200
    d = h.only_dialog(api)
    first, button, pressed = h.messages(api, d["id"])
    assert (first["text"], first["edits"][0]["text"]) == ("Доставка в Самару?", "Доставка в Казань?")
    assert (button["kind"], button["text"], button["payload"]) == ("button", "Да", "DELIVERY_YES")
    assert (pressed["kind"], pressed["text"], pressed["payload"]) == ("callback", "Статус заказа", "ORDER_STATUS")
    assert d["unread"] == 3
