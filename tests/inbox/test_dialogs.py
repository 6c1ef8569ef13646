"""Working a dialog through the API: replies reach the local provider servers through the outbox and their
statuses come back; WhatsApp's 24-hour window; states, response cycles and times; assignment by hand, round
robin and by load; notes, tags, linked orders; a dialog given to the kept customer of a merge."""

from __future__ import annotations

from datetime import timedelta

from tests import factories as f
from tests.inbox import helpers as h, payloads as pl
from tests.messaging import providers as p


def test_telegram_reply_goes_out_quoting_the_customer_and_is_idempotent(iapp, web, api, http_providers):
    op = h.operator(iapp, "olga@shop.example")
    h.telegram(web, pl.tg_update(1, message=pl.tg_message(10, "Где мой заказ?")))
    d = h.only_dialog(api)
    (first,) = h.messages(api, d["id"])
    iapp.clock.advance(timedelta(minutes=3))
    r = h.reply(api, d["id"], op, "Уже в пути!", reply_to_message_id=first["id"])
    assert r.status_code == 201, r.text
    assert (r.json()["status"], r.json()["direction"], r.json()["operator_id"]) == ("queued", "out", op)
    assert h.reply(api, d["id"], op, "Уже в пути!", reply_to_message_id=first["id"]).json()["id"] == r.json()["id"]
    h.drain(iapp)
    (sent,) = http_providers.sent("telegram")
    assert sent["chat_id"] == "5551234" and sent["body"]["text"] == "Уже в пути!"
    assert sent["body"]["reply_parameters"]["message_id"] == 10
    out = h.messages(api, d["id"])[1]
    assert out["status"] == "sent" and out["provider_id"] == f"5551234:{sent['message_id']}"
    view = api.get(f"/api/v1/inbox/dialogs/{d['id']}").json()
    assert view["state"] == "waiting" and view["unread"] == 0
    assert view["cycles"][0]["first_response_seconds"] == 180 and view["cycles"][0]["responder_id"] == op


def test_whatsapp_reply_statuses_come_back_and_window_needs_a_template(iapp, web, api, http_providers):
    from tests.messaging import helpers as mh

    op = h.operator(iapp, "olga@shop.example")
    h.whatsapp(web, pl.wa_inbound([pl.wa_text("wamid.in1", "Здравствуйте")]))
    d = h.only_dialog(api)
    assert h.reply(api, d["id"], op, "Добрый день!").status_code == 201
    h.drain(iapp)
    (sent,) = http_providers.sent("whatsapp")
    assert sent["to"] == "79161234567" and sent["body"]["text"]["body"] == "Добрый день!"
    for status in ("delivered", "read"):
        body = p.whatsapp_statuses([{"id": sent["id"], "status": status, "to": "79161234567"}])
        assert h.whatsapp(web, body).status_code == 200
    out = h.messages(api, d["id"])[1]
    assert out["status"] == "read" and [t["status"] for t in out["timeline"]] == ["queued", "sent", "delivered",
                                                                                 "read"]
    iapp.clock.advance(timedelta(hours=24, seconds=1))
    r = h.reply(api, d["id"], op, "Вы тут?", key="r2")
    assert r.status_code == 400 and "template_id" in r.text
    assert api.get(f"/api/v1/inbox/dialogs/{d['id']}").json()["free_text_allowed"] is False
    tpl = mh.template(iapp, "order_update", "whatsapp", body="{{ customer.first_name }}", provider_template="order_update")
    r = h.reply(api, d["id"], op, key="r3", template_id=tpl)
    assert r.status_code == 201, r.text
    h.drain(iapp)
    assert http_providers.sent("whatsapp")[1]["body"]["template"]["name"] == "order_update"


