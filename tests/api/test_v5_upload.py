"""/api/v5/customers/upload and /orders/upload driven by the official `retailcrm` client (5.3.0)."""

from __future__ import annotations

import json

import httpx

from tests import factories as f
from tests.api.test_v5 import crm, ok


def test_customers_upload_creates_updates_and_reports_the_failed(app, server):
    f.site(app)
    client = crm(server)
    r = client.customers_upload([{"externalId": "c1", "firstName": "Anna", "email": "anna@example.com"},
                                 {"externalId": "c2", "phones": [{"number": "8 916 123-45-67"}]},
                                 {"firstName": "No external id"}], site="shop")
    assert r.get_status_code() == 201
    uploaded = ok(r)["uploadedCustomers"]
    assert [u.get("externalId") for u in uploaded] == ["c1", "c2", None] and all(u["id"] for u in uploaded)
    assert ok(client.customer("c2", site="shop"))["customer"]["phones"] == [{"number": "+79161234567"}]

    r = client.customers_upload([{"externalId": "c1", "lastName": "Ivanova"},  # exists: updated
                                 {"externalId": "c3", "email": "not-an-email"},
                                 {"externalId": "c4", "birthday": "30.02.1990"}], site="shop")
    assert r.get_status_code() == 460 and r.is_successful() is False
    body = r.get_response()
    assert body["success"] is False and body["errorMsg"] == "Customers are loaded with errors"
    assert body["uploadedCustomers"] == [{"id": uploaded[0]["id"], "externalId": "c1"}]
    assert body["failedCustomers"] == [{"externalId": "c3"}, {"externalId": "c4"}]
    assert set(body["errors"]) == {"customers[1].email", "customers[2].birthday"}
    got = ok(client.customer("c1", site="shop"))["customer"]
    assert (got["firstName"], got["lastName"]) == ("Anna", "Ivanova")
    assert ok(client.customers({"externalIds": ["c3", "c4"]}))["customers"] == []

    r = client.customers_upload([{"externalId": "c5", "email": "bad"}], site="shop")
    assert r.get_status_code() == 400 and r.get_response()["uploadedCustomers"] == []


def test_upload_limits_and_sites(app, server):
    f.site(app)
    f.site(app, "other")
    client = crm(server)
    r = client.customers_upload([{"externalId": f"x{n}"} for n in range(51)], site="shop")
    assert r.get_status_code() == 400 and "customers" in r.get_errors()
    r = client.customers_upload([{"externalId": "x"}])  # two sites and no `site`
    assert r.get_status_code() == 400 and "customers[0].site" in r.get_errors()
    ok(client.customers_upload([{"externalId": "x", "site": "other"}, {"externalId": "x", "site": "shop"}]))
    assert len(ok(client.customers({"externalIds": ["x"]}))["customers"]) == 2
    with httpx.Client(base_url=server.url) as raw:
        key = client.api_key
        r = raw.post("/api/v5/customers/upload", headers={"X-API-KEY": key}, data={"customers": "{}"})
        assert r.status_code == 400 and r.json()["errors"] == {"customers": "must be a JSON array of objects"}
        r = raw.post("/api/v5/customers/upload", headers={"X-API-KEY": key}, data={"site": "shop"})
        assert r.status_code == 400 and r.json()["errorMsg"] == "Parameter 'customers' is missing"
        r = raw.post("/api/v5/customers/upload", headers={"X-API-KEY": key},
                     data={"customers": json.dumps([5]), "site": "shop"})
        assert r.status_code == 400 and r.json()["errors"] == {"customers[0]": "must be a JSON object"}
    shop_only = crm(server, "customers:write,customers:read", sites=["shop"])
    r = shop_only.customers_upload([{"externalId": "y"}, {"externalId": "z", "site": "other"}])
    assert r.get_status_code() == 403 and r.get_error_msg() == "Access denied."
    assert ok(shop_only.customers({"externalIds": ["y"]}))["customers"] == []  # nothing stored
    creds = ok(client.api_credentials())["credentials"]
    assert "/api/v5/customers/upload" in creds and "/api/v5/orders/upload" in creds


def test_orders_upload(app, server):
    f.site(app)
    f.product(app, "SKU-1", price="250.00")
    client = crm(server)
    ok(client.customer_create({"externalId": "c1", "email": "anna@example.com"}, site="shop"))
    orders = [{"externalId": "o1", "customer": {"externalId": "c1"},
               "items": [{"offer": {"externalId": "SKU-1"}, "quantity": 2}]},
              {"externalId": "o2", "firstName": "Boris", "email": "boris@example.com",
               "items": [{"productName": "Gift", "initialPrice": 100}]},
              {"externalId": "o3", "status": "nowhere", "items": [{"productName": "X", "initialPrice": 1}]}]
    r = client.orders_upload(orders, site="shop")
    assert r.get_status_code() == 460
    body = r.get_response()
    assert [u["externalId"] for u in body["uploadedOrders"]] == ["o1", "o2"]
    assert body["failedOrders"] == [{"externalId": "o3"}] and list(body["errors"]) == ["orders[2].status"]
    o1 = ok(client.order("o1", site="shop"))["order"]
    assert (o1["customer"]["externalId"], o1["totalSumm"]) == ("c1", 500)
    assert ok(client.order("o2", site="shop"))["order"]["customer"]["email"] == "boris@example.com"
    orders[0]["status"] = "complete"
    orders[2]["status"] = "new"
    r = client.orders_upload(orders, site="shop")  # o1 and o2 updated (o2 unchanged), o3 created
    assert r.get_status_code() == 201
    assert [u["externalId"] for u in ok(r)["uploadedOrders"]] == ["o1", "o2", "o3"]
    assert ok(client.order("o1", site="shop"))["order"]["status"] == "complete"
    assert ok(client.orders())["pagination"]["totalCount"] == 3
