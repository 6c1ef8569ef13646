"""Triggers and tasks through the HTTP API and the command line (the same services underneath)."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from retento.api import create_app
from retento.apikeys import service as apikeys
from retento.cli import app as cli
from retento.core.config import get_settings
from retento.core.db.transactions import transaction
from retento.orders import service as orders
from retento.triggers import service as triggers
from tests import factories as f

RULE = {"name": "vip", "events": ["order_created"], "condition": "order.total > 100.0",
        "actions": [{"type": "add_tag", "target": "order", "tag": "big"}]}


@pytest.fixture
def http(app):
    with transaction(app.sessions) as s:
        _, raw = apikeys.create(s, name="marketer", scopes="triggers:manage,tasks:read,tasks:write", sites=None,
                                now=app.clock.now())
    with TestClient(create_app(app), headers={"X-API-Key": raw}) as client:
        yield client


def order_tags(app, oid):
    with transaction(app.sessions) as s:
        return orders.get(s, oid).tags


def errors(response):
    return {e["field"]: e["reason"] for e in response.json()["errors"]}


def test_api_defines_triggers_and_explains_runs(app, http, clock):
    f.site(app)
    r = http.post("/api/v1/triggers", json=RULE)
    assert r.status_code == 201, r.text
    tid = r.json()["id"]
    bad = http.post("/api/v1/triggers", json={**RULE, "name": "x", "condition": "order.totl > 1"})
    assert bad.status_code == 400 and bad.headers["content-type"] == "application/problem+json"
    assert "order has no field 'totl'" in errors(bad)["condition"]
    assert http.post("/api/v1/triggers", json=RULE).status_code == 409
    oid = f.order(app, items=[{"name": "x", "price": "500.00"}])
    app.worker.tick()
    runs = http.get(f"/api/v1/orders/{oid}/trigger-runs").json()
    assert [(x["trigger_id"], x["outcome"]) for x in runs] == [(tid, "acted")]
    assert runs[0]["actions"][0]["action"] == "add_tag"
    assert http.get(f"/api/v1/customers/{oid}/trigger-runs").status_code == 404  # no such customer
    dry = http.post(f"/api/v1/triggers/{tid}/dry-run", json={"over": "orders"}).json()
    assert (dry["evaluated"], dry["matched"]) == (1, 1)
    assert http.patch(f"/api/v1/triggers/{tid}", json={"active": False}).json()["active"] is False
    actions = {a["type"] for a in http.get("/api/v1/triggers/actions").json()}
    assert {"set_order_status", "set_order_field", "add_tag", "remove_tag", "create_task", "webhook",
            "emit_event"} <= actions


def test_api_pending_runs_cancel_and_tasks(app, http, clock):
    f.site(app)
    r = http.post("/api/v1/triggers/templates/courier-17-minutes", json={"params": {"minutes": 20}})
    assert r.status_code == 200, r.text
    tid = r.json()["id"]
    a, b = f.order(app), f.order(app)
    f.edit_order(app, a, status="ready-for-delivery")
    f.edit_order(app, b, status="ready-for-delivery")
    app.worker.tick()
    pending = http.get("/api/v1/triggers/pending", params={"trigger_id": tid}).json()
    assert [p["order_id"] for p in pending] == [a, b]
    assert http.delete(f"/api/v1/triggers/pending/{pending[1]['id']}").json()["state"] == "cancelled"
    assert http.delete(f"/api/v1/triggers/pending/{pending[1]['id']}").status_code == 409
    clock.advance(minutes=20)
    app.worker.tick()
    tasks = http.get("/api/v1/tasks", params={"order_id": a}).json()
    assert len(tasks) == 1 and tasks[0]["source"] == "trigger" and tasks[0]["actor_id"] == str(tid)
    done = http.patch(f"/api/v1/tasks/{tasks[0]['id']}", json={"done": True}).json()
    assert done["done"] is True and done["done_at"]
    assert http.get("/api/v1/tasks", params={"done": False}).json() == []
    made = http.post("/api/v1/tasks", json={"title": "Call back", "order_id": 999})
    assert made.status_code == 404 and "order_id" in errors(made)
    anonymous = http.get("/api/v1/triggers", headers={"X-API-Key": ""})
    assert anonymous.status_code == 401


def test_api_pending_total_and_firing_one_run_now(app, http, clock):
    f.site(app)
    f.site(app, "other")
    r = http.post("/api/v1/triggers", json={
        "name": "late", "events": ["order_created"], "condition": 'order.status == "new"', "delay": {"hours": 2},
        "limits": [{"per": "trigger", "max": 1}], "actions": [{"type": "add_tag", "target": "order", "tag": "late"}]})
    assert r.status_code == 201, r.text
    a, b, c = f.order(app), f.order(app), f.order(app)
    app.worker.tick()
    page = http.get("/api/v1/triggers/pending", params={"limit": 2})
    assert [p["order_id"] for p in page.json()] == [a, b] and page.headers["X-Total-Count"] == "3"
    assert http.get("/api/v1/triggers/pending", params={"order_id": c}).headers["X-Total-Count"] == "1"
    runs = {p["order_id"]: p["id"] for p in http.get("/api/v1/triggers/pending").json()}
    with transaction(app.sessions) as s:
        _, raw = apikeys.create(s, name="other shop", scopes="triggers:manage", sites=["other"], now=clock.now())
    assert http.post(f"/api/v1/triggers/pending/{runs[a]}/fire", headers={"X-API-Key": raw}).status_code == 404

    fired = http.post(f"/api/v1/triggers/pending/{runs[a]}/fire")  # two hours early: the clock did not move
    assert fired.status_code == 200, fired.text
    body = fired.json()
    assert (body["timer"]["state"], body["timer"]["due_at"]) == ("done", "2026-03-02T09:00:00Z")
    assert (body["run"]["phase"], body["run"]["outcome"], body["run"]["actions"][0]["action"]) == (
        "fire", "acted", "add_tag")
    assert order_tags(app, a) == ["late"]
    assert http.post(f"/api/v1/triggers/pending/{runs[a]}/fire").status_code == 409
    assert http.post("/api/v1/triggers/pending/999999/fire").status_code == 404

    f.edit_order(app, b, status="no-call")
    app.worker.tick()
    body = http.post(f"/api/v1/triggers/pending/{runs[b]}/fire").json()  # the condition is checked again
    assert body["timer"]["state"] == "skipped" and body["run"]["outcome"] == "not_matched"
    body = http.post(f"/api/v1/triggers/pending/{runs[c]}/fire").json()  # so is the run limit
    assert body["timer"]["state"] == "skipped" and body["run"]["outcome"] == "skipped"
    assert order_tags(app, c) == []
    assert http.get("/api/v1/triggers/pending").headers["X-Total-Count"] == "0"


@pytest.fixture
def cli_env(app, db_url, monkeypatch):
    monkeypatch.setenv("RETENTO_DATABASE_URL", db_url)
    monkeypatch.setenv("RETENTO_FROZEN_NOW", app.clock.now().isoformat())
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def test_cli_apply_yaml_templates_pending_and_runs(app, cli_env, tmp_path):
    f.site(app)
    path = tmp_path / "rules.yaml"
    path.write_text("""
