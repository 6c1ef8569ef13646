"""Dates are accepted only within 1900-01-01 .. 2200-12-31 (UTC) on every write path and filter, so whatever is
stored can be read back everywhere, /api/v5 included (RetailCRM's `Y-m-d H:i:s`, in the CRM's time zone)."""

from __future__ import annotations

import httpx
import pytest

from tests import factories as f
from tests.api.conftest import make_key

V1 = "/api/v1"
LATE = "9999-12-31T23:59:59Z"
EARLY = "1899-12-31T23:59:59Z"
ITEMS = [{"name": "Thing", "price": "10.00"}]
RANGE = "between 1900-01-01"


def v5(server, method, path, **kw):
    _, raw = make_key(server.app)
    return httpx.request(method, f"{server.url}/api/v5{path}", headers={"X-API-KEY": raw}, timeout=30, **kw)


def problem_fields(r):
    assert r.headers["content-type"] == "application/problem+json", r.text
    return {e["field"]: e["reason"] for e in r.json()["errors"]}


@pytest.fixture
def shop(app):
    f.site(app, "shop")
    return {"customer": f.customer(app, external_id="c1"), "order": f.order(app, external_id="o1")}


WRITES = [
    ("post", "/customers", {"site": "shop", "created_at": LATE}, "created_at"),
    ("post", "/customers", {"site": "shop", "created_at": "0001-01-01T00:00:00+14:00"}, "created_at"),
    ("post", "/customers", {"site": "shop", "birthday": "1899-12-31"}, "birthday"),
    ("post", "/customers", {"site": "shop", "personal_dates": {"wedding": "2201-01-01"}}, "personal_dates.wedding"),
    ("post", "/customers", {"site": "shop", "consents": {"email": {"granted": True, "at": EARLY}}},
     "consents.email.at"),
    ("patch", "/customers/{customer}", {"birthday": "0001-01-01"}, "birthday"),
    ("patch", "/customers/{customer}", {"consents": {"sms": {"granted": True, "at": LATE}}}, "consents.sms.at"),
    ("post", "/orders", {"site": "shop", "items": ITEMS, "created_at": LATE}, "created_at"),
    ("post", "/orders", {"site": "shop", "items": ITEMS, "delivery": {"date": "9999-12-31"}}, "delivery.date"),
    ("patch", "/orders/{order}", {"delivery": {"date": "1899-12-31"}}, "delivery.date"),
    ("post", "/tasks", {"title": "Call back", "due_at": EARLY}, "due_at"),
    ("post", "/initiatives", {"site": "shop", "name": "Launch", "started_at": LATE}, "started_at"),
    ("post", "/initiatives", {"site": "shop", "name": "Launch", "started_at": "2026-01-01T00:00:00Z",
                              "ended_at": LATE}, "ended_at"),
]


def test_every_v1_write_refuses_dates_out_of_range(shop, client):
    for method, path, body, field in WRITES:
        r = client.request(method, V1 + path.format(**shop), json=body)
        assert r.status_code == 422, (path, body, r.text)
        assert RANGE in problem_fields(r)[field]


def test_task_due_dates_are_times_in_range_not_unix_numbers(app, client):
    r = client.post(f"{V1}/tasks", json={"title": "Call back", "due_at": 0})
    assert r.status_code == 422 and "date-time string" in problem_fields(r)["due_at"]
    r = client.post(f"{V1}/tasks", json={"title": "Call back", "due_at": "2026-03-05T10:00:00+03:00"})
    assert r.status_code == 201 and r.json()["due_at"] == "2026-03-05T07:00:00Z"
    r = client.patch(f"{V1}/tasks/{r.json()['id']}", json={"due_at": "2201-01-01T00:00:00Z"})
    assert r.status_code == 422 and RANGE in problem_fields(r)["due_at"]


def test_campaign_start_and_segment_rule_dates_are_in_range(shop, client):
    r = client.post("/api/v1/messaging/campaigns", json={"cascade_id": 1, "name": "Spring", "customer_ids": [1],
                                                      "start_at": LATE})
    assert r.status_code == 422 and RANGE in problem_fields(r)["start_at"]
    rules = {"customer": {"field": "birthday", "op": "gt", "value": "0001-01-01"}}
    r = client.post(f"{V1}/segments/preview", json={"site": "shop", "rules": rules})
    assert r.status_code == 400 and RANGE in str(problem_fields(r)), r.text
    rules = {"orders": {"metric": "first_order_date", "op": "lt", "value": "2201-01-01"}}
    r = client.post(f"{V1}/segments/preview", json={"site": "shop", "rules": rules})
    assert r.status_code == 400 and RANGE in str(problem_fields(r)), r.text


def test_date_filters_out_of_range_are_refused_naming_the_filter(shop, client, server):
    for path in ("/customers", "/orders"):
        for param, value in (("created_from", "0001-01-01T00:00:00+14:00"),
                             ("created_to", "9999-12-31T23:59:59-12:00"), ("created_from", EARLY)):
            r = client.get(V1 + path, params={param: value})
            assert r.status_code == 422 and RANGE in problem_fields(r)[param], r.text
    for path, name in (("/customers", "dateFrom"), ("/customers", "dateTo"), ("/orders", "createdAtFrom"),
                       ("/orders", "createdAtTo"), ("/customers/history", "startDate"),
                       ("/orders/history", "endDate")):
        for value in ("0001-01-01", "9999-12-31 23:59:59", "1899-12-31"):
            r = v5(server, "GET", path, params={f"filter[{name}]": value})
            assert r.status_code == 400, r.text
            assert r.json()["success"] is False and RANGE in r.json()["errors"][f"filter[{name}]"]


