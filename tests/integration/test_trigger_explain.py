"""`retento triggers explain` / GET /api/v1/triggers/{id}/explain and the per-trigger debug switch, end to end:
events in, frozen clock, explicit worker ticks."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from retento.api import create_app
from retento.apikeys import service as apikeys
from retento.cli import app as cli
from retento.core.config import get_settings
from retento.core.db.transactions import transaction
from retento.customers import service as customers
from retento.triggers import service
from retento.triggers.models import Run
from tests import factories as f

BIG = {"name": "big", "events": ["order_created"], "condition": 'order.status == "new" && order.total > 1000.0',
       "actions": [{"type": "add_tag", "target": "order", "tag": "big"}]}


@pytest.fixture
def http(app):
    with transaction(app.sessions) as s:
        _, raw = apikeys.create(s, name="marketer", scopes="triggers:manage", sites=None, now=app.clock.now())
    with TestClient(create_app(app), headers={"X-API-Key": raw}) as client:
        yield client


@pytest.fixture
def cli_env(app, db_url, monkeypatch):
    monkeypatch.setenv("RETENTO_DATABASE_URL", db_url)
    monkeypatch.delenv("COLUMNS", raising=False)  # tables as wide as they need (piped)
    monkeypatch.setenv("RETENTO_FROZEN_NOW", app.clock.now().isoformat())
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def own_rows(app, tid, oid):
    """The run-log rows stored for the trigger itself (not the event's shared row)."""
    with transaction(app.sessions) as s:
        return [(r.outcome, r.reason) for r in s.scalars(select(Run).where(Run.trigger_id == tid,
                                                                           Run.order_id == oid))]


def test_the_debug_switch_logs_every_evaluation_until_it_expires(app, http, clock):
    f.site(app)
    tid = http.post("/api/v1/triggers", json=BIG).json()["id"]
    assert http.get(f"/api/v1/triggers/{tid}").json()["debug_until"] is None  # off by default
    quiet = f.order(app, items=[{"name": "x", "price": "10.00"}])
    app.worker.tick()
    assert own_rows(app, tid, quiet) == []

    r = http.patch(f"/api/v1/triggers/{tid}", json={"debug_minutes": 30})
    assert r.status_code == 200, r.text
    assert r.json()["debug_until"] == "2026-03-02T09:30:00Z" and r.json()["version"] == 1
    small = f.order(app, items=[{"name": "x", "price": "10.00"}])
    app.worker.tick()
    assert own_rows(app, tid, small) == [("not_matched", "debug: part 2 of 2 is false: `order.total > 1000.0`")]
    f.edit_order(app, small, status="assembling")  # not an event the trigger listens to: nothing to log

    clock.advance(minutes=29)
    other = f.order(app, status="assembling", items=[{"name": "x", "price": "10.00"}])  # ruled out by its guard
    app.worker.tick()
    assert own_rows(app, tid, other) == [("not_matched", 'debug: part 1 of 2 is false: `order.status == "new"`')]
    big = f.order(app, items=[{"name": "x", "price": "5000.00"}])
    app.worker.tick()
    assert [o for o, _ in own_rows(app, tid, big)] == ["acted"]

    clock.advance(minutes=1)  # 09:30: the switch has expired
    late = f.order(app, items=[{"name": "x", "price": "10.00"}])
    app.worker.tick()
    assert own_rows(app, tid, late) == []

    bad = http.patch(f"/api/v1/triggers/{tid}", json={"debug_minutes": 100000})
    assert bad.status_code in (400, 422) and "debug_minutes" in bad.text
    assert http.patch(f"/api/v1/triggers/{tid}", json={}).status_code in (400, 422)
    assert http.patch(f"/api/v1/triggers/{tid}", json={"debug_minutes": 0}).json()["debug_until"] is None


def test_the_debug_switch_from_the_command_line(app, cli_env):
    f.site(app)
    with transaction(app.sessions) as s:
        service.create_trigger(s, raw=BIG, now=app.clock.now())
    r = cli_env.invoke(cli, ["triggers", "debug", "big", "--minutes", "15"])
    assert r.exit_code == 0, r.output
    assert "logged until 2026-03-02 09:15 UTC" in r.output
    r = cli_env.invoke(cli, ["triggers", "list", "--format", "json"])
    assert r.exit_code == 0 and '"debug_until": "2026-03-02T09:15:00+00:00"' in r.output
    r = cli_env.invoke(cli, ["triggers", "debug", "big", "--minutes", "0"])
    assert r.exit_code == 0 and "debug log off" in r.output
    r = cli_env.invoke(cli, ["triggers", "debug", "nope"])
    assert r.exit_code != 0 and "nope" in r.output


def explain(http, tid, **params):
    r = http.get(f"/api/v1/triggers/{tid}/explain", params=params)
    assert r.status_code == 200, r.text
    return r.json()["events"]


def brief(events):
    return [(e["type"], e["outcome"]) for e in events]


def test_explain_names_the_false_part_with_the_values_it_saw_on_the_data_of_the_time(app, http, clock):
    f.site(app)
    tid = http.post("/api/v1/triggers", json={
        "name": "big-assembling", "events": ["order_status_changed"],
        "condition": 'new_value("status") == "assembling" && order.total > 1000.0 && has_tag(order, "vip")',
        "actions": [{"type": "add_tag", "target": "order", "tag": "big"}]}).json()["id"]
    small = f.order(app, items=[{"name": "x", "price": "500.00"}])
    f.edit_order(app, small, status="assembling")
    clock.advance(minutes=5)
    f.edit_order(app, small, items=[{"name": "x", "price": "5000.00"}])  # bigger now, after the event
    f.edit_order(app, small, status="complete")
    big = f.order(app, items=[{"name": "x", "price": "5000.00"}], tags=["vip"])
    f.edit_order(app, big, status="assembling")
    app.worker.tick()

    events = explain(http, tid, order=small)
    assert brief(events) == [("order_created", "not_listening"), ("order_changed", "not_listening"),
                             ("order_status_changed", "not_matched"), ("order_changed", "not_listening"),
                             ("order_changed", "not_listening"), ("order_status_changed", "not_matched")]
    assert "listens to order_status_changed, not order_created" in events[0]["reason"]
    assembling, complete = events[2], events[5]
    assert (assembling["part"], assembling["part_text"]) == (2, "order.total > 1000.0")
    assert assembling["reason"] == "part 2 of 3 is false: `order.total > 1000.0`"
    assert assembling["values"] == {"order.total": 500.0}  # as it was then: 5000 only since
    assert complete["part"] == 1
    assert complete["values"]["new_value(\"status\")"] == "complete"
    assert complete["values"]["changes.map(c, c.field)"] == ["status"]

    events = explain(http, tid, order=big)
    with_tag = [e for e in events if e["type"] == "order_status_changed"][0]
    assert with_tag["outcome"] == "acted" and with_tag["runs"][0]["outcome"] == "acted"
    assert events[-1]["outcome"] == "not_listening"  # its own add_tag: an order_changed it does not listen to
    one = explain(http, tid, event=with_tag["event_id"])
    assert brief(one) == [("order_status_changed", "acted")]

    http.put(f"/api/v1/triggers/{tid}", json={  # has_tag on the whole order: the tags it read are shown
        "name": "big-assembling", "events": ["order_status_changed"],
        "condition": 'has_tag(order, "gold")', "actions": [{"type": "add_tag", "target": "order", "tag": "big"}]})
    gold = explain(http, tid, event=with_tag["event_id"])[0]
    assert gold["outcome"] == "acted"  # what the engine recorded then wins over today's definition
    assert gold["values"] == {"order.tags": ["vip"]} and gold["reason"]


def test_explain_shows_a_run_limit_the_site_filter_and_event_names(app, http):
    f.site(app)
    f.site(app, "other")
    once = http.post("/api/v1/triggers", json={
        "name": "once", "events": ["order_status_changed"], "condition": "true",
        "limits": [{"per": "order", "max": 1}], "actions": [{"type": "add_tag", "target": "order", "tag": "x"}]}
    ).json()["id"]
    elsewhere = http.post("/api/v1/triggers", json={
        "name": "elsewhere", "events": ["order_status_changed"], "sites": ["other"], "condition": "true",
        "actions": [{"type": "add_tag", "target": "order", "tag": "y"}]}).json()["id"]
    named = http.post("/api/v1/triggers", json={
        "name": "named", "events": ["custom"], "event_names": ["cart_abandoned"], "condition": "true",
        "actions": [{"type": "add_tag", "tag": "z"}]}).json()["id"]
    oid = f.order(app)
    f.edit_order(app, oid, status="assembling")
    f.edit_order(app, oid, status="complete")
    app.worker.tick()

    events = [e for e in explain(http, once, order=oid) if e["type"] == "order_status_changed"]
    assert [e["outcome"] for e in events] == ["acted", "limited"]
    assert events[1]["reason"] == "run limit reached: 1 of 1 per order"
    events = [e for e in explain(http, elsewhere, order=oid) if e["type"] == "order_status_changed"]
    assert {e["outcome"] for e in events} == {"not_listening"}
    assert "limited to sites other" in events[0]["reason"]

    cid = f.customer(app, email="a@b.ru")
    with transaction(app.sessions) as s:
        customers.emit_custom_event(s, customer=customers.get(s, cid), name="visit", payload={}, ctx=f.API,
                                    now=app.clock.now())
    app.worker.tick()
    events = explain(http, named, customer=cid)
    assert brief(events) == [("customer_created", "not_listening"), ("custom", "not_listening")]
    assert "'visit' is not among event_names (cart_abandoned)" in events[1]["reason"]


def test_explain_follows_a_delayed_run_scheduled_cancelled_and_fired(app, http, clock):
    f.site(app)
    tid = http.post("/api/v1/triggers", json={
        "name": "courier", "events": ["order_status_changed"], "delay": {"minutes": 20},
        "condition": 'new_value("status") == "ready-for-delivery"', "on_change": {"policy": "cancel"},
        "actions": [{"type": "add_tag", "target": "order", "tag": "late"}]}).json()["id"]
    moved, waiting = f.order(app), f.order(app)
    f.edit_order(app, moved, status="ready-for-delivery")
    f.edit_order(app, waiting, status="ready-for-delivery")
    app.worker.tick()
    event = [e for e in explain(http, tid, order=waiting) if e["type"] == "order_status_changed"][0]
    assert event["outcome"] == "scheduled" and event["timer"]["state"] == "pending"
    assert "scheduled for 2026-03-02 09:20 UTC" in event["reason"]

    clock.advance(minutes=5)
    f.edit_order(app, moved, status="complete")
    app.worker.tick()
    clock.advance(minutes=20)
    app.worker.tick()
    ready, complete = [e for e in explain(http, tid, order=moved) if e["type"] == "order_status_changed"]
    assert ready["outcome"] == "cancelled" and "order changed (status" in ready["reason"]
    assert ready["timer"]["state"] == "cancelled"
    assert complete["outcome"] == "not_matched"
    event = [e for e in explain(http, tid, order=waiting) if e["type"] == "order_status_changed"][0]
    assert event["outcome"] == "fired" and "fired at 2026-03-02 09:25 UTC" in event["reason"]
    assert [r["phase"] for r in event["runs"]][-1] == "fire"


def test_explain_refuses_what_it_cannot_answer(app, http):
    f.site(app)
    f.site(app, "other")
    tid = http.post("/api/v1/triggers", json=BIG).json()["id"]
    mine, theirs = f.order(app), f.order(app, site="other")
    none = http.get(f"/api/v1/triggers/{tid}/explain")
    both = http.get(f"/api/v1/triggers/{tid}/explain", params={"order": mine, "customer": 1})
    assert none.status_code == both.status_code == 400
    assert "exactly one of order, customer or event" in none.text
    assert http.get(f"/api/v1/triggers/{tid}/explain", params={"order": 999}).status_code == 404
    huge = http.get(f"/api/v1/triggers/{tid}/explain", params={"event": 2**64})
    assert huge.status_code in (400, 422) and "event" in huge.text
    with transaction(app.sessions) as s:
        _, raw = apikeys.create(s, name="shop only", scopes="triggers:manage", sites=["shop"], now=app.clock.now())
    with transaction(app.sessions) as s:
        shop_tid = service.create_trigger(s, raw={**BIG, "name": "shop big", "sites": ["shop"]}, now=app.clock.now()).id
    r = http.get(f"/api/v1/triggers/{shop_tid}/explain", params={"order": theirs}, headers={"X-API-Key": raw})
    assert r.status_code == 404 and "order" in r.text


def test_explain_from_the_command_line(app, cli_env):
    f.site(app)
    with transaction(app.sessions) as s:
        service.create_trigger(s, raw=BIG, now=app.clock.now())
    oid = f.order(app, items=[{"name": "x", "price": "10.00"}])
    app.worker.tick()
    r = cli_env.invoke(cli, ["triggers", "explain", "big", "--order", str(oid)])
    assert r.exit_code == 0, r.output
    assert "condition false / условие ложно" in r.output
    assert "part 2 of 2 is false" in r.output and "order.total = 10.0" in r.output
    r = cli_env.invoke(cli, ["triggers", "explain", "big", "--order", str(oid), "--format", "json"])
    assert r.exit_code == 0, r.output
    assert '"outcome": "not_matched"' in r.output
    r = cli_env.invoke(cli, ["triggers", "explain", "big"])
    assert r.exit_code != 0 and "exactly one of order, customer or event" in r.output
