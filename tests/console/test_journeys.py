"""The console's Journeys pages over HTTP: a mechanic installed in one click shows in the list and as a flow diagram
with its customers' counts; a step edited with a wrong value (the error at that step and field, nothing saved), then
a right one (a new version); the entry and exits form; steps added and deleted; customers moved onto the new
version explicitly; a new journey; the report; a viewer reads and changes nothing."""

from __future__ import annotations

import re

from retento.core.db.transactions import transaction
from retento.customers import service as customers
from retento.journeys import service as journeys
from tests import factories as f
from tests.console.conftest import sign_in
from tests.messaging import helpers as h


def install(client, csrf: str, name: str = "abandoned-cart", site: str = "north") -> int:  # noqa: ANN001
    answer = client.post(f"/journeys/mechanics/{name}", data={"site": site, "csrf_token": csrf})
    assert answer.status_code == 303, answer.text
    found = re.fullmatch(r"/journeys/(\d+)\?installed=(created|unchanged)", answer.headers["location"])
    assert found, answer.headers["location"]
    return int(found.group(1))


def cart_abandoned(app, external_id: str) -> int:  # noqa: ANN001
    cid = h.customer(app, site="north", external_id=external_id, channels=("email",))
    with transaction(app.sessions) as s:
        customers.emit_custom_event(s, customer=customers.get(s, cid), name="cart_abandoned",
                                    payload={"items": [], "total": "10.00"}, ctx=f.API, now=app.clock.now(),
                                    idempotency_key=f"cart-{external_id}")
    h.drain(app)
    return cid


def definition(app, journey_id: int) -> dict:  # noqa: ANN001
    with transaction(app.sessions) as s:
        return journeys.out(s, journeys.get(s, journey_id)).definition


def test_install_a_mechanic_see_it_listed_and_drawn_with_counts(client, world) -> None:  # noqa: ANN001
    csrf = sign_in(client, "marketer@example.com")
    mechanics = client.get("/journeys/mechanics")
    assert mechanics.status_code == 200 and 'action="/journeys/mechanics/abandoned-cart"' in mechanics.text
    jid = install(client, csrf)
    assert "Installed." in client.get(f"/journeys/{jid}?installed=created").text
    assert install(client, csrf) == jid  # again: nothing changes
    assert definition(world.app, jid)["steps"][0]["id"] == "hour"
    cart_abandoned(world.app, "c1")
    cart_abandoned(world.app, "c2")

    listed = client.get("/journeys")
    row = re.search(r"<tr><td translate=\"no\"><a href=\"/journeys/%d\">abandoned-cart</a>.*?</tr>" % jid, listed.text,
                    re.S).group(0)
    assert [int(n) for n in re.findall(r'class="num">(\d+)<', row)] == [1, 2, 2, 0, 0, 0]  # version, entered, inside

    page = client.get(f"/journeys/{jid}")
    assert page.status_code == 200
    svg = re.search(r"<svg class=\"flow\".*?</svg>", page.text, re.S).group(0)
    nodes = re.findall(r'<a href="/journeys/%d/edit#step-([\w-]+)" id="node-' % jid, svg)
    assert nodes == ["hour", "cart", "day", "reminder"]
    assert svg.count('class="edge"') == 3  # hour -> cart -> day -> reminder
    hour = re.search(r'id="node-hour".*?</a>', svg, re.S).group(0)
    assert "reached 2" in hour and "here now 2" in hour and "1 h" in hour
    assert "sent 0" in re.search(r'id="node-cart".*?</a>', svg, re.S).group(0)


