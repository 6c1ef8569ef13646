"""One schema through the API and YAML: pointed errors on save (nothing stored), versions, switch, migrate, runs."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from retento.api import create_app
from retento.apikeys import service as apikeys
from retento.cli import app as cli
from retento.core.config import get_settings
from retento.core.db.transactions import transaction
from tests import factories as f
from tests.messaging import helpers as h

GOOD = {"name": "welcome", "site": "shop", "entry": {"kind": "customer_created"},
        "steps": [{"id": "hello", "type": "add_tag", "tag": "hello", "next": "wait"},
                  {"id": "wait", "type": "wait", "hours": 2, "next": "bye"},
                  {"id": "bye", "type": "add_tag", "tag": "bye"}]}


@pytest.fixture
def http(app):
    with transaction(app.sessions) as s:
        _, raw = apikeys.create(s, name="j", scopes="journeys:manage", now=app.clock.now())
    with TestClient(create_app(app), headers={"X-API-Key": raw}) as c:
        yield c


def _errors(r) -> dict[str, str]:
    assert r.status_code == 400, r.text
    return {e["field"]: e["reason"] for e in r.json()["errors"]}


def test_pointed_errors_and_nothing_stored(app, http):
    f.site(app)
    unreachable = {**GOOD, "steps": [*GOOD["steps"], {"id": "lost", "type": "add_tag", "tag": "x"}]}
    assert "unreachable" in _errors(http.post("/api/v1/journeys", json=unreachable))["steps.3"]
    no_else = {**GOOD, "steps": [{"id": "b", "type": "branch", "branches": [{"interest": "crm", "next": "x"}]},
                                 {"id": "x", "type": "add_tag", "tag": "x"}]}
    assert "else" in _errors(http.post("/api/v1/journeys", json=no_else))["steps.0.else"]
    no_timeout = {**GOOD, "steps": [{"id": "s", "type": "send", "cascade_id": 1, "next": "w"},
                                    {"id": "w", "type": "wait_event", "event": "opened"}]}
    errors = _errors(http.post("/api/v1/journeys", json=no_timeout))
    assert "timeout" in errors["steps.1.timeout"]
    cascade = _errors(http.post("/api/v1/journeys/check", json={**no_timeout, "steps": [
        {**no_timeout["steps"][0]}, {**no_timeout["steps"][1], "timeout": {"days": 1}}]}))
    assert cascade == {"steps.0.cascade_id": "no cascade 1 on site 'shop'"}
    bad_next = {**GOOD, "steps": [{**GOOD["steps"][0], "next": "nowhere"}]}
    assert _errors(http.post("/api/v1/journeys", json=bad_next)) == {"steps.0.next": "no step 'nowhere'"}
    assert "greater than or equal to 0" in _errors(http.post("/api/v1/journeys", json={**GOOD, "steps": [
        {"id": "w", "type": "wait", "minutes": -1}]}))["steps.0.minutes"]
    assert "exits.0.condition" in _errors(http.post("/api/v1/journeys", json={
        **GOOD, "exits": [{"condition": "customer.nope("}]}))
    circle = {**GOOD, "steps": [{**GOOD["steps"][0], "next": "wait"}, {**GOOD["steps"][1], "next": "hello"}]}
    assert "circle" in _errors(http.post("/api/v1/journeys", json=circle))["steps.0"]
    assert http.get("/api/v1/journeys").json() == []


def test_versions_switch_migrate_and_runs_through_the_api(app, http):
    f.site(app)
    r = http.post("/api/v1/journeys", json=GOOD)
    assert r.status_code == 201 and r.json()["outcome"] == "created"
    jid = r.json()["journey"]["id"]
    assert http.post("/api/v1/journeys", json=GOOD).json()["outcome"] == "unchanged"  # a retry is harmless
    cid = f.customer(app, email="a@example.com")
    h.drain(app)
    changed = {**GOOD, "steps": [*GOOD["steps"][:2], {"id": "bye", "type": "add_tag", "tag": "bye-2"}]}
    r = http.put(f"/api/v1/journeys/{jid}", json=changed)
    assert r.json()["outcome"] == "new version" and r.json()["journey"]["version"] == 2
    assert r.json()["journey"]["versions"] == 2
    (run,) = http.get(f"/api/v1/journeys/{jid}/runs").json()
    assert (run["version"], run["step"], run["customer_id"]) == (1, "wait", cid)
    assert http.post(f"/api/v1/journeys/{jid}/migrate", json={"from_version": 1}).json() == {"moved": 1, "left": 0}
    assert http.patch(f"/api/v1/journeys/{jid}", json={"active": False}).json()["active"] is False
    f.customer(app, email="b@example.com")  # off: nobody new enters
    app.clock.advance(hours=3)
    h.drain(app)
    (run,) = http.get(f"/api/v1/journeys/{jid}/runs").json()
    assert run["state"] == "finished" and run["version"] == 2
    assert [s["step"] for s in run["steps"]] == ["hello", "wait", "bye"]
    assert http.get(f"/api/v1/journeys/{jid}").json()["runs"] == {"finished": 1}
    assert http.get("/api/v1/journeys/999").status_code == 404


@pytest.fixture
def cli_env(app, db_url, monkeypatch):
    monkeypatch.setenv("RETENTO_DATABASE_URL", db_url)
    monkeypatch.setenv("RETENTO_FROZEN_NOW", app.clock.now().isoformat())
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def test_cli_apply_show_list_and_errors(app, cli_env, tmp_path):
    f.site(app)
    path = tmp_path / "journeys.yaml"
    path.write_text("""
