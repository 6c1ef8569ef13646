"""Outgoing webhooks: a real local receiver checks the signature; failures retry with backoff, then disable."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from retento.bootstrap import bootstrap
from retento.core.config import Settings
from retento.webhooks import policy
from tests import factories as f
from tests.api.conftest import Server, make_key


class Receiver:
    """An HTTP endpoint on loopback that verifies Retento's signature the documented way."""

    def __init__(self, clock) -> None:
        self.clock, self.secret, self.status, self.received = clock, "", 200, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                ts, sig = self.headers["Retento-Timestamp"], self.headers["Retento-Signature"]
                expected = "v1=" + hmac.new(outer.secret.encode(), f"{ts}.".encode() + body,
                                            hashlib.sha256).hexdigest()
                valid = hmac.compare_digest(expected, sig) and abs(int(outer.clock.now().timestamp()) - int(ts)) < 300
                outer.received.append({"valid": valid, "body": json.loads(body), "headers": dict(self.headers)})
                self.send_response(outer.status if valid else 401)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver(clock):
    r = Receiver(clock)
    yield r
    r.close()


@pytest.fixture
def hooked(app, clock):
    a = bootstrap(Settings(database_url=app.settings.database_url, webhook_backoff_seconds=30,
                           webhook_disable_after=3, webhook_max_attempts=8, outgoing_allow="127.0.0.1"), clock=clock)
    _, raw = make_key(a)
    with Server(a) as srv, httpx.Client(base_url=srv.url, headers={"X-API-Key": raw}) as c:
        yield a, c
    a.close()


def subscribe(client, receiver, types):
    r = client.post("/api/v1/webhooks", json={"url": receiver.url, "event_types": types})
    assert r.status_code == 201, r.text
    receiver.secret = r.json()["secret"]
    return r.json()


def test_signed_delivery_reaches_a_verifying_receiver(hooked, receiver):
    app, client = hooked
    f.site(app)
    sub = subscribe(client, receiver, ["customer_created", "order_status_changed"])
    assert client.get(f"/api/v1/webhooks/{sub['id']}").json()["secret"] is None
    cid = client.post("/api/v1/customers", json={"site": "shop", "email": "hook@example.com"}).json()["id"]
    client.post("/api/v1/events", json={"name": "ignored", "customer": {"id": cid}})
    app.worker.tick()
    assert len(receiver.received) == 1
    got = receiver.received[0]
    assert got["valid"] and got["headers"]["Retento-Event"] == "customer_created"
    assert got["body"]["type"] == "customer_created" and got["body"]["customer_id"] == cid
    assert got["body"]["data"]["customer"]["email"] == "hook@example.com"
    log = client.get(f"/api/v1/webhooks/{sub['id']}/deliveries").json()["items"]
    assert [(d["status"], d["attempts"], d["last_status_code"]) for d in log] == [("delivered", 1, 200)]
    assert log[0]["log"][0]["status_code"] == 200
    app.worker.tick()
    assert len(receiver.received) == 1  # delivered exactly once


def test_failing_receiver_gets_backoff_retries_then_the_subscription_is_disabled(hooked, receiver, clock):
    app, client = hooked
    f.site(app)
    receiver.status = 500
    sub = subscribe(client, receiver, ["*"])
    client.post("/api/v1/customers", json={"site": "shop", "email": "fail@example.com"})
    app.worker.tick()
    assert len(receiver.received) == 1
    app.worker.tick()
    assert len(receiver.received) == 1  # not due yet
    clock.advance(seconds=29)
    app.worker.tick()
    assert len(receiver.received) == 1
    clock.advance(seconds=1)
    app.worker.tick()
    assert len(receiver.received) == 2  # after 30 s
    clock.advance(seconds=59)
    app.worker.tick()
    assert len(receiver.received) == 2
    clock.advance(seconds=1)
    app.worker.tick()
    assert len(receiver.received) == 3  # after 60 s more
    assert all(r["valid"] for r in receiver.received)
    state = client.get(f"/api/v1/webhooks/{sub['id']}").json()
    assert (state["active"], state["consecutive_failures"]) == (False, 3)
    assert state["disabled_reason"] == "3 failed attempts in a row"
    (delivery,) = client.get(f"/api/v1/webhooks/{sub['id']}/deliveries").json()["items"]
    assert [a["status_code"] for a in delivery["log"]] == [500, 500, 500]
    client.post("/api/v1/customers", json={"site": "shop", "email": "later@example.com"})
    clock.advance(hours=1)
    app.worker.tick()
    assert len(receiver.received) == 3  # disabled: nothing more is sent
    delivery = client.get(f"/api/v1/webhooks/deliveries/{delivery['id']}").json()
    assert (delivery["status"], delivery["last_error"]) == ("failed", "subscription is disabled")

    receiver.status = 204
    assert client.patch(f"/api/v1/webhooks/{sub['id']}", json={"active": True}).json()["active"] is True
    again = client.post(f"/api/v1/webhooks/deliveries/{delivery['id']}/redeliver")
    assert again.status_code == 201 and again.json()["status"] == "pending"
    app.worker.tick()
    assert len(receiver.received) == 4 and receiver.received[-1]["body"]["data"]["customer"]["email"] == (
        "fail@example.com")
    assert client.get(f"/api/v1/webhooks/deliveries/{again.json()['id']}").json()["status"] == "delivered"
    state = client.get(f"/api/v1/webhooks/{sub['id']}").json()
    assert (state["active"], state["consecutive_failures"]) == (True, 0)


def test_subscription_validation_and_delete(hooked, receiver):
    _, client = hooked
    r = client.post("/api/v1/webhooks", json={"url": "ftp://x", "event_types": ["nope"]})
    assert r.status_code == 422 and {e["field"] for e in r.json()["errors"]} == {"url", "event_types"}
    sub = subscribe(client, receiver, ["order_created"])
    assert client.delete(f"/api/v1/webhooks/{sub['id']}").status_code == 204
    assert client.get(f"/api/v1/webhooks/{sub['id']}").status_code == 404


def test_signature_policy():
    body = b'{"a":1}'
    sig = policy.signature("s3cret", 1700000000, body)
    assert policy.verify("s3cret", "1700000000", body, sig, now=1700000100)
    assert not policy.verify("s3cret", "1700000000", body + b" ", sig, now=1700000100)
    assert not policy.verify("other", "1700000000", body, sig, now=1700000100)
    assert not policy.verify("s3cret", "1700000000", body, sig, now=1700001000)  # stale: a replay
    from retento.core.work import Backoff

    assert [Backoff(base=30, cap=3600).delay(n).total_seconds() for n in range(1, 9)] == [
        30, 60, 120, 240, 480, 960, 1920, 3600]  # the one backoff policy, webhooks included
    assert Backoff(base=30, cap=600).delay(7).total_seconds() == 600
