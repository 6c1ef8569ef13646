"""Issue 20, "No 5xx on any input": each input a user could send that answered 500, sent to a real server the
way a user would send it, now answers 4xx naming the field; nothing is stored."""

from __future__ import annotations

import hashlib
import hmac
import json

import httpx
import pytest

from retento.messaging.config import MessagingSettings
from retento.messaging.wiring import configure
from tests import factories as f
from tests.api.conftest import Server, make_key

BIG = 2**64  # one more than the largest 64-bit integer
WA_SECRET, VK_SECRET, TWILIO_TOKEN = "wa-secret", "vk-secret", "twilio-token"


@pytest.fixture
def world(app):
    """A shop with a customer, an order and a static segment; messaging with provider secrets; a server."""
    f.site(app, "shop")
    f.product(app, "SKU-1")
    customer = f.customer(app, external_id="c1", email="c1@example.com")
    order = f.order(app, external_id="o1", customer={"id": customer})
    configure(app, MessagingSettings(public_url="http://testserver", messaging_secret="s3cret",
                                     whatsapp_app_secret=WA_SECRET, vk_secret=VK_SECRET, vk_confirmation="conf",
                                     twilio_auth_token=TWILIO_TOKEN))
    _, raw = make_key(app)
    with Server(app) as srv, httpx.Client(base_url=srv.url, headers={"X-API-Key": raw}, timeout=30) as c:
        yield {"c": c, "customer": customer, "order": order, "app": app}
    app.messaging.close()


def native_error(resp: httpx.Response, status: int, field: str) -> str:
    """The reason given for `field` in a problem+json answer."""
    assert resp.status_code == status, (resp.status_code, resp.text)
    errors = {e["field"]: e["reason"] for e in resp.json()["errors"]}
    assert field in errors, errors
    return errors[field]


def v5_error(resp: httpx.Response, field: str, status: int = 400) -> str:
    """The reason given for `field` in RetailCRM's envelope."""
    assert resp.status_code == status, (resp.status_code, resp.text)
    body = resp.json()
    assert body["success"] is False and field in body.get("errors", {}), body
    return body["errors"][field]


def order_items(c: httpx.Client, order_id: int) -> int:
    return len(c.get(f"/api/v1/orders/{order_id}").json()["items"])


def test_1_editing_an_order_to_no_items_is_refused_as_create_is(world):
    c, oid = world["c"], world["order"]
    assert "at least 1" in native_error(c.patch(f"/api/v1/orders/{oid}", json={"items": []}), 422, "items")
    assert "at least 1" in v5_error(c.post("/api/v5/orders/o1/edit", data={"order": '{"items": []}'}), "items")
    assert order_items(c, oid) == 1


def test_2_json_integers_beyond_64_bits_are_refused_naming_the_field(world):
    c, cid, oid = world["c"], world["customer"], world["order"]
    for path, body, field in [
        (f"/api/v1/customers/{cid}", {"custom_fields": {"nps": BIG}}, "custom_fields.nps"),
        (f"/api/v1/orders/{oid}", {"custom_fields": {"nps": -BIG}}, "custom_fields.nps"),
        (f"/api/v1/orders/{oid}", {"delivery": {"address": {"house": BIG}}}, "delivery.address.house"),
    ]:
        assert "64 bits" in native_error(c.patch(path, json=body), 422, field)
    event = {"name": "cart", "customer": {"id": cid}, "payload": {"items": [1, {"n": BIG}]}}
    assert "64 bits" in native_error(c.post("/api/v1/events", json=event), 422, "payload.items.1.n")
    for path, form, field in [
        ("/api/v5/customers/c1/edit", {"customer": json.dumps({"customFields": {"nps": BIG}})}, "customFields.nps"),
        ("/api/v5/orders/o1/edit", {"order": json.dumps({"customFields": {"nps": BIG}})}, "customFields.nps"),
        ("/api/v5/orders/o1/edit", {"order": json.dumps({"delivery": {"address": {"house": BIG}}})},
         "delivery.address.house"),
    ]:
        assert "64 bits" in v5_error(c.post(path, data=form), field)
    # the edges: 64-bit integers are kept as they are, NaN / Infinity / 1e999 are not JSON numbers
    assert c.patch(f"/api/v1/customers/{cid}", json={"custom_fields": {"a": 2**63 - 1, "b": -(2**63)}}).json()[
        "custom_fields"] == {"a": 2**63 - 1, "b": -(2**63)}
    for raw in (b'{"custom_fields": {"a": 1e999}}', b'{"custom_fields": {"a": NaN}}'):
        resp = c.patch(f"/api/v1/customers/{cid}", content=raw, headers={"Content-Type": "application/json"})
        assert resp.status_code == 422, resp.text
    deep = {"payload": json.loads("[" * 80 + "]" * 80)}
    assert "nested deeper" in native_error(c.post("/api/v1/events", json={"name": "x", "customer": {"id": cid},
                                                                          **deep}), 422, "payload" + ".0" * 63)