journeys:
  - name: welcome
    site: shop
    entry: {kind: customer_created, entry_points: [registration]}
    steps:
      - {id: hello, type: add_tag, tag: hello, next: later}
      - {id: later, type: wait, days: 1, at: "10:00"}
""")
    r = cli_env.invoke(cli, ["journeys", "apply", str(path)])
    assert r.exit_code == 0 and "journey welcome created (id 1, version 1)" in r.output, r.output
    r = cli_env.invoke(cli, ["journeys", "apply", str(path)])
    assert "journey welcome unchanged" in r.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: broken\nsite: shop\nentry: {kind: email_confirmed}\nsteps:\n"
                   "  - {id: b, type: branch, branches: [{interest: crm, next: c}]}\n  - {id: c, type: exit}\n")
    r = cli_env.invoke(cli, ["journeys", "apply", str(bad)])
    assert r.exit_code == 2 and "steps.0.else: a branch needs `else`" in r.output
    r = cli_env.invoke(cli, ["journeys", "list", "--format", "json"])
    assert r.exit_code == 0 and '"name": "welcome"' in r.output and "broken" not in r.output
    r = cli_env.invoke(cli, ["journeys", "show", "welcome"])
    assert r.exit_code == 0 and "entry_points:" in r.output
    f.customer(app, email="r@example.com", entry_point="registration")
    h.drain(app)
    r = cli_env.invoke(cli, ["journeys", "report", "welcome"])
    assert r.exit_code == 0 and "entered" in r.output and "hello" in r.output, r.output
    r = cli_env.invoke(cli, ["report", "journey", "welcome", "--format", "json"])
    assert '"entered": 1' in r.output
    r = cli_env.invoke(cli, ["journeys", "switch", "nope", "--off"])
    assert r.exit_code == 1 and "not found" in r.output


def test_a_task_for_nobody_stays_for_nobody_through_api_and_yaml(app, http, cli_env, tmp_path):
    """`assignee: null` (nobody) is not the default (the customer's manager): it survives a save, the API's
    answer, `journeys show` and applying what `show` printed."""
    f.site(app)
    nobody = {**GOOD, "steps": [{"id": "call", "type": "create_task", "title": "Call", "assignee": None,
                                 "next": "manager"},
                                {"id": "manager", "type": "create_task", "title": "Call too"}]}  # the default
    r = http.post("/api/v1/journeys", json=nobody)
    assert r.status_code == 201, r.text
    jid = r.json()["journey"]["id"]
    steps = http.get(f"/api/v1/journeys/{jid}").json()["definition"]["steps"]
    assert steps[0]["assignee"] is None and steps[1]["assignee"] == "customer_manager"
    shown = cli_env.invoke(cli, ["journeys", "show", str(jid)])
    assert shown.exit_code == 0 and "assignee: null" in shown.output, shown.output
    path = tmp_path / "shown.yaml"
    path.write_text(shown.output)
    again = cli_env.invoke(cli, ["journeys", "apply", str(path)])
    assert again.exit_code == 0 and "journey welcome unchanged" in again.output, again.output
    assert http.post("/api/v1/journeys", json=nobody).json()["outcome"] == "unchanged"


def test_cli_apply_names_an_unreachable_step_and_a_wait_without_a_timeout(app, cli_env, tmp_path):
    f.site(app)
    bad = tmp_path / "bad.yaml"
    bad.write_text("""
name: broken
site: shop
entry: {kind: customer_created}
steps:
  - {id: hello, type: add_tag, tag: hello, next: wait}
  - {id: wait, type: wait_event, event: email_confirmed, on_event: bye}
  - {id: bye, type: add_tag, tag: bye}
  - {id: lost, type: add_tag, tag: lost}
""")
    r = cli_env.invoke(cli, ["journeys", "apply", str(bad)])
    assert r.exit_code == 2, r.output
    assert "steps.1.timeout: a wait for an event needs a timeout" in r.output
    bad.write_text(bad.read_text().replace("on_event: bye}", "on_event: bye, timeout: {days: 2}}"))
    r = cli_env.invoke(cli, ["journeys", "apply", str(bad)])
    assert r.exit_code == 2 and "steps.3: step 'lost' is unreachable from the start ('hello')" in r.output, r.output
    r = cli_env.invoke(cli, ["journeys", "list", "--format", "json"])
    assert "broken" not in r.output  # nothing stored
