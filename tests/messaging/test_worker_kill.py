"""No message doubled or lost while worker processes are SIGKILLed (issue 21), on PostgreSQL.

Four real `retento worker` processes send 10,000 messages (half email to the local SMTP server, half WhatsApp to
the local Cloud API server); each time another 1/30 of them has been sent, one worker (at random) is killed with
SIGKILL and a fresh one started, 22 times in all.
Afterwards: nothing reached a server twice; every message is sent or uncertain (none lost, none failed); the
uncertain ones are at most IN_FLIGHT per kill (a worker has that many sends open at a time); the report's sent and failed
are what the servers received, and WhatsApp's status webhooks (echoing our key) settle the uncertain ones that
did arrive."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from decimal import Decimal

import pytest
from sqlalchemy import func, insert, select

from retento.core.db.transactions import transaction
from retento.customers.models import Consent, Customer
from retento.messaging import campaigns, reports, service
from retento.messaging.models import Message
from retento.messaging.schemas import CampaignIn, CascadeIn, PolicyIn, PriceIn, TemplateIn
from retento.sites import service as sites
from retento.sites.schemas import SiteCreate
from tests.messaging import providers as p

pytestmark = pytest.mark.slow
N, WORKERS, KILLS, IN_FLIGHT = 10_000, 4, 22, 5
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)


def _worker(db_url: str, http: p.HttpProviders, smtp: p.SmtpServer) -> subprocess.Popen:
    env = {**os.environ, "RETENTO_DATABASE_URL": db_url, "RETENTO_WHATSAPP_API_URL": f"{http.url}/v21.0",
           "RETENTO_WHATSAPP_PHONE_NUMBER_ID": p.PHONE_ID, "RETENTO_WHATSAPP_TOKEN": p.WA_TOKEN,
           "RETENTO_SMTP_HOST": "127.0.0.1", "RETENTO_SMTP_PORT": str(smtp.port),
           "RETENTO_EMAIL_FROM": "news@shop.example", "RETENTO_SEND_BATCH": "100",
           "RETENTO_SEND_IN_FLIGHT": str(IN_FLIGHT),
           "RETENTO_SEND_LEASE_SECONDS": "3", "RETENTO_WORKER_POLL_SECONDS": "0.1"}
    return subprocess.Popen([sys.executable, "-m", "retento.worker"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def _setup(app) -> list[int]:
    """Site, prices, templates, one-step cascades and N customers with consent (plain inserts), two campaigns
    started: N queued messages. Returns the cascade ids."""
    with transaction(app.sessions) as s:
        site = sites.create_site(s, data=SiteCreate(code="shop", name="Shop", timezone="Europe/Moscow"), now=NOW)
        service.set_policy(s, site="shop", data=PolicyIn(), now=NOW)
        for ch, price in (("email", "0.03"), ("whatsapp", "5.6")):
            service.set_price(s, site="shop", channel=ch, data=PriceIn(price=Decimal(price), currency="RUB"), now=NOW)
            service.save_template(s, data=TemplateIn(site="shop", name="t", channel=ch, subject="Бонусы",
                                                     body="{{ customer.first_name }}, у вас бонусы"), now=NOW)
        site_id = site.id
    with transaction(app.sessions) as s:
        s.execute(insert(Customer), [{"site_id": site_id, "first_name": "Анна", "email": f"c{i}@example.com",
                                      "phone": f"+7916{2_000_001 + i:07d}", "created_at": NOW, "updated_at": NOW,
                                      "personal_dates": {}, "custom_fields": {}, "email_confirmed": False}
                                     for i in range(N)])
        ids = list(s.scalars(select(Customer.id).order_by(Customer.id)))
        half = {"email": ids[:N // 2], "whatsapp": ids[N // 2:]}
        s.execute(insert(Consent), [{"customer_id": c, "channel": ch, "granted": True, "at": NOW, "source": "test"}
                                    for ch, cs in half.items() for c in cs])
    cascades = []
    with transaction(app.sessions) as s:
        for ch, cs in half.items():
            cascade = service.create_cascade(s, data=CascadeIn(site="shop", name=ch, steps=[
                {"channel": ch, "template": "t", "wait_hours": 24}]), now=NOW)
            service.create_campaign(s, data=CampaignIn(cascade_id=cascade.id, name=ch, customer_ids=cs), now=NOW)
            cascades.append(cascade.id)
        campaigns.start_due_campaigns(s, now=NOW)
    return cascades


def _open(app) -> int:
    with transaction(app.sessions) as s:
        return s.scalar(select(func.count()).select_from(Message).where(
            Message.status.in_(("queued", "claimed", "sending")))) or 0


def test_sigkilled_workers_lose_nothing_and_send_nothing_twice(mapp, db_url, client, http_providers, smtp_server):
    if not db_url.startswith("postgresql"):
        pytest.skip("concurrent worker processes: PostgreSQL")
    mapp.clock.set(NOW)
    cascades = _setup(mapp)
    assert _open(mapp) == N
    rnd = random.Random(21)
    procs = [_worker(db_url, http_providers, smtp_server) for _ in range(WORKERS)]
    kills = 0
    try:
        deadline = time.monotonic() + 600
        mark = N
        while kills < KILLS and _open(mapp):
            time.sleep(0.05)
            if mark - _open(mapp) < N // 30:
                continue
            mark = _open(mapp)
            i = rnd.randrange(WORKERS)
            procs[i].send_signal(signal.SIGKILL)
            procs[i].wait()
            kills += 1
            procs[i] = _worker(db_url, http_providers, smtp_server)
        while _open(mapp):
            assert time.monotonic() < deadline, f"{_open(mapp)} messages still open"
            time.sleep(0.2)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=60)
    assert kills == KILLS, "the workers finished before all the kills: make the run longer"

    rows = {m.id: m for m in _messages(mapp)}
    emails = [int(re.search(rb"X-Retento-Message: (\d+)", m["raw"]).group(1)) for m in smtp_server.messages]
    wa = http_providers.sent("whatsapp")
    keys = {m.idempotency_key: m.id for m in rows.values()}
    got = emails + [keys[m["body"]["biz_opaque_callback_data"]] for m in wa]
    assert len(got) == len(set(got))  # nothing reached a server twice
    received = set(got)
    sent = {i for i, m in rows.items() if m.status == "sent"}
    uncertain = {i for i, m in rows.items() if m.status == "uncertain"}
    assert sent | uncertain == set(rows) and len(rows) == N  # none lost, none failed
    assert len(uncertain) <= KILLS * IN_FLIGHT  # at most the open sends of each killed worker
    print(f"{len(uncertain)} uncertain after {kills} kills; {len(received)} received, {len(sent)} sent")
    assert sent <= received <= sent | uncertain  # what is reported sent did arrive

    body = p.whatsapp_statuses([{"id": m["id"], "status": "sent", "to": m["to"],
                                 "callback": m["body"]["biz_opaque_callback_data"]} for m in wa])
    assert client.post("/api/v1/messaging/webhooks/whatsapp", content=body,
                       headers={"X-Hub-Signature-256": p.meta_signature(body)}).status_code == 200
    with transaction(mapp.sessions) as s:
        (mail,) = reports.report(s, cascade_id=cascades[0])["channels"]
        (whatsapp,) = reports.report(s, cascade_id=cascades[1])["channels"]
    assert (whatsapp["sent"], whatsapp["failed"]) == (len(wa), 0)  # settled by the status webhook
    assert (mail["sent"], mail["failed"]) == (len(received & sent & set(emails)), 0)
    assert len(emails) - mail["sent"] <= mail["uncertain"]  # an uncertain email may have arrived
    assert mail["uncertain"] + whatsapp["uncertain"] <= KILLS * IN_FLIGHT


def _messages(app) -> list[Message]:
    with transaction(app.sessions) as s:
        return list(s.scalars(select(Message)))
