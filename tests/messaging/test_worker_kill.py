"""Exactly-once sending with a worker SIGKILLed in the middle of a batch, on PostgreSQL.

A real `retento worker` process sends WhatsApp messages to the local Cloud API server, which answers slowly;
it is killed with SIGKILL mid-batch; a second worker recovers the dead claim after the lease. No message may
reach the provider twice; every message the provider got ends up recorded with its provider id (the one in
flight at the kill through the status webhook, which echoes our idempotency key)."""

import os
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import func, select

from retento.db import transaction
from retento.messaging import campaigns, planner, service
from retento.messaging.models import Message
from retento.messaging.schemas import CampaignIn
from tests.messaging import helpers as h, providers as p

N, CHUNK = 200, 10


def _worker(db_url: str, http: p.HttpProviders) -> subprocess.Popen:
    env = {**os.environ, "RETENTO_DATABASE_URL": db_url, "RETENTO_WHATSAPP_API_URL": f"{http.url}/v21.0",
           "RETENTO_WHATSAPP_PHONE_NUMBER_ID": p.PHONE_ID, "RETENTO_WHATSAPP_TOKEN": p.WA_TOKEN,
           "RETENTO_SEND_CHUNK": str(CHUNK), "RETENTO_SEND_BATCH": "50", "RETENTO_SEND_LEASE_SECONDS": "1",
           "RETENTO_WORKER_POLL_SECONDS": "0.1"}
    return subprocess.Popen([sys.executable, "-m", "retento.cli", "worker"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def _wait(cond, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def _pending(app) -> int:
    with transaction(app.sessions) as s:
        return s.scalar(select(func.count()).select_from(Message).where(
            Message.status.in_(("queued", "claimed", "sending"))))


def test_sigkilled_worker_sends_nothing_twice(mapp, db_url, client, http_providers):
    if not db_url.startswith("postgresql"):
        pytest.skip("concurrent worker processes: PostgreSQL")
    h.setup_site(mapp)
    h.template(mapp, "t", "whatsapp", body="Бонусы")
    cid = h.cascade(mapp, [("whatsapp", "t", 24)])
    ids = [h.customer(mapp, external_id=str(i), whatsapp_id=f"+7916{1_000_001 + i:07d}", channels=("whatsapp",))
           for i in range(N)]
    with transaction(mapp.sessions) as s:
        service.create_campaign(s, data=CampaignIn(cascade_id=cid, name="k", customer_ids=ids), now=mapp.clock.now())
        campaigns.start_due_campaigns(s, now=mapp.clock.now())
    with transaction(mapp.sessions) as s:
        planner.advance_due(s, now=mapp.clock.now(), limit=N)
    assert _pending(mapp) == N

    http_providers.state.delay = 0.01
    try:
        first = _worker(db_url, http_providers)
        _wait(lambda: len(http_providers.sent("whatsapp")) >= 45)
        first.send_signal(signal.SIGKILL)
        first.wait()
        second = _worker(db_url, http_providers)
        try:
            _wait(lambda: _pending(mapp) == 0)
        finally:
            second.terminate()
            second.wait(timeout=30)
    finally:
        http_providers.state.delay = 0

    got = http_providers.sent("whatsapp")
    keys = [m["body"]["biz_opaque_callback_data"] for m in got]
    assert len(keys) == len(set(keys))  # nothing reached the provider twice
    rows = h.messages(mapp)
    lost = [m for m in rows if m.status == "failed"]
    assert all(m.reason.startswith("interrupted") for m in lost) and len(lost) <= CHUNK
    assert {m.idempotency_key for m in rows if m.status == "sent"} | {m.idempotency_key for m in lost} == \
        {m.idempotency_key for m in rows}

    # The provider's status webhooks carry our key: in-flight messages that did arrive get their id back.
    body = p.whatsapp_statuses([{"id": m["id"], "status": "delivered", "to": m["to"],
                                 "callback": m["body"]["biz_opaque_callback_data"]} for m in got])
    assert client.post("/api/v1/messaging/webhooks/whatsapp", content=body,
                       headers={"X-Hub-Signature-256": p.meta_signature(body)}).status_code == 200
    rows = {m.idempotency_key: m for m in h.messages(mapp)}
    for m in got:
        row = rows[m["body"]["biz_opaque_callback_data"]]
        assert row.provider_id == m["id"] and row.status == "delivered"
    never_sent = set(rows) - set(keys)
    assert all(rows[k].status == "failed" for k in never_sent)  # only in-flight ones that never left
