"""Sizes are limited and each limit is a clear 4xx naming the field: the request body (413), custom field values and
their number, tags per customer, free-form payloads (422); v5 form fields must be UTF-8 text (400)."""

from __future__ import annotations

import json

import httpx
import pytest

from retento.bootstrap import bootstrap
from retento.core.config import Settings
from retento.core.limits import CUSTOM_FIELDS, CUSTOM_VALUE_CHARS, FREE_FORM_BYTES, LABELS
from tests import factories as f
from tests.api.conftest import Server, make_key

V1 = "/api/v1"


def fields(r):
    assert r.headers["content-type"] == "application/problem+json", r.text
    return {e["field"]: e["reason"] for e in r.json()["errors"]}


def v5(server, path, data=None, **kw):
    _, raw = make_key(server.app)
    return httpx.post(f"{server.url}/api/v5{path}", headers={"X-API-KEY": raw}, data=data, timeout=30, **kw)


def customer_count(client):
    return len(client.get(f"{V1}/customers", params={"limit": 100}).json()["items"])


@pytest.fixture
def small_bodies(app, clock):
    """A server that reads request bodies of at most 4 KiB."""
    a = bootstrap(Settings(database_url=app.settings.database_url, api_max_body_bytes=4096), clock=clock)
    f.site(a, "shop")
    _, raw = make_key(a)
    with Server(a) as srv:
        yield srv, raw
    a.close()


