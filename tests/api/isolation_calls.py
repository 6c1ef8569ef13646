"""The requests tests/api/test_site_isolation.py sends: for every route of the application, calls that name the
other shop's objects (expected 403 / 404) and calls that name none (expected to leak nothing).

Native routes are read from FastAPI's routes: path parameters are filled with the other shop's ids, each query
parameter that refers to an object gets one call of its own, and every route that takes a body has an entry in
BODIES (a body of the caller's own shop, and bodies naming the other shop's objects). /api/v5 reads its
parameters by hand, so its calls are listed in V5. A route this module cannot build a request for is reported,
never skipped: a new route makes its author say here what it takes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from fastapi.routing import APIRoute, iter_route_contexts

from retento.messaging import API_PATH, OLD_API_PATH, tracking
from tests.api.isolation_world import Shop, journey

DENIED = frozenset({403, 404})
CLEAN = "clean"  # any status below 500; the body shows nothing of the other shop

# Public routes with their own authentication, which no API key reaches (so no key's sites apply).
_PUBLIC = {
    ("GET", "/api/v1/messaging/o/{tok}.gif"): "open pixel: a signed per-message token",
    ("GET", "/api/v1/messaging/c/{tok}"): "click redirect: a signed per-message token and a signed URL",
    ("GET", "/api/v1/messaging/u/{tok}"): "unsubscribe page: a signed per-message token",
    ("POST", "/api/v1/messaging/u/{tok}"): "unsubscribe: a signed per-message token",
    ("GET", "/api/v1/messaging/webhooks/whatsapp"): "Meta's subscription check: the verify token",
    ("POST", "/api/v1/messaging/webhooks/whatsapp"): "WhatsApp statuses: X-Hub-Signature-256",
    ("POST", "/api/v1/messaging/webhooks/twilio"): "Twilio statuses: X-Twilio-Signature",
    ("POST", "/api/v1/messaging/webhooks/vk"): "VK callbacks: the shared secret",
    ("POST", "/api/v1/messaging/webhooks/telegram"): "Telegram updates: X-Telegram-Bot-Api-Secret-Token",
    ("GET", "/api/v1/messaging/webhooks/instagram"): "Meta's subscription check: the verify token",
    ("POST", "/api/v1/messaging/webhooks/instagram"): "Instagram messaging: X-Hub-Signature-256",
    ("GET", "/api/v5/openapi.json"): "the v5 OpenAPI document: public, as /api/openapi.json is; no shop data",
}
PUBLIC = {**_PUBLIC, **{(m, OLD_API_PATH + p[len(API_PATH):]): f"{why} (the old path)"
                        for (m, p), why in _PUBLIC.items() if p.startswith(API_PATH + "/")}}


def canonical(path: str) -> str:
    """A route's path at its current place: the old paths of a moved router (still answering) as the new."""
    return API_PATH + path[len(OLD_API_PATH):] if path.startswith(OLD_API_PATH + "/") else path


@dataclass
class Body:
    json: Any = None
    files: dict[str, Any] | None = None
    content: bytes | None = None
    content_type: str | None = None
    expect: frozenset[int] | str = DENIED
    why: str = ""


@dataclass
class Call:
    method: str
    path: str
    params: dict[str, Any] = field(default_factory=dict)
    body: Body = field(default_factory=Body)
    expect: frozenset[int] | str = DENIED
    why: str = ""

    def __str__(self) -> str:
        return f"{self.method} {self.path} {self.params or ''} {self.why}".strip()