V5_WRITES = [
    ("/customers/create", "createdAt", {"customer": '{"externalId": "n1", "createdAt": "9999-12-31 23:59:59"}'}),
    ("/customers/create", "createdAt", {"customer": '{"externalId": "n1", "createdAt": "0001-01-01 00:00:00"}'}),
    ("/customers/create", "birthday", {"customer": '{"externalId": "n1", "birthday": "1899-12-31"}'}),
    ("/customers/c1/edit", "birthday", {"customer": '{"birthday": "2201-01-01"}'}),
    ("/orders/create", "createdAt",
     {"order": '{"externalId": "n1", "createdAt": "2201-01-01 03:00:00", "items": [{"productName": "A", '
               '"initialPrice": 1}]}'}),
    ("/orders/create", "delivery.date",
     {"order": '{"externalId": "n1", "delivery": {"date": "9999-12-31"}, "items": [{"productName": "A", '
               '"initialPrice": 1}]}'}),
]


def test_v5_writes_refuse_dates_out_of_range(shop, server):
    for path, field, entity in V5_WRITES:
        r = v5(server, "POST", path, data={**entity, "site": "shop"})
        assert r.status_code == 400, r.text
        body = r.json()
        assert body["errorMsg"] == "Errors in the entity format" and RANGE in body["errors"][field]


def test_times_at_both_ends_of_the_range_are_stored_and_read_back_everywhere(app, server, client):
    """The first and the last second of the range, through /api/v1 and read by /api/v5: the order itself, the
    list page that holds it and the history around it (RetailCRM's format in Moscow time)."""
    f.site(app, "shop")
    first = client.post(f"{V1}/orders", json={"site": "shop", "external_id": "first", "items": ITEMS,
                                              "created_at": "1900-01-01T00:00:00Z"})
    last = client.post(f"{V1}/orders", json={"site": "shop", "external_id": "last", "items": ITEMS,
                                             "created_at": "2200-12-31T23:59:59Z",
                                             "delivery": {"date": "2200-12-31"}})
    assert first.status_code == last.status_code == 201, (first.text, last.text)
    assert client.get(f"{V1}/orders/{last.json()['id']}").json()["created_at"] == "2200-12-31T23:59:59Z"
    assert client.get(f"{V1}/orders", params={"created_from": "1900-01-01T00:00:00Z",
                                               "created_to": "2200-12-31T23:59:59Z"}).json()["items"][0][
        "external_id"] == "first"
    one = v5(server, "GET", "/orders/last", params={"site": "shop"}).json()["order"]
    assert one["createdAt"] == "2201-01-01 02:59:59" and one["delivery"]["date"] == "2200-12-31"
    page = v5(server, "GET", "/orders", params={"filter[createdAtFrom]": "1900-01-01 02:30:17"}).json()
    assert [o["createdAt"] for o in page["orders"]] == ["1900-01-01 02:30:17", "2201-01-01 02:59:59"]
    history = v5(server, "GET", "/orders/history", params={"filter[startDate]": "1900-01-01 02:30:17"}).json()
    assert history["success"] is True
    assert [h["order"]["createdAt"] for h in history["history"]] == ["1900-01-01 02:30:17", "2201-01-01 02:59:59"]


def test_v5_created_at_before_1919_is_read_in_moscow_mean_time(app, server):
    """Moscow was UTC+2:30:17 before 1919 (and +2:31:19 / +3:31:19 in 1917-1919): such times are accepted and shown
    exactly as given, not refused for "unexpected extra characters"."""
    f.site(app, "shop")
    for ext, local in (("old", "1900-01-01 02:30:17"), ("rev", "1918-06-01 12:00:00"), ("y2k", "2000-01-01 00:00:00")):
        r = v5(server, "POST", "/customers/create",
               data={"site": "shop", "customer": f'{{"externalId": "{ext}", "createdAt": "{local}"}}'})
        assert r.status_code == 201, r.text
        got = v5(server, "GET", f"/customers/{ext}", params={"site": "shop"}).json()["customer"]
        assert got["createdAt"] == local


def test_v5_history_values_that_are_times_are_in_retailcrms_format(app, server, client):
    f.site(app, "shop")
    cid = f.customer(app, external_id="c1")
    r = client.patch(f"{V1}/customers/{cid}", json={
        "email_confirmed": True, "consents": {"sms": {"granted": True, "at": "2026-03-01T21:30:00Z"}}})
    assert r.status_code == 200, r.text
    changes = {h["field"]: h for h in v5(server, "GET", "/customers/history").json()["history"] if not h.get("created")}
    assert changes["email_confirmed_at"]["newValue"] == "2026-03-02 12:00:00"  # the frozen clock, in Moscow
    assert changes["consents"]["newValue"]["sms"]["at"] == "2026-03-02 00:30:00"