def test_vk_and_instagram_replies_reach_their_providers(iapp, web, api, http_providers):
    op = h.operator(iapp, "olga@shop.example")
    h.vk(web, pl.vk_new(501, "Привет"))
    h.instagram(web, pl.ig_body([pl.ig_message("aWdf.1", "Hi")]))
    by_channel = {d["channel"]: d for d in h.dialogs(api)}
    assert h.reply(api, by_channel["vk"]["id"], op, "Здравствуйте", key="v").status_code == 201
    assert h.reply(api, by_channel["instagram"]["id"], op, "Hello", key="i").status_code == 201
    h.drain(iapp)
    (vk,) = http_providers.sent("vk")
    assert vk["peer_id"] == "7770001" and vk["form"]["message"] == "Здравствуйте"
    (ig,) = http_providers.sent("instagram")
    assert ig["to"] == "9000111222" and ig["body"]["message"]["text"] == "Hello"
    # VK and Meta echo the shop's own messages back: Retento's reply is not stored twice
    admin = pl.vk_message(vk["id"], "Здравствуйте", from_id=-123456)
    assert h.vk(web, pl.vk_event("message_reply", admin, event_id="echo")).status_code == 200
    echo = pl.ig_message(ig["message_id"], "Hello", echo=True)
    assert h.instagram(web, pl.ig_body([echo])).status_code == 200
    assert [m["direction"] for m in h.messages(api, by_channel["vk"]["id"])] == ["in", "out"]
    assert [m["direction"] for m in h.messages(api, by_channel["instagram"]["id"])] == ["in", "out"]


def test_reply_refusals_name_the_field(iapp, web, api):
    viewer = h.operator(iapp, "view@shop.example", role="viewer")
    h.telegram(web, pl.tg_update(1, message=pl.tg_message(10, "?")))
    d = h.only_dialog(api)
    r = h.reply(api, d["id"], viewer, "x")
    assert r.status_code == 400 and "operator_id" in r.text
    r = api.post(f"/api/v1/inbox/dialogs/{d['id']}/replies", json={"operator_id": 1, "idempotency_key": "k"})
    assert r.status_code == 422 and "text or template_id" in r.text
    assert api.post("/api/v1/inbox/dialogs/999/replies", json={"operator_id": 1, "idempotency_key": "k",
                                                                "text": "x"}).status_code == 404
    assert [m["direction"] for m in h.messages(api, d["id"])] == ["in"]


def test_states_cycles_and_response_times_per_operator(iapp, web, api):
    olga, ivan = h.operator(iapp, "olga@shop.example"), h.operator(iapp, "ivan@shop.example")
    h.telegram(web, pl.tg_update(1, message=pl.tg_message(10, "Вопрос")))
    d = h.only_dialog(api)
    iapp.clock.advance(timedelta(minutes=2))
    h.reply(api, d["id"], olga, "Ответ")
    iapp.clock.advance(timedelta(minutes=8))
    r = api.patch(f"/api/v1/inbox/dialogs/{d['id']}", json={"state": "closed", "operator_id": olga})
    assert r.json()["state"] == "closed"
    iapp.clock.advance(timedelta(hours=1))
    h.telegram(web, pl.tg_update(2, message=pl.tg_message(11, "Ещё вопрос", date=pl.T0 + 4200)))
    assert h.only_dialog(api)["state"] == "open"  # a customer's message reopens: a new cycle
    iapp.clock.advance(timedelta(minutes=4))
    h.reply(api, d["id"], ivan, "Второй ответ", key="r2")
    view = api.get(f"/api/v1/inbox/dialogs/{d['id']}").json()
    first, second = view["cycles"]
    assert (first["first_response_seconds"], first["resolution_seconds"], first["closed_by"]) == (120, 600, olga)
    assert (second["first_response_seconds"], second["responder_id"], second["closed_at"]) == (240, ivan, None)
    times = api.get("/api/v1/inbox/response-times", params={"site": "shop"}).json()
    assert times["cycles"] == 2 and times["first_response"]["median_seconds"] == 180
    per = {o["operator_id"]: o for o in times["operators"]}
    assert per[olga]["first_response"]["mean_seconds"] == 120 and per[olga]["resolution"]["count"] == 1
    assert per[ivan]["first_response"]["mean_seconds"] == 240 and per[ivan]["resolution"]["count"] == 0


