"""/api/v5 driven by the official `retailcrm` client (5.3.0) against a real server."""

from __future__ import annotations

import httpx
import retailcrm

from retento.bootstrap import bootstrap
from retento.core.config import Settings
from tests import factories as f
from tests.api.conftest import Server, make_key


def crm(server, scopes="all", sites=None):
    _, raw = make_key(server.app, scopes, sites=sites)
    return retailcrm.v5(server.url, raw)


def ok(resp):
    assert resp.is_successful(), (resp.get_status_code(), resp.get_response())
    body = resp.get_response()
    assert body["success"] is True
    return body


def test_versions_credentials_and_references(app, server):
    f.site(app, "shop")
    f.site(app, "other")
    client = crm(server, "customers:read,orders:read,reference:read", sites=["shop"])
    assert ok(client.api_versions())["versions"] == ["5.0"]
    creds = ok(client.api_credentials())
    assert creds["siteAccess"] == "access_selective" and creds["sitesAvailable"] == ["shop"]
    assert "/api/v5/customers" in creds["credentials"] and "/api/v5/customers/create" not in creds["credentials"]
    sites = ok(client.sites())["sites"]
    assert list(sites) == ["shop"] and sites["shop"]["currency"] == "RUB"
    statuses = ok(client.statuses())["statuses"]
    assert statuses["complete"] == {"name": "Выполнен", "code": "complete", "active": True,
                                    "ordering": statuses["complete"]["ordering"], "group": "complete"}
    groups = ok(client.status_groups())["statusGroups"]
    assert "assembling" in groups["assembling"]["statuses"]


def test_customer_round_trip_and_list_pagination(app, server):
    f.site(app)
    client = crm(server)
    r = client.customer_create({"externalId": "c1", "firstName": "Anna", "lastName": "Ivanova",
                                "email": "anna@example.com", "phones": [{"number": "+7 916 123-45-67"}],
                                "tags": ["vip"], "customFields": {"nps": 9}, "birthday": "1990-05-01",
                                "createdAt": "2026-01-10 12:00:00", "vip": True}, site="shop")
    assert r.get_status_code() == 201 and isinstance(ok(r)["id"], int)
    got = ok(client.customer("c1", site="shop"))["customer"]
    assert (got["externalId"], got["firstName"], got["email"], got["phones"], got["site"]) == (
        "c1", "Anna", "anna@example.com", [{"number": "+79161234567"}], "shop")
    assert got["tags"][0]["name"] == "vip" and got["customFields"] == {"nps": 9}
    assert got["createdAt"] == "2026-01-10 12:00:00" and got["birthday"] == "1990-05-01"
    assert ok(client.customer(str(got["id"]), uid_type="id"))["customer"] == got
    ok(client.customer_edit({"externalId": "c1", "lastName": "Petrova", "phones": [{"number": "89161112233"}]},
                            site="shop"))
    got = ok(client.customer("c1"))["customer"]
    assert got["lastName"] == "Petrova" and got["phones"] == [{"number": "+79161112233"}]
    ok(client.customer_edit({"id": got["id"], "externalId": "c1-new"}, uid_type="id"))
    assert ok(client.customer("c1-new"))["customer"]["id"] == got["id"]
    for n in range(24):
        ok(client.customer_create({"externalId": f"x{n}", "email": f"x{n}@example.com"}))
    first = ok(client.customers(limit=20, page=1))
    assert first["pagination"] == {"limit": 20, "totalCount": 25, "currentPage": 1, "totalPageCount": 2}
    second = ok(client.customers(limit=20, page=2))
    ids = [c["id"] for c in first["customers"] + second["customers"]]
    assert len(set(ids)) == 25 and len(second["customers"]) == 5
    found = ok(client.customers({"email": "x3@example.com"}))["customers"]
    assert [c["externalId"] for c in found] == ["x3"]
    assert [c["externalId"] for c in ok(client.customers({"externalIds": ["x1", "x2"]}))["customers"]] == ["x1", "x2"]


