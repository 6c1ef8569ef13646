"""A key limited to one shop never reads, writes or messages another shop: every route of the application
(native, /api/v1/messaging and its old /api/messaging, /api/v5, in the OpenAPI documents or not) called with a
key of `ashop` against `bshop`'s objects answers 403 / 404, a call that names none of them shows nothing of bshop, and no row of bshop
changes. The calls come from tests/api/isolation_calls.py; a new route fails here until its calls are listed."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select

from retento.api import create_app
from retento.bootstrap import App, bootstrap
from retento.core.config import Settings
from retento.models import metadata
from tests.api.conftest import Server, make_key
from tests.api.isolation_calls import CLEAN, PUBLIC, Call, api_routes, calls_for
from tests.api.isolation_world import MARK, Shop, build


@pytest.fixture
def iso_app(db_url: str, clock: Any) -> Iterator[App]:
    """The frozen clock refills no rate-limit tokens: a bucket for every call of the run."""
    app = bootstrap(Settings(database_url=db_url, api_rate_burst=100_000), clock=clock)
    yield app
    app.close()


@pytest.fixture
def shops(iso_app: App) -> tuple[Shop, Shop]:
    return build(iso_app)


@pytest.fixture
def client(iso_app: App, shops: tuple[Shop, Shop]) -> Iterator[httpx.Client]:
    _, raw = make_key(iso_app, "all", sites=[shops[0].code], name="ashop only")
    with Server(iso_app) as server, httpx.Client(base_url=server.url, headers={"X-API-Key": raw}, timeout=30) as c:
        yield c


def send(client: httpx.Client, call: Call) -> httpx.Response:
    body = call.body
    headers = {"content-type": body.content_type} if body.content_type else None
    return client.request(call.method, call.path, params=call.params, json=body.json, files=body.files,
                          content=body.content, headers=headers)


def problems(call: Call, r: httpx.Response, b: Shop) -> list[str]:
    """What is wrong with an answer: a 5xx, bshop's data in it, or (for a call naming bshop) not a 403 / 404."""
    out = []
    text = r.text.lower()
    if r.status_code >= 500:
        out.append("a server error")
    if MARK in text:
        out.append("shows bshop's data")
    if call.expect == CLEAN:
        if b.code in text:
            out.append("names bshop")
        out += [f"holds bshop's {key}" for key in _ids_of(b, _json(r))]
    elif r.status_code not in call.expect:
        out.append(f"expected {sorted(call.expect)}")
    return [f"{call}: {p} ({r.status_code} {r.text[:300]})" for p in out]


def _json(r: httpx.Response) -> Any:
    try:
        return orjson.loads(r.content)
    except orjson.JSONDecodeError:
        return None


def _ids(b: Shop) -> dict[str, set[int]]:
    return {"site_id": {b.site_id}, "customer_id": {b.customer_id}, "order_id": {b.order_id},
            "trigger_id": {b.trigger_id}, "cascade_id": {b.cascade_id}, "campaign_id": {b.campaign_id},
            "template_id": {b.template_id}, "segment_id": {b.segment_id, b.static_segment_id},
            "message_id": {b.message_id}, "task_id": {b.task_id}, "timer_id": {b.timer_id},
            "subscription_id": {b.sub_id}, "delivery_id": {b.delivery_id}}


def _ids_of(b: Shop, data: Any) -> Iterator[str]:
    """Keys of `data` (walked through) that hold one of bshop's ids of that kind."""
    ids = _ids(b)
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(value, int) and value in ids.get(key, ()) or (
                    key == "customer_ids" and isinstance(value, list) and b.customer_id in value):
                yield key
            yield from _ids_of(b, value)
    elif isinstance(data, list):
        for item in data:
            yield from _ids_of(b, item)


# --- every route -----------------------------------------------------------------------------------------