# Path and query parameters that name an object: name -> (the shop's value, refers to the shop's data).
REFS: dict[str, Callable[[Shop], Any]] = {
    "site": lambda s: s.code, "customer_id": lambda s: s.customer_id, "order_id": lambda s: s.order_id,
    "template_id": lambda s: s.template_id, "cascade_id": lambda s: s.cascade_id,
    "campaign_id": lambda s: s.campaign_id, "segment_id": lambda s: s.static_segment_id,
    "task_id": lambda s: s.task_id, "trigger_id": lambda s: s.trigger_id, "timer_id": lambda s: s.timer_id,
    "message_id": lambda s: s.message_id, "sub_id": lambda s: s.sub_id, "delivery_id": lambda s: s.delivery_id,
    # GET /triggers/{id}/explain?order=|customer=|event=
    "order": lambda s: s.order_id, "customer": lambda s: s.customer_id, "event": lambda s: s.extra["event_id"],
    "account_id": lambda s: s.account_id,
    "dialog_id": lambda s: s.extra["dialog_id"], "connection_id": lambda s: s.extra["connection_id"],
    "peer": lambda s: s.extra["peer"], "journey_id": lambda s: s.extra["journey_id"],
}
# Query parameters some routes always get: the inbox's live stream ends instead of staying open
ALWAYS = {("GET", "/api/v1/inbox/stream"): {"max_seconds": 0.5}}
FIXED = {"channel": "email", "name": "review-request", "queue": "messages"}  # path parameters naming no shop's object


def _task(**kw: Any) -> dict[str, Any]:
    return {"title": "Call back", **kw}


def _trigger(**kw: Any) -> dict[str, Any]:
    return {"name": "Isolation probe", "events": ["order_created"], "actions": [{"type": "add_tag", "tag": "x"}],
            **kw}


def _items() -> list[dict[str, Any]]:
    return [{"name": "Thing", "price": "10.00", "quantity": 1}]


def _dsn(message_id: int, secret: str) -> bytes:
    verp = f"news+bounce-{tracking.token(secret, message_id)}@shop.example"
    return (f"From: MAILER-DAEMON@mx.example.net\r\nTo: {verp}\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/report; report-type=delivery-status; boundary="B1"\r\n\r\n'
            "--B1\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n"
            "Final-Recipient: rfc822; x@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n--B1--\r\n").encode()


