"""What operators see and do with deferred work (`retento work`, /api/v1/work, /api/health), shown on the message
queue: a bounced email is a dead letter, a WhatsApp message no worker here can send is a note and a warning."""

from __future__ import annotations

import csv
import io
import json

import httpx
import pytest
from typer.testing import CliRunner

from retento.cli import app as cli
from retento.core.config import get_settings
from retento.messaging.wiring import configure
from tests.api.conftest import Server, make_key
from tests.messaging import helpers as h
from tests.messaging.conftest import settings_for


@pytest.fixture
def ops(mapp, http_providers, smtp_server):
    """Two emails (one bounces) and a WhatsApp message, sent by a worker without WhatsApp settings."""
    configure(mapp, settings_for(http_providers, smtp_server, whatsapp_phone_number_id=None))
    h.setup_site(mapp)
    h.template(mapp, "t", "email")
    h.template(mapp, "w", "whatsapp")
    mail, wa = h.cascade(mapp, [("email", "t", 24)]), h.cascade(mapp, [("whatsapp", "w", 24)])
    h.start(mapp, mail, h.customer(mapp, external_id="a", email="anna@example.com"))
    h.start(mapp, mail, h.customer(mapp, external_id="b", email="bounce@example.com"))
    h.start(mapp, wa, h.customer(mapp, external_id="c", channels=("whatsapp",)))
    h.drain(mapp)
    return mapp


def test_the_api_lists_queues_and_dead_letters_and_retries_or_drops_them(ops):
    app = ops
    ok, bounced, wa = h.messages(app)
    assert (ok.status, bounced.status, wa.status) == ("sent", "failed", "queued")
    _, raw = make_key(app, scopes="work:manage")
    _, narrow = make_key(app, scopes="work:manage", sites=["shop"], name="narrow")
    _, other = make_key(app, scopes="messaging:read", name="other")
    with Server(app) as server, httpx.Client(base_url=server.url, headers={"X-API-Key": raw}) as c:
        queues = {q["queue"]: q for q in c.get("/api/v1/work").json()}
        assert set(queues) >= {"messages"}
        m = queues["messages"]
        assert (m["due"], m["later"], m["leased"], m["expired"], m["dead"]) == (1, 0, 0, 0, 1)
        assert m["notes"] == ["1 due whatsapp messages wait for a worker with whatsapp settings (this process has "
                              "none)"]
        health = c.get("/api/health").json()
        assert health["status"] == "ok" and health["warnings"] == [f"messages: {m['notes'][0]}"]

        (dead,) = c.get("/api/v1/work/messages/dead").json()
        assert (dead["id"], dead["state"], dead["attempts"]) == (bounced.id, "failed", 1)
        assert dead["error"].startswith("bounced: 550")
        r = c.post("/api/v1/work/messages/retry", json={"ids": [bounced.id, ok.id]})
        assert r.status_code == 200 and r.json() == {"ids": [bounced.id]}  # the sent one is left alone
        assert [(m.status, m.attempts, m.failed_at) for m in h.messages(app, id=bounced.id)] == [("queued", 0, None)]

        assert c.get("/api/v1/work/nope/dead").json()["errors"][0]["field"] == "queue"
        assert c.get("/api/v1/work/nope/dead").status_code == 404
        assert c.get("/api/v1/work/messages/dead", params={"after_id": 2**64}).status_code == 422
        r = c.post("/api/v1/work/messages/retry", json={"ids": []})
        assert r.status_code == 422 and "ids" in r.text
        for bad in (["x"], [0], [2**63], [2**64 - 1]):
            r = c.post("/api/v1/work/messages/drop", json={"ids": bad})
            assert r.status_code == 422 and r.json()["errors"][0]["field"].startswith("ids"), r.text
        assert c.get("/api/v1/work", headers={"X-API-Key": narrow}).status_code == 403
        assert c.get("/api/v1/work", headers={"X-API-Key": other}).status_code == 403

    h.drain(app)  # bounces again: dead once more, then dropped (a message is kept, marked failed)
    with Server(app) as server, httpx.Client(base_url=server.url, headers={"X-API-Key": raw}) as c:
        assert c.post("/api/v1/work/messages/drop", json={"ids": [bounced.id]}).json() == {"ids": [bounced.id]}
    (row,) = h.messages(app, id=bounced.id)
    assert row.status == "failed" and row.reason.startswith("bounced: 550")


@pytest.fixture
def runner(db_url, monkeypatch):
    monkeypatch.setenv("RETENTO_DATABASE_URL", db_url)
    monkeypatch.setenv("RETENTO_SMTP_HOST", "127.0.0.1")
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def test_retento_work_lists_queues_and_acts_on_dead_letters(ops, runner):
    app = ops
    _, bounced, _ = h.messages(app)
    out = runner.invoke(cli, ["work"], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    line = next(x for x in out.output.splitlines() if "messages" in x and "│" in x)
    assert [c.strip() for c in line.split("│")][3:8] == ["1", "0", "0", "0", "1"]
    assert "messages: 1 due whatsapp messages wait for a worker with whatsapp settings" in out.output
    out = runner.invoke(cli, ["work", "dead", "messages"], env={"COLUMNS": "200"})
    assert out.exit_code == 0 and f"{bounced.id}" in out.output and "bounced: 550" in out.output
    queues = {q["queue"]: q for q in json.loads(runner.invoke(cli, ["work", "--format", "json"]).stdout)}
    assert (queues["messages"]["due"], queues["messages"]["dead"]) == (1, 1)
    dead = list(csv.DictReader(io.StringIO(runner.invoke(cli, ["work", "dead", "messages", "--format", "csv"]).stdout)))
    assert [(r["id"], r["state"]) for r in dead] == [(str(bounced.id), "failed")] and "bounced: 550" in dead[0]["error"]
    out = runner.invoke(cli, ["work", "retry", "messages", str(bounced.id), "999"])
    assert out.exit_code == 0 and f"retry: {bounced.id}; left alone (not dead, or the same work is live again): 999" in out.output
    assert h.messages(app, id=bounced.id)[0].status == "queued"
    out = runner.invoke(cli, ["work", "dead", "nope"])
    assert out.exit_code == 1 and "no queue 'nope'" in out.output
