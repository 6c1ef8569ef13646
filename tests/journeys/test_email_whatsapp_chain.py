"""The welcome chain the source describes: an email, then WhatsApp only to those who did not open it (one cascade,
the messaging domain's), and a branch on the open: opens come in through the real tracking endpoint."""

from __future__ import annotations

import re

from tests.journeys import helpers as j
from tests.messaging import helpers as h


def _journey(app) -> int:
    h.setup_site(app)
    h.template(app, "welcome", "email")
    h.template(app, "welcome", "whatsapp", body="Анна, добро пожаловать")
    cascade = h.cascade(app, [("email", "welcome", 24), ("whatsapp", "welcome", 24)])
    return j.save(app, {
        "name": "welcome", "site": "shop",
        "entry": {"kind": "customer_created", "entry_points": ["registration"]},
        "steps": [
            {"id": "welcome", "type": "send", "cascade_id": cascade, "next": "opened"},
            {"id": "opened", "type": "wait_event", "event": "opened", "timeout": {"hours": 48},
             "on_event": "engaged", "on_timeout": "cold"},
            {"id": "engaged", "type": "add_tag", "tag": "engaged"},
            {"id": "cold", "type": "add_tag", "tag": "cold"},
        ]})


def test_whatsapp_only_to_who_did_not_open_and_the_open_branches(mapp, client, smtp_server, http_providers):
    jid = _journey(mapp)
    reader = h.customer(mapp, external_id="r", entry_point="registration", channels=("email", "whatsapp"))
    silent = h.customer(mapp, external_id="s", entry_point="registration", channels=("email", "whatsapp"),
                        phone="+79161234568")
    h.customer(mapp, external_id="c", entry_point="callback", channels=("email", "whatsapp"))  # another chain's
    h.drain(mapp)
    assert [r.customer_id for r in j.runs(mapp, jid)] == [reader, silent]
    assert len(smtp_server.messages) == 2

    html = smtp_server.parsed(0).get_body(("html",)).get_content()
    to = smtp_server.messages[0]["to"][0]
    assert to == "annar@example.com"
    pixel = re.search(r'src="http://testserver(/api/v1/messaging/o/[^"]+\.gif)"', html).group(1)
    assert client.get(pixel).status_code == 200
    assert client.get(pixel).status_code == 200  # a second open is no second event
    h.drain(mapp)
    run_r, run_s = j.runs(mapp, jid)
    assert run_r.state == "finished" and j.tags(mapp, reader) == ["engaged"]
    assert j.path(mapp, run_r.id) == [("welcome", "started"), ("opened", "event"), ("engaged", "done")]
    assert run_s.state == "active" and run_s.step == "opened"

    mapp.clock.advance(hours=23)
    h.drain(mapp)
    assert http_providers.sent("whatsapp") == []
    mapp.clock.advance(hours=2)
    h.drain(mapp)
    (wa,) = http_providers.sent("whatsapp")
    assert wa["to"] == "79161234568"  # only the one who did not open
    assert j.runs(mapp, jid)[1].state == "active"

    mapp.clock.advance(hours=24)
    h.drain(mapp)
    run_s = j.runs(mapp, jid)[1]
    assert run_s.state == "finished" and j.tags(mapp, silent) == ["cold"]
    assert j.path(mapp, run_s.id) == [("welcome", "started"), ("opened", "timeout"), ("cold", "done")]
    assert [m.channel for m in h.messages(mapp, customer_id=reader)] == ["email"]


def test_branch_on_engagement_with_an_earlier_step(mapp, client, smtp_server):
    h.setup_site(mapp)
    h.template(mapp, "news", "email")
    cascade = h.cascade(mapp, [("email", "news", 24)])
    jid = j.save(mapp, {
        "name": "engaged", "site": "shop", "entry": {"kind": "customer_created"},
        "steps": [
            {"id": "news", "type": "send", "cascade_id": cascade, "next": "later"},
            {"id": "later", "type": "wait", "days": 2, "next": "clicked"},
            {"id": "clicked", "type": "branch", "branches": [{"engaged": {"step": "news", "did": "clicked"},
                                                              "next": "hot"}], "else": "opened"},
            {"id": "opened", "type": "branch", "branches": [{"engaged": {"step": "news", "did": "opened"},
                                                             "next": "warm"}], "else": "cold"},
            {"id": "hot", "type": "add_tag", "tag": "hot"},
            {"id": "warm", "type": "add_tag", "tag": "warm"},
            {"id": "cold", "type": "add_tag", "tag": "cold"},
        ]})
    people = [h.customer(mapp, external_id=x, channels=("email",)) for x in ("h", "w", "c")]
    h.drain(mapp)
    by_to = {m["to"][0]: i for i, m in enumerate(smtp_server.messages)}
    html = {x: smtp_server.parsed(by_to[f"anna{x}@example.com"]).get_body(("html",)).get_content() for x in "hw"}
    click = re.search(r'href="http://testserver(/api/v1/messaging/c/[^"]+)"', html["h"]).group(1).replace("&amp;", "&")
    pixel = re.search(r'src="http://testserver(/api/v1/messaging/o/[^"]+\.gif)"', html["w"]).group(1)
    assert client.get(click, follow_redirects=False).status_code == 302
    assert client.get(pixel).status_code == 200
    mapp.clock.advance(days=2, minutes=1)
    h.drain(mapp)
    assert [j.tags(mapp, c) for c in people] == [["hot"], ["warm"], ["cold"]]
    assert {r.state for r in j.runs(mapp, jid)} == {"finished"}
