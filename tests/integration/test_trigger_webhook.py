"""The webhook action: a delivery of the webhooks domain written with the change, signed like every webhook
(`Retento-Signature: v1=...`), POSTed to a real local server, retried, and in the webhooks delivery log."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from sqlalchemy import select

from retento.bootstrap import bootstrap
from retento.core.config import Settings
from retento.core.db.transactions import transaction
from retento.triggers import service
from retento.webhooks import policy
from retento.webhooks.delivery import Deliverer
from retento.webhooks.models import WebhookAttempt, WebhookDelivery
from tests import factories as f
from tests.api.conftest import Server, make_key

SECRET = "s3cret-key"


class Receiver(BaseHTTPRequestHandler):
    got: list[dict] = []
    fail_first = 0
    drop_answer_first = 0  # take the call, then close the connection without answering (the answer is lost)
    during = None  # called while the request is being answered
    now = 0  # the receiver's clock (Unix seconds), for the signature's freshness

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        h = self.headers
        ok = policy.verify(SECRET, h["Retento-Timestamp"], body, h.get("Retento-Signature", ""), now=Receiver.now)
        if Receiver.during is not None:
            Receiver.during()
        if Receiver.drop_answer_first > 0:
            Receiver.drop_answer_first -= 1
            Receiver.got.append({"ok": ok, "key": h["Idempotency-Key"], "body": json.loads(body)})
            self.close_connection = True
            return
        if Receiver.fail_first > 0:
            Receiver.fail_first -= 1
            self.send_response(503)
        else:
            Receiver.got.append({"ok": ok, "key": h["Idempotency-Key"], "event": h["Retento-Event"],
                                 "signed": "Retento-Signature" in h, "body": json.loads(body)})
            self.send_response(200 if ok or "Retento-Signature" not in h else 401)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def app(db_url, clock):
    """The receiver listens on loopback, which only the allow-list lets webhooks reach."""
    a = bootstrap(Settings(database_url=db_url, outgoing_allow="127.0.0.1"), clock=clock)
    yield a
    a.close()


@pytest.fixture
def receiver(clock):
    Receiver.got, Receiver.fail_first, Receiver.drop_answer_first, Receiver.during = [], 1, 0, None
    Receiver.now = int(clock.now().timestamp())
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


def hook(app, clock, url, **action):
    with transaction(app.sessions) as s:
        return service.create_trigger(s, raw={"name": "hook", "events": ["order_created"], "actions": [
            {"type": "webhook", "url": url, **action}]}, now=clock.now()).id


def test_webhook_is_signed_retried_with_backoff_sent_once_and_logged(app, clock, receiver):
    f.site(app)
    cid = f.customer(app, email="a@b.ru")
    tid = hook(app, clock, receiver, secret=SECRET)
    f.order(app, customer={"id": cid}, number="W-1")
    app.worker.tick()  # event -> delivery row; the first POST gets a 503
    assert Receiver.got == []
    with transaction(app.sessions) as s:
        (d,) = s.scalars(select(WebhookDelivery))
        assert (d.status, d.attempts, d.last_status_code, d.trigger_id) == ("pending", 1, 503, tid)
        assert d.next_attempt_at == clock.now() + timedelta(seconds=30)
    app.worker.tick()
    assert Receiver.got == []  # not due yet: backoff
    clock.advance(seconds=30)
    Receiver.now += 30
    app.worker.tick()
    app.worker.tick()
    (got,) = Receiver.got
    assert got["ok"] and got["key"].startswith("trigger:") and got["event"] == "trigger"
    assert got["body"]["order"]["number"] == "W-1" and got["body"]["customer"]["email"] == "a@b.ru"
    assert got["body"]["trigger"]["name"] == "hook" and got["body"]["event"]["type"] == "order_created"

    _, raw = make_key(app)  # the one delivery log: the webhooks API shows the trigger's calls
    with Server(app) as srv, httpx.Client(base_url=srv.url, headers={"X-API-Key": raw}) as client:
        (logged,) = client.get("/api/v1/webhooks/deliveries", params={"trigger_id": tid}).json()["items"]
        assert (logged["status"], logged["attempts"], logged["trigger_id"], logged["subscription_id"]) == (
            "delivered", 2, tid, None)
        assert logged["url"] == receiver and logged["event_type"] == "trigger" and logged["event_id"] is not None
        assert [a["status_code"] for a in logged["log"]] == [503, 200]
        again = client.post(f"/api/v1/webhooks/deliveries/{logged['id']}/redeliver")
        assert again.status_code == 201 and again.json()["trigger_id"] == tid
        app.worker.tick()
        assert len(Receiver.got) == 2 and Receiver.got[1]["key"] != got["key"]  # a new call, a new key
        assert client.get("/api/v1/webhooks/deliveries", params={"trigger_id": 0}).status_code == 422


def test_an_unsigned_call_and_giving_up_after_max_attempts(app, clock, receiver):
    f.site(app)
    Receiver.fail_first = 100
    deliver = Deliverer(app.sessions, clock, Settings(webhook_max_attempts=3), app.http)
    hook(app, clock, receiver)
    f.order(app)
    app.worker.tick()
    for _ in range(5):
        clock.advance(hours=1)
        deliver()
    with transaction(app.sessions) as s:
        (d,) = s.scalars(select(WebhookDelivery))
        assert (d.status, d.attempts, d.last_error) == ("failed", 3, "HTTP 503")
    Receiver.fail_first = 0
    f.order(app)
    app.worker.tick()
    (got,) = Receiver.got
    assert not got["signed"] and got["body"]["trigger"]["name"] == "hook"  # no secret: sent unsigned


def test_the_post_holds_no_lock_and_a_lease_keeps_other_workers_off(app, clock, receiver):
    f.site(app)
    Receiver.fail_first = 0
    other_worker = Deliverer(app.sessions, clock, app.settings, app.http)
    seen = []

    def during_post():
        with transaction(app.sessions) as s:  # a write to the row: would wait if the sender held a lock
            d = s.scalars(select(WebhookDelivery)).one()
            d.last_error = "written during the POST"
            seen.append((d.attempts, d.lease_until > clock.now()))
        seen.append(other_worker())  # leased: nothing to post

    Receiver.during = during_post
    hook(app, clock, receiver, secret=SECRET)
    f.order(app)
    app.worker.tick()
    assert seen == [(1, True), 0]
    assert len(Receiver.got) == 1 and Receiver.got[0]["ok"] and Receiver.got[0]["signed"]
    with transaction(app.sessions) as s:
        (d,) = s.scalars(select(WebhookDelivery))
        assert (d.status, d.attempts, d.last_error) == ("delivered", 1, None)


def test_a_call_whose_answer_is_lost_comes_again_with_the_same_idempotency_key(app, clock, receiver):
    """At least once: the receiver acted on the call but its answer never arrived, so the call is sent again
    (docs/api.md: the receiver deduplicates on Idempotency-Key)."""
    f.site(app)
    Receiver.fail_first, Receiver.drop_answer_first = 0, 1
    hook(app, clock, receiver, secret=SECRET)
    f.order(app)
    app.worker.tick()
    clock.advance(seconds=30)
    Receiver.now += 30
    app.worker.tick()
    first, second = Receiver.got
    assert first["ok"] and second["ok"] and first["key"] == second["key"] and first["body"] == second["body"]
    with transaction(app.sessions) as s:
        (d,) = s.scalars(select(WebhookDelivery))
        assert (d.status, d.attempts, d.last_status_code) == ("delivered", 2, 200)
        lost = s.scalars(select(WebhookAttempt.error).order_by(WebhookAttempt.id)).first()
    assert lost  # the first attempt ended in a network error
