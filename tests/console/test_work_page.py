"""Admin → Work queues over HTTP: counts by state of every queue, a queue's dead letters with their last error,
retry one (sent twice: retried once) and drop one only after its confirmation page, through the queues service;
against a real local receiver, the worker driven by explicit ticks."""

from __future__ import annotations

import re

from retento.core.db.transactions import transaction
from retento.webhooks import service as webhooks
from retento.webhooks.models import WebhookDelivery
from tests import factories as f
from tests.console.conftest import sign_in
from tests.console.test_webhooks_page import hooked, receiver  # noqa: F401 - fixtures


def test_an_admin_retries_and_drops_dead_letters(hooked, receiver, clock) -> None:  # noqa: ANN001, F811
    app, client = hooked
    csrf = sign_in(client, "admin@example.com")
    made = client.post("/admin/webhooks", data={"url": receiver.url, "event_type": ["customer_created"],
                                                "csrf_token": csrf})
    receiver.secret = re.search(r'id="new-secret" translate="no">(whsec_[^<]+)<', made.text).group(1)
    receiver.status = 503
    for n in range(2):
        f.customer(app, site="north", email=f"c{n}@example.com")
    app.worker.tick()
    clock.advance(seconds=30)
    app.worker.tick()  # two attempts each: both dead

    overview = client.get("/admin/work").text
    row = re.search(r'<a href="/admin/work/webhooks">webhooks</a>.*?</tr>', overview, re.S).group(0)
    assert re.findall(r'<td class="num[^"]*">(\d+)</td>', row) == ["0", "0", "0", "0", "2"]
    dead = client.get("/admin/work/webhooks").text
    first, second = (int(x) for x in re.findall(r'id="row-(\d+)"', dead))
    assert "HTTP 503" in dead or "503" in dead

    receiver.status = 200
    assert client.post(f"/admin/work/webhooks/{first}/retry", data={"csrf_token": csrf}).headers["location"] \
        == f"/admin/work/webhooks?retried={first}"
    assert client.post(f"/admin/work/webhooks/{first}/retry", data={"csrf_token": csrf}).headers["location"] \
        == "/admin/work/webhooks?retried=0"  # no longer dead
    assert client.get("/admin/work").status_code == 200  # with work due now (its oldest due time shown)
    app.worker.tick()
    with transaction(app.sessions) as s:
        assert webhooks.get_delivery(s, first).status == "delivered"

    confirm = client.get(f"/admin/work/webhooks/{second}/drop")
    assert confirm.status_code == 200 and "cannot be brought back" in confirm.text
    with transaction(app.sessions) as s:
        assert s.get(WebhookDelivery, second) is not None  # asking changes nothing
    dropped = client.post(f"/admin/work/webhooks/{second}/drop", data={"csrf_token": csrf})
    assert dropped.headers["location"] == f"/admin/work/webhooks?dropped={second}"
    with transaction(app.sessions) as s:
        assert s.get(WebhookDelivery, second) is None
    assert "No dead letters." in client.get("/admin/work/webhooks").text
    gone = client.get(f"/admin/work/webhooks/{second}/drop")
    assert gone.status_code == 303 and gone.headers["location"].endswith("dropped=0")


def test_an_unknown_queue_is_not_found_and_only_admins_enter(client, world) -> None:  # noqa: ANN001
    csrf = sign_in(client, "admin@example.com")
    answer = client.get("/admin/work/nope")
    assert answer.status_code == 404 and "no queue" in answer.text
    assert client.post("/admin/work/nope/1/retry", data={"csrf_token": csrf}).status_code == 404
    sign_in(client, "operator@example.com")
    assert client.get("/admin/work").status_code == 403
