"""/api/v1 through a real server: auth and scopes, rate limit, customers, orders, events, history, references."""

from __future__ import annotations

import httpx

from retento.apikeys import service as apikeys
from retento.bootstrap import bootstrap
from retento.core.config import Settings
from retento.core.db.transactions import transaction
from tests import factories as f
from tests.api.conftest import Server, make_key

PROBLEM = "application/problem+json"


def fields(resp: httpx.Response) -> dict[str, str]:
    assert resp.headers["content-type"].startswith(PROBLEM), resp.text
    return {e["field"]: e["reason"] for e in resp.json()["errors"]}


def test_auth_wrong_missing_revoked_key_and_scopes(app, server, clock):
    f.site(app)
    key_id, raw = make_key(app, "customers:read")
    with httpx.Client(base_url=server.url) as c:
        assert c.get("/api/v1/customers").status_code == 401
        r = c.get("/api/v1/customers", headers={"X-API-Key": "rtk_wrong"})
        assert r.status_code == 401 and r.headers["content-type"].startswith(PROBLEM)
        assert c.get("/api/v1/customers", headers={"X-API-Key": raw}).status_code == 200
        r = c.post("/api/v1/customers", json={"site": "shop"}, headers={"X-API-Key": raw})
        assert r.status_code == 403
        assert r.json()["missing_scope"] == "customers:write" and "customers:write" in r.json()["detail"]
        with transaction(app.sessions) as s:
            apikeys.revoke(s, key_id=key_id, now=app.clock.now())
        # each API process trusts a key it looked up for api_key_cache_seconds (5), then asks the database
        assert c.get("/api/v1/customers", headers={"X-API-Key": raw}).status_code == 200
        clock.advance(seconds=5)
        assert c.get("/api/v1/customers", headers={"X-API-Key": raw}).status_code == 401


def test_key_restricted_to_a_site_sees_only_that_site(app, server):
    f.site(app, "a")
    f.site(app, "b")
    ca = f.customer(app, site="a", email="a@example.com")
    cb = f.customer(app, site="b", email="b@example.com")
    _, raw = make_key(app, "all", sites=["a"])
    with httpx.Client(base_url=server.url, headers={"X-API-Key": raw}) as c:
        assert [x["id"] for x in c.get("/api/v1/customers").json()["items"]] == [ca]
        assert c.get(f"/api/v1/customers/{cb}").status_code == 404
        r = c.post("/api/v1/customers", json={"site": "b", "email": "x@example.com"})
        assert r.status_code == 403 and "site" in fields(r)
        assert [s["code"] for s in c.get("/api/v1/sites").json()] == ["a"]


def test_rate_limit_answers_429_with_retry_after_then_recovers(app, clock):
    settings = Settings(database_url=app.settings.database_url, api_rate_per_second=0.5, api_rate_burst=3)
    limited = bootstrap(settings, clock=clock)
    _, raw = make_key(limited)
    with Server(limited) as srv, httpx.Client(base_url=srv.url, headers={"X-API-Key": raw}) as c:
        assert [c.get("/api/v1/sites").status_code for _ in range(3)] == [200, 200, 200]
        r = c.get("/api/v1/sites")
        assert r.status_code == 429 and r.headers["Retry-After"] == "2"
        clock.advance(seconds=2)
        assert c.get("/api/v1/sites").status_code == 200
        assert c.get("/api/v1/sites").status_code == 429
    limited.close()