def test_every_route_keeps_the_other_shop_out(iso_app, shops, client):
    a, b = shops
    routes = api_routes(create_app(iso_app))
    assert len(routes) > 100
    seen = {(m, r.path) for r in routes for m in r.methods}
    assert set(PUBLIC) <= seen, f"stale entries in PUBLIC: {set(PUBLIC) - seen}"
    shapes = {(m, re.sub(r"\{[^}]+\}", "{}", p)) for m, p in seen}
    for doc in ("/api/openapi.json", "/api/v5/openapi.json"):  # every documented operation is among the routes
        r = client.get(doc)
        if r.status_code == 200:
            documented = {(m.upper(), re.sub(r"\{[^}]+\}", "{}", p)) for p, ops in r.json()["paths"].items()
                          for m in ops if m in ("get", "post", "put", "patch", "delete")}
            assert documented <= shapes, documented - shapes
    secret = iso_app.messaging.settings.messaging_secret
    before, failures, sent = dump(iso_app), [], 0
    for route in routes:
        if all((m, route.path) in PUBLIC for m in route.methods):
            continue
        try:
            calls = calls_for(route, a, b, secret)
        except ValueError as exc:
            failures.append(f"{sorted(route.methods)} {route.path}: {exc}")
            continue
        for call in calls:
            sent += 1
            try:
                failures += problems(call, send(client, call), b)
            except httpx.TransportError as exc:  # the server failed before answering
                failures.append(f"{call}: no answer ({exc!r})")
    failures += changed_rows(before, dump(iso_app), a, b)
    assert not failures, f"{len(failures)} of {sent} calls:\n" + "\n".join(failures)


def dump(app: App) -> dict[str, dict[tuple, dict[str, Any]]]:
    """Every row of every table, by primary key, read without any site scope."""
    out = {}
    with app.engine.connect() as conn:
        for table in metadata.sorted_tables:
            key = [c.name for c in table.primary_key]
            out[table.name] = {tuple(r[k] for k in key): dict(r) for r in conn.execute(select(table)).mappings()}
    return out


def _belongs(shop: Shop, table: str, row: dict[str, Any]) -> bool:
    """Whether a row is the shop's: by its own id, or a column naming one of the shop's objects (an independent
    reading of the tables, not the scoping mechanism's)."""
    own = {"sites": shop.site_id, "customers": shop.customer_id, "orders": shop.order_id, "tasks": shop.task_id,
           "triggers": shop.trigger_id, "webhook_subscriptions": shop.sub_id, "msg_cascades": shop.cascade_id,
           "msg_campaigns": shop.campaign_id, "msg_templates": shop.template_id, "msg_messages": shop.message_id,
           "trigger_timers": shop.timer_id, "webhook_deliveries": shop.delivery_id}
    ids = {**_ids(shop), "subscription_id": {shop.sub_id}}
    return row.get("id") == own.get(table) or any(row.get(k) in v for k, v in ids.items())


def changed_rows(before: dict, after: dict, a: Shop, b: Shop) -> list[str]:
    """bshop's rows and every row of no shop are as they were; rows added name nothing of bshop."""
    out = []
    for table, rows in before.items():
        for key, row in rows.items():
            now = after[table].get(key)
            if now != row and not _belongs(a, table, row):
                out.append(f"{table} {key} changed: {row} -> {now}")
        for key, row in after[table].items():
            if key not in rows and (_belongs(b, table, row) or MARK in repr(row) or b.code in repr(row)
                                    or b.site_id in (row.get("site_ids") or ())):
                out.append(f"{table} {key} added for bshop: {row}")
    return out


# --- the leaks reported in issue 20, one by one ------------------------------------------------------------


