"""Telegram business accounts: a person answers from the Telegram app while Retento records the same dialogs
through the business connection; excluded contacts are never imported (and can be purged); the person's own
messages are that operator's; Retento's replies go out through the connection."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from retento.core.bus import Event
from retento.core.db.transactions import transaction
from tests.inbox import helpers as h, payloads as pl

OWNER = 4242


def connect(web, api, iapp, enabled: bool = True) -> int:
    op = h.operator(iapp, "olga@shop.example")
    assert h.telegram(web, pl.tg_update(1, business_connection=pl.tg_connection(enabled=enabled))).status_code == 200
    r = api.patch("/api/v1/inbox/connections/biz-conn-1", json={"operator_id": op})
    assert r.status_code == 200, r.text
    return op


def biz(update_id: int, mid: int, text: str, *, uid: int = 5551234, from_owner: bool = False, **kw) -> bytes:
    sender = pl.tg_user(OWNER, "Olga", "Shop") if from_owner else None
    return pl.tg_update(update_id, business_message=pl.tg_message(mid, text, uid=uid, sender=sender,
                                                                  business_connection_id="biz-conn-1", **kw))


def test_connection_customer_and_owner_messages_and_reply_through_the_connection(iapp, web, api, http_providers):
    op = connect(web, api, iapp)
    (conn,) = api.get("/api/v1/inbox/connections").json()
    assert (conn["user_id"], conn["user_name"], conn["can_reply"], conn["enabled"], conn["operator_id"]) == (
        str(OWNER), "Olga Shop", True, True, op)
    for _ in range(2):
        assert h.telegram(web, biz(2, 100, "Здравствуйте, есть размер 42?")).status_code == 200
    iapp.clock.advance(timedelta(minutes=1))
    assert h.telegram(web, biz(3, 101, "Да, есть", from_owner=True, date=pl.T0 + 60)).status_code == 200
    d = h.only_dialog(api)
    assert (d["account"], d["peer"], d["state"]) == ("biz-conn-1", "5551234", "waiting")
    customer_msg, owner_msg = h.messages(api, d["id"])
    assert (customer_msg["direction"], customer_msg["operator_id"]) == ("in", None)
    assert (owner_msg["direction"], owner_msg["operator_id"], owner_msg["status"]) == ("out", op, "sent")
    view = api.get(f"/api/v1/inbox/dialogs/{d['id']}").json()
    assert view["cycles"][0]["responder_id"] == op and view["cycles"][0]["first_response_seconds"] == 60
    # an edit and a deletion in the app reach the stored messages
    edited = pl.tg_message(101, "Да, есть, и 43 тоже", uid=5551234, sender=pl.tg_user(OWNER, "Olga", "Shop"),
                           business_connection_id="biz-conn-1", edit_date=pl.T0 + 90)
    assert h.telegram(web, pl.tg_update(4, edited_business_message=edited)).status_code == 200
    gone = {"business_connection_id": "biz-conn-1", "chat": pl.tg_chat(), "message_ids": [100]}
    assert h.telegram(web, pl.tg_update(5, deleted_business_messages=gone)).status_code == 200
    customer_msg, owner_msg = h.messages(api, d["id"])
    assert customer_msg["deleted_at"] is not None and customer_msg["text"] is None
    assert owner_msg["text"] == "Да, есть, и 43 тоже"
    # Retento's reply goes out through the connection; Telegram's copy of it (sent by the bot) is not stored again
    assert h.reply(api, d["id"], op, "Отложить для вас?").status_code == 201
    h.drain(iapp)
    (sent,) = http_providers.sent("telegram")
    assert sent["body"]["business_connection_id"] == "biz-conn-1" and sent["chat_id"] == "5551234"
    copy = pl.tg_message(sent["message_id"], "Отложить для вас?", sender=pl.tg_user(OWNER, "Olga", "Shop"),
                         business_connection_id="biz-conn-1", sender_business_bot={"id": 123456, "is_bot": True,
                                                                                    "first_name": "Shop"})
    assert h.telegram(web, pl.tg_update(6, business_message=copy)).status_code == 200
    assert len(h.messages(api, d["id"])) == 3


def test_excluded_contacts_are_never_imported_and_can_be_purged(iapp, web, api):
    connect(web, api, iapp)
    r = api.post("/api/v1/inbox/sites/shop/exclusions", json={"peer": "777", "note": "мама"})
    assert r.status_code == 201 and r.json()["purged_dialogs"] == 0
    assert h.telegram(web, biz(2, 1, "Доча, ты где?", uid=777)).status_code == 200
    assert h.dialogs(api) == []
    # a friend written to before being excluded: purge what is stored
    h.telegram(web, biz(3, 5, "Привет, вечером кино?", uid=888))
    h.telegram(web, biz(4, 6, "Давай", uid=888, from_owner=True))
    assert len(h.dialogs(api)) == 1
    (friend,) = h.dialogs(api)
    r = api.post("/api/v1/inbox/sites/shop/exclusions", json={"peer": "888", "purge": True})
    assert r.json()["purged_dialogs"] == 1
    assert h.dialogs(api) == []
    with transaction(iapp.sessions) as s:  # operators' open screens hear it (the live stream's last event)
        last = s.scalars(select(Event).where(Event.type == "inbox_dialog_changed").order_by(Event.id.desc())).first()
    assert (last.payload["dialog_id"], last.payload["change"]) == (friend["id"], "purged")
    h.telegram(web, biz(5, 7, "Во сколько?", uid=888))
    assert h.dialogs(api) == []
    assert [e["peer"] for e in api.get("/api/v1/inbox/sites/shop/exclusions").json()] == ["777", "888"]
    assert api.delete("/api/v1/inbox/sites/shop/exclusions/telegram/777").status_code == 204
    assert api.delete("/api/v1/inbox/sites/shop/exclusions/telegram/777").status_code == 404
    h.telegram(web, biz(6, 2, "Позвони", uid=777))
    assert [d["peer"] for d in h.dialogs(api)] == ["777"]


def test_disabled_connection_records_nothing_and_refuses_replies(iapp, web, api):
    op = connect(web, api, iapp)
    h.telegram(web, biz(2, 1, "Привет"))
    d = h.only_dialog(api)
    assert h.telegram(web, pl.tg_update(3, business_connection=pl.tg_connection(enabled=False))).status_code == 200
    h.telegram(web, biz(4, 2, "Алло?"))
    assert len(h.messages(api, d["id"])) == 1
    r = h.reply(api, d["id"], op, "Да")
    assert r.status_code == 409 and "business connection" in r.text
