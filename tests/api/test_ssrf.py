"""SSRF: webhook and trigger URLs that reach internal addresses are refused when saved and again when called."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from typer.testing import CliRunner

from retento.bootstrap import bootstrap
from retento.cli import app as cli
from retento.core.config import Settings, get_settings
from tests import factories as f
from tests.api.conftest import Server, make_key
from tests.fakes import FakeResolver

BAD = ["http://127.0.0.1/hook", "http://127.1:8080/hook", "http://[::1]/hook",
       "http://169.254.169.254/latest/meta-data/", "http://10.0.0.5/hook", "http://172.20.1.1/", "http://192.168.1.1/", "http://100.64.0.9/",
       "http://[::ffff:127.0.0.1]/", "http://[fd00:ec2::254]/", "http://[fe80::1]/", "http://0.0.0.0:8000/",
       "http://localhost:8000/hook", "http://metadata.google.internal/computeMetadata/v1/",
       "https://intranet.shop.test/hook"]
DNS = {"intranet.shop.test": ["192.168.10.5"], "hooks.shop.test": ["93.184.216.34"], "127.1": ["127.0.0.1"]}


def problem_fields(r: httpx.Response) -> dict[str, str]:
    return {e["field"]: e["reason"] for e in r.json()["errors"]}


@pytest.fixture
def resolver():
    return FakeResolver(DNS)


@pytest.fixture
def served(db_url, clock, resolver, request):
    """An API server whose outgoing requests resolve through `resolver`; the allow-list from the test's marker."""
    a = bootstrap(Settings(database_url=db_url, outgoing_allow=getattr(request, "param", "")), clock=clock,
                  resolver=resolver)
    _, raw = make_key(a)
    with Server(a) as srv, httpx.Client(base_url=srv.url, headers={"X-API-Key": raw}) as c:
        yield a, c
    a.close()


@pytest.fixture
def receiver():
    """A loopback endpoint: reaching it would be the SSRF."""
    got = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            got.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield httpd.server_address[1], got
    httpd.shutdown()
    httpd.server_close()


def test_webhook_urls_to_internal_addresses_are_refused_when_saved(served):
    _, client = served
    for url in BAD:
        r = client.post("/api/v1/webhooks", json={"url": url, "event_types": ["order_created"]})
        assert r.status_code == 422, (url, r.text)
        reason = problem_fields(r)["url"]
        assert reason.startswith("refused by the outgoing request policy (SSRF): "), url
        assert "RETENTO_OUTGOING_ALLOW" in reason
    assert client.get("/api/v1/webhooks").json() == []


def test_public_urls_are_accepted_and_an_edit_is_checked_too(served):
    _, client = served
    r = client.post("/api/v1/webhooks", json={"url": "https://hooks.shop.test/in", "event_types": ["*"]})
    assert r.status_code == 201, r.text
    sub = r.json()["id"]
    r = client.patch(f"/api/v1/webhooks/{sub}", json={"url": "https://intranet.shop.test/in"})
    assert r.status_code == 422
    assert problem_fields(r)["url"].endswith(
        "intranet.shop.test resolves to 192.168.10.5, a private address (the setting RETENTO_OUTGOING_ALLOW can "
        "allow it)")
    assert client.get(f"/api/v1/webhooks/{sub}").json()["url"] == "https://hooks.shop.test/in"
    # a name that does not resolve now is accepted: it is checked again at every connection
    r = client.post("/api/v1/webhooks", json={"url": "https://not-yet.shop.test/in", "event_types": ["*"]})
    assert r.status_code == 201


@pytest.mark.parametrize("served", ["127.0.0.0/8, 10.0.0.5, intranet.shop.test"], indirect=True)
def test_the_allow_list_lets_named_hosts_and_networks_through(served):
    _, client = served
    for url in ("http://127.0.0.1/hook", "http://127.1:8080/hook", "http://10.0.0.5/hook",
                "https://intranet.shop.test/hook"):
        assert client.post("/api/v1/webhooks", json={"url": url, "event_types": ["*"]}).status_code == 201, url
    for url in ("http://10.0.0.6/hook", "http://localhost:8000/hook", "http://[::1]/hook"):
        assert client.post("/api/v1/webhooks", json={"url": url, "event_types": ["*"]}).status_code == 422, url


