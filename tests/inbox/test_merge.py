"""Merging a duplicate customer moves its inbox dialogs (issue 18): a dialog a Telegram message made for a new
customer becomes the kept customer's, operators' lists are told, and the chat's next message lands there."""

from __future__ import annotations

from sqlalchemy import select

from retento.core.bus import Event
from retento.core.db.transactions import transaction
from retento.customers import merging
from tests import factories as f
from tests.inbox import helpers as h, payloads as pl


def test_merging_the_customer_a_telegram_chat_created_moves_its_dialog(iapp, web, api):
    assert h.telegram(web, pl.tg_update(1, message=pl.tg_message(10, "привет"))).status_code == 200
    dialog = h.only_dialog(api)
    dup = dialog["customer_id"]
    kept = f.customer(iapp, first_name="Марио", email="mario@example.com")
    with transaction(iapp.sessions) as s:
        done = merging.merge(s, site="shop", keep_id=kept, merge_ids=[dup], ctx=f.API, now=iapp.clock.now())
    assert done.moved["inbox_dialogs"] == 1
    assert h.only_dialog(api, customer_id=kept)["id"] == dialog["id"]
    gone = api.get("/api/v1/inbox/dialogs", params={"customer_id": dup})
    assert gone.status_code == 404 and f"merged into customer {kept}" in gone.text
    with transaction(iapp.sessions) as s:
        changed = s.scalars(select(Event).where(Event.type == "inbox_dialog_changed")).all()
        assert [(e.customer_id, e.payload["change"]) for e in changed][-1:] == [(kept, "customer")]
    assert h.telegram(web, pl.tg_update(2, message=pl.tg_message(11, "это снова я"))).status_code == 200
    assert [m["text"] for m in h.messages(api, dialog["id"])] == ["привет", "это снова я"]
    assert h.only_dialog(api)["customer_id"] == kept