def test_edit_a_step_wrong_then_right_makes_a_new_version_and_customers_move_explicitly(client, world) -> None:  # noqa: ANN001
    csrf = sign_in(client, "marketer@example.com")
    jid = install(client, csrf)
    cart_abandoned(world.app, "c1")
    edit = client.get(f"/journeys/{jid}/edit")
    assert edit.status_code == 200 and 'id="step-day"' in edit.text
    day = {"csrf_token": csrf, "version": "1", "type": "wait", "days": "1", "at": "25:00", "next": "reminder"}
    wrong = client.post(f"/journeys/{jid}/steps/2", data=day)
    assert wrong.status_code == 400
    section = re.search(r'<section class="step bad" id="step-day".*?</section>', wrong.text, re.S)
    assert section, "the error is shown at the step it names"
    assert 'id="s2-at" name="at" type="text" value="25:00" aria-invalid="true"' in section.group(0)
    assert "at: must be a time as HH:MM" in section.group(0)
    assert "Not saved. Problems: 1, shown at the steps" in wrong.text
    assert definition(world.app, jid)["steps"][2] == {"id": "day", "type": "wait", "days": 1, "hours": 0,
                                                        "minutes": 0, "next": "reminder"}

    right = client.post(f"/journeys/{jid}/steps/2", data={**day, "at": "10:00"})
    assert right.status_code == 303 and right.headers["location"] == f"/journeys/{jid}/edit?saved=new-version#step-day"
    assert definition(world.app, jid)["steps"][2]["at"] == "10:00"
    again = client.post(f"/journeys/{jid}/steps/2", data={**day, "at": "10:00"})
    assert again.status_code == 400 and "saved by someone else" in again.text  # the form of version 1
    assert client.post(f"/journeys/{jid}/steps/2", data={**day, "at": "10:00", "version": "2"}).headers[
        "location"].endswith("saved=unchanged#step-day")

    page = client.get(f"/journeys/{jid}")
    assert "Move onto version 2" in page.text and "10:00" in page.text
    assert re.search(r"<td>1</td><td>[^<]+</td>\s*<td class=\"num\">1</td>", page.text)  # one customer on version 1
    moved = client.post(f"/journeys/{jid}/migrate", data={"csrf_token": csrf, "from_version": "1"})
    assert moved.headers["location"] == f"/journeys/{jid}?moved=1&left=0#versions"
    assert "Moved onto version 2: 1 customers" in client.get(moved.headers["location"]).text
    assert "version 1" in client.get(f"/journeys/{jid}?version=1").text


def test_branches_exits_added_and_deleted_steps(client, world) -> None:  # noqa: ANN001
    csrf = sign_in(client, "marketer@example.com")
    jid = install(client, csrf, "welcome")
    edit = client.get(f"/journeys/{jid}/edit")
    assert 'name="branches.0.value" type="text" value="order-automation"' in edit.text
    branch = {"csrf_token": csrf, "version": "1", "type": "branch", "branches.0.kind": "interest",
              "branches.0.value": "order-automation", "branches.0.next": "orders", "branches.1.kind": "condition",
              "branches.1.value": "now >", "branches.1.next": "crm", "else": ""}
    wrong = client.post(f"/journeys/{jid}/steps/2", data=branch)
    assert wrong.status_code == 400
    section = re.search(r'<section class="step bad" id="step-interest".*?</section>', wrong.text, re.S).group(0)
    assert "<code>else</code>: a branch step needs `else`" in section or "else-error" in section, section
    wrong = client.post(f"/journeys/{jid}/steps/2", data={**branch, "else": "messengers"})
    section = re.search(r'<section class="step bad" id="step-interest".*?</section>', wrong.text, re.S).group(0)
    assert "branches.1.condition" in section and 'value="now &gt;"' in section
    ok = client.post(f"/journeys/{jid}/steps/2", data={**branch, "branches.1.value": "now.getHours() > 12",
                                                       "else": "messengers"})
    assert ok.status_code == 303, ok.text
    step = definition(world.app, jid)["steps"][2]
    assert step["branches"] == [{"interest": "order-automation", "next": "orders"},
                                {"condition": "now.getHours() > 12", "next": "crm"}] and step["else"] == "messengers"

    settings = {"csrf_token": csrf, "version": "2", "name": "welcome", "entry.kind": "customer_created",
                "entry.entry_points": "registration, chat", "entry.condition": "true", "reentry.policy": "after",
                "reentry.days": "", "exits.0.kind": "unsubscribed", "exits.1.kind": "segment_left",
                "exits.1.value": "nope"}
    wrong = client.post(f"/journeys/{jid}/settings", data=settings)
    assert wrong.status_code == 400 and "<code>reentry</code>: `days` goes with" in wrong.text
    wrong = client.post(f"/journeys/{jid}/settings", data={**settings, "reentry.days": "30"})
    assert 'id="j-exits-1-value" name="exits.1.value" type="text" value="nope"' in wrong.text
    assert "<code>exits.1.segment</code>: no segment &#39;nope&#39;" in wrong.text
    ok = client.post(f"/journeys/{jid}/settings", data={**settings, "reentry.days": "30", "exits.1.kind": "ordered"})
    assert ok.status_code == 303, ok.text
    d = definition(world.app, jid)
    assert d["reentry"] == {"policy": "after", "days": 30} and d["exits"] == [{"event": "unsubscribed"},
                                                                               {"event": "ordered"}]
    assert d["entry"]["entry_points"] == ["registration", "chat"]

    form = client.get(f"/journeys/{jid}/edit?add=add_tag&after=welcome")
    assert 'id="step-new"' in form.text and 'action="/journeys/%d/steps/6"' % jid in form.text
    added = client.post(f"/journeys/{jid}/steps/6", data={"csrf_token": csrf, "version": "3", "type": "add_tag",
                                                          "id": "greeted", "after": "welcome", "tag": "greeted"})
    assert added.status_code == 303, added.text
    d = definition(world.app, jid)
    assert d["steps"][0]["next"] == "greeted" and d["steps"][-1] == {"id": "greeted", "type": "add_tag",
                                                                     "tag": "greeted", "next": "pause"}
    deleted = client.post(f"/journeys/{jid}/steps/6/delete", data={"csrf_token": csrf, "version": "4"})
    assert deleted.status_code == 303
    d = definition(world.app, jid)
    assert d["steps"][0]["next"] == "pause" and len(d["steps"]) == 6
    refused = client.post(f"/journeys/{jid}/steps/2/delete", data={"csrf_token": csrf, "version": "5"})
    assert refused.status_code == 400 and "Not saved" in refused.text  # the branch's steps lose their way in
    section = re.search(r'<section class="step bad" id="step-orders".*?</section>', refused.text, re.S).group(0)
    assert "unreachable" in section