def test_assignment_round_robin_by_load_and_manual(iapp, web, api):
    a, b, c = (h.operator(iapp, f"{n}@shop.example") for n in ("a", "b", "c"))
    r = api.put("/api/v1/inbox/sites/shop/settings", json={"assignment": "round_robin", "operators": [a, b, c]})
    assert r.status_code == 200 and r.json() == {"assignment": "round_robin", "operators": [a, b, c]}
    for i in range(4):
        h.telegram(web, pl.tg_update(i, message=pl.tg_message(1, "hi", uid=1000 + i)))
    got = {d["peer"]: d["assignee_id"] for d in h.dialogs(api)}
    assert [got[str(1000 + i)] for i in range(4)] == [a, b, c, a]
    api.put("/api/v1/inbox/sites/shop/settings", json={"assignment": "by_load", "operators": [a, b, c]})
    for i, peer in enumerate((2000, 2001)):  # loads a 2, b 1, c 1: b (the lower id of the least loaded), then c
        h.telegram(web, pl.tg_update(10 + i, message=pl.tg_message(1, "hi", uid=peer)))
    got = {d["peer"]: d["assignee_id"] for d in h.dialogs(api)}
    assert (got["2000"], got["2001"]) == (b, c)
    # manual: nobody is assigned; an operator hands a dialog over
    api.put("/api/v1/inbox/sites/shop/settings", json={"assignment": "manual", "operators": []})
    h.telegram(web, pl.tg_update(11, message=pl.tg_message(1, "hi", uid=3000)))
    new = h.only_dialog(api, unassigned=True)
    assert new["peer"] == "3000"
    r = api.patch(f"/api/v1/inbox/dialogs/{new['id']}", json={"assignee_id": c})
    assert r.json()["assignee_id"] == c
    r = api.patch(f"/api/v1/inbox/dialogs/{new['id']}", json={"assignee_id": 999})
    assert r.status_code == 404 and "assignee_id" in r.text
    r = api.put("/api/v1/inbox/sites/shop/settings", json={"assignment": "by_load", "operators": [999]})
    assert r.status_code == 404 and "operators.0" in r.text


def test_notes_tags_orders_read_and_customer_relink(iapp, web, api):
    op = h.operator(iapp, "olga@shop.example")
    h.telegram(web, pl.tg_update(1, message=pl.tg_message(10, "Заказ 1001?")))
    d = h.only_dialog(api)
    assert d["unread"] == 1
    r = api.post(f"/api/v1/inbox/dialogs/{d['id']}/notes", json={"operator_id": op, "text": "VIP, быть вежливее",
                                                                 "idempotency_key": "n1"})
    assert r.status_code == 201 and r.json()["direction"] == "note"
    r = api.patch(f"/api/v1/inbox/dialogs/{d['id']}", json={"tags": ["delivery", " vip ", "delivery"]})
    assert r.json()["tags"] == ["delivery", "vip"]
    assert api.patch(f"/api/v1/inbox/dialogs/{d['id']}", json={"tags": [""]}).status_code == 422
    order = f.order(iapp, customer={"id": d["customer_id"]})
    r = api.post(f"/api/v1/inbox/dialogs/{d['id']}/orders", json={"order_id": order})
    assert r.status_code == 201 and r.json()["order_ids"] == [order]
    assert api.post(f"/api/v1/inbox/dialogs/{d['id']}/orders", json={"order_id": 999999}).status_code == 404
    assert api.get(f"/api/v1/inbox/dialogs/{d['id']}").json()["order_ids"] == [order]
    assert api.delete(f"/api/v1/inbox/dialogs/{d['id']}/orders/{order}").status_code == 204
    assert api.post(f"/api/v1/inbox/dialogs/{d['id']}/read").json()["unread"] == 0
    kept = f.customer(iapp, first_name="Марио", email="mario@example.com")
    r = api.put(f"/api/v1/inbox/dialogs/{d['id']}/customer", json={"customer_id": kept})
    assert r.json()["customer_id"] == kept
    assert h.only_dialog(api, customer_id=kept)["id"] == d["id"]
    assert [m["direction"] for m in h.messages(api, d["id"])] == ["in", "note"]


def test_merging_customers_moves_their_dialogs(iapp, web, api):
    from retento.core.db.transactions import transaction
    from retento.inbox import service

    h.telegram(web, pl.tg_update(1, message=pl.tg_message(10, "tg")))
    h.vk(web, pl.vk_new(5, "vk"))
    dup = {d["channel"]: d["customer_id"] for d in h.dialogs(api)}
    kept = f.customer(iapp, first_name="Kept")
    with transaction(iapp.sessions) as s:
        assert service.move_dialogs(s, from_customer_id=dup["vk"], to_customer_id=kept, now=iapp.clock.now()) == 1
    assert [d["channel"] for d in h.dialogs(api, customer_id=kept)] == ["vk"]
