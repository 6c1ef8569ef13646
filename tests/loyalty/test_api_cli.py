"""/api/v1/loyalty and `retento loyalty` on both databases: settings, joining, credit and charge with
idempotency keys, bad input named by field, scopes, the ledger, and the worker's expiry run."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from retento.api import create_app
from retento.apikeys import service as apikeys
from retento.cli import app as cli
from retento.core.config import get_settings
from retento.core.db.transactions import transaction
from tests import factories as f
from tests.loyalty.helpers import account, events, order, set_status

SETTINGS = {"percent": "5", "activation_days": 0, "expiry_days": 30, "welcome_bonus": "100", "warn_days": [3],
            "levels": [{"code": "silver", "name": "Silver", "threshold": "0", "percent": "5"},
                       {"code": "gold", "name": "Gold", "threshold": "5000", "percent": "10"}]}


def client(app, scopes="loyalty:read,loyalty:write"):
    with transaction(app.sessions) as s:
        _, raw = apikeys.create(s, name="loyal", scopes=scopes, sites=None, now=app.clock.now())
    return TestClient(create_app(app), headers={"X-API-Key": raw})


def errors(r):
    return {e["field"]: e["reason"] for e in r.json()["errors"]}


def test_api_program_join_credit_charge_operations(app):
    f.site(app)
    customer_id = f.customer(app, phone="+79161234567")
    with client(app) as http:
        r = http.put("/api/v1/loyalty/programs/shop", json={"name": "Club", "currency": "rub", "settings": SETTINGS})
        assert r.status_code == 200, r.text
        assert r.json()["currency"] == "RUB" and r.json()["settings"]["levels"][1]["code"] == "gold"
        bad = http.put("/api/v1/loyalty/programs/shop", json={"name": "Club", "currency": "RUB",
                                                              "settings": {"max_redeem_share": 2}})
        assert bad.status_code == 422 or bad.status_code == 400
        assert "settings.max_redeem_share" in errors(bad)
        assert http.get("/api/v1/loyalty/programs").json()[0]["site"] == "shop"

        r = http.post("/api/v1/loyalty/accounts", json={"site": "shop", "phone": "+7 916 123 45 67"})
        assert r.status_code == 201, r.text
        acc = r.json()
        assert (acc["customer_id"], acc["balance"], acc["level"]) == (customer_id, "100.00", "silver")
        again = http.post("/api/v1/loyalty/accounts", json={"site": "shop", "customer_id": customer_id})
        assert again.status_code == 200 and again.json()["id"] == acc["id"]
        assert errors(http.post("/api/v1/loyalty/accounts", json={"site": "shop"})) == {
            "body": "give either customer_id or phone"}

        base = f"/api/v1/loyalty/accounts/{acc['id']}"
        r = http.post(f"{base}/credit", json={"amount": "50", "reason": "sorry"}, headers={"Idempotency-Key": "k1"})
        assert r.status_code == 201 and r.json()["kind"] == "credit"
        assert http.post(f"{base}/credit", json={"amount": "50", "reason": "sorry"},
                         headers={"Idempotency-Key": "k1"}).json()["id"] == r.json()["id"]
        assert "idempotency_key" in errors(http.post(f"{base}/credit", json={"amount": "5", "reason": "x"}))
        assert "amount" in errors(http.post(f"{base}/credit", json={"amount": "-5", "reason": "x",
                                                                    "idempotency_key": "k2"}))
        r = http.post(f"{base}/charge", json={"amount": "500", "reason": "x", "idempotency_key": "c1"})
        assert r.status_code == 400 and "amount" in errors(r)
        r = http.post(f"{base}/charge", json={"amount": "120", "reason": "gift", "idempotency_key": "c1"})
        assert r.status_code == 201 and r.json()["amount"] == "-120.00"
        assert http.get(base).json()["balance"] == "30.00"
        lots = http.get(base, params={"lots": "true"}).json()["lots"]
        assert [lot["left"] for lot in lots] == ["0.00", "30.00"]
        page = http.get(f"{base}/operations", params={"limit": 2}).json()
        assert [o["kind"] for o in page["items"]] == ["welcome", "credit"] and page["next_cursor"]
        rest = http.get(f"{base}/operations", params={"cursor": page["next_cursor"]}).json()
        assert [o["kind"] for o in rest["items"]] == ["charge"]
        assert http.patch(base, json={"status": "blocked"}).json()["status"] == "blocked"
        r = http.post(f"{base}/charge", json={"amount": "1", "reason": "x", "idempotency_key": "c2"})
        assert r.status_code == 409
        assert http.get("/api/v1/loyalty/accounts/999").status_code == 404
        r = http.get("/api/v1/loyalty/programs/shop/pnl", params={"to": "2026-03-03T00:00:00Z"})
        assert r.status_code == 200, r.text
        assert (r.json()["issued"], r.json()["redeemed"], r.json()["from"]) == ("150.00", "120.00",
                                                                               "2026-03-02T09:00:00Z")
        r = http.get("/api/v1/loyalty/programs/shop/pnl", params={"to": "2026-03-01T00:00:00Z"})
        assert "to" in errors(r)
    with client(app, scopes="loyalty:read") as reader:
        assert reader.post(f"{base}/credit", json={"amount": "1", "reason": "x",
                                                   "idempotency_key": "z"}).status_code == 403


def test_the_worker_accrues_on_completion_and_burns_on_time(app):
    f.site(app)
    customer_id = f.customer(app)
    with client(app) as http:
        http.put("/api/v1/loyalty/programs/shop", json={"name": "Club", "currency": "RUB", "settings": SETTINGS})
        account_id = http.post("/api/v1/loyalty/accounts", json={"site": "shop", "customer_id": customer_id}).json()["id"]
    oid = order(app, customer_id, ("x", "6000", 1))
    f.edit_order(app, oid, status="complete")
    app.worker.tick()
    out = account(app, account_id)
    assert (out.balance, out.level) == (400, "gold")  # 100 welcome + 5% of 6000, then gold
    app.clock.advance(days=27)
    app.worker.tick()
    assert [e["amount"] for e in events(app, "loyalty_points_will_burn")] == ["400.00"]
    app.clock.advance(days=3)
    app.worker.tick()
    assert account(app, account_id).balance == 0


@pytest.fixture
def cli_env(app, db_url, monkeypatch):
    monkeypatch.setenv("RETENTO_DATABASE_URL", db_url)
    monkeypatch.setenv("RETENTO_FROZEN_NOW", app.clock.now().isoformat())
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def test_cli_program_join_credit_charge(app, cli_env, tmp_path):
    f.site(app)
    customer_id = f.customer(app)
    path = tmp_path / "program.json"
    path.write_text(json.dumps({"name": "Club", "currency": "RUB", "settings": SETTINGS}))
    r = cli_env.invoke(cli, ["loyalty", "program", "shop", "--settings", str(path)])
    assert r.exit_code == 0, r.output
    assert '"welcome_bonus": "100"' in r.output or '"welcome_bonus": "100.00"' in r.output
    path.write_text(json.dumps({"name": "Club", "currency": "XXX"}))
    r = cli_env.invoke(cli, ["loyalty", "program", "shop", "--settings", str(path)])
    assert r.exit_code == 1 and "currency" in r.output
    r = cli_env.invoke(cli, ["loyalty", "join", "shop", "--customer", str(customer_id)])
    assert r.exit_code == 0 and "joined" in r.output
    account_id = int(r.output.split()[1])
    r = cli_env.invoke(cli, ["loyalty", "credit", str(account_id), "25", "--reason", "sorry", "--key", "a"])
    assert r.exit_code == 0, r.output
    r = cli_env.invoke(cli, ["loyalty", "charge", str(account_id), "500", "--reason", "x", "--key", "b"])
    assert r.exit_code == 1 and "amount" in r.output
    r = cli_env.invoke(cli, ["loyalty", "charge", str(account_id), "1.234", "--reason", "x", "--key", "b"])
    assert r.exit_code == 1 and "amount" in r.output
    r = cli_env.invoke(cli, ["loyalty", "account", str(account_id)])
    assert r.exit_code == 0 and "125.00" in r.output
    r = cli_env.invoke(cli, ["loyalty", "operations", str(account_id), "--json"])
    assert [json.loads(line)["kind"] for line in r.output.splitlines()] == ["welcome", "credit"]
    r = cli_env.invoke(cli, ["loyalty", "run"])
    assert r.exit_code == 0, r.output
    r = cli_env.invoke(cli, ["loyalty", "pnl", "shop", "--from", "2026-03-01", "--to", "2026-03-02", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["issued"] == "125.00"
    r = cli_env.invoke(cli, ["loyalty", "pnl", "shop", "--from", "2026-03-01", "--to", "2026-03-02"])
    assert r.exit_code == 0 and "125.00" in r.output
    r = cli_env.invoke(cli, ["report", "loyalty", "shop", "--from", "2026-03-01", "--to", "2026-03-02", "--json"])
    assert r.exit_code == 0 and json.loads(r.output)["issued"] == "125.00"  # beside the other domains' reports
    r = cli_env.invoke(cli, ["loyalty", "pnl", "shop", "--from", "2026-03-05", "--to", "2026-03-02"])
    assert r.exit_code == 1 and "to" in r.output
    set_status(app, order(app, customer_id, ("x", "100", 1)), "complete")
    assert account(app, account_id).balance == 130