def test_request_body_over_the_limit_is_413_in_each_apis_format(small_bodies):
    srv, raw = small_bodies
    with httpx.Client(base_url=srv.url, headers={"X-API-Key": raw}, timeout=30) as c:
        big = {"site": "shop", "external_id": "big", "first_name": "x" * 200, "custom_fields": {
            f"k{n}": "v" * 40 for n in range(90)}}
        r = c.post(f"{V1}/customers", json=big)
        assert r.status_code == 413
        assert fields(r) == {"body": "the request body is larger than 4096 bytes (RETENTO_API_MAX_BODY_BYTES)"}

        def chunks():  # no Content-Length: the body is counted as it arrives
            yield b'{"site": "shop", "first_name": "'
            for _ in range(10):
                yield b"y" * 1000
            yield b'"}'
        r = c.post(f"{V1}/customers", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413 and "body" in fields(r)
        r = c.post("/api/v5/customers/create", headers={"X-API-KEY": raw},
                   data={"site": "shop", "customer": json.dumps({"externalId": "big", "firstName": "z" * 5000})})
        assert r.status_code == 413
        assert r.json()["success"] is False and "4096 bytes" in r.json()["errors"]["body"]
        assert c.post(f"{V1}/customers", json={"site": "shop", "external_id": "small"}).status_code == 201
        assert [x["external_id"] for x in c.get(f"{V1}/customers").json()["items"]] == ["small"]


def test_custom_field_values_and_their_number_are_limited(app, client):
    f.site(app, "shop")
    huge = "x" * (1024 * 1024)
    r = client.post(f"{V1}/customers", json={"site": "shop", "custom_fields": {"note": huge}})
    assert r.status_code == 422
    assert fields(r)["custom_fields"] == f"the value of 'note' is 1048576 characters long; at most {CUSTOM_VALUE_CHARS}"
    r = client.post(f"{V1}/orders", json={"site": "shop", "items": [{"name": "A", "price": "1"}],
                                         "custom_fields": {"note": huge}})
    assert r.status_code == 422 and "at most 4096" in fields(r)["custom_fields"]
    many = {f"k{n}": n for n in range(CUSTOM_FIELDS + 1)}
    r = client.post(f"{V1}/customers", json={"site": "shop", "custom_fields": many})
    assert r.status_code == 422 and fields(r)["custom_fields"] == "at most 100 custom fields (got 101)"
    assert customer_count(client) == 0

    r = client.post(f"{V1}/customers", json={"site": "shop", "custom_fields": {
        f"k{n}": "v" * CUSTOM_VALUE_CHARS for n in range(CUSTOM_FIELDS - 1)}})
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    assert client.patch(f"{V1}/customers/{cid}", json={"custom_fields": {"one": 1}}).status_code == 200
    r = client.patch(f"{V1}/customers/{cid}", json={"custom_fields": {"two": 2}})  # edits merge: 101 in all
    assert r.status_code == 422 and fields(r)["custom_fields"] == "at most 100 custom fields (got 101)"
    assert len(client.get(f"{V1}/customers/{cid}").json()["custom_fields"]) == CUSTOM_FIELDS


def test_tags_per_customer_are_limited(app, client):
    f.site(app, "shop")
    r = client.post(f"{V1}/customers", json={"site": "shop", "tags": [f"t{n}" for n in range(5000)]})
    assert r.status_code == 422 and "at most 100 items" in fields(r)["tags"]
    r = client.post(f"{V1}/customers", json={"site": "shop", "interests": [f"i{n}" for n in range(LABELS + 1)]})
    assert r.status_code == 422 and "interests" in fields(r)
    r = client.post(f"{V1}/customers", json={"site": "shop", "tags": [f"t{n}" for n in range(LABELS)]})
    assert r.status_code == 201 and len(r.json()["tags"]) == LABELS
    r = client.patch(f"{V1}/customers/{r.json()['id']}", json={"tags": [f"t{n}" for n in range(LABELS + 1)]})
    assert r.status_code == 422 and "tags" in fields(r)


def test_free_form_payloads_are_limited(app, client):
    f.site(app, "shop")
    cid = f.customer(app, external_id="c1")
    payload = {"blob": "x" * FREE_FORM_BYTES}
    r = client.post(f"{V1}/events", json={"name": "viewed", "customer": {"id": cid}, "payload": payload})
    assert r.status_code == 422 and "at most 65536 bytes as JSON" in fields(r)["payload"]
    r = client.post(f"{V1}/orders", json={"site": "shop", "items": [{"name": "A", "price": "1"}],
                                         "delivery": {"address": {"text": "x" * FREE_FORM_BYTES}}})
    assert r.status_code == 422 and "delivery.address" in fields(r)
    r = client.post(f"{V1}/events", json={"name": "viewed", "customer": {"id": cid}, "payload": {"n": 1}})
    assert r.status_code == 201


def test_v5_limits_answer_in_the_envelope(app, server):
    f.site(app, "shop")
    r = v5(server, "/customers/create", {"site": "shop", "customer": json.dumps(
        {"externalId": "c1", "tags": [f"t{n}" for n in range(5000)]})})
    assert r.status_code == 400 and "tags" in r.json()["errors"]
    r = v5(server, "/customers/create", {"site": "shop", "customer": json.dumps(
        {"externalId": "c1", "customFields": {"note": "x" * (1024 * 1024)}})})
    assert r.status_code == 400 and "at most 4096" in r.json()["errors"]["customFields"]


def test_v5_form_fields_must_be_utf8(app, server):
    """Invalid UTF-8 used to be stored as U+FFFD (urlencoded) or latin-1 mojibake (multipart)."""
    f.site(app, "shop")
    _, raw = make_key(app)
    headers = {"X-API-KEY": raw, "content-type": "application/x-www-form-urlencoded"}
    r = httpx.post(f"{server.url}/api/v5/customers/create", headers=headers,
                   content=b"site=shop&customer=%7B%22externalId%22%3A%22c1%22%2C%22firstName%22%3A%22%FF%22%7D")
    assert r.status_code == 400
    assert r.json() == {"success": False, "errorMsg": "Errors in the input parameters",
                        "errors": {"customer": "must be UTF-8 text"}}
    entity = '{"externalId": "c2", "firstName": "\u0410\u043d\u043d\u0430"}'.encode()
    r = httpx.post(f"{server.url}/api/v5/customers/create", headers={"X-API-KEY": raw},
                   files={"site": (None, b"shop"), "customer": (None, entity.replace(b"\xd0\x90", b"\xff"))})
    assert r.status_code == 400 and r.json()["errors"] == {"customer": "must be UTF-8 text"}
    r = httpx.post(f"{server.url}/api/v5/customers/create", headers={"X-API-KEY": raw},
                   files={"site": (None, b"shop"), "customer": (None, entity)})
    assert r.status_code == 201, r.text
    r = httpx.post(f"{server.url}/api/v5/customers/create", headers=headers,
                   content="site=shop&customer=".encode() + json.dumps(
                       {"externalId": "c3", "firstName": "Борис"}, ensure_ascii=False).encode())
    assert r.status_code == 201, r.text  # raw UTF-8 in a urlencoded body is read as UTF-8, not latin-1
    got = httpx.get(f"{server.url}/api/v5/customers", headers={"X-API-KEY": raw}).json()["customers"]
    assert [(c["externalId"], c["firstName"]) for c in got] == [("c2", "Анна"), ("c3", "Борис")]


def test_strings_without_a_natural_bound_have_one(app, client):
    r = client.post(f"{V1}/triggers/templates/abandoned-cart", json={"name": "n" * 1000})
    assert r.status_code == 422 and "at most 128 characters" in fields(r)["name"]
    r = client.post(f"{V1}/triggers", json={"name": "t", "events": ["e" * 1000], "actions": []})
    assert r.status_code == 422 and "events.0" in fields(r)
    r = client.post("/api/v1/messaging/campaigns", json={"cascade_id": 1, "name": "c", "segment": "s" * 1000})
    assert r.status_code == 422 and any(k.startswith("segment") for k in fields(r))
    r = client.post("/api/v1/messaging/templates", json={"site": "shop", "name": "t", "channel": "sms",
                                                      "body": "b" * 70_000})
    assert r.status_code == 422 and "at most 65536 characters" in fields(r)["body"]
