"""Inbound webhooks of every provider, as the providers send them: a good signature stores the message once
whatever the provider retries, a bad one is 401 and a body the provider would not send is 400, both storing
nothing; edits and deletions change the stored message; media, quotes and buttons are kept."""

from __future__ import annotations

import json

from tests import factories as f
from tests.inbox import helpers as h, payloads as pl
from tests.messaging import providers as p


def test_telegram_message_creates_customer_and_dialog_once_whatever_the_retries(iapp, web, api):
    body = pl.tg_update(1, message=pl.tg_message(10, "Где мой заказ?"))
    for _ in range(3):  # Telegram repeats an update until it gets a 200
        assert h.telegram(web, body).status_code == 200
    d = h.only_dialog(api)
    assert (d["channel"], d["peer"], d["state"], d["unread"], d["title"]) == ("telegram", "5551234", "open", 1,
                                                                             "Mario Bros")
    (m,) = h.messages(api, d["id"])
    assert (m["direction"], m["text"], m["provider_id"], m["kind"]) == ("in", "Где мой заказ?", "10", "text")
    card = api.get(f"/api/v1/inbox/dialogs/{d['id']}").json()["customer"]
    assert (card["telegram_id"], card["first_name"], card["last_name"]) == ("5551234", "Mario", "Bros")


def test_telegram_finds_the_existing_customer_by_telegram_id(iapp, web, api):
    cid = f.customer(iapp, first_name="Марио", telegram_id="5551234")
    h.telegram(web, pl.tg_update(1, message=pl.tg_message(10, "привет")))
    assert h.only_dialog(api)["customer_id"] == cid


def test_telegram_bad_secret_is_401_and_stores_nothing(iapp, web, api):
    body = pl.tg_update(1, message=pl.tg_message(10))
    r = h.telegram(web, body, secret="guess")
    assert r.status_code == 401 and "X-Telegram-Bot-Api-Secret-Token" in r.text
    r = web.post(f"{h.HOOKS}/telegram", content=body)  # no header at all
    assert r.status_code == 401
    assert h.dialogs(api) == []


def test_telegram_body_not_an_update_is_400_and_stores_nothing(iapp, web, api):
    for body, field in ((b'{"message": {"message_id": 1}}', "update_id"),
                        (pl.tg_update(2, message={"message_id": 5, "date": pl.T0, "text": "x"}), "message.chat"),
                        (b"[1, 2]", "body"), (b"not json", "body")):
        r = h.telegram(web, body)
        assert r.status_code == 400, r.text
        assert field in r.text
    assert h.dialogs(api) == []


def test_telegram_edit_media_quote_and_button_press(iapp, web, api):
    h.telegram(web, pl.tg_update(1, message=pl.tg_message(10, "размер M")))
    photo = [{"file_id": "small", "file_unique_id": "s", "width": 90, "height": 90, "file_size": 1200},
             {"file_id": "AgACAgIAAxk", "file_unique_id": "AQAD", "width": 1280, "height": 960, "file_size": 98765}]
    h.telegram(web, pl.tg_update(2, message=pl.tg_message(11, None, photo=photo, caption="вот этот",
                                                          reply_to_message={"message_id": 10, "date": pl.T0,
                                                                            "chat": pl.tg_chat()})))
    edited = pl.tg_message(10, "размер L", edit_date=pl.T0 + 60)
    for _ in range(2):
        assert h.telegram(web, pl.tg_update(3, edited_message=edited)).status_code == 200
    press_update = pl.tg_update(4, callback_query={"id": "4382bfdwdsb323b2d9", "from": pl.tg_user(),
                                                   "message": pl.tg_message(12, "Подтвердить заказ?"),
                                                   "chat_instance": "-1", "data": "confirm:1001"})
    for _ in range(2):  # a retry is answered too (the Bot API runs the method the webhook's response names)
        r = h.telegram(web, press_update)
        assert r.status_code == 200
        assert r.json() == {"method": "answerCallbackQuery", "callback_query_id": "4382bfdwdsb323b2d9"}
    assert h.telegram(web, pl.tg_update(5, edited_message=edited)).text == "ok"  # other updates: no method
    d = h.only_dialog(api)
    first, pic, press = h.messages(api, d["id"])
    assert first["text"] == "размер L" and first["edited_at"] == "2026-03-02T09:01:00+00:00"
    assert [e["text"] for e in first["edits"]] == ["размер M"]
    assert pic["kind"] == "photo" and pic["text"] == "вот этот" and pic["reply_to"] == "10"
    assert pic["media"] == {"type": "photo", "file_id": "AgACAgIAAxk", "file_unique_id": "AQAD",
                            "file_size": 98765, "width": 1280, "height": 960}
    assert (press["kind"], press["payload"], press["reply_to"]) == ("callback", "confirm:1001", "12")


