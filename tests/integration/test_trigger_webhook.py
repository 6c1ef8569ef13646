"""The webhook action: an outbox row with the change, a signed POST to a real local server, retries."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select

from retento.bootstrap import bootstrap
from retento.config import Settings
from retento.db import transaction
from retento.triggers import service
from retento.triggers.models import WebhookCall
from tests import factories as f

SECRET = "s3cret-key"


class Receiver(BaseHTTPRequestHandler):
    got: list[dict] = []
    fail_first = 0
    during = None  # called while the request is being answered

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        ts = self.headers["X-Retento-Timestamp"]
        expected = "sha256=" + hmac.new(SECRET.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
        ok = hmac.compare_digest(expected, self.headers.get("X-Retento-Signature", ""))
        if Receiver.during is not None:
            Receiver.during()
        if Receiver.fail_first > 0:
            Receiver.fail_first -= 1
            self.send_response(503)
        else:
            Receiver.got.append({"ok": ok, "key": self.headers["Idempotency-Key"], "body": json.loads(body)})
            self.send_response(200 if ok else 401)
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
def receiver():
    Receiver.got, Receiver.fail_first, Receiver.during = [], 1, None
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


def test_webhook_is_signed_retried_with_backoff_and_sent_once(app, clock, receiver):
    f.site(app)
    cid = f.customer(app, email="a@b.ru")
    with transaction(app.sessions) as s:
        service.create_trigger(s, raw={"name": "hook", "events": ["order_created"], "actions": [
            {"type": "webhook", "url": receiver, "secret": SECRET}]}, now=clock.now())
    oid = f.order(app, customer={"id": cid}, number="W-1")
    app.worker.tick()  # event -> outbox row; the first POST gets a 503
    assert Receiver.got == []
    with transaction(app.sessions) as s:
        (call,) = s.scalars(select(WebhookCall))
        assert (call.state, call.attempts, call.last_status) == ("pending", 1, 503)
        assert call.next_at == clock.now() + timedelta(seconds=30)
    app.worker.tick()
    assert Receiver.got == []  # not due yet: backoff
    clock.advance(seconds=30)
    app.worker.tick()
    app.worker.tick()
    (got,) = Receiver.got
    assert got["ok"] and got["key"].startswith("trigger:")
    assert got["body"]["order"]["number"] == "W-1" and got["body"]["customer"]["email"] == "a@b.ru"
    assert got["body"]["trigger"]["name"] == "hook" and got["body"]["event"]["type"] == "order_created"
    with transaction(app.sessions) as s:
        (call,) = s.scalars(select(WebhookCall))
        assert (call.state, call.attempts) == ("sent", 2)
    assert oid


def test_webhook_gives_up_after_max_attempts(app, clock, receiver):
    f.site(app)
    Receiver.fail_first = 100
    from retento.triggers.outbox import Deliverer

    deliver = Deliverer(app.sessions, clock, app.http, timeout=5, max_attempts=3)
    with transaction(app.sessions) as s:
        service.create_trigger(s, raw={"name": "hook", "events": ["order_created"], "actions": [
            {"type": "webhook", "url": receiver}]}, now=clock.now())
    f.order(app)
    app.worker.tick()
    for _ in range(5):
        clock.advance(hours=1)
        deliver()
    with transaction(app.sessions) as s:
        (call,) = s.scalars(select(WebhookCall))
        assert (call.state, call.attempts) == ("failed", 3)


def test_the_post_holds_no_lock_and_a_lease_keeps_other_workers_off(app, clock, receiver):
    from retento.triggers.outbox import Deliverer

    f.site(app)
    Receiver.fail_first = 0
    other_worker = Deliverer(app.sessions, clock, app.http, timeout=5, max_attempts=3)
    seen = []

    def during_post():
        with transaction(app.sessions) as s:  # a write to the row: would wait if the sender held a lock
            call = s.scalars(select(WebhookCall)).one()
            call.last_error = "written during the POST"
            seen.append((call.attempts, call.next_at > clock.now()))
        seen.append(other_worker())  # leased: nothing to post

    Receiver.during = during_post
    with transaction(app.sessions) as s:
        service.create_trigger(s, raw={"name": "hook", "events": ["order_created"], "actions": [
            {"type": "webhook", "url": receiver, "secret": SECRET}]}, now=clock.now())
    f.order(app)
    app.worker.tick()
    assert seen == [(1, True), 0]
    assert len(Receiver.got) == 1
    with transaction(app.sessions) as s:
        (call,) = s.scalars(select(WebhookCall))
        assert (call.state, call.attempts, call.last_error) == ("sent", 1, None)