# (method, path) -> (a, b, secret) -> (a valid body of the caller's shop or None, [bodies naming the other shop]).
Bodies = Callable[[Shop, Shop, str], tuple[Body | None, list[Body]]]
BODIES: dict[tuple[str, str], Bodies] = {
    ("POST", "/api/v1/customers"): lambda a, b, _: (None, [Body({"site": b.code, "first_name": "X"})]),
    ("PATCH", "/api/v1/customers/{customer_id}"): lambda a, b, _: (Body({"first_name": "X"}), []),
    ("POST", "/api/v1/customers/merge"): lambda a, b, _: (None, [
        Body({"site": b.code, "keep": b.customer_id, "merge": [a.customer_id]}, why="site"),
        Body({"site": a.code, "keep": a.customer_id, "merge": [b.customer_id]}, why="merged id"),
        Body({"site": a.code, "keep": b.customer_id, "merge": [a.customer_id]}, why="kept id")]),
    ("POST", "/api/v1/events"): lambda a, b, _: (None, [
        Body({"name": "ping", "customer": {"id": b.customer_id}}, why="customer id"),
        Body({"name": "ping", "customer": {"external_id": b.customer_external_id, "site": b.code}}, why="site"),
        Body({"name": "ping", "customer": {"external_id": b.customer_external_id}}, why="external id")]),
    ("POST", "/api/v1/events/batch"): lambda a, b, _: (None, [
        Body({"events": [{"name": "ping", "customer": {"id": a.customer_id}},
                         {"name": "ping", "customer": {"id": b.customer_id}}]})]),
    ("POST", "/api/v1/orders"): lambda a, b, _: (None, [
        Body({"site": b.code, "items": _items()}, why="site"),
        Body({"site": a.code, "customer": {"id": b.customer_id}, "items": _items()}, why="customer id"),
        Body({"site": a.code, "customer": {"external_id": b.customer_external_id}, "items": _items()},
             why="customer external id"),
        Body({"site": a.code, "items": [{"offer_id": "b-sku-1", "quantity": 1}]}, why="product")]),
    ("POST", "/api/v1/customers/batch"): lambda a, b, _: (None, [
        Body({"items": [{"site": a.code, "external_id": "probe"}, {"site": b.code, "external_id": "probe"}]},
             why="site")]),
    ("POST", "/api/v1/orders/batch"): lambda a, b, _: (None, [
        Body({"items": [{"site": b.code, "items": _items()}]}, why="site"),
        Body({"items": [{"site": a.code, "customer": {"id": b.customer_id}, "items": _items()}]}, expect=CLEAN,
             why="customer id: the item's 404")]),
    ("PATCH", "/api/v1/orders/{order_id}"): lambda a, b, _: (Body({"manager_comment": "x"}), [
        Body({"customer": {"id": b.customer_id}}, why="customer id")]),
    ("POST", "/api/v1/webhooks"): lambda a, b, _: (None, [
        Body({"url": "https://hooks.ashop.example/new", "event_types": ["*"]}, expect=CLEAN)]),
    ("PATCH", "/api/v1/webhooks/{sub_id}"): lambda a, b, _: (Body({"description": "x"}), []),
    ("POST", "/api/v1/webhooks/deliveries/{delivery_id}/redeliver"): lambda a, b, _: (None, []),
    ("POST", "/api/v1/triggers"): lambda a, b, _: (None, [
        Body(_trigger(sites=[b.code]), why="sites"), Body(_trigger(sites=[a.code, b.code]), why="both sites"),
        Body(_trigger(name="Probe 2", actions=[{"type": "start_cascade", "cascade_id": b.cascade_id}]),
             why="cascade"),
        Body(_trigger(name="Probe 3"), expect=CLEAN, why="no sites: the key's own")]),
    ("POST", "/api/v1/triggers/templates/{name}"): lambda a, b, _: (None, [
        Body({"params": {}, "name": "Review probe"}, expect=CLEAN)]),
    ("POST", "/api/v1/triggers/dry-run"): lambda a, b, _: (None, [
        Body({"trigger": _trigger(sites=[b.code])}, why="sites"),
        *(Body({"trigger": _trigger(), "options": {"over": over}}, expect=CLEAN, why=f"over {over}")
          for over in ("events", "orders", "customers"))]),
    ("PUT", "/api/v1/triggers/{trigger_id}"): lambda a, b, _: (Body(_trigger(sites=[a.code])), [
        Body(_trigger(sites=[b.code]), why="sites")]),
    ("PATCH", "/api/v1/triggers/{trigger_id}"): lambda a, b, _: (Body({"active": False}), []),
    ("POST", "/api/v1/triggers/{trigger_id}/cancel-pending"): lambda a, b, _: (None, []),
    ("POST", "/api/v1/triggers/pending/{timer_id}/fire"): lambda a, b, _: (None, []),
    ("POST", "/api/v1/triggers/{trigger_id}/dry-run"): lambda a, b, _: (Body({}), []),
    ("POST", "/api/v1/tasks"): lambda a, b, _: (None, [
        Body(_task(customer_id=b.customer_id), why="customer"), Body(_task(order_id=b.order_id), why="order"),
        Body(_task(customer_id=a.customer_id, order_id=b.order_id), why="order of a customer of mine"),
        Body(_task(), why="no customer or order: no site")]),
    ("PATCH", "/api/v1/tasks/{task_id}"): lambda a, b, _: (Body({"done": True}), []),
    ("POST", "/api/v1/segments"): lambda a, b, _: (None, [
        Body({"site": b.code, "code": "probe", "name": "Probe", "kind": "static"})]),
    ("POST", "/api/v1/segments/preview"): lambda a, b, _: (None, [
        Body({"site": b.code, "rules": {"tags": {"any": ["vip"]}}})]),
    ("PATCH", "/api/v1/segments/{segment_id}"): lambda a, b, _: (Body({"name": "x"}), []),
    ("POST", "/api/v1/segments/{segment_id}/recompute"): lambda a, b, _: (None, []),
    ("POST", "/api/v1/segments/{segment_id}/members"): lambda a, b, _: (Body({"customer_ids": [a.customer_id]}), [
        Body({"customer_ids": [b.customer_id]}, why="customer id"),
        Body({"external_ids": [b.customer_external_id]}, why="external id")]),
    ("POST", "/api/v1/segments/{segment_id}/members/remove"): lambda a, b, _: (
        Body({"customer_ids": [a.customer_id]}), [Body({"customer_ids": [b.customer_id]})]),
    ("POST", "/api/v1/segments/{segment_id}/members/csv"): lambda a, b, _: (
        Body(files={"file": ("m.csv", f"customer_id\n{a.customer_id}\n", "text/csv")}),
        [Body(files={"file": ("m.csv", f"customer_id\n{b.customer_id}\n", "text/csv")})]),
    ("POST", "/api/v1/rfm/recompute"): lambda a, b, _: (None, []),
    ("PUT", "/api/v1/rfm/config"): lambda a, b, _: (Body({}), []),
    ("PUT", "/api/v1/cohorts/threshold"): lambda a, b, _: (Body({"threshold_days": 30}), []),
    ("POST", "/api/v1/initiatives"): lambda a, b, _: (None, [
        Body({"site": b.code, "name": "Probe", "started_at": "2026-03-01T00:00:00Z"})]),
    ("PUT", "/api/v1/messaging/sites/{site}/prices/{channel}"): lambda a, b, _: (Body({"price": "1", "currency": "RUB"}),
                                                                          []),
    ("PUT", "/api/v1/messaging/sites/{site}/policy"): lambda a, b, _: (Body({}), []),
    ("POST", "/api/v1/messaging/templates"): lambda a, b, _: (None, [
        Body({"site": b.code, "name": "probe", "channel": "sms", "body": "Hi"})]),
    ("POST", "/api/v1/messaging/templates/{template_id}/preview"): lambda a, b, _: (None, []),
    ("POST", "/api/v1/messaging/cascades"): lambda a, b, _: (None, [
        Body({"site": b.code, "name": "Probe", "steps": [{"channel": "email", "template": b.template_name}]})]),
    ("POST", "/api/v1/messaging/cascades/{cascade_id}/start"): lambda a, b, _: (Body({"customer_id": a.customer_id}), [
        Body({"customer_id": b.customer_id}, why="customer")]),
    ("POST", "/api/v1/messaging/campaigns"): lambda a, b, _: (None, [
        Body({"cascade_id": b.cascade_id, "name": "Probe", "customer_ids": [a.customer_id]}, why="cascade"),
        Body({"cascade_id": a.cascade_id, "name": "Probe", "customer_ids": [a.customer_id, b.customer_id]},
             why="customers"),
        Body({"cascade_id": a.cascade_id, "name": "Probe", "segment": b.static_segment_id}, why="segment"),
        Body({"cascade_id": b.cascade_id, "name": "Probe", "everyone": True}, why="everyone of the other shop"),
        Body({"cascade_id": b.cascade_id, "name": "Probe", "rules": {"tags": {"any": ["vip"]}}}, why="rules"),
        Body({"cascade_id": a.cascade_id, "name": "Probe", "everyone": True}, expect=CLEAN,
             why="everyone of my shop")]),
    ("POST", "/api/v1/messaging/devices"): lambda a, b, _: (None, [
        Body({"customer_id": b.customer_id, "token": "new-device-token-1"}, why="customer"),
        Body({"customer_id": a.customer_id, "token": b.extra["device_token"]}, expect=frozenset({409}),
             why="the other shop's device")]),
    # queues of deferred work hold every shop's work: a key limited to shops is refused (403) whatever it names
    ("POST", "/api/v1/work/{queue}/retry"): lambda a, b, _: (None, [Body({"ids": [b.message_id]})]),
    ("POST", "/api/v1/work/{queue}/drop"): lambda a, b, _: (None, [Body({"ids": [b.message_id]})]),
    ("PUT", "/api/v1/loyalty/programs/{site}"): lambda a, b, _: (Body({"name": "Club", "currency": "RUB"}), []),
    ("POST", "/api/v1/loyalty/accounts"): lambda a, b, _: (None, [
        Body({"site": b.code, "customer_id": b.customer_id}, why="site"),
        Body({"site": a.code, "customer_id": b.customer_id}, why="customer")]),
    ("PATCH", "/api/v1/loyalty/accounts/{account_id}"): lambda a, b, _: (Body({"status": "active"}), []),
    ("POST", "/api/v1/loyalty/accounts/{account_id}/credit"): lambda a, b, _: (
        Body({"amount": "1", "reason": "probe", "idempotency_key": "probe"}), []),
    ("POST", "/api/v1/loyalty/accounts/{account_id}/charge"): lambda a, b, _: (
        Body({"amount": "1", "reason": "probe", "idempotency_key": "probe"}), [
            Body({"amount": "1", "reason": "probe", "idempotency_key": "probe2", "order_id": b.order_id},
                 why="order")]),
    ("POST", "/api/v1/inbox/dialogs/{dialog_id}/replies"): lambda a, b, _: (
        Body({"operator_id": 1, "text": "probe", "idempotency_key": "probe"}), []),
    ("POST", "/api/v1/inbox/dialogs/{dialog_id}/notes"): lambda a, b, _: (
        Body({"operator_id": 1, "text": "probe", "idempotency_key": "probe-note"}), []),
    ("PATCH", "/api/v1/inbox/dialogs/{dialog_id}"): lambda a, b, _: (Body({"tags": ["probe"]}), []),
    ("POST", "/api/v1/inbox/dialogs/{dialog_id}/read"): lambda a, b, _: (None, []),
    ("POST", "/api/v1/inbox/dialogs/{dialog_id}/orders"): lambda a, b, _: (Body({"order_id": a.order_id}), [
        Body({"order_id": b.order_id}, why="order")]),
    ("PUT", "/api/v1/inbox/dialogs/{dialog_id}/customer"): lambda a, b, _: (Body({"customer_id": a.customer_id}), [
        Body({"customer_id": b.customer_id}, why="customer")]),
    ("PUT", "/api/v1/inbox/sites/{site}/settings"): lambda a, b, _: (Body({"assignment": "manual"}), []),
    ("PATCH", "/api/v1/inbox/connections/{connection_id}"): lambda a, b, _: (Body({"operator_id": None}), []),
    ("POST", "/api/v1/inbox/sites/{site}/exclusions"): lambda a, b, _: (Body({"peer": "1"}), []),
    ("POST", "/api/v1/loyalty/programs/{site}/codes"): lambda a, b, _: (Body(
        content=f"code,points,customer_id\nPROBE1,10,{a.customer_id}\n".encode(), content_type="text/csv"), [Body(
        content=f"code,points,customer_id\nPROBE2,10,{b.customer_id}\n".encode(), content_type="text/csv",
        expect=CLEAN, why="the other shop's customer: reported as an invalid row")]),
    ("POST", "/api/v1/journeys"): lambda a, b, _: (None, [Body(journey(b.code, "probe"))]),
    ("POST", "/api/v1/journeys/check"): lambda a, b, _: (None, [Body(journey(b.code, "probe"))]),
    ("PUT", "/api/v1/journeys/{journey_id}"): lambda a, b, _: (Body(journey(a.code, "probe")), [
        Body(journey(b.code, "probe"), why="moved to the other site")]),
    ("PATCH", "/api/v1/journeys/{journey_id}"): lambda a, b, _: (Body({"active": False}), []),
    ("POST", "/api/v1/journeys/{journey_id}/migrate"): lambda a, b, _: (Body({}), []),
    ("POST", "/api/v1/journeys/mechanics/{name}"): lambda a, b, _: (None, [Body({"site": b.code})]),
    ("POST", "/api/v1/assist/sites/{site}/tickets"): lambda a, b, _: (Body({"items": [
        {"external_id": "probe", "body": "How do I return an order?", "answer": "From the order card."}]}), []),
    ("POST", "/api/v1/assist/sites/{site}/docs"): lambda a, b, _: (Body({"files": [
        {"path": "probe.md", "content": "# Returns\nFrom the order card."}]}), []),
    ("POST", "/api/v1/assist/sites/{site}/tasks"): lambda a, b, _: (Body({"items": [
        {"external_id": "DEV-1", "title": "Partial returns"}]}), []),
    ("POST", "/api/v1/assist/sites/{site}/identifiers"): lambda a, b, _: (Body({"names": ["order.return"]}), []),
    **{("POST", f"/api/v1/assist/sites/{{site}}/{what}"): lambda a, b, _: (Body({"text": "return an order"}), [])
       for what in ("similar", "suggest", "tasks/match", "check")},
    ("POST", "/api/v1/assist/sites/{site}/marks"): lambda a, b, _: (Body({
        "ticket": "T-1", "action": "used", "idempotency_key": "probe"}), []),
    ("POST", "/api/v1/assist/industry"): lambda a, b, _: (None, [
        Body({"products": [{"name": "Dog leash"}]}, expect=CLEAN, why="names no site")]),
    ("POST", "/api/v1/messaging/bounces"): lambda a, b, secret: (None, [Body(content=_dsn(b.message_id, secret),
                                                                                  content_type="message/rfc822")]),
}