def test_a_new_journey_and_the_report(client, world) -> None:  # noqa: ANN001
    csrf = sign_in(client, "admin@example.com")
    assert client.get("/journeys/new").status_code == 200
    form = {"csrf_token": csrf, "site": "north", "name": "vip", "entry.kind": "segment_entered",
            "entry.condition": "true", "reentry.policy": "never"}
    wrong = client.post("/journeys", data=form)
    assert wrong.status_code == 400 and "entry" in wrong.text and 'value="vip"' in wrong.text
    made = client.post("/journeys", data={**form, "entry.kind": "customer_created"})
    assert made.status_code == 303 and made.headers["location"].endswith("/edit?saved=created")
    jid = int(made.headers["location"].split("/")[2])
    assert "Off: nobody new enters" in client.get(f"/journeys/{jid}").text
    assert client.post(f"/journeys/{jid}/active", data={"csrf_token": csrf, "active": "on"}).status_code == 303
    assert "Switch off" in client.get(f"/journeys/{jid}").text

    rid = install(client, csrf)
    cart_abandoned(world.app, "c1")
    report = client.get(f"/journeys/{rid}/report?window_days=3")
    assert report.status_code == 200
    assert 'data-chart="funnel-data"' in report.text and 'data-chart="exits-data"' in report.text
    assert "Welcome chains" in report.text and "63.9%" in report.text
    assert re.search(r'<div class="label">Entered</div><div class="value">1</div>', report.text)
    assert client.get(f"/journeys/{rid}/report?version=9").status_code == 200
    assert client.get("/journeys/999/report").status_code == 404


def test_a_viewer_reads_every_journey_page_and_sees_no_forms(client, world) -> None:  # noqa: ANN001
    with transaction(world.app.sessions) as s:
        jid = journeys.install_mechanic(s, name="reactivation", site="north", now=world.app.clock.now())[0].id
    token = sign_in(client, "viewer@example.com")
    for path in ("/journeys", "/journeys/mechanics", f"/journeys/{jid}", f"/journeys/{jid}/edit",
                 f"/journeys/{jid}/report", "/journeys/new"):
        answer = client.get(path)
        assert answer.status_code == 200, path
        assert not re.search(r'<form method="post" action="/journeys', answer.text), path
    assert 'href="#step-hello"' in client.get(f"/journeys/{jid}").text  # the diagram links to the steps' rows
    answer = client.post(f"/journeys/{jid}/active", data={"csrf_token": token})
    assert answer.status_code == 403


def test_the_new_step_form_of_every_type(client, world) -> None:  # noqa: ANN001
    csrf = sign_in(client, "marketer@example.com")
    jid = install(client, csrf, "welcome")
    for kind in ("send", "wait", "wait_event", "branch", "split", "add_tag", "remove_tag", "credit_points",
                 "create_task", "webhook", "exit"):
        form = client.get(f"/journeys/{jid}/edit?add={kind}&after=welcome")
        assert form.status_code == 200 and 'id="step-new"' in form.text, kind
        assert '<option value="welcome" selected translate="no">welcome</option>' in form.text, kind
    assert client.get(f"/journeys/{jid}/edit?add=nope").status_code == 400