def reported(a: Shop, b: Shop) -> list[tuple[str, str, dict[str, Any], int]]:
    """(method, path, request arguments, status): each answered 200 / 201 with bshop's data before."""
    m, v1 = "/api/v1/messaging", "/api/v1"
    return [
        ("GET", f"{m}/templates", {"params": {"site": b.code}}, 403),
        ("POST", f"{m}/templates/{a.template_id}/preview", {"params": {"customer_id": b.customer_id}}, 404),
        ("GET", f"{m}/cascades/{b.cascade_id}", {}, 404),
        ("GET", f"{m}/cascades/{b.cascade_id}/report", {}, 404),
        ("GET", f"{m}/campaigns/{b.campaign_id}/report", {}, 404),
        ("PUT", f"{m}/sites/{b.code}/policy", {"json": {"cap_count": 100}}, 403),
        ("PUT", f"{m}/sites/{b.code}/prices/email", {"json": {"price": "9", "currency": "RUB"}}, 403),
        ("POST", f"{m}/cascades", {"json": {"site": b.code, "name": "Mine now", "steps": [
            {"channel": "email", "template": b.template_name}]}}, 403),
        ("POST", f"{m}/campaigns", {"json": {"cascade_id": a.cascade_id, "name": "Spam",
                                             "customer_ids": [b.customer_id]}}, 404),
        ("GET", f"{v1}/tasks", {"params": {"customer_id": b.customer_id}}, 404),
        ("PATCH", f"{v1}/tasks/{b.task_id}", {"json": {"done": True}}, 404),
        ("POST", f"{v1}/tasks", {"json": {"title": "Call", "customer_id": b.customer_id}}, 404),
        ("POST", f"{v1}/tasks", {"json": {"title": "Call", "order_id": b.order_id}}, 404),
        ("GET", f"{v1}/triggers/{b.trigger_id}", {}, 404),
    ]


def test_the_reported_leaks_are_closed(iso_app, shops, client):
    a, b = shops
    before = dump(iso_app)
    for method, path, kw, status in reported(a, b):
        r = client.request(method, path, **kw)
        assert r.status_code == status, (method, path, r.text)
        assert MARK not in r.text, r.text
    assert changed_rows(before, dump(iso_app), a, b) == []
    # lists of triggers, pending runs and the run log show only ashop's; dry-run samples too
    assert [t["id"] for t in client.get("/api/v1/triggers").json()] == [a.trigger_id]
    pending = client.get("/api/v1/triggers/pending").json()
    runs = client.get("/api/v1/triggers/runs").json()
    assert {(p["order_id"], p["customer_id"]) for p in pending} == {(a.order_id, a.customer_id)}
    assert runs and {(r["order_id"], r["customer_id"]) for r in runs} <= {(a.order_id, a.customer_id),
                                                                       (None, a.customer_id)}
    for over in ("events", "orders", "customers"):
        dry = client.post("/api/v1/triggers/dry-run", json={"trigger": {
            "name": "Probe", "events": ["order_created", "customer_created"], "actions": [
                {"type": "add_tag", "tag": "x"}]}, "options": {"over": over}}).json()
        assert dry["matched"] > 0 and {s["customer_id"] for s in dry["sample"]} == {a.customer_id}, dry


def test_a_site_limited_key_manages_only_triggers_of_its_sites(iso_app, shops, client):
    a, b = shops
    made = client.post("/api/v1/triggers", json={"name": "Mine", "events": ["order_created"],
                                                 "actions": [{"type": "add_tag", "tag": "x"}]})
    assert made.status_code == 201 and made.json()["definition"]["sites"] == [a.code], made.text  # its own sites
    r = client.put(f"/api/v1/triggers/{made.json()['id']}", json={
        "name": "Mine", "events": ["order_created"], "sites": [a.code, b.code], "actions": [
            {"type": "add_tag", "tag": "x"}]})
    assert (r.status_code, r.json()["errors"][0]["field"]) == (403, "sites.1")
    # a trigger of every site (made by an unrestricted key) is no single site's: not listed, not found
    _, raw = make_key(iso_app, "all", name="everything")
    every = client.post("/api/v1/triggers", headers={"X-API-Key": raw}, json={
        "name": "Everywhere", "events": ["order_created"], "actions": [{"type": "add_tag", "tag": "x"}]}).json()
    assert every["definition"]["sites"] == []
    assert client.get(f"/api/v1/triggers/{every['id']}").status_code == 404
    assert {t["name"] for t in client.get("/api/v1/triggers").json()} == {"Welcome aa", "Mine"}
    # trigger names are unique across the installation: the other shop's is a conflict, not a replacement
    taken = client.post("/api/v1/triggers", json={"name": f"Welcome {MARK}", "events": ["order_created"],
                                                  "actions": [{"type": "add_tag", "tag": "x"}]})
    assert taken.status_code == 409
    every_key = client.get("/api/v1/triggers", headers={"X-API-Key": raw}).json()
    assert {t["id"] for t in every_key} >= {a.trigger_id, b.trigger_id, every["id"]}  # unrestricted: all of them


