"""`retento bench cascade`: planning a cascade for many recipients, and delivering messages over HTTP.

(1) Planning: a campaign of `recipients` members starts: for its ordered cascade, runs at their first step
    and the outbox rows with their costs are written set-based (contacts and consents joined in, consent,
    contact, frequency cap and quiet hours applied in SQL, template per language picked), then the cascade job
    runs until nothing is due. Timed from the start to the last run planned. Baseline: the very outbox rows Retento wrote, inserted with the plain driver
    (`executemany`) into a copy of the database as it was before, in the same batch sizes.
(2) Delivery: `deliver` queued WhatsApp messages are sent by `workers` worker processes (claim, render,
    POST to a local Cloud-API-shaped server, record) until the queue is empty. Baseline: the same number of
    POSTs of the same bodies by the same number of processes with a minimal client (one keep-alive httpx
    client each), i.e. the fake provider's own maximum.
Setup (customers, consents, member lists) is written with the driver and is not timed.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sqlalchemy import func, insert, select

from benchmarks.targets import Target
from retento.bootstrap import App, bootstrap
from retento.core.clock import FrozenClock
from retento.core.config import Settings
from retento.core.db.transactions import transaction
from retento.customers.models import Consent, Customer
from retento.messaging import campaigns, outbox, planner, service
from retento.messaging.config import MessagingSettings
from retento.messaging.models import Message
from retento.messaging.schemas import CampaignIn, CascadeIn, PolicyIn, PriceIn, TemplateIn
from retento.messaging.wiring import configure
from retento.migrate import migrate
from retento.sites import service as sites
from retento.sites.schemas import SiteCreate

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)  # 12:00 in Moscow: outside quiet hours
COLUMNS = ("site_id", "customer_id", "channel", "template_id", "run_id", "campaign_id", "cascade_id", "step",
           "message_class", "idempotency_key", "status", "address", "units", "cost", "currency", "attempts",
           "created_at")


@dataclass
class Result:
    backend: str
    version: str
    recipients: int
    plan_s: float
    baseline_s: float
    deliver: int
    workers: int
    deliver_s: float
    client_s: float

    @property
    def plan_rate(self) -> float:
        return self.recipients / self.plan_s

    @property
    def plan_ratio(self) -> float:
        return self.plan_s / self.baseline_s

    @property
    def deliver_ratio(self) -> float:
        return self.deliver_s / self.client_s


# Fresh interpreters: a forked child inherits the parent's threads' locks (SQLite checkpointer, logging, the
# database driver) mid-use, and one that was held at the fork never comes free (seen: a worker hung for good).
SPAWN = mp.get_context("spawn")

def _app(target: Target) -> App:
    return bootstrap(Settings(database_url=target.url), clock=FrozenClock(NOW))


def _setup(app: App, n: int, channels: tuple[str, ...], progress: Any) -> list[int]:
    """A site, prices, templates, a cascade and n customers with consent, written with plain inserts."""
    with transaction(app.sessions) as s:
        site = sites.create_site(s, data=SiteCreate(code="bench", name="Bench", timezone="Europe/Moscow"), now=NOW)
        service.set_policy(s, site="bench", data=PolicyIn(), now=NOW)
        for ch, price in (("email", "0.03"), ("whatsapp", "5.6")):
            service.set_price(s, site="bench", channel=ch, data=PriceIn(price=Decimal(price), currency="RUB"),
                              now=NOW)
            service.save_template(s, data=TemplateIn(site="bench", name="t", channel=ch, subject="Бонусы",
                                                     body="{{ customer.first_name }}, у вас бонусы"), now=NOW)
        site_id = site.id
    task = progress.add_task(f"customers ({n:,})", total=n)
    cols = dict(site_id=site_id, first_name="Анна", created_at=NOW, updated_at=NOW, personal_dates={},
                custom_fields={}, email_confirmed=False)
    for start in range(0, n, 20_000):
        with transaction(app.sessions) as s:
            first = (s.scalar(select(func.max(Customer.id))) or 0) + 1
            rows = [{**cols, "email": f"c{i}@example.com", "phone": f"+7916{1_000_000 + i:07d}"}
                    for i in range(start, min(n, start + 20_000))]
            s.execute(insert(Customer), rows)
            s.execute(insert(Consent), [{"customer_id": first + j, "channel": ch, "granted": True, "at": NOW,
                                         "source": "bench"} for j in range(len(rows)) for ch in channels])
        progress.advance(task, len(rows))
    with transaction(app.sessions) as s:
        return list(s.scalars(select(Customer.id).order_by(Customer.id)))


def _campaign(app: App, ids: list[int], channels: tuple[str, ...]) -> None:
    with transaction(app.sessions) as s:
        steps = [{"channel": ch, "template": "t", "wait_hours": 24} for ch in channels]
        cascade = service.create_cascade(s, data=CascadeIn(site="bench", name="b", steps=steps), now=NOW)
        service.create_campaign(s, data=CampaignIn(cascade_id=cascade.id, name="b", customer_ids=ids), now=NOW)


def _plan(app: App, n: int, progress: Any) -> float:
    task = progress.add_task(f"planning ({n:,})", total=n)
    t0 = time.perf_counter()
    with transaction(app.sessions) as s:  # an ordered cascade's first step is planned as the campaign starts
        progress.advance(task, campaigns.start_due_campaigns(s, now=NOW))
    while True:
        with transaction(app.sessions) as s:
            done = planner.advance_due(s, now=NOW, limit=app.messaging.settings.cascade_batch)
        if not done:
            break
        progress.advance(task, done)
    return time.perf_counter() - t0


def _baseline(app: App, copy: Target, batch: int) -> float:
    with transaction(app.sessions) as s:
        rows = [tuple(r) for r in s.execute(select(*(getattr(Message, c) for c in COLUMNS)).order_by(Message.id))]
    sqlite = copy.backend == "sqlite"
    rows = [tuple(float(v) if isinstance(v, Decimal) and sqlite else
                  (v.replace(tzinfo=None) if sqlite and isinstance(v, datetime) else v) for v in r) for r in rows]
    mark = "?" if sqlite else "%s"
    sql = f"INSERT INTO msg_messages ({', '.join(COLUMNS)}) VALUES ({', '.join([mark] * len(COLUMNS))})"
    with copy.raw() as conn:
        t0 = time.perf_counter()
        for i in range(0, len(rows), batch):
            if sqlite:
                conn.execute("BEGIN")
                conn.executemany(sql, rows[i:i + batch])
                conn.execute("COMMIT")
            else:
                with conn.cursor() as cur:
                    cur.executemany(sql, rows[i:i + batch])
                conn.commit()
        return time.perf_counter() - t0


# --- delivery ------------------------------------------------------------------------------------------------

class _Fake(BaseHTTPRequestHandler):
    """POST /v21.0/{id}/messages answered the Cloud API way; nothing else."""

    protocol_version = "HTTP/1.1"
    counter = 0
    disable_nagle_algorithm = True  # no 40 ms delayed-ACK stalls on keep-alive

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Fake.counter += 1
        data = json.dumps({"messaging_product": "whatsapp", "contacts": [{"input": body["to"], "wa_id": body["to"]}],
                           "messages": [{"id": f"wamid.bench{_Fake.counter}"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _serve(port_queue: Any) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Fake)
    port_queue.put(server.server_address[1])
    server.serve_forever()


def _settings(port: int) -> MessagingSettings:
    return MessagingSettings(whatsapp_api_url=f"http://127.0.0.1:{port}/v21.0", whatsapp_phone_number_id="1",
                             whatsapp_token="t", send_batch=500)


def _worker(url: str, port: int, barrier: Any) -> None:
    app = bootstrap(Settings(database_url=url), clock=FrozenClock(NOW))
    messaging = configure(app, _settings(port))
    barrier.wait()
    while outbox.send_due(app.sessions, messaging, app.clock):
        pass
    app.close()


def _client(port: int, count: int, barrier: Any) -> None:
    import httpx

    body = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": "79161000001",
            "biz_opaque_callback_data": "run:1:0", "type": "text",
            "text": {"preview_url": False, "body": "Анна, у вас бонусы"}}
    transport = httpx.HTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
    with httpx.Client(headers={"Authorization": "Bearer t"}, transport=transport) as client:
        barrier.wait()
        for _ in range(count):
            client.post(f"http://127.0.0.1:{port}/v21.0/1/messages", json=body).raise_for_status()


def _timed(target: Any, args_list: list[tuple]) -> float:
    barrier = SPAWN.Barrier(len(args_list) + 1)
    procs = [SPAWN.Process(target=target, args=(*args, barrier)) for args in args_list]
    for p in procs:
        p.start()
    barrier.wait()
    t0 = time.perf_counter()
    for p in procs:
        p.join()
    return time.perf_counter() - t0


def run(plan_target: Target, deliver_target: Target, *, recipients: int, deliver: int, workers: int,
        progress: Any) -> Result:
    app = _app(plan_target)
    migrate(app)
    ids = _setup(app, recipients, ("email", "whatsapp"), progress)
    _campaign(app, ids, ("email", "whatsapp"))
    app.close()
    copy = plan_target.clone("baseline")
    app = _app(plan_target)
    plan_s = _plan(app, recipients, progress)
    baseline_s = _baseline(app, copy, app.messaging.settings.cascade_batch)
    version = plan_target.version
    app.close()

    app = _app(deliver_target)
    migrate(app)
    ids = _setup(app, deliver, ("whatsapp",), progress)
    _campaign(app, ids, ("whatsapp",))
    _plan(app, deliver, progress)
    app.close()
    ports: Any = SPAWN.Queue()
    server = SPAWN.Process(target=_serve, args=(ports,), daemon=True)
    server.start()
    port = ports.get(timeout=30)
    try:
        deliver_s = _timed(_worker, [(deliver_target.url, port)] * workers)
        share = [deliver // workers + (1 if i < deliver % workers else 0) for i in range(workers)]
        client_s = _timed(_client, [(port, k) for k in share])
    finally:
        server.terminate()
        server.join()
    app = _app(deliver_target)
    with transaction(app.sessions) as s:
        sent = s.scalar(select(func.count()).select_from(Message).where(Message.status == "sent"))
    app.close()
    if sent != deliver:
        raise RuntimeError(f"delivery bench: {sent} of {deliver} messages were sent")
    return Result(plan_target.backend, version, recipients, plan_s, baseline_s, deliver, workers, deliver_s, client_s)