def _v5(a: Shop, b: Shop) -> dict[str, list[Call]]:
    """/api/v5 (RetailCRM's envelope): its parameters are read by hand, so its calls are listed here. A list
    filtered by the other shop's ids answers an empty list, as RetailCRM does for ids a key cannot see."""
    items = [{"productName": "Thing", "initialPrice": 10, "quantity": 1}]
    cust, order = json.dumps({"firstName": "X"}), json.dumps({"items": items})
    unresolved = frozenset({400})  # RetailCRM's answer for a reference it cannot resolve, as for an unknown one

    def form(**kw: Any) -> Body:
        return Body(content=urlencode(kw).encode(), content_type="application/x-www-form-urlencoded")

    c, o = "/api/v5/customers", "/api/v5/orders"
    return {
        "/api/api-versions": [Call("GET", "/api/api-versions", expect=CLEAN)],
        "/api/credentials": [Call("GET", "/api/credentials", expect=CLEAN)],
        c: [Call("GET", c, expect=CLEAN), Call("GET", c, {"filter[ids][]": b.customer_id}, expect=CLEAN),
            Call("GET", c, {"filter[sites][]": b.code}, expect=CLEAN)],
        f"{c}/create": [Call("POST", f"{c}/create", body=form(site=b.code, customer=cust))],
        f"{c}/upload": [Call("POST", f"{c}/upload", body=form(site=b.code, customers=json.dumps([{"firstName": "X"}]))),
                        Call("POST", f"{c}/upload", body=form(customers=json.dumps([
                            {"externalId": "probe"}, {"externalId": "probe", "site": b.code}])), why="item site")],
        f"{c}/history": [Call("GET", f"{c}/history", expect=CLEAN)],
        f"{c}/{{uid}}": [Call("GET", f"{c}/{b.customer_external_id}"),
                         Call("GET", f"{c}/{b.customer_id}", {"by": "id"}),
                         Call("GET", f"{c}/{a.customer_external_id}", {"site": b.code})],
        f"{c}/combine": [
            Call("POST", f"{c}/combine", body=form(customers=json.dumps([{"id": b.customer_id}]),
                                                   resultCustomer=json.dumps({"id": a.customer_id})), why="merged id"),
            Call("POST", f"{c}/combine", body=form(customers=json.dumps([{"id": a.customer_id}]),
                                                   resultCustomer=json.dumps({"id": b.customer_id})), why="kept id"),
            Call("POST", f"{c}/combine", body=form(site=b.code, customers=json.dumps([{"externalId": "x"}]),
                                                   resultCustomer=json.dumps({"externalId": "y"})), why="site"),
            Call("POST", f"{c}/combine", body=form(site=a.code, customers=json.dumps(
                [{"externalId": b.customer_external_id}]), resultCustomer=json.dumps({"id": a.customer_id})),
                 why="merged external id")],
        f"{c}/{{uid}}/edit": [Call("POST", f"{c}/{b.customer_external_id}/edit", body=form(customer=cust)),
                              Call("POST", f"{c}/{b.customer_id}/edit", body=form(by="id", customer=cust))],
        o: [Call("GET", o, expect=CLEAN), Call("GET", o, {"filter[ids][]": b.order_id}, expect=CLEAN),
            Call("GET", o, {"filter[customerId]": b.customer_id}, expect=CLEAN)],
        f"{o}/create": [
            Call("POST", f"{o}/create", body=form(site=b.code, order=order)),
            Call("POST", f"{o}/create", body=form(site=a.code, order=json.dumps(
                {"items": items, "customer": {"id": b.customer_id}})), expect=unresolved, why="customer id"),
            Call("POST", f"{o}/create", body=form(site=a.code, order=json.dumps(
                {"items": items, "customer": {"externalId": b.customer_external_id}})), expect=unresolved,
                 why="customer ext")],
        f"{o}/upload": [Call("POST", f"{o}/upload", body=form(site=b.code, orders=json.dumps([{"items": items}]))),
                        Call("POST", f"{o}/upload", body=form(site=a.code, orders=json.dumps(
                            [{"items": items, "customer": {"id": b.customer_id}}])), expect=unresolved,
                             why="customer id")],
        f"{o}/history": [Call("GET", f"{o}/history", expect=CLEAN)],
        f"{o}/statuses": [Call("GET", f"{o}/statuses", {"ids[]": b.order_id}, expect=CLEAN)],
        f"{o}/{{uid}}": [Call("GET", f"{o}/{b.order_external_id}"), Call("GET", f"{o}/{b.order_id}", {"by": "id"})],
        f"{o}/{{uid}}/edit": [Call("POST", f"{o}/{b.order_external_id}/edit", body=form(order=order)),
                              Call("POST", f"{o}/{a.order_external_id}/edit", body=form(order=json.dumps(
                                  {"customer": {"id": b.customer_id}})), expect=unresolved, why="customer id")],
        "/api/v5/reference/sites": [Call("GET", "/api/v5/reference/sites", expect=CLEAN)],
        "/api/v5/reference/statuses": [Call("GET", "/api/v5/reference/statuses", expect=CLEAN)],
        "/api/v5/reference/status-groups": [Call("GET", "/api/v5/reference/status-groups", expect=CLEAN)],
        **_v5_loyalty(a, b, form),
        "/api/v5/{path:path}": [Call(m, "/api/v5/nothing/here", expect=CLEAN) for m in ("GET", "POST")],
    }