def test_customer_errors(app, server):
    f.site(app)
    f.site(app, "other")
    client = crm(server)
    r = client.customer_create({"email": "not-an-email"}, site="shop")
    assert r.get_status_code() == 400 and r.get_error_msg() == "Errors in the entity format"
    assert "email" in r.get_errors()
    r = client.customer("nope", site="shop")
    assert (r.get_status_code(), r.get_error_msg()) == (404, "Not found")
    r = client.customer_create({"email": "a@example.com"})
    assert r.get_status_code() == 400 and "site" in r.get_errors()
    ok(client.customer_create({"externalId": "dup"}, site="shop"))
    r = client.customer_create({"externalId": "dup"}, site="shop")
    assert r.get_status_code() == 400 and "externalId" in r.get_errors()
    r = client.customers(limit=30)
    assert r.get_status_code() == 400 and "limit" in r.get_errors()
    r = client.post("/customers/create")
    assert r.get_status_code() == 400 and r.get_error_msg() == "Parameter 'customer' is missing"
    bad = retailcrm.v5(server.url, "wrong-key")
    r = bad.customers()
    assert (r.get_status_code(), r.get_error_msg()) == (403, 'Wrong "apiKey" value.')
    reader = crm(server, "customers:read")
    r = reader.customer_create({"externalId": "z"}, site="shop")
    assert (r.get_status_code(), r.get_error_msg()) == (403, "Access denied.")
    _, raw = make_key(app, "customers:read")
    plain = httpx.get(f"{server.url}/api/v5/customers", params={"apiKey": raw})
    assert plain.status_code == 200 and plain.json()["success"] is True


def test_unknown_method_answers_in_the_envelope(app, server):
    _, raw = make_key(app)
    missing = httpx.get(f"{server.url}/api/v5/no/such/method", headers={"X-API-KEY": raw})
    assert missing.status_code == 404
    assert missing.json() == {"success": False, "errorMsg": "API method not found"}
    wrong_verb = httpx.delete(f"{server.url}/api/v5/customers", headers={"X-API-KEY": raw})
    assert wrong_verb.status_code == 405
    assert wrong_verb.json() == {"success": False, "errorMsg": "Method Not Allowed"}


def test_rate_limit_is_503_like_retailcrm(app, clock):
    limited = bootstrap(Settings(database_url=app.settings.database_url, api_rate_per_second=1, api_rate_burst=2),
                        clock=clock)
    with Server(limited) as srv:
        client = crm(srv)
        ok(client.sites())
        ok(client.sites())
        r = client.sites()
        assert (r.get_status_code(), r.get_error_msg()) == (503, "Rate limit exceeded")
        clock.advance(seconds=1)
        ok(client.sites())
    limited.close()


def test_order_round_trip_list_statuses(app, server):
    f.site(app)
    f.product(app, "SKU-1", price="250.00", name="Kettle")
    client = crm(server)
    ok(client.customer_create({"externalId": "c1", "email": "anna@example.com"}, site="shop"))
    r = client.order_create({
        "externalId": "o1", "number": "A-1", "customer": {"externalId": "c1"}, "status": "new",
        "items": [{"offer": {"externalId": "SKU-1"}, "quantity": 2, "discountManualAmount": 10},
                  {"offer": {"externalId": "NOT-IN-CATALOGUE"}, "productName": "Gift wrap", "initialPrice": 100}],
        "delivery": {"code": "courier", "cost": 300, "address": {"text": "Moscow, Tverskaya 1"}},
        "payments": [{"type": "cash", "status": "paid", "amount": 500}],
        "customerComment": "ring twice", "customFields": {"gift": True},
    }, site="shop")
    assert r.get_status_code() == 201
    created = ok(r)["order"]
    assert (created["summ"], created["totalSumm"], created["prepaySum"]) == (580, 880, 500)
    order = ok(client.order("o1", site="shop"))["order"]
    assert order["customer"]["externalId"] == "c1" and order["email"] == "anna@example.com"
    assert [i["productName"] for i in order["items"]] == ["Kettle", "Gift wrap"]
    assert order["items"][0]["offer"] == {"externalId": "SKU-1"} and order["items"][0]["discountTotal"] == 10
    assert order["delivery"] == {"code": "courier", "cost": 300, "address": {"text": "Moscow, Tverskaya 1"}}
    assert order["payments"]["1"]["type"] == "cash" and order["customerComment"] == "ring twice"
    ok(client.order_edit({"externalId": "o1", "status": "complete", "managerComment": "done"}, site="shop"))
    order = ok(client.order(str(order["id"]), uid_type="id"))["order"]
    assert (order["status"], order["managerComment"]) == ("complete", "done")
    r = client.order_create({"firstName": "Boris", "email": "boris@example.com",
                             "items": [{"productName": "Sample", "initialPrice": 1}]}, site="shop")
    boris = ok(r)["order"]
    assert boris["customer"]["email"] == "boris@example.com" and boris["number"] == f"{boris['id']}A"
    listed = ok(client.orders({"extendedStatus": ["complete"]}))
    assert [o["externalId"] for o in listed["orders"]] == ["o1"] and listed["pagination"]["totalCount"] == 1
    assert ok(client.orders({"extendedStatus": ["new"]}))["pagination"]["totalCount"] == 1
    statuses = ok(client.orders_statuses([boris["id"]], ["o1"]))["orders"]
    assert sorted((s["status"], s["group"]) for s in statuses) == [("complete", "complete"), ("new", "new")]
    r = client.order_create({"items": [{"offer": {"externalId": "NOPE"}}]}, site="shop")
    assert r.get_status_code() == 400 and "items[0].offer.externalId" in r.get_errors()
    r = client.order_edit({"externalId": "missing", "status": "complete"})
    assert (r.get_status_code(), r.get_error_msg()) == (404, "Not found")
    r = client.order_edit({"externalId": "o1", "status": "no-such"})
    assert r.get_status_code() == 400 and "status" in r.get_errors()


