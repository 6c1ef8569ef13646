"""The webhooks that queue up while a transaction commits are stored together (`ingest_many`, the group commit's
set-based call): each gets its own counts, a retry inside the call or of a stored message stores nothing, a new
dialog, an exclusion and an edit of a message of the same call are handled in order, and the events tell each
message's unread count."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from retento.core.bus import Event
from retento.core.db.transactions import transaction
from retento.inbox import ingest, service
from retento.inbox.models import Cycle
from retento.inbox.schemas import ExclusionIn
from tests.inbox import helpers as h, payloads as pl


def store(app, bodies: list[bytes]) -> list[dict[str, int]]:
    """What the group commit does with the Telegram webhooks of one batch: each body read, then one call."""
    receiver = app.parts.inbound["telegram"]
    now = app.clock.now()
    with transaction(app.sessions) as s:
        return receiver.store(s, [(receiver.parse(json.loads(b)), now) for b in bodies])


def test_concurrent_webhooks_are_stored_together_once_each_in_order(iapp, web, api):
    assert h.telegram(web, pl.tg_update(1, message=pl.tg_message(10, "first"))).status_code == 200
    with transaction(iapp.sessions) as s:
        service.add_exclusion(s, site="shop",
                              data=ExclusionIn(channel="telegram", peer="5550000"), now=iapp.clock.now())
    counts = store(iapp, [
        pl.tg_update(2, message=pl.tg_message(11, "second")),
        pl.tg_update(3, message=pl.tg_message(12, "third")),
        pl.tg_update(2, message=pl.tg_message(11, "second")),  # Telegram's retry, in the same batch
        pl.tg_update(1, message=pl.tg_message(10, "first")),  # a retry of a stored message
        pl.tg_update(4, message=pl.tg_message(20, "hello", uid=777)),  # a new customer: a new dialog
        pl.tg_update(5, message=pl.tg_message(30, "private", uid=5550000)),  # on the exclusion list
        pl.tg_update(6, edited_message=pl.tg_message(11, "second, edited", edit_date=pl.T0 + 9)),
    ])
    assert [{k: v for k, v in c.items() if v} for c in counts] == [
        {"stored": 1}, {"stored": 1}, {"skipped": 1}, {"skipped": 1}, {"stored": 1}, {"skipped": 1}, {"edited": 1}]
    guest, mario = sorted(h.dialogs(api), key=lambda d: int(d["peer"]))
    assert (mario["peer"], mario["unread"], mario["state"]) == ("5551234", 3, "open")
    assert [(m["provider_id"], m["text"]) for m in h.messages(api, mario["id"])] == [
        ("10", "first"), ("11", "second, edited"), ("12", "third")]
    assert (guest["peer"], guest["unread"], [m["text"] for m in h.messages(api, guest["id"])]) == (
        "777", 1, ["hello"])
    with transaction(iapp.sessions) as s:
        told = [(e.payload["dialog_id"], e.payload["unread"]) for e in s.scalars(
            select(Event).where(Event.type == "inbox_message").order_by(Event.id))]
    assert sorted(told) == sorted([(mario["id"], 1), (mario["id"], 2), (mario["id"], 3), (guest["id"], 1)])


def test_a_closed_dialog_is_reopened_with_a_new_cycle_in_a_batch(iapp, web, api):
    h.telegram(web, pl.tg_update(1, message=pl.tg_message(10, "first")))
    d = h.only_dialog(api)
    assert api.patch(f"/api/v1/inbox/dialogs/{d['id']}", json={"state": "closed"}).status_code == 200
    counts = store(iapp, [pl.tg_update(2, message=pl.tg_message(11, "again")),
                          pl.tg_update(3, message=pl.tg_message(12, "and again"))])
    assert [c["stored"] for c in counts] == [1, 1]
    d = h.only_dialog(api)
    assert (d["state"], d["unread"]) == ("open", 2)



def test_a_dialog_closed_after_the_batch_read_it_is_reopened_with_a_new_cycle(iapp, web, api):
    """PostgreSQL, another process closes the dialog between the batch's look-up and its store: the message is
    stored, the dialog's UPDATE leaves it out (still read as open), and it takes the one-at-a-time way."""
    if iapp.engine.dialect.name != "postgresql":
        pytest.skip("one writer at a time on SQLite: a dialog cannot change under a batch")
    h.telegram(web, pl.tg_update(1, message=pl.tg_message(10, "first")))
    d = h.only_dialog(api)
    posted = iapp.parts.inbound["telegram"].parse(json.loads(pl.tg_update(2, message=pl.tg_message(11, "again"))))
    e, now, counts = posted.events[0], iapp.clock.now(), {"stored": 0, "skipped": 0}
    with transaction(iapp.sessions) as s:
        _, found = ingest._pg_lookup(s, {(d["site_id"], "telegram", "", d["peer"])})
    (read,) = found.values()
    assert (read.state, read.cycle_id is not None) == ("open", True)
    assert api.patch(f"/api/v1/inbox/dialogs/{d['id']}", json={"state": "closed"}).status_code == 200
    with transaction(iapp.sessions) as s:
        ingest._inbound(s, [(read, e, now, counts)])
    assert counts == {"stored": 1, "skipped": 0}
    d = h.only_dialog(api)
    assert (d["state"], d["unread"]) == ("open", 1)
    with transaction(iapp.sessions) as s:
        assert s.scalar(select(func.count()).select_from(Cycle).where(Cycle.dialog_id == d["id"])) == 2
        told = s.scalars(select(Event).where(Event.type == "inbox_message").order_by(Event.id.desc())).first()
    assert (told.payload["unread"], told.payload["state"]) == (1, "open")