def test_the_report_of_an_ab_split(client, world) -> None:  # noqa: ANN001
    with transaction(world.app.sessions) as s:
        jid = journeys.apply(s, raw={"name": "ab", "site": "north", "entry": {"kind": "customer_created"}, "steps": [
            {"id": "ab", "type": "split", "arms": [{"name": "A", "share": 50, "next": "tag"}], "holdout": 50},
            {"id": "tag", "type": "add_tag", "tag": "ab"}]}, now=world.app.clock.now())[0].id
    for n in range(6):
        h.customer(world.app, site="north", external_id=f"ab{n}", channels=("email",))
    h.drain(world.app)
    sign_in(client, "viewer@example.com")
    report = client.get(f"/journeys/{jid}/report")
    assert report.status_code == 200
    split = re.search(r'<h2 id="split-1">.*?</table>', report.text, re.S).group(0)
    assert "95% confidence interval" in split and "holdout" in split and '<span translate="no">A</span>' in split
    customers = [int(n) for n in re.findall(r'<td class="num">(\d+)</td>\s*<td class="num">\d+</td><td class="num">[\d.]+%',
                                           split)]
    assert sum(customers) == 6
    page = client.get(f"/journeys/{jid}")
    assert "holdout 50%" in page.text and "A 50%" in page.text  # the split's summary and its arm's arrow


def test_a_task_for_nobody_keeps_nobody_when_its_step_form_is_saved(client, world) -> None:  # noqa: ANN001
    csrf = sign_in(client, "marketer@example.com")
    raw = {"name": "calls", "site": "north", "entry": {"kind": "customer_created"},
           "steps": [{"id": "call", "type": "create_task", "title": "Call", "assignee": None}]}
    with transaction(world.app.sessions) as s:
        jid = journeys.apply(s, raw=raw, now=world.app.clock.now())[0].id
    edit = client.get(f"/journeys/{jid}/edit")
    assert re.search(r'<option value="none" selected>nobody</option>', edit.text), "shown as nobody"
    form = {"csrf_token": csrf, "version": "1", "type": "create_task", "id": "call", "title": "Call",
            "due_in_minutes": "0", "assignee": "none"}
    saved = client.post(f"/journeys/{jid}/steps/0", data=form)
    assert saved.headers["location"].endswith("saved=unchanged#step-call"), saved.headers["location"]
    assert definition(world.app, jid)["steps"][0]["assignee"] is None
    changed = client.post(f"/journeys/{jid}/steps/0", data={**form, "assignee": "customer_manager"})
    assert changed.headers["location"].endswith("saved=new-version#step-call")
    assert definition(world.app, jid)["steps"][0]["assignee"] == "customer_manager"


def test_a_wait_for_an_event_without_a_timeout_and_an_unreachable_step_are_refused_at_their_step(
        client, world) -> None:  # noqa: ANN001
    csrf = sign_in(client, "marketer@example.com")
    jid = install(client, csrf, "reactivation")
    assert [s["id"] for s in definition(world.app, jid)["steps"]] == ["hello", "order", "bonus", "bonus-mail"]
    order = {"csrf_token": csrf, "version": "1", "type": "wait_event", "event": "ordered", "on_timeout": "bonus"}
    wrong = client.post(f"/journeys/{jid}/steps/1", data=order)
    assert wrong.status_code == 400 and "Not saved. Problems: 1, shown at the steps" in wrong.text
    section = re.search(r'<section class="step bad" id="step-order".*?</section>', wrong.text, re.S).group(0)
    assert "<code>timeout</code>: a wait for an event needs a timeout" in section, section
    assert definition(world.app, jid)["steps"][1]["timeout"] == {"days": 14, "hours": 0, "minutes": 0}

    skip = client.post(f"/journeys/{jid}/steps/1", data={**order, "timeout.days": "14", "on_timeout": "bonus-mail"})
    assert skip.status_code == 400  # `bonus` is no longer reached from anywhere
    section = re.search(r'<section class="step bad" id="step-bonus".*?</section>', skip.text, re.S).group(0)
    assert "step &#39;bonus&#39; is unreachable from the start" in section, section
    assert definition(world.app, jid)["steps"][1]["on_timeout"] == "bonus"
    ok = client.post(f"/journeys/{jid}/steps/1", data={**order, "timeout.days": "10"})
    assert ok.status_code == 303 and definition(world.app, jid)["steps"][1]["timeout"]["days"] == 10