def test_customer_create_get_edit_list_with_filters_and_cursor(app, client):
    f.site(app)
    r = client.post("/api/v1/customers", json={"site": "shop", "external_id": "c1", "email": "Anna@Example.com",
                                               "phone": "8 916 123-45-67", "tags": ["vip"]})
    assert r.status_code == 201, r.text
    anna = r.json()
    assert (anna["email"], anna["phone"], anna["tags"], anna["site"]) == (
        "anna@example.com", "+79161234567", ["vip"], "shop")
    assert client.get(f"/api/v1/customers/{anna['id']}").json() == anna
    r = client.patch(f"/api/v1/customers/{anna['id']}", json={"last_name": "Petrova", "tags": ["vip", "b2b"]})
    assert r.status_code == 200 and r.json()["last_name"] == "Petrova" and r.json()["tags"] == ["b2b", "vip"]
    for n in range(5):
        client.post("/api/v1/customers", json={"site": "shop", "email": f"u{n}@example.com"})
    seen, cursor = [], None
    while True:
        page = client.get("/api/v1/customers", params={"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
        seen += [x["id"] for x in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 6 and seen == sorted(seen)
    assert [x["id"] for x in client.get("/api/v1/customers", params={"tag": "b2b"}).json()["items"]] == [anna["id"]]
    by_mail = client.get("/api/v1/customers", params={"email": "ANNA@example.com"}).json()["items"]
    assert [x["id"] for x in by_mail] == [anna["id"]]
    by_phone = client.get("/api/v1/customers", params={"phone": "+7 916 123 45 67"}).json()["items"]
    assert [x["id"] for x in by_phone] == [anna["id"]]
    later = client.get("/api/v1/customers", params={"created_from": "2026-03-02T09:00:01+00:00"}).json()
    assert later["items"] == []


def test_get_customer_answers_exactly_what_the_model_serialises(app, client):
    """GET builds its JSON from the row directly; it must equal what the response model gives (create, list)."""
    f.site(app)
    r = client.post("/api/v1/customers", json={
        "site": "shop", "first_name": "Анна", "birthday": "1990-05-17", "personal_dates": {"wedding": "2015-06-01"},
        "custom_fields": {"size": "M", "score": 4.5, "vip": True, "n": 3}, "tags": ["vip", "b2b"],
        "interests": ["tea", "coffee"], "entry_point": "chat", "email_confirmed": True,
        "consents": {"email": {"granted": True, "at": "2026-03-01T10:11:12.345678+03:00", "source": "checkout"},
                     "sms": {"granted": False}}})
    assert r.status_code == 201, r.text
    created = r.json()
    got = client.get(f"/api/v1/customers/{created['id']}")
    assert got.headers["content-type"] == "application/json"
    assert got.json() == created
    assert got.json() == client.get("/api/v1/customers").json()["items"][0]
    assert created["consents"]["email"]["at"] == "2026-03-01T07:11:12.345678Z"
    bare = client.post("/api/v1/customers", json={"site": "shop"}).json()
    assert client.get(f"/api/v1/customers/{bare['id']}").json() == bare
    assert client.get("/api/v1/customers/999999").status_code == 404


def test_bad_input_is_problem_json_naming_each_field(app, client):
    f.site(app)
    r = client.post("/api/v1/customers", json={"site": "shop", "email": "not-an-email", "birthday": "yesterday"})
    assert r.status_code == 422
    assert set(fields(r)) == {"email", "birthday"}
    r = client.post("/api/v1/customers", json={"site": "nowhere"})
    assert r.status_code == 404 and "site" in fields(r)
    r = client.post("/api/v1/customers", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and fields(r)
    r = client.get("/api/v1/customers", params={"limit": 1000, "created_from": "2026-01-01T00:00:00"})
    assert set(fields(r)) == {"limit", "created_from"}
    assert "cursor" in fields(client.get("/api/v1/customers", params={"cursor": "!!"}))
    assert client.get("/api/v1/customers/99999").status_code == 404
    cid = client.post("/api/v1/customers", json={"site": "shop"}).json()["id"]
    r = client.patch(f"/api/v1/customers/{cid}", json={"email_confirmed": None, "tags": None})
    assert r.status_code == 400 and set(fields(r)) == {"email_confirmed"}
    r = client.post("/api/v1/customers", json={"site": "shop", "first_name": "a\u0000b"})
    assert r.status_code == 422 and "body" in fields(r)
    r = client.get("/api/v1/customers", params={"cursor": "a\u0000b"})
    assert r.status_code == 422 and set(fields(r)) == {"query"}
    r = client.post(f"/api/v1/customers/{cid}%00/x", json={})
    assert r.status_code in (404, 405, 422)  # never a 500


def test_idempotency_key_replays_first_response_and_rejects_other_body(app, client):
    f.site(app)
    body = {"site": "shop", "email": "once@example.com"}
    first = client.post("/api/v1/customers", json=body, headers={"Idempotency-Key": "k1"})
    again = client.post("/api/v1/customers", json=body, headers={"Idempotency-Key": "k1"})
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    other = client.post("/api/v1/customers", json={**body, "email": "twice@example.com"},
                        headers={"Idempotency-Key": "k1"})
    assert other.status_code == 409 and "Idempotency-Key" in fields(other)
    assert len(client.get("/api/v1/customers").json()["items"]) == 1


def test_orders_create_get_edit_list(app, client):
    f.site(app)
    f.product(app, "SKU-1", price="250.00")
    cid = f.customer(app, external_id="c1")
    r = client.post("/api/v1/orders", json={"site": "shop", "external_id": "o1", "customer": {"external_id": "c1"},
                                            "items": [{"offer_id": "SKU-1", "quantity": 2}],
                                            "delivery": {"type": "courier", "cost": "100"}})
    assert r.status_code == 201, r.text
    order = r.json()
    assert (order["customer_id"], order["items_total"], order["total"], order["status"]) == (
        cid, "500.00", "600.00", "new")
    assert client.get(f"/api/v1/orders/{order['id']}").json() == order
    r = client.patch(f"/api/v1/orders/{order['id']}", json={"status": "complete"})
    assert r.json()["status"] == "complete"
    client.post("/api/v1/orders", json={"site": "shop", "items": [{"name": "X", "price": "1"}]})
    assert [o["id"] for o in client.get("/api/v1/orders", params={"status": "complete"}).json()["items"]] == [
        order["id"]]
    assert len(client.get("/api/v1/orders", params={"site": "shop"}).json()["items"]) == 2
    r = client.post("/api/v1/orders", json={"site": "shop", "items": [{"offer_id": "NOPE"}], "status": "new"})
    assert r.status_code == 404 and "items.0.offer_id" in fields(r)
    r = client.patch(f"/api/v1/orders/{order['id']}", json={"status": "no-such-status"})
    assert r.status_code == 404 and "status" in fields(r)


def test_events_one_and_batch_with_idempotency(app, client):
    f.site(app)
    cid = f.customer(app, external_id="c1")
    r = client.post("/api/v1/events", json={"name": "cart_abandoned", "customer": {"id": cid},
                                            "payload": {"total": 10}, "idempotency_key": "e1"})
    assert r.status_code == 201 and r.json() == {"accepted": True}
    events = [{"name": "viewed", "customer": {"external_id": "c1", "site": "shop"}, "idempotency_key": f"v{n % 600}"}
              for n in range(1000)]
    r = client.post("/api/v1/events/batch", json={"events": events})
    assert r.status_code == 201, r.text
    assert (r.json()["accepted"], r.json()["duplicates"]) == (600, 400)
    again = client.post("/api/v1/events", json={"name": "cart_abandoned", "customer": {"id": cid},
                                                "idempotency_key": "e1"})
    assert again.json() == {"accepted": False}
    r = client.post("/api/v1/events/batch", json={"events": [events[0], {"name": "x", "customer": {"id": 999}}]})
    assert r.status_code == 404 and "events.1.customer" in fields(r)
    assert client.post("/api/v1/events/batch", json={"events": events + events[:1]}).status_code == 422
    from sqlalchemy import func, select

    from retento.core.bus import Event
    with transaction(app.sessions) as s:
        assert s.scalar(select(func.count()).select_from(Event).where(Event.type == "custom")) == 601


def test_history_since_id_and_reference_books(app, client):
    f.site(app)
    cid = f.customer(app, email="h@example.com")
    client.patch(f"/api/v1/customers/{cid}", json={"first_name": "Hanna"})
    page = client.get("/api/v1/history").json()
    assert [(x["entity"], x["created"], x["field"]) for x in page["items"]] == [
        ("customer", True, None), ("customer", False, "first_name")]
    edit = page["items"][1]
    assert (edit["source"], edit["actor_type"], edit["new_value"]) == ("api", "api_key", "Hanna")
    assert client.get("/api/v1/history", params={"since_id": page["next_since_id"]}).json()["items"] == []
    assert {"new", "complete"} <= {s["code"] for s in client.get("/api/v1/statuses").json()}
    groups = {g["code"]: g for g in client.get("/api/v1/status-groups").json()}
    assert "complete" in groups["complete"]["statuses"]
    f.product(app, "SKU-9")
    assert [p["offer_id"] for p in client.get("/api/v1/products").json()["items"]] == ["SKU-9"]
    assert client.get("/api/openapi.json").json()["openapi"].startswith("3.1")