def test_4_5_v5_parameters_in_other_digits_or_shapes_are_input_errors(world):
    c = world["c"]
    for path, field in [
        ("/api/v5/orders/history?filter[sinceId]=¹", "filter[sinceId]"),
        ("/api/v5/customers/history?page=¹", "page"),
        ("/api/v5/customers?filter[ids][]=²", "filter[ids]"),
        ("/api/v5/orders?filter[customerId]=²", "filter[customerId]"),
        ("/api/v5/orders/statuses?ids[]=²", "ids"),
        ("/api/v5/orders?page[]=1", "page"),
        ("/api/v5/orders?page[a]=1", "page"),
        ("/api/v5/customers?filter[sites][a][b]=c", "filter[sites]"),
        ("/api/v5/orders?filter[number][]=x", "filter[number]"),
        ("/api/v5/customers?filter[email][a]=x", "filter[email]"),
        ("/api/v5/orders?filter=1", "filter"),
        ("/api/v5/customers/c1?by[]=id", "by"),
        ("/api/v5/customers/c1?site[]=shop", "site"),
    ]:
        resp = c.get(path)
        v5_error(resp, field)
        assert resp.json()["errorMsg"] == "Errors in the input parameters"
    # a path id in other digits is no customer at all
    assert c.get("/api/v5/customers/¹?by=id").status_code == 404
    # PHP's http_build_query writes lists with indexes: filter[ids][0]=1
    found = c.get("/api/v5/customers", params={"filter[ids][0]": str(world["customer"]), "filter[ids][1]": "999"})
    assert [x["externalId"] for x in found.json()["customers"]] == ["c1"]


def test_6_v5_line_discounts_of_any_size_are_entity_errors(world):
    c = world["c"]
    for key in ("discountManualAmount", "discountManualPercent"):
        for value in (1e30, "1e30", "Infinity", [1]):
            item = {"productName": "Kettle", "initialPrice": 10, "quantity": 1, key: value}
            reason = v5_error(c.post("/api/v5/orders/o1/edit", data={"order": json.dumps({"items": [item]})}),
                              f"items[0].{key}")
            assert "out of range" in reason or "not a number" in reason
    assert order_items(c, world["order"]) == 1


def test_4_7_segment_csv_with_other_digits_or_bare_carriage_returns(world):
    c = world["c"]
    seg = c.post("/api/v1/segments", json={"site": "shop", "code": "vip", "name": "VIP", "kind": "static"}).json()
    url = f"/api/v1/segments/{seg['id']}/members/csv"
    resp = c.post(url, files={"file": ("m.csv", "customer_id\n¹\n".encode())})
    assert "not a whole number" in native_error(resp, 400, "file.line 2")
    resp = c.post(url, files={"file": ("m.csv", b'customer_id\n"1\r2"x\r3\n')})
    assert "not a whole number" in native_error(resp, 400, "file.line 2")
    # bare carriage returns end lines, as old Mac files do
    resp = c.post(url, files={"file": ("m.csv", f"customer_id\r{world['customer']}\r".encode())})
    assert resp.status_code == 200 and resp.json() == {"entered": 1, "left": 0}


def test_8_tracking_links_with_any_characters_are_not_ours(world):
    anonymous = httpx.Client(base_url=str(world["c"].base_url), timeout=30)
    resp = anonymous.get("/api/v1/messaging/c/x", params={"url": "a", "s": "é"})
    assert native_error(resp, 400, "url") == "link signature does not match"
    resp = anonymous.get("/api/v1/messaging/o/1.é.gif")
    assert resp.status_code == 200 and resp.headers["content-type"] == "image/gif"
    assert anonymous.post("/api/v1/messaging/u/1.é").status_code == 404
    page = anonymous.get('/api/v1/messaging/u/1."><img src=x onerror=alert(1)>')
    assert page.status_code == 404 and "<img" not in page.text


def signed_whatsapp(c: httpx.Client, body: bytes) -> httpx.Response:
    sig = "sha256=" + hmac.new(WA_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return c.post("/api/v1/messaging/webhooks/whatsapp", content=body, headers={"X-Hub-Signature-256": sig})


def test_9_provider_webhooks_with_bodies_their_provider_never_sends(world):
    c = world["c"]
    resp = c.post("/api/v1/messaging/webhooks/twilio", content=b"MessageSid=SM1&MessageStatus=\xff\xfe",
                  headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": "x"})
    assert native_error(resp, 400, "body") == "not UTF-8 form data"
    resp = c.post("/api/v1/messaging/webhooks/twilio", data={"MessageSid": "SM1"}, headers={"X-Twilio-Signature": "é".encode()})
    assert resp.status_code == 401
    for raw in (b"[]", b'"ok"', b"null", b"1e999", b"[1, 2"):
        assert c.post("/api/v1/messaging/webhooks/vk", content=raw).status_code == 400, raw
    for obj, field in [(None, "object"), ([1], "object"), ({"peer_id": 5}, "object.read_message_id"),
                       ({"read_message_id": "x"}, "object.read_message_id")]:
        event = {"type": "message_read", "secret": VK_SECRET, "group_id": 1, **({"object": obj} if obj else {})}
        native_error(c.post("/api/v1/messaging/webhooks/vk", json=event), 400, field)
    resp = c.post("/api/v1/messaging/webhooks/vk", json={"type": "message_read", "secret": "é", "object": {}})
    assert resp.status_code == 401
    for raw, field in [
        (b"[]", "body"), (b"null", "body"), (b'{"entry":[1]}', "entry.0"), (b'{"entry":{"a":1}}', "entry"),
        (b'{"entry":[{"changes":[{"value":{"statuses":[{"id":[1],"status":"read"}]}}]}]}',
         "entry.0.changes.0.value.statuses.0.id"),
        (b'{"entry":[{"changes":[{"value":{"statuses":[{"id":"w","status":"read","errors":[1]}]}}]}]}',
         "entry.0.changes.0.value.statuses.0.errors.0"),
        (b'{"entry":[{"changes":[{"value":{"statuses":[{"id":"w","status":"read","timestamp":"1e999"}]}}]}]}',
         "entry.0.changes.0.value.statuses.0.timestamp"),
    ]:
        native_error(signed_whatsapp(c, raw), 400, field)
    resp = c.post("/api/v1/messaging/webhooks/whatsapp", content=b"{}", headers={"X-Hub-Signature-256": "sha256=é".encode()})
    assert resp.status_code == 401
    assert signed_whatsapp(c, b'{"object": "whatsapp_business_account", "entry": []}').status_code == 200
