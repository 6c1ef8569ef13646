"""Each entry point of a new customer enters its own journey only; a wait of N minutes; a wait for each kind of
event with a timeout (clicked, read, ordered, confirmed email): the event takes the run down `on_event` the moment it
comes (clicks through the real tracking endpoint, WhatsApp reads through the provider's status webhook), its
absence down `on_timeout` when the timeout is up, and a near miss (an open when a click is awaited, another
customer's order) wakes nobody; exits on an unsubscribe (the email's one-click link) and on leaving a segment. Frozen clock, explicit worker ticks."""

from __future__ import annotations

import re

import pytest

from retento.core.db.transactions import transaction
from retento.customers import service as customers
from retento.customers.schemas import EntryPoint
from retento.segments import service as segments
from retento.segments.schemas import SegmentCreate
from tests import factories as f
from tests.journeys import helpers as j
from tests.messaging import helpers as h, providers as p


def _go(app, cid: int, key: str) -> None:
    with transaction(app.sessions) as s:
        customers.emit_custom_event(s, customer=customers.get(s, cid), name="go", payload={}, ctx=f.API,
                                    now=app.clock.now(), idempotency_key=key)


def _waiting_for(event: str, first: dict | None = None, **timeout: int) -> dict:
    """Entry on the custom event `go`; optionally a send; then a wait for `event` with a timeout."""
    steps = [first] if first else []
    steps += [{"id": "wait", "type": "wait_event", "event": event, "timeout": timeout, "on_event": "yes",
               "on_timeout": "no"},
              {"id": "yes", "type": "add_tag", "tag": f"{event}-yes"},
              {"id": "no", "type": "add_tag", "tag": f"{event}-no"}]
    return {"name": f"wait-{event}", "site": "shop", "entry": {"kind": "event", "event": "custom", "event_name": "go"},
            "steps": steps}


def test_each_entry_point_enters_its_own_journey_only(app):
    f.site(app)
    points = [e.value for e in EntryPoint]
    assert points == ["registration", "callback", "purchase", "subscription", "lead_magnet", "chat"]
    journeys = {ep: j.save(app, {"name": f"from-{ep}", "site": "shop",
                                 "entry": {"kind": "customer_created", "entry_points": [ep]},
                                 "steps": [{"id": "hello", "type": "add_tag", "tag": f"from-{ep}"}]})
                for ep in points}
    people = {ep: f.customer(app, email=f"{ep}@example.com", entry_point=ep) for ep in points}
    nowhere = f.customer(app, email="none@example.com")  # no entry point: none of them
    h.drain(app)
    for ep, cid in people.items():
        assert j.tags(app, cid) == [f"from-{ep}"], ep
        assert [r.customer_id for r in j.runs(app, journeys[ep])] == [cid]
    assert j.tags(app, nowhere) == []


def test_a_wait_of_n_minutes(app):
    f.site(app)
    jid = j.save(app, {"name": "minutes", "site": "shop", "entry": {"kind": "customer_created"}, "steps": [
        {"id": "pause", "type": "wait", "minutes": 30, "next": "after"},
        {"id": "after", "type": "add_tag", "tag": "after"}]})
    cid = f.customer(app, email="m@example.com")
    h.drain(app)
    (run,) = j.runs(app, jid)
    assert run.step == "pause" and run.due_at == app.clock.now().replace(minute=30)
    app.clock.advance(minutes=29)
    h.drain(app)
    assert j.tags(app, cid) == []
    app.clock.advance(minutes=1)
    h.drain(app)
    assert j.tags(app, cid) == ["after"]
    assert j.path(app, run.id) == [("pause", "waited"), ("after", "done")]


def test_wait_for_a_click_an_open_is_not_enough(mapp, client, smtp_server):
    h.setup_site(mapp, policy={"cap_count": None})
    h.template(mapp, "news", "email")
    cascade = h.cascade(mapp, [("email", "news", 24)])
    jid = j.save(mapp, _waiting_for("clicked", {"id": "news", "type": "send", "cascade_id": cascade, "next": "wait"},
                                    days=2))
    clicker, opener = (h.customer(mapp, external_id=x, channels=("email",)) for x in ("k", "o"))
    for cid in (clicker, opener):
        _go(mapp, cid, f"go-{cid}")
    h.drain(mapp)
    html = {m["to"][0]: smtp_server.parsed(i).get_body(("html",)).get_content()
            for i, m in enumerate(smtp_server.messages)}
    click = re.search(r'href="http://testserver(/api/v1/messaging/c/[^"]+)"', html["annak@example.com"]).group(1)
    pixel = re.search(r'src="http://testserver(/api/v1/messaging/o/[^"]+\.gif)"', html["annao@example.com"]).group(1)
    mapp.clock.advance(hours=5)
    assert client.get(click.replace("&amp;", "&"), follow_redirects=False).status_code == 302
    assert client.get(pixel).status_code == 200
    h.drain(mapp)
    runs = {r.customer_id: r for r in j.runs(mapp, jid)}
    assert runs[clicker].state == "finished" and j.tags(mapp, clicker) == ["clicked-yes"]
    assert runs[opener].state == "active" and runs[opener].step == "wait"
    mapp.clock.advance(days=2)
    h.drain(mapp)
    assert j.tags(mapp, opener) == ["clicked-no"]
    assert j.path(mapp, runs[opener].id) == [("news", "started"), ("wait", "timeout"), ("no", "done")]


