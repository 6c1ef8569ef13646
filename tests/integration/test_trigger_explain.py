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
    r = cli_env.invoke(cli, ["triggers", "debug", "big", "--minutes", "0"])
    assert r.exit_code == 0 and "debug log off" in r.output
    r = cli_env.invoke(cli, ["triggers", "debug", "nope"])
    assert r.exit_code != 0 and "nope" in r.output
