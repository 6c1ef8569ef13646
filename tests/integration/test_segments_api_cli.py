"""Segments, RFM and cohorts through the HTTP API and the CLI (same services, same errors)."""

import json
import random
import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from retento.api import create_app
from retento.apikeys import service as apikeys
from retento.cli import app as cli
from retento.core.db.transactions import transaction
from retento.segments.models import RfmScore
from tests import factories as f


@pytest.fixture
def client(app):
    with transaction(app.sessions) as s:
        _, raw = apikeys.create(s, name="t", scopes="segments:read,segments:write", sites=None, now=app.clock.now())
    with TestClient(create_app(app), base_url="http://testserver/api/v1", headers={"X-API-Key": raw}) as c:
        yield c


def test_scopes_are_required(app, client):
    with transaction(app.sessions) as s:
        _, raw = apikeys.create(s, name="r", scopes="segments:read", sites=None, now=app.clock.now())
    assert client.get("/segments", headers={"X-API-Key": raw}).status_code == 200
    r = client.post("/segments/preview", headers={"X-API-Key": "nope"}, json={})
    assert r.status_code == 401
    r = client.post("/rfm/recompute", params={"site": "shop"}, headers={"X-API-Key": raw})
    assert r.status_code == 403 and r.json()["missing_scope"] == "segments:write"


def test_segment_lifecycle_through_the_api(app, client):
    f.site(app)
    a = f.customer(app, email="a@example.com", tags=["vip"])
    b = f.customer(app, email="b@example.com", external_id="B")
    f.order(app, customer={"id": a}, items=[{"name": "x", "price": "500.00", "quantity": 1}])
    app.worker.tick()
    rules = {"all": [{"tags": {"any": ["vip"]}}, {"orders": {"metric": "sum", "op": "gte", "value": 100}}]}
    r = client.post("/segments/preview", json={"site": "shop", "rules": rules})
    assert r.status_code == 200 and r.json()["count"] == 1 and r.json()["sample"][0]["id"] == a
    r = client.post("/segments", json={"site": "shop", "code": "vip-buyers", "name": "VIP buyers", "rules": rules})
    assert r.status_code == 201, r.text
    seg = r.json()
    assert seg["size"] == 1 and seg["kind"] == "dynamic"
    assert client.get(f"/segments/{seg['id']}/members").json() == {"customer_ids": [a]}
    r = client.patch(f"/segments/{seg['id']}", json={"rules": {"tags": {"none": ["vip"]}}})
    assert r.status_code == 200 and r.json()["size"] == 1
    assert client.get(f"/segments/{seg['id']}/members").json() == {"customer_ids": [b]}
    history = client.get(f"/segments/{seg['id']}/history").json()
    assert [(h["customer_id"], h["entered"]) for h in history] == [(a, True), (b, True), (a, False)]
    assert client.get(f"/segments/{seg['id']}/sizes").json() == [{"date": "2026-03-02", "size": 1}]
    sizes = client.get(f"/segments/{seg['id']}/sizes", params={"from": "2026-03-01", "to": "2026-03-03"})
    assert sizes.json() == [{"date": "2026-03-02", "size": 1}, {"date": "2026-03-03", "size": 1}]
    for params, field in (({"from": "2026-03-04", "to": "2026-03-03"}, "from"), ({"to": "2026-3-3"}, "to"),
                          ({"from": "2026-02-30"}, "from")):
        r = client.get(f"/segments/{seg['id']}/sizes", params=params)
        assert r.status_code == 400 and field in r.text, (params, r.text)
    assert [s["code"] for s in client.get("/segments", params={"site": "shop"}).json()] == ["vip-buyers"]

    r = client.post("/segments", json={"site": "shop", "code": "list", "name": "List", "kind": "static"})
    static = r.json()
    r = client.post(f"/segments/{static['id']}/members/csv",
                    files={"file": ("m.csv", b"external_id\nB\n", "text/csv")})
    assert r.json() == {"entered": 1, "left": 0}
    r = client.post(f"/segments/{static['id']}/members/remove", json={"customer_ids": [b]})
    assert r.json() == {"entered": 0, "left": 1}


@pytest.mark.parametrize("body, status, field", [
    ({"site": "shop", "code": "x", "name": "X", "rules": {"orders": {"metric": "count", "op": "gte", "value": "a"}}},
     400, "rules.orders"),
    ({"site": "shop", "code": "x", "name": "X", "rules": {"any": [{"bogus": {}}]}}, 400, "rules.any.0"),
    ({"site": "shop", "code": "x", "name": "X"}, 422, "body"),
    ({"site": "nope", "code": "x", "name": "X", "rules": {"tags": {"any": ["a"]}}}, 404, "site"),
    ({"site": "shop", "code": "Bad Code", "name": "X", "rules": {"tags": {"any": ["a"]}}}, 422, "code"),
])
def test_bad_segments_get_4xx_naming_the_field(app, client, body, status, field):
    f.site(app)
    r = client.post("/segments", json=body)
    assert r.status_code == status, r.text
    assert field in {e["field"] for e in r.json()["errors"]}
    assert client.get("/segments").json() == []