def test_trigger_webhook_actions_to_internal_addresses_are_refused_when_saved(served):
    _, client = served
    rule = {"name": "hook", "events": ["order_created"], "actions": [
        {"type": "add_tag", "target": "order", "tag": "x"}, {"type": "webhook", "url": "http://x.test/"}]}
    for url in ("http://169.254.169.254/latest/meta-data/", "http://[::1]:9000/x", "https://intranet.shop.test/"):
        rule["actions"][1]["url"] = url
        r = client.post("/api/v1/triggers", json=rule)
        assert r.status_code == 422, r.text
        assert problem_fields(r)["actions.1.url"].startswith("refused by the outgoing request policy (SSRF): ")
    assert client.get("/api/v1/triggers").json() == []
    ok = client.post("/api/v1/triggers", json={**rule, "actions": [{"type": "webhook",
                                                                     "url": "https://hooks.shop.test/"}]})
    assert ok.status_code == 201, ok.text
    r = client.put(f"/api/v1/triggers/{ok.json()['id']}", json=rule)
    assert r.status_code == 422 and "actions.1.url" in problem_fields(r)


def test_the_command_line_refuses_them_too(app, db_url, monkeypatch, tmp_path):
    monkeypatch.setenv("RETENTO_DATABASE_URL", db_url)
    get_settings.cache_clear()
    path = tmp_path / "t.yaml"
    path.write_text("name: meta\nevents: [order_created]\nactions:\n"
                    "  - {type: webhook, url: 'http://169.254.169.254/latest/meta-data/'}\n")
    try:
        r = CliRunner().invoke(cli, ["triggers", "apply", str(path)])
    finally:
        get_settings.cache_clear()
    assert r.exit_code == 2
    assert "actions.0.url: refused by the outgoing request policy (SSRF): 169.254.169.254 is a link-local" in (
        " ".join(r.output.split()))


def test_a_webhook_whose_name_turns_internal_is_refused_at_delivery_and_not_retried(served, resolver, receiver,
                                                                                    clock):
    app, client = served
    port, got = receiver
    f.site(app)
    sub = client.post("/api/v1/webhooks", json={"url": f"http://hooks.shop.test:{port}/in", "event_types": ["*"]})
    assert sub.status_code == 201, sub.text
    resolver.hosts["hooks.shop.test"] = ["127.0.0.1"]  # DNS rebinding: now the name points inside
    client.post("/api/v1/customers", json={"site": "shop", "email": "a@example.com"})
    app.worker.tick()
    assert got == []
    (d,) = client.get(f"/api/v1/webhooks/{sub.json()['id']}/deliveries").json()["items"]
    reason = ("refused by the outgoing request policy (SSRF): hooks.shop.test resolves to 127.0.0.1, "
              "a loopback address")
    assert (d["status"], d["attempts"], d["last_status_code"], d["last_error"]) == ("failed", 1, None, reason)
    assert [a["error"] for a in d["log"]] == [reason]
    state = client.get(f"/api/v1/webhooks/{sub.json()['id']}").json()
    assert (state["active"], state["disabled_reason"]) == (False, reason)
    clock.advance(hours=2)
    app.worker.tick()
    assert client.get(f"/api/v1/webhooks/deliveries/{d['id']}").json()["attempts"] == 1
    assert got == []


def test_a_trigger_webhook_whose_name_turns_internal_is_refused_at_delivery(served, resolver, receiver, clock):
    app, client = served
    port, got = receiver
    f.site(app)
    rule = {"name": "hook", "events": ["order_created"],
            "actions": [{"type": "webhook", "url": f"http://hooks.shop.test:{port}/in"}]}
    r = client.post("/api/v1/triggers", json=rule)
    assert r.status_code == 201, r.text
    tid = r.json()["id"]
    resolver.hosts["hooks.shop.test"] = ["93.184.216.34", "10.9.8.7"]
    f.order(app)
    app.worker.tick()
    clock.advance(hours=2)
    app.worker.tick()
    (d,) = client.get("/api/v1/webhooks/deliveries", params={"trigger_id": tid}).json()["items"]
    reason = ("refused by the outgoing request policy (SSRF): hooks.shop.test resolves to 10.9.8.7, "
              "a private address")
    assert (d["status"], d["attempts"], d["last_status_code"], d["last_error"]) == ("failed", 1, None, reason)
    assert got == []
