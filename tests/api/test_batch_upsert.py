"""POST /api/v1/customers/batch and /orders/batch against a real server: upsert on external_id per site, a result
per item (errors as `items.N.field`), one transaction per request, Idempotency-Key, a site-limited key."""

from __future__ import annotations

import httpx

from retento.core.db.transactions import transaction
from retento.history import service as history
from tests import factories as f
from tests.api.conftest import make_key


def results(r: httpx.Response) -> list[tuple]:
    assert r.status_code == 200, r.text
    return [(x["outcome"], x["external_id"]) for x in r.json()["results"]]


def customer(client: httpx.Client, ext: str, site: str = "shop") -> dict:
    (found,) = client.get("/api/v1/customers", params={"external_id": ext, "site": site}).json()["items"]
    return found


def test_customers_batch_creates_updates_and_reports_each_item(app, client):
    f.site(app)
    f.site(app, "other")
    batch = [{"site": "shop", "external_id": "c1", "first_name": "Anna", "tags": ["vip"]},
             {"site": "shop", "external_id": "c2", "email": "boris@example.com"},
             {"site": "shop", "external_id": "c3", "email": "not-an-email", "birthday": "yesterday"},
             {"site": "nowhere", "external_id": "c4"},
             {"site": "other", "external_id": "c1", "first_name": "Other shop's c1"},
             {"site": "shop", "first_name": "No external id"}]
    r = client.post("/api/v1/customers/batch", json={"items": batch})
    assert results(r) == [("created", "c1"), ("created", "c2"), ("error", "c3"), ("error", "c4"),
                          ("created", "c1"), ("created", None)]
    body = r.json()
    assert (body["created"], body["updated"], body["unchanged"], body["failed"]) == (4, 0, 0, 2)
    bad, unknown = body["results"][2], body["results"][3]
    assert bad["status"] == 422 and {e["field"] for e in bad["errors"]} == {"items.2.email", "items.2.birthday"}
    assert unknown["status"] == 404 and [e["field"] for e in unknown["errors"]] == ["items.3.site"]
    c1 = customer(client, "c1")
    assert (c1["id"], c1["first_name"], c1["tags"]) == (body["results"][0]["id"], "Anna", ["vip"])
    assert customer(client, "c1", "other")["first_name"] == "Other shop's c1"

    again = [{"site": "shop", "external_id": "c1", "last_name": "Ivanova"},  # only the fields given change
             {"site": "shop", "external_id": "c2", "email": "boris@example.com"},
             {"site": "shop", "external_id": "c5", "first_name": "Clara"},
             {"site": "shop", "external_id": "c5", "last_name": "Oswald"}]  # a repeat updates the first
    r = client.post("/api/v1/customers/batch", json={"items": again})
    assert results(r) == [("updated", "c1"), ("unchanged", "c2"), ("created", "c5"), ("updated", "c5")]
    assert r.json()["results"][0]["id"] == c1["id"]
    c1 = customer(client, "c1")
    assert (c1["first_name"], c1["last_name"], c1["tags"]) == ("Anna", "Ivanova", ["vip"])
    c5 = customer(client, "c5")
    assert (c5["first_name"], c5["last_name"]) == ("Clara", "Oswald")
    with transaction(app.sessions) as s:
        rows = [(h.field, h.source, h.created) for h in history.since(s, entity="customer", entity_id=c1["id"])]
    assert rows == [(None, "api", True), ("last_name", "api", False)]


def test_batch_limits_idempotency_and_a_site_limited_key(app, server, client):
    f.site(app)
    f.site(app, "other")
    assert client.post("/api/v1/customers/batch", json={"items": []}).status_code == 422
    too_many = client.post("/api/v1/customers/batch", json={"items": [{"site": "shop"}] * 1001})
    assert too_many.status_code == 422 and too_many.json()["errors"][0]["field"] == "items"
    assert client.post("/api/v1/customers/batch", json={"items": [1]}).status_code == 422

    items = [{"site": "shop", "external_id": f"u{n}", "email": f"u{n}@example.com"} for n in range(1000)]
    first = client.post("/api/v1/customers/batch", json={"items": items}, headers={"Idempotency-Key": "k-1"})
    assert first.json()["created"] == 1000
    replay = client.post("/api/v1/customers/batch", json={"items": items}, headers={"Idempotency-Key": "k-1"})
    assert replay.headers["Idempotent-Replayed"] == "true" and replay.json() == first.json()
    assert client.post("/api/v1/customers/batch", json={"items": items[:1]},
                       headers={"Idempotency-Key": "k-1"}).status_code == 409
    again = client.post("/api/v1/customers/batch", json={"items": items})  # without a key: an upsert anyway
    assert (again.json()["created"], again.json()["unchanged"]) == (0, 1000)

    _, raw = make_key(app, "customers:write,customers:read", sites=["shop"], name="shop only")
    with httpx.Client(base_url=server.url, headers={"X-API-Key": raw}) as shop_only:
        r = shop_only.post("/api/v1/customers/batch", json={"items": [
            {"site": "shop", "external_id": "mine"}, {"site": "other", "external_id": "theirs"}]})
        assert r.status_code == 403 and r.json()["errors"][0]["field"] == "items.1.site"
        assert shop_only.get("/api/v1/customers", params={"external_id": "mine"}).json()["items"] == []
    assert client.get("/api/v1/customers", params={"site": "other"}).json()["items"] == []


def test_orders_batch(app, client):
    f.site(app)
    f.product(app, "SKU-1", price="100.00")
    client.post("/api/v1/customers", json={"site": "shop", "external_id": "c1"})
    r = client.post("/api/v1/orders/batch", json={"items": [
        {"site": "shop", "external_id": "o1", "items": [{"offer_id": "SKU-1", "quantity": 2}]},
        {"site": "shop", "external_id": "o2", "customer": {"external_id": "c1"}, "items": [{"name": "Gift",
                                                                                             "price": "5.00"}]},
        {"site": "shop", "external_id": "o3", "items": [{"offer_id": "NOPE"}]},
        {"site": "shop", "external_id": "o4", "status": "nowhere", "items": [{"name": "x", "price": "1.00"}]},
        {"site": "shop", "external_id": "o5", "items": "not a list"}]})
    assert results(r) == [("created", "o1"), ("created", "o2"), ("error", "o3"), ("error", "o4"), ("error", "o5")]
    errors = [[e["field"] for e in x["errors"]] for x in r.json()["results"][2:]]
    assert errors == [["items.2.items.0.offer_id"], ["items.3.status"], ["items.4.items"]]
    o1 = r.json()["results"][0]["id"]
    assert client.get(f"/api/v1/orders/{o1}").json()["total"] == "200.00"
    r = client.post("/api/v1/orders/batch", json={"items": [  # whole orders, as POST /orders takes them
        {"site": "shop", "external_id": "o1", "status": "complete", "items": [{"offer_id": "SKU-1", "quantity": 2}]},
        {"site": "shop", "external_id": "o2", "customer": {"external_id": "c1"}, "items": [{"name": "Gift",
                                                                                             "price": "5.00"}]}]})
    assert results(r) == [("updated", "o1"), ("unchanged", "o2")]
    order = client.get(f"/api/v1/orders/{o1}").json()
    assert (order["status"], order["total"], len(order["items"])) == ("complete", "200.00", 1)
    changes = client.get("/api/v1/history", params={"entity": "order", "since_id": 0}).json()["items"]
    assert [(c["entity_id"], c["field"]) for c in changes if not c["created"]] == [(o1, "status")]