def test_rfm_and_cohorts_through_the_api(app, client):
    f.site(app)
    for i in range(6):
        c = f.customer(app)
        for d in range(i + 1):
            f.order(app, customer={"id": c}, created_at=f"2026-0{1 + d % 2}-{10 + i:02d}T10:00:00+00:00",
                    status="complete")
    app.worker.tick()  # rollups follow the order events
    r = client.post("/rfm/recompute", params={"site": "shop"})
    assert r.status_code == 200, r.text
    assert sum(c["customers"] for c in r.json()["cells"]) == 6
    assert client.get("/rfm", params={"site": "shop"}).json()["cells"] == r.json()["cells"]
    assert client.get("/rfm/customers/1").json()["frequency"] == 0
    assert client.get("/rfm/customers/999").status_code == 404
    r = client.put("/rfm/config", params={"site": "shop"}, json={"recency_days": [90, 30, 60, 10]})
    assert r.status_code == 422 and "recency_days" in json.dumps(r.json())
    r = client.post("/initiatives", json={"site": "shop", "name": "Loyalty launch", "kind": "loyalty",
                                              "started_at": "2026-01-20T00:00:00+00:00"})
    assert r.status_code == 201
    r = client.put("/cohorts/threshold", params={"site": "shop"}, json={"threshold_days": 45})
    assert r.json()["threshold_days"] == 45.0
    report = client.get("/cohorts", params={"site": "shop"}).json()
    assert [m["month"] for m in report["months"]] == ["2026-01", "2026-02", "2026-03"]
    assert report["months"][0]["initiatives"][0]["name"] == "Loyalty launch"
    assert client.put("/cohorts/threshold", params={"site": "shop"}, json={"threshold_days": 0}).status_code == 422


def test_cli_apply_rfm_cohorts(app, tmp_path, monkeypatch):
    monkeypatch.setenv("RETENTO_DATABASE_URL", str(app.engine.url.render_as_string(hide_password=False)))
    from retento.core.config import get_settings

    get_settings.cache_clear()
    f.site(app)
    c = f.customer(app, tags=["vip"])
    f.order(app, customer={"id": c}, status="complete")
    app.worker.tick()
    good = tmp_path / "segments.yaml"
    good.write_text("site: shop\nsegments:\n  - code: vip\n    name: VIP\n    rules:\n      tags: {any: [vip]}\n"
                    "  - code: buyers\n    name: Buyers\n    rules:\n      orders: {metric: count, op: gte, value: 1}\n")
    runner = CliRunner()
    r = runner.invoke(cli, ["segments", "apply", str(good)])
    assert r.exit_code == 0, r.output
    assert "segment vip created" in r.output and "1 members" in r.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("site: shop\nsegments:\n  - code: late\n    name: Late\n    rules:\n"
                   "      orders: {metric: last_order_days_ago, op: eq, value: 3}\n")
    r = runner.invoke(cli, ["segments", "apply", str(bad)])
    assert r.exit_code == 2 and "segments.0.rules.orders" in r.output
    r = runner.invoke(cli, ["segments", "list"])
    assert "late" not in r.output and "buyers" in r.output
    r = runner.invoke(cli, ["segments", "sizes", "2"])
    assert r.exit_code == 0 and "size / размер" in r.output and re.search(r"│ \d{4}-\d\d-\d\d  │ +1 │", r.output), r.output
    r = runner.invoke(cli, ["segments", "sizes", "2", "--from", "yesterday"])
    assert r.exit_code == 2 and "from" in r.output, r.output
    r = runner.invoke(cli, ["rfm", "shop", "--segments"])
    assert r.exit_code == 0, r.output
    assert "RFM, site shop" in r.output and "rfm-champions" in r.output
    r = runner.invoke(cli, ["segments", "list"])
    assert "rfm-lost" in r.output
    r = runner.invoke(cli, ["cohorts", "shop", "--threshold", "60"])
    assert r.exit_code == 0, r.output
    assert "threshold 60 days" in r.output and "2026-03" in r.output
    r = runner.invoke(cli, ["cohorts", "nope"])
    assert r.exit_code == 2 and "site" in r.output
    get_settings.cache_clear()