triggers:
  - name: big-order
    events: [order_created]
    condition: order.total > 100.0
    actions: [{type: add_tag, target: order, tag: big}]
  - name: later
    events: [order_created]
    delay: {hours: 2}
    actions: [{type: create_task, title: "Check order {order.number}"}]
""")
    r = cli_env.invoke(cli, ["triggers", "apply", str(path)])
    assert r.exit_code == 0, r.output
    assert "trigger big-order created" in r.output and "trigger later created" in r.output
    r = cli_env.invoke(cli, ["triggers", "apply", str(path)])
    assert "trigger big-order updated" in r.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: broken\nevents: [order_created]\nactions: [{type: set_order_status, status: nowhere}]\n")
    r = cli_env.invoke(cli, ["triggers", "apply", str(bad)])
    assert r.exit_code == 2 and "actions.0.status: unknown status 'nowhere'" in r.output
    r = cli_env.invoke(cli, ["triggers", "install-template", "review-request", "--set", "days=5"])
    assert r.exit_code == 0 and "installed as trigger review-request" in r.output, r.output
    r = cli_env.invoke(cli, ["triggers", "install-template", "review-request", "--set", "weeks=1"])
    assert r.exit_code == 1 and "params.weeks" in r.output
    oid = f.order(app, items=[{"name": "x", "price": "500.00"}])
    second = f.order(app)
    app.worker.tick()
    r = cli_env.invoke(cli, ["triggers", "pending", "--trigger", "later"])
    assert r.exit_code == 0 and re.search(rf"│ order\s+│\s+{oid} │", r.output), r.output
    assert "showing 2 of 2 pending runs" in r.output
    r = cli_env.invoke(cli, ["triggers", "pending", "--limit", "1", "--format", "json"])
    assert [(x["entity"], x["entity_id"]) for x in json.loads(r.stdout)] == [("order", oid)]
    assert "showing 1 of 2 pending runs" in r.stderr
    with transaction(app.sessions) as s:
        (run,) = triggers.pending(s, order_id=second)
    r = cli_env.invoke(cli, ["triggers", "pending", "--fire", str(run.id)])
    assert r.exit_code == 0 and f"run {run.id} fired: done" in r.output and "create_task: ok" in r.output, r.output
    r = cli_env.invoke(cli, ["triggers", "pending", "--fire", str(run.id)])
    assert r.exit_code == 1 and f"run {run.id} is already done" in r.output
    r = cli_env.invoke(cli, ["triggers", "runs", "--order", str(oid)])
    assert "acted" in r.output and "scheduled" in r.output
    r = cli_env.invoke(cli, ["triggers", "runs", "--order", str(oid), "--format", "csv"])
    assert {x["outcome"] for x in csv.DictReader(io.StringIO(r.stdout))} >= {"acted", "scheduled"}
    r = cli_env.invoke(cli, ["triggers", "dry-run", "big-order", "--over", "orders"])
    assert "evaluated 2, matched 1" in r.output
    r = cli_env.invoke(cli, ["triggers", "cancel", "--trigger", "later"])
    assert "1 pending runs cancelled" in r.output
    r = cli_env.invoke(cli, ["triggers", "list"])
    assert "big-order" in r.output and "review-request" in r.output
