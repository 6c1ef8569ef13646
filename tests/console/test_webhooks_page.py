"""Admin → Outgoing webhooks over HTTP, against a real local receiver and the worker driven by explicit ticks:
create (secret shown once), bad input named, the delivery log with status, attempts and last error, retry of a
failed delivery (twice sent, retried once), disable and enable."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from retento.api import create_app
from retento.bootstrap import bootstrap
from retento.core.config import Settings
from retento.core.db.transactions import transaction
from retento.webhooks import service as webhooks
from tests import factories as f
from tests.api.test_webhooks import Receiver
from tests.console.conftest import sign_in


@pytest.fixture
def receiver(clock):  # noqa: ANN001, ANN201
    r = Receiver(clock)
    yield r
    r.close()


@pytest.fixture
def hooked(world, clock):  # noqa: ANN001, ANN201
    """The world's database, served by an app that may post to loopback and gives up after two attempts."""
    a = bootstrap(Settings(database_url=world.app.settings.database_url, webhook_backoff_seconds=30,
                           webhook_max_attempts=2, outgoing_allow="127.0.0.1", console_password_time_cost=1,
                           console_password_memory_kib=64), clock=clock)
    with TestClient(create_app(a), follow_redirects=False) as c:
        yield a, c
    a.close()


def test_an_admin_subscribes_reads_the_log_and_retries_a_failed_delivery(hooked, receiver, clock) -> None:  # noqa: ANN001
    app, client = hooked
    csrf = sign_in(client, "admin@example.com")
    made = client.post("/admin/webhooks", data={"url": receiver.url, "event_type": ["customer_created"],
                                                "description": "crm sync", "site": ["north"], "csrf_token": csrf})
    assert made.status_code == 200 and made.headers["cache-control"] == "no-store"
    secret = re.search(r'id="new-secret" translate="no">(whsec_[^<]+)<', made.text).group(1)
    receiver.secret = secret
    listed = client.get("/admin/webhooks").text
    assert "crm sync" in listed and secret not in listed
    with transaction(app.sessions) as s:
        (sub,) = webhooks.list_subscriptions(s)
    assert sub.event_types == ["customer_created"] and sub.site_ids == [1]

    receiver.status = 500
    f.customer(app, site="north", email="a@example.com")
    app.worker.tick()
    clock.advance(seconds=30)
    app.worker.tick()
    assert len(receiver.received) == 2
    failed = client.get(f"/admin/webhooks/{sub.id}?status=failed").text
    delivery = re.search(r'id="delivery-(\d+)"', failed).group(1)
    assert "HTTP 500" in failed and "Retry delivery " + delivery in failed
    assert client.get(f"/admin/webhooks/{sub.id}?status=delivered").text.count('id="delivery-') == 0

    receiver.status = 200
    retried = client.post(f"/admin/webhooks/deliveries/{delivery}/retry", data={"status": "failed",
                                                                               "csrf_token": csrf})
    assert retried.status_code == 303 and f"retried={delivery}" in retried.headers["location"]
    again = client.post(f"/admin/webhooks/deliveries/{delivery}/retry", data={"csrf_token": csrf})
    assert "retried=0" in again.headers["location"]  # no longer failed: left alone
    app.worker.tick()
    assert len(receiver.received) == 3 and receiver.received[-1]["valid"]
    log = client.get(f"/admin/webhooks/{sub.id}").text
    assert "Delivered" in log and log.count('id="delivery-') == 1  # the same delivery, not a copy

    off = client.post(f"/admin/webhooks/{sub.id}/active", data={"active": "false", "csrf_token": csrf})
    assert off.status_code == 303
    assert "Disabled" in client.get(f"/admin/webhooks/{sub.id}").text
    client.post(f"/admin/webhooks/{sub.id}/active", data={"active": "true", "csrf_token": csrf})
    with transaction(app.sessions) as s:
        assert webhooks.get(s, sub.id).active is True


def test_bad_subscriptions_are_refused_naming_the_field(client, world) -> None:  # noqa: ANN001
    csrf = sign_in(client, "admin@example.com")
    for data, field in (({"url": "ftp://example.com/x", "event_type": ["*"]}, "url"),
                        ({"url": "https://example.com/x"}, "event_types"),
                        ({"url": "https://example.com/x", "event_type": ["nope"]}, "event_types"),
                        ({"url": "https://example.com/x", "event_type": ["*"], "site": ["mars"]}, "site")):
        answer = client.post("/admin/webhooks", data={**data, "csrf_token": csrf})
        assert answer.status_code == 400, (data, answer.status_code)
        assert f'<code translate="no">{field}' in answer.text, (data, answer.text[-1500:])
    with transaction(world.app.sessions) as s:
        assert webhooks.list_subscriptions(s) == []


def test_only_admins_open_the_webhook_pages(client, world) -> None:  # noqa: ANN001
    sign_in(client, "marketer@example.com")
    assert client.get("/admin/webhooks").status_code == 403