def test_whatsapp_inbound_joins_the_customer_with_that_phone(iapp, web, api):
    cid = f.customer(iapp, first_name="Анна", phone="+79161234567")
    body = pl.wa_inbound([pl.wa_text("wamid.HBgLNzkxNjEyMzQ1NjcVAgASGBQzQTJCRDRBNjM1", "Здравствуйте")])
    for _ in range(2):
        assert h.whatsapp(web, body).status_code == 200
    d = h.only_dialog(api)
    assert (d["customer_id"], d["channel"], d["peer"], d["title"]) == (cid, "whatsapp", "79161234567", "Анна")
    (m,) = h.messages(api, d["id"])
    assert m["text"] == "Здравствуйте"


def test_whatsapp_reference_body_new_customer_media_buttons_and_quote(iapp, web, api):
    ref = json.load(open("/work/shared/reference/providers/whatsapp_webhook_message_text.pywa.json", "rb"))
    raw = json.dumps(ref).encode()
    assert h.whatsapp(web, raw).status_code == 200
    image = {"from": "972987654321", "id": "wamid.img", "timestamp": str(pl.T0 + 5), "type": "image",
             "image": {"caption": "фото", "mime_type": "image/jpeg", "sha256": "abc=", "id": "1479537139650973"}}
    button = {"from": "972987654321", "id": "wamid.btn", "timestamp": str(pl.T0 + 6), "type": "interactive",
              "context": {"from": "74951234567", "id": "wamid.ours"},
              "interactive": {"type": "button_reply", "button_reply": {"id": "yes-1001", "title": "Да"}}}
    body = pl.wa_inbound([image, button], wa_id="972987654321", name="Test Name")
    assert h.whatsapp(web, body).status_code == 200
    d = h.only_dialog(api)
    text, img, btn = h.messages(api, d["id"])
    assert text["text"] == "Body Text"
    assert img["media"] == {"type": "image", "id": "1479537139650973", "mime_type": "image/jpeg", "sha256": "abc="}
    assert (btn["kind"], btn["payload"], btn["text"], btn["reply_to"]) == ("button", "yes-1001", "Да", "wamid.ours")
    card = api.get(f"/api/v1/inbox/dialogs/{d['id']}").json()["customer"]
    # the reference's number is not a valid Israeli number: the customer is created without it (the dialog
    # keeps the wa_id and finds them again)
    assert card["whatsapp_id"] is None and (card["first_name"], card["last_name"]) == ("Test", "Name")


def test_whatsapp_bad_signature_or_body_stores_nothing(iapp, web, api):
    body = pl.wa_inbound([pl.wa_text("wamid.1", "x")])
    assert h.whatsapp(web, body, secret="wrong").status_code == 401
    bad = pl.wa_inbound([{"from": "79161234567", "timestamp": "1", "type": "text", "text": {"body": "no id"}}])
    r = h.whatsapp(web, bad)
    assert r.status_code == 400 and "id" in r.text
    assert h.dialogs(api) == []


def test_whatsapp_statuses_and_messages_in_one_endpoint(iapp, web, api):
    """Meta sends statuses and messages to the one callback URL: a status body stores no dialog."""
    status = p.whatsapp_statuses([{"id": "wamid.unknown", "status": "delivered", "to": "79161234567"}])
    assert h.whatsapp(web, status).status_code == 200
    assert h.dialogs(api) == []