def test_a_key_restricted_to_a_site_sees_only_that_sites_segments(app, client):
    f.site(app, "shop")
    f.site(app, "other")
    mine = client.post("/segments", json={"site": "shop", "code": "mine", "name": "Mine", "kind": "static"}).json()
    theirs = client.post("/segments", json={"site": "other", "code": "theirs", "name": "Theirs",
                                            "kind": "static"}).json()
    with transaction(app.sessions) as s:
        _, raw = apikeys.create(s, name="shop only", scopes="segments:read,segments:write", sites=["shop"],
                                now=app.clock.now())
    shop_only = {"X-API-Key": raw}

    assert [x["code"] for x in client.get("/segments", headers=shop_only).json()] == ["mine"]
    assert client.get(f"/segments/{mine['id']}", headers=shop_only).status_code == 200
    for method, path in (("get", f"/segments/{theirs['id']}"), ("get", f"/segments/{theirs['id']}/members"),
                         ("get", f"/segments/{theirs['id']}/history"), ("patch", f"/segments/{theirs['id']}")):
        r = client.request(method, path, headers=shop_only, json={"name": "x"} if method == "patch" else None)
        assert r.status_code == 404, (path, r.text)
    r = client.post(f"/segments/{theirs['id']}/members", headers=shop_only, json={"customer_ids": [1]})
    assert r.status_code == 404
    for method, path, kwargs in (
            ("get", "/segments", {"params": {"site": "other"}}),
            ("post", "/segments", {"json": {"site": "other", "code": "x", "name": "X", "kind": "static"}}),
            ("post", "/segments/preview", {"json": {"site": "other", "rules": {"tags": {"any": ["vip"]}}}}),
            ("get", "/rfm", {"params": {"site": "other"}}),
            ("post", "/rfm/recompute", {"params": {"site": "other"}}),
            ("get", "/rfm/config", {"params": {"site": "other"}}),
            ("get", "/cohorts", {"params": {"site": "other"}}),
            ("get", "/initiatives", {"params": {"site": "other"}}),
            ("post", "/initiatives", {"json": {"site": "other", "name": "X", "started_at": "2026-01-20T00:00:00Z"}})):
        r = client.request(method, path, headers=shop_only, **kwargs)
        assert r.status_code == 403 and r.json()["errors"][0]["field"] == "site", (path, r.text)
    assert [x["code"] for x in client.get("/segments").json()] == ["mine", "theirs"]  # an unrestricted key


def test_rfm_right_after_an_import_without_a_worker(app, tmp_path, monkeypatch):
    """`retento import` leaves the rollups and segments current, so `retento rfm` (with LTV) needs no worker; with
    no purchases the error says so and names the command that scores."""
    monkeypatch.setenv("RETENTO_DATABASE_URL", str(app.engine.url.render_as_string(hide_password=False)))
    from retento.core.config import get_settings
    from retento.segments.models import CustomerRollup

    get_settings.cache_clear()
    f.site(app)
    f.site(app, "empty")
    rnd = random.Random(3)
    (tmp_path / "customers.csv").write_text("external_id,email\n" + "".join(
        f"c{n},c{n}@example.com\n" for n in range(40)), encoding="utf-8")
    orders = [{"externalId": f"o{n}-{k}", "customer": {"externalId": f"c{n}"}, "status": "complete",
               "createdAt": f"2025-{rnd.randint(1, 12):02d}-{rnd.randint(1, 28):02d}T12:00:00+00:00",
               "items": [{"name": "A", "price": str(rnd.randint(100, 5000))}]}
              for n in range(40) for k in range(1 + n % 4)]
    (tmp_path / "orders.jsonl").write_text("".join(json.dumps(o) + "\n" for o in orders), encoding="utf-8")
    runner = CliRunner()
    for kind in ("customers", "orders"):
        r = runner.invoke(cli, ["import", kind, str(tmp_path / f"{kind}.{'csv' if kind == 'customers' else 'jsonl'}"),
                                "--site", "shop"])
        assert r.exit_code == 0, r.output
    with transaction(app.sessions) as s:  # no worker ran: the import brought the rollups up to date
        assert s.scalar(select(func.count()).select_from(CustomerRollup)) == 40
    r = runner.invoke(cli, ["rfm", "shop", "--ltv"])
    assert r.exit_code == 0, r.output
    assert "RFM, site shop" in r.output and "fitted: {'bgnbd'" in r.output
    with transaction(app.sessions) as s:
        assert s.scalar(select(func.count()).select_from(RfmScore).where(RfmScore.ltv.is_not(None))) == 40
    r = runner.invoke(cli, ["rfm", "empty", "--ltv"])
    assert r.exit_code == 2
    assert "no RFM scores for this site: it has no purchases" in r.output and "retento rfm SITE" in r.output
    get_settings.cache_clear()