def _v5_loyalty(a: Shop, b: Shop, form: Callable[..., Body]) -> dict[str, list[Call]]:
    """The v5 loyalty methods: the other shop's account, program, customer and order are not found."""
    acc, lo, unresolved = f"/api/v5/loyalty/account/{b.account_id}", "/api/v5/loyalty", frozenset({400, 403, 404})
    mine = json.dumps({"customer": {"id": a.customer_id}})
    order_of_b = json.dumps({"id": b.order_id})
    return {
        f"{lo}/loyalties": [Call("GET", f"{lo}/loyalties", expect=CLEAN),
                            Call("GET", f"{lo}/loyalties", {"filter[sites][]": b.code}, expect=CLEAN)],
        f"{lo}/loyalties/{{uid}}": [Call("GET", f"{lo}/loyalties/{b.extra['program_id']}")],
        f"{lo}/account/create": [
            Call("POST", f"{lo}/account/create", body=form(site=b.code, loyaltyAccount=mine)),
            Call("POST", f"{lo}/account/create", body=form(site=a.code, loyaltyAccount=json.dumps(
                {"customer": {"id": b.customer_id}})), expect=unresolved, why="customer id")],
        f"{lo}/account/{{uid}}": [Call("GET", acc)],
        f"{lo}/account/{{uid}}/edit": [Call("POST", f"{acc}/edit", body=form(loyaltyAccount=json.dumps(
            {"cardNumber": "probe"})))],
        f"{lo}/account/{{uid}}/activate": [Call("POST", f"{acc}/activate")],
        f"{lo}/accounts": [Call("GET", f"{lo}/accounts", expect=CLEAN),
                           Call("GET", f"{lo}/accounts", {"filter[sites][]": b.code}, expect=CLEAN),
                           Call("GET", f"{lo}/accounts", {"filter[customerId]": b.customer_id}, expect=CLEAN)],
        f"{lo}/account/{{uid}}/bonus/credit": [Call("POST", f"{acc}/bonus/credit", body=form(amount=10))],
        f"{lo}/account/{{uid}}/bonus/charge": [Call("POST", f"{acc}/bonus/charge", body=form(amount=1))],
        f"{lo}/account/{{uid}}/bonus/operations": [Call("GET", f"{acc}/bonus/operations")],
        f"{lo}/account/{{uid}}/bonus/{{status}}/details": [Call("GET", f"{acc}/bonus/burn_soon/details")],
        f"{lo}/bonus/operations": [Call("GET", f"{lo}/bonus/operations", expect=CLEAN)],
        f"{lo}/calculate": [
            Call("POST", f"{lo}/calculate", body=form(site=b.code, order=json.dumps({"items": []}))),
            Call("POST", f"{lo}/calculate", body=form(site=a.code, order=json.dumps(
                {"items": [], "customer": {"id": b.customer_id}})), expect=unresolved, why="customer id")],
        "/api/v5/orders/loyalty/apply": [Call("POST", "/api/v5/orders/loyalty/apply", body=form(
            order=order_of_b, bonuses=1), expect=unresolved)],
        "/api/v5/orders/loyalty/cancel-bonus-operations": [Call(
            "POST", "/api/v5/orders/loyalty/cancel-bonus-operations", body=form(order=order_of_b),
            expect=unresolved)],
    }