def follow(method, since=0, limit=20):
    """Read history the way integrations do: by sinceId until an empty page."""
    seen = []
    while True:
        body = ok(method({"sinceId": since}, limit=limit))
        if not body["history"]:
            return seen
        seen += body["history"]
        since = body["history"][-1]["id"]


def test_history_followed_by_since_id_has_every_change_once(app, server, clock):
    f.site(app)
    client = crm(server)
    for n in range(30):
        ok(client.customer_create({"externalId": f"c{n}", "firstName": f"N{n}"}, site="shop"))
        clock.advance(seconds=1)
    for n in range(0, 30, 3):
        ok(client.customer_edit({"externalId": f"c{n}", "lastName": "Changed", "email": f"c{n}@example.com"}))
    f.edit_customer(app, 1, first_name="ByTrigger")
    changes = follow(client.customers_history)
    assert len(changes) == 30 + 20 + 1
    assert len({c["id"] for c in changes}) == len(changes) and [c["id"] for c in changes] == sorted(
        c["id"] for c in changes)
    created = changes[0]
    assert created["created"] is True and created["field"] == "id" and created["source"] == "api"
    assert created["apiKey"] == {"current": True} and created["customer"]["externalId"] == "c0"
    assert created["createdAt"] == "2026-03-02 12:00:00"  # 09:00 UTC in Europe/Moscow
    edits = [c for c in changes if c.get("field") == "last_name"]
    assert len(edits) == 10 and edits[0]["newValue"] == "Changed" and edits[0]["customer"]["externalId"] == "c0"
    assert changes[-1]["field"] == "first_name" and changes[-1]["apiKey"] == {"current": False}
    page2 = ok(client.customers_history({"sinceId": 0}, limit=20, page=2))
    assert page2["pagination"] == {"limit": 20, "totalCount": 51, "currentPage": 2, "totalPageCount": 3}
    assert [c["id"] for c in page2["history"]] == [c["id"] for c in changes[20:40]]
    late = ok(client.customers_history({"startDate": "2026-03-02 12:00:29"}, limit=100))["history"]
    assert late[0]["customer"]["externalId"] == "c29"
    r = client.customers_history({"sinceId": "abc"})
    assert r.get_status_code() == 400 and "filter[sinceId]" in r.get_errors()


def test_order_history_paging(app, server):
    f.site(app)
    client = crm(server)
    for n in range(12):
        ok(client.order_create({"externalId": f"o{n}", "items": [{"productName": "X", "initialPrice": 5}]},
                               site="shop"))
    for n in range(12):
        ok(client.order_edit({"externalId": f"o{n}", "status": "complete"}))
    changes = follow(client.orders_history, limit=20)
    assert len(changes) == 24 and len({c["id"] for c in changes}) == 24
    first, status = changes[0], changes[12]
    assert first["created"] and first["field"] == "status" and first["newValue"] == {"code": "new"}
    assert first["order"]["externalId"] == "o0" and first["order"]["items"][0]["productName"] == "X"
    assert (status["field"], status["oldValue"], status["newValue"]) == ("status", {"code": "new"},
                                                                          {"code": "complete"})
    assert status["order"] == {"id": first["order"]["id"], "externalId": "o0", "number": "o0", "site": "shop"}