def test_the_key_still_does_everything_on_its_own_shop(shops, client):
    """The scope takes nothing from the key's own site: creating and changing its data works as before."""
    a, _ = shops
    v1, m = "/api/v1", "/api/v1/messaging"
    customer = client.post(f"{v1}/customers", json={
        "site": a.code, "first_name": "Vera", "tags": ["new"], "email": "vera@ashop.example",
        "consents": {"email": {"granted": True, "source": "form"}}})
    assert customer.status_code == 201, customer.text
    cid = customer.json()["id"]
    calls = [
        ("PATCH", f"{v1}/customers/{cid}", {"json": {"tags": ["new", "vip"], "interests": ["tea"]}}),
        ("POST", f"{v1}/orders", {"json": {"site": a.code, "customer": {"id": cid}, "items": [
            {"offer_id": "a-sku-1", "quantity": 2}]}}),
        ("POST", f"{v1}/events", {"json": {"name": "visit", "customer": {"external_id": a.customer_external_id}}}),
        ("POST", f"{v1}/tasks", {"json": {"title": "Welcome call", "customer_id": cid}}),
        ("PATCH", f"{v1}/tasks/{a.task_id}", {"json": {"done": True}}),
        ("POST", f"{v1}/segments", {"json": {"site": a.code, "code": "new", "name": "New", "kind": "static"}}),
        ("POST", f"{v1}/segments/{a.static_segment_id}/members", {"json": {"customer_ids": [cid]}}),
        ("POST", f"{v1}/initiatives", {"json": {"site": a.code, "name": "Spring", "started_at": "2026-03-01T00:00:00Z"}}),
        ("PUT", f"{v1}/cohorts/threshold", {"params": {"site": a.code}, "json": {"threshold_days": 45}}),
        ("PUT", f"{m}/sites/{a.code}/policy", {"json": {"cap_count": 5}}),
        ("PUT", f"{m}/sites/{a.code}/prices/sms", {"json": {"price": "3.5", "currency": "RUB"}}),
        ("POST", f"{m}/templates", {"json": {"site": a.code, "name": "sms-hi", "channel": "sms", "body": "Hi"}}),
        ("POST", f"{m}/cascades/{a.cascade_id}/start", {"json": {"customer_id": cid}}),
        ("POST", f"{m}/campaigns", {"json": {"cascade_id": a.cascade_id, "name": "Spring", "customer_ids": [cid]}}),
        ("POST", f"{m}/campaigns", {"json": {"cascade_id": a.cascade_id, "name": "List", "segment": "a-list"}}),
        ("POST", f"{m}/devices", {"json": {"customer_id": cid, "token": "vera-phone-token"}}),
        ("POST", f"{m}/templates/{a.template_id}/preview", {"params": {"customer_id": cid}}),
        ("POST", f"{v1}/webhooks", {"json": {"url": "https://hooks.ashop.example/2", "event_types": ["*"]}}),
        ("DELETE", f"{v1}/triggers/pending/{a.timer_id}", {}),
        ("POST", f"{v1}/triggers/{a.trigger_id}/cancel-pending", {}),
    ]
    for method, path, kw in calls:
        r = client.request(method, path, **kw)
        assert r.status_code < 300, (method, path, r.status_code, r.text)
    assert client.get(f"{v1}/customers/{cid}").json()["tags"] == ["new", "vip"]
    assert client.get(f"{v1}/tasks", params={"customer_id": cid}).json()[0]["title"] == "Welcome call"