def api_routes(api: Any) -> list[Any]:
    """Every FastAPI route under /api, in the schema or not."""
    return [r for r in iter_route_contexts(api.router.routes)
            if isinstance(r.original_route, APIRoute) and r.path.startswith("/api")]


def _flat(dependant: Any, kind: str) -> list[Any]:
    return [*getattr(dependant, kind), *(p for d in dependant.dependencies for p in _flat(d, kind))]


def calls_for(route: Any, a: Shop, b: Shop, secret: str) -> list[Call]:
    """The calls for one route; ValueError when it takes something this module cannot fill."""
    if route.path.startswith("/api/v5") or route.path in ("/api/api-versions", "/api/credentials"):
        listed = _v5(a, b).get(route.path)
        if listed is None:
            raise ValueError("an /api/v5 route without calls in isolation_calls._v5")
        return listed
    (method,) = route.methods
    plain = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)  # `{trigger_id:int}` -> `{trigger_id}`
    key = (method, canonical(plain))
    path_names = [p.alias for p in _flat(route.dependant, "path_params")]
    queries = _flat(route.dependant, "query_params")
    unknown = [n for n in path_names if n not in REFS and n not in FIXED]
    unknown += [q.alias for q in queries if q.field_info.is_required() and q.alias not in REFS]
    if unknown:
        raise ValueError(f"cannot fill the parameters {unknown}: add them to isolation_calls.REFS or FIXED")
    takes_body = method in ("POST", "PUT", "PATCH") or route.body_field is not None
    if takes_body and key not in BODIES:
        raise ValueError("a route that may read a body, without an entry in isolation_calls.BODIES")
    base, variants = BODIES[key](a, b, secret) if takes_body else (None, [])
    required = [q.alias for q in queries if q.field_info.is_required()]

    def call(path_shop: Shop, params: dict[str, Any], body: Body | None, expect: Any, why: str) -> Call:
        path = plain
        for name in path_names:
            path = path.replace(f"{{{name}}}", str(FIXED[name] if name in FIXED else REFS[name](path_shop)))
        return Call(method, path, {**ALWAYS.get(key, {}), **{n: REFS[n](a) for n in required}, **params},
                    body or Body(), expect, why)

    out = []
    if any(n in REFS for n in path_names):
        out.append(call(b, {}, base, DENIED, "path"))
    for q in queries:
        if q.alias in REFS:
            out.append(call(a, {q.alias: REFS[q.alias](b)}, base, DENIED, f"query {q.alias}"))
    out += [call(a, {}, v, v.expect, v.why or "body") for v in variants]
    if method == "GET" or not out:
        out.append(call(a, {}, base, CLEAN, "the caller's own"))
    return out