def test_wait_for_a_whatsapp_read_reported_by_the_provider(mapp, client, http_providers):
    h.setup_site(mapp, policy={"cap_count": None})
    h.template(mapp, "hi", "whatsapp", body="Анна, привет")
    cascade = h.cascade(mapp, [("whatsapp", "hi", 24)])
    jid = j.save(mapp, _waiting_for("read", {"id": "hi", "type": "send", "cascade_id": cascade, "next": "wait"},
                                    hours=12))
    reader = h.customer(mapp, external_id="r", channels=("whatsapp",))
    silent = h.customer(mapp, external_id="s", channels=("whatsapp",), phone="+79161234568")
    for cid in (reader, silent):
        _go(mapp, cid, f"go-{cid}")
    h.drain(mapp)
    sent = {m["to"]: m for m in http_providers.sent("whatsapp")}
    assert set(sent) == {"79161234567", "79161234568"}
    wa = sent["79161234567"]
    mapp.clock.advance(hours=1)
    body = p.whatsapp_statuses([{"id": wa["id"], "status": "delivered", "to": wa["to"]},
                                {"id": wa["id"], "status": "read", "to": wa["to"]}])
    r = client.post("/api/v1/messaging/webhooks/whatsapp", content=body,
                    headers={"X-Hub-Signature-256": p.meta_signature(body)})
    assert r.status_code == 200
    h.drain(mapp)
    runs = {r.customer_id: r for r in j.runs(mapp, jid)}
    assert runs[reader].state == "finished" and j.tags(mapp, reader) == ["read-yes"]
    assert j.path(mapp, runs[reader].id)[1] == ("wait", "event")
    assert runs[silent].state == "active"
    mapp.clock.advance(hours=11, minutes=1)
    h.drain(mapp)
    assert j.tags(mapp, silent) == ["read-no"]


@pytest.mark.parametrize("event", ["ordered", "email_confirmed"])
def test_wait_for_an_order_or_a_confirmed_email(app, event):
    f.site(app)
    jid = j.save(app, _waiting_for(event, days=3))
    doer = f.customer(app, email="d@example.com")
    idle = f.customer(app, email="i@example.com")
    for cid in (doer, idle):
        _go(app, cid, f"go-{cid}")
    h.drain(app)
    assert {r.step for r in j.runs(app, jid)} == {"wait"}
    app.clock.advance(days=1)
    if event == "ordered":
        f.order(app, customer={"id": doer})
    else:
        f.edit_customer(app, doer, email_confirmed=True)
    h.drain(app)
    runs = {r.customer_id: r for r in j.runs(app, jid)}
    assert runs[doer].state == "finished" and j.tags(app, doer) == [f"{event}-yes"]
    assert runs[idle].state == "active"  # another customer's event wakes nobody else
    app.clock.advance(days=2)
    h.drain(app)
    assert j.tags(app, idle) == [f"{event}-no"]
    assert j.path(app, runs[idle].id) == [("wait", "timeout"), ("no", "done")]
    assert j.path(app, runs[doer].id) == [("wait", "event"), ("yes", "done")]


def test_exit_on_unsubscribe_through_the_emails_link_and_on_leaving_a_segment(mapp, client, smtp_server):
    h.setup_site(mapp, policy={"cap_count": None})
    with transaction(mapp.sessions) as s:
        segments.create(s, data=SegmentCreate(site="shop", code="vip", name="VIP", rules={"tags": {"any": ["vip"]}}),
                        now=mapp.clock.now())
    h.template(mapp, "news", "email")
    cascade = h.cascade(mapp, [("email", "news", 24)])
    jid = j.save(mapp, {"name": "exits", "site": "shop", "entry": {"kind": "event", "event": "custom",
                                                                   "event_name": "go"},
                        "exits": [{"event": "unsubscribed"}, {"event": "segment_left", "segment": "vip"}],
                        "steps": [{"id": "news", "type": "send", "cascade_id": cascade, "next": "pause"},
                                  {"id": "pause", "type": "wait", "days": 1, "next": "after"},
                                  {"id": "after", "type": "add_tag", "tag": "after"}]})
    leaver, unsub, stays = (h.customer(mapp, external_id=x, channels=("email",), tags=["vip"]) for x in "lus")
    for cid in (leaver, unsub, stays):
        _go(mapp, cid, f"go-{cid}")
    h.drain(mapp)
    assert len(smtp_server.messages) == 3
    to = [m["to"][0] for m in smtp_server.messages].index("annau@example.com")
    header = smtp_server.parsed(to)["List-Unsubscribe"]
    link = re.search(r"<http://testserver(/api/v1/messaging/u/[^>]+)>", header).group(1)
    assert client.post(link, content=b"List-Unsubscribe=One-Click").status_code == 200  # the mail client's click
    f.edit_customer(mapp, leaver, tags=[])
    h.drain(mapp)
    runs = {r.customer_id: r for r in j.runs(mapp, jid)}
    assert (runs[unsub].state, runs[unsub].exit_reason) == ("exited", "unsubscribed")
    assert (runs[leaver].state, runs[leaver].exit_reason) == ("exited", "segment_left:vip")
    mapp.clock.advance(days=1, minutes=1)
    h.drain(mapp)
    assert [j.tags(mapp, c) for c in (leaver, unsub, stays)] == [[], ["vip"], ["after", "vip"]]