def test_vk_message_new_edit_admin_reply_and_callback(iapp, web, api):
    for _ in range(2):
        assert h.vk(web, pl.vk_new(501, "Добрый день")).status_code == 200
    assert h.vk(web, pl.vk_event("message_edit", pl.vk_message(501, "Добрый вечер", update_time=pl.T0 + 30))
                ).status_code == 200
    admin = pl.vk_message(502, "Сейчас посмотрю", from_id=-123456, admin_author_id=99)
    assert h.vk(web, pl.vk_event("message_reply", admin)).status_code == 200
    event = {"user_id": 7770001, "peer_id": 7770001, "event_id": "3159dc190b1f", "payload": "{\"order\":1001}",
             "conversation_message_id": 502}
    assert h.vk(web, pl.vk_event("message_event", event)).status_code == 200
    d = h.only_dialog(api)
    assert (d["channel"], d["peer"], d["state"]) == ("vk", "7770001", "open")  # the press came last
    new, reply, press = h.messages(api, d["id"])
    assert new["text"] == "Добрый вечер" and new["edits"][0]["text"] == "Добрый день"
    assert (reply["direction"], reply["text"], reply["status"]) == ("out", "Сейчас посмотрю", "sent")
    assert (press["kind"], press["payload"]) == ("callback", "{\"order\":1001}")


def test_vk_wrong_secret_is_401_and_bad_object_is_400(iapp, web, api):
    assert h.vk(web, pl.vk_event("message_new", {"message": pl.vk_message(1, "x")}, secret="nope")).status_code == 401
    r = h.vk(web, pl.vk_event("message_new", {"message": {"id": 1, "text": "no peer"}}))
    assert r.status_code == 400 and "object.message" in r.text
    assert h.dialogs(api) == []


def test_instagram_verify_messages_echo_and_unsend(iapp, web, api):
    r = web.get(f"{h.HOOKS}/instagram", params={"hub.mode": "subscribe", "hub.verify_token": "ig-verify",
                                                "hub.challenge": "1158201444"})
    assert r.status_code == 200 and r.text == "1158201444"
    assert web.get(f"{h.HOOKS}/instagram", params={"hub.mode": "subscribe", "hub.verify_token": "x",
                                                   "hub.challenge": "1"}).status_code == 403
    first = pl.ig_body([pl.ig_message("aWdfZAG1.1", "Есть в наличии?")])
    for _ in range(2):
        assert h.instagram(web, first).status_code == 200
    pic = pl.ig_message("aWdfZAG1.2", None, attachments=[{"type": "image", "payload": {
        "url": "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=1"}}], reply_to={"mid": "aWdfZAG1.1"})
    echo = pl.ig_message("aWdfZAG1.3", "Да, есть", echo=True, ts=(pl.T0 + 60) * 1000)
    assert h.instagram(web, pl.ig_body([pic, echo])).status_code == 200
    gone = pl.ig_message("aWdfZAG1.1", None, is_deleted=True)
    assert h.instagram(web, pl.ig_body([gone])).status_code == 200
    d = h.only_dialog(api)
    assert (d["channel"], d["peer"], d["state"]) == ("instagram", "9000111222", "waiting")
    deleted, image, ours = h.messages(api, d["id"])
    assert deleted["deleted_at"] is not None and deleted["text"] is None
    assert image["media"]["type"] == "image" and image["reply_to"] == "aWdfZAG1.1"
    assert (ours["direction"], ours["text"]) == ("out", "Да, есть")


def test_instagram_bad_signature_or_body_stores_nothing(iapp, web, api):
    body = pl.ig_body([pl.ig_message("m1", "x")])
    assert h.instagram(web, body, secret="wrong").status_code == 401
    r = h.instagram(web, pl.ig_body([{"sender": {"id": "1"}, "timestamp": 1, "message": {"mid": "m2"}}]))
    assert r.status_code == 400 and "recipient" in r.text
    assert h.dialogs(api) == []
