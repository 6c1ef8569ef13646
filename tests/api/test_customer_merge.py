"""Merging duplicate customers over HTTP: POST /api/v1/customers/merge and RetailCRM's /api/v5/customers/combine
(driven by the official `retailcrm` client), their errors, repeats and what a merged id answers afterwards."""

from __future__ import annotations

from tests import factories as f
from tests.api.conftest import make_key
from tests.api.test_v5 import crm, ok


def test_v1_merge_moves_orders_answers_for_the_merged_id_and_replays(app, client):
    f.site(app)
    keep = f.customer(app, first_name="Anna")
    dup = f.customer(app, email="anna@example.com", phone="+79161234567", external_id="old-1")
    order = f.order(app, customer={"id": dup})
    r = client.post("/api/v1/customers/merge", json={"site": "shop", "keep": keep, "merge": [dup]},
                    headers={"Idempotency-Key": "m-1"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["merged"] == [dup] and body["moved"]["orders"] == 1
    assert body["customer"]["id"] == keep and body["customer"]["email"] == "anna@example.com"
    assert body["customer"]["external_id"] == "old-1"
    assert client.get(f"/api/v1/orders/{order}").json()["customer_id"] == keep
    gone = client.get(f"/api/v1/customers/{dup}")
    assert gone.status_code == 404
    assert gone.json()["errors"] == [{"field": "id", "reason": f"customer {dup} was merged into customer {keep}"}]
    again = client.post("/api/v1/customers/merge", json={"site": "shop", "keep": keep, "merge": [dup]},
                        headers={"Idempotency-Key": "m-1"})
    assert again.json() == body and again.headers["Idempotent-Replayed"] == "true"
    plain = client.post("/api/v1/customers/merge", json={"site": "shop", "keep": keep, "merge": [dup]})
    assert plain.status_code == 200 and plain.json()["merged"] == []  # merged before: nothing changes
    other = client.post("/api/v1/customers/merge", json={"site": "shop", "keep": keep, "merge": [dup, 99]},
                        headers={"Idempotency-Key": "m-1"})
    assert other.status_code == 409


def test_v1_merge_bad_input_names_the_field(app, client, server):
    f.site(app)
    f.site(app, "other")
    a, b = f.customer(app), f.customer(app)
    stranger = f.customer(app, site="other")
    for body, status, field in (
            ({"site": "shop", "keep": a, "merge": []}, 422, "merge"),
            ({"site": "shop", "keep": a, "merge": [a]}, 400, "merge.0"),
            ({"site": "shop", "keep": a, "merge": [b, b]}, 400, "merge.1"),
            ({"site": "shop", "keep": a, "merge": [stranger]}, 400, "merge.0"),
            ({"site": "shop", "keep": 777777, "merge": [b]}, 404, "keep"),
            ({"site": "nope", "keep": a, "merge": [b]}, 404, "site"),
            ({"site": "shop", "keep": a}, 422, "merge")):
        r = client.post("/api/v1/customers/merge", json=body)
        assert r.status_code == status, (body, r.text)
        assert field in [e["field"] for e in r.json()["errors"]], r.text
    assert client.get(f"/api/v1/customers/{b}").status_code == 200
    _, raw = make_key(app, "customers:write", sites=["other"])
    r = client.post("/api/v1/customers/merge", json={"site": "shop", "keep": a, "merge": [b]},
                    headers={"X-API-Key": raw})
    assert r.status_code == 403 and r.json()["errors"][0]["field"] == "site"


def test_v5_combine_through_the_official_client(app, server):
    f.site(app)
    keep = f.customer(app, first_name="Anna", external_id="k-1")
    dup1 = f.customer(app, email="a@example.com", external_id="d-1")
    dup2 = f.customer(app, phone="+79161234567")
    f.order(app, customer={"id": dup2})
    client = crm(server)
    ok(client.customers_combine([{"externalId": "d-1"}, {"id": dup2}], {"id": keep}))
    got = ok(client.customer(str(keep), uid_type="id"))["customer"]
    assert got["email"] == "a@example.com" and got["phones"] == [{"number": "+79161234567"}]
    assert ok(client.orders(filters={"customerId": keep}))["pagination"]["totalCount"] == 1
    r = client.customer(str(dup2), uid_type="id")
    assert (r.get_status_code(), r.get_error_msg()) == (404, "Not found")
    ok(client.customers_combine([{"id": dup2}], {"externalId": "k-1"}))  # merged before: success, no change

    r = client.customers_combine([{"externalId": "d-1"}], {"id": keep})
    assert r.get_status_code() == 404 and r.get_errors() == {
        "customers[0].externalId": f"customer 'd-1' was merged into customer {keep}"}
    r = client.customers_combine([{"id": keep}], {"id": keep})
    assert (r.get_status_code(), r.get_error_msg()) == (400, "Errors in the input parameters")
    assert "customers[0]" in r.get_errors()
    r = client.customers_combine([{"id": 999999}], {"id": keep})
    assert r.get_status_code() == 404 and "customers[0]" in r.get_errors()
    r = client.customers_combine([], {"id": keep})
    assert r.get_status_code() == 400 and "customers" in r.get_errors()
    r = client.customers_combine([{"id": dup1}], {"id": 999999})
    assert r.get_status_code() == 404 and "resultCustomer" in r.get_errors()
    r = client.customers_combine([{"name": "x"}], {"id": keep})
    assert r.get_status_code() == 400 and "customers[0]" in r.get_errors()
    reader = crm(server, "customers:read")
    r = reader.customers_combine([{"id": dup1}], {"id": keep})
    assert (r.get_status_code(), r.get_error_msg()) == (403, "Access denied.")
