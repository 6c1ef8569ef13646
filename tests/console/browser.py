"""The browser tests' world: one demo-sized shop in a SQLite file, the console served by uvicorn in a thread, and
Debian's chromium driven by Playwright (never a downloaded browser: `make test` / `.ci/run` install chromium)."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
import uvicorn

from retento.api import create_app
from retento.bootstrap import App, bootstrap
from retento.core.changes import ChangeContext
from retento.core.clock import FrozenClock
from retento.core.config import Settings
from retento.core.db.transactions import transaction
from retento.customers import queries as customer_queries, service as customers
from retento.customers.schemas import CustomerCreate
from retento.demo.generator import generate
from retento.demo.service import load
from retento.journeys import service as journeys
from retento.messaging import planner, service as messaging
from retento.messaging.schemas import CascadeIn, TemplateIn
from retento.tasks import service as tasks
from retento.tasks.schemas import TaskCreate
from retento.webhooks import service as webhooks
from retento.webhooks.delivery import Deliverer
from retento.webhooks.schemas import WebhookIn
from tests.console.conftest import add_user

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
XSS = "<script>alert(1)</script>"


def chromium_path() -> str:
    path = shutil.which("chromium") or (CHROMIUM if Path(CHROMIUM).exists() else None)
    if path is None:
        pytest.fail("the console's browser tests need Debian's chromium: apt-get install chromium "
                    "(`make test` does it when run as root)", pytrace=False)
    return path


def shop_app(template: Path, directory: Path) -> App:
    path = directory / "console.db"
    shutil.copy(template, path)
    app = bootstrap(Settings(database_url=f"sqlite:///{path}", console_password_time_cost=1,
                             console_password_memory_kib=64), clock=FrozenClock("2026-03-02T09:00:00+00:00"))
    now = app.clock.now()
    load(app.sessions, shop=generate(seed=3, customers=120, orders=500, now=now), now=now)
    with transaction(app.sessions) as s:
        customers.create(s, data=CustomerCreate(site="uyut", first_name=XSS, last_name=XSS, tags=["xss"]),
                         ctx=ChangeContext.system(), now=now)
        for title, hours, manager in (("Call about the delayed sofa", -26, 1), ("Confirm the delivery address", 5, 2),
                                      ("Offer the loyalty card", None, None)):
            tasks.create_task(s, data=TaskCreate(title=title, manager_id=manager, customer_id=1, order_id=None,
                                                 due_at=now + timedelta(hours=hours) if hours is not None else None),
                              ctx=ChangeContext.system(), now=now)
        journeys.install_mechanic(s, name="welcome", site="uyut", now=now)  # journey 1, with a branch
        webhooks.create(s, data=WebhookIn(url="https://hooks.uyut.example/retento", event_types=["order_created"],
                                          description="ERP sync"), site_ids=None, now=now)
        webhooks.enqueue_calls(s, calls=[{"trigger_id": None, "key": f"browser-dead-{n}", "secret": None,
                                          "url": "https://hooks.uyut.example/retento", "event_id": None,
                                          "body": {"n": n}} for n in (1, 2)], now=now)
    # both calls given up after one attempt (the host does not resolve): dead letters of the `webhooks` queue
    Deliverer(app.sessions, app.clock, app.settings.model_copy(update={"webhook_max_attempts": 1}), app.http)()
    for role in ("admin", "marketer", "operator", "viewer"):
        add_user(app, f"{role}@example.com", role)
    add_user(app, "ru@example.com", "admin", locale="ru")
    return app


def add_customer_messages(app: App) -> None:
    """A customer with messages of an email -> WhatsApp cascade (queued: no channel is set up here), for her
    profile's messages part in the screenshots (once per shop; left out of the shop the browser tests share, whose
    messaging tests count what is sent)."""
    now = app.clock.now()
    with transaction(app.sessions) as s:
        if customer_queries.list_customers(s, search="marina@example.com"):
            return
        cid = customers.create(s, data=CustomerCreate(
            site="uyut", first_name="Marina", last_name="Sokolova", email="marina@example.com", phone="+79161234567",
            whatsapp_id="+79161234567", consents={"email": {"granted": True}, "whatsapp": {"granted": True}}),
            ctx=ChangeContext.system(), now=now).id
        for channel in ("email", "whatsapp"):
            messaging.save_template(s, data=TemplateIn(site="uyut", name="autumn", channel=channel, language="ru",
                                                       subject="Осенняя распродажа",
                                                       body="Здравствуйте, {{ customer.first_name }}!"), now=now)
        cascade = messaging.create_cascade(s, data=CascadeIn(site="uyut", name="Autumn sale", mode="ordered", steps=[
            {"channel": "email", "template": "autumn", "wait_hours": 24, "go_on": "not_read"},
            {"channel": "whatsapp", "template": "autumn", "wait_hours": 0, "go_on": "not_read"}]), now=now)
        messaging.start_cascade(s, cascade_id=cascade.id, customer_id=cid, now=now, message_class="marketing",
                                idempotency_key="browser-autumn")
    with transaction(app.sessions) as s:
        planner.advance_due(s, now=now, limit=100)


def add_inbox_dialogs(app: App) -> None:
    """Telegram and WhatsApp dialogs of three customers (through the inbox's receivers, as webhooks bring them),
    for the inbox's screenshots; once per shop."""
    tg, wa = app.parts.inbound["telegram"], app.parts.inbound["whatsapp"]
    when = int(app.clock.now().timestamp())
    chats = [(7001, "Ivan", "Petrov", ["Здравствуйте! Где мой заказ?", "Номер заказа 1042"]),
             (7002, "Olga", "Smirnova", ["Можно поменять размер платья на M?"])]
    items = []
    for n, (uid, first, last, texts) in enumerate(chats):
        for k, text in enumerate(texts):
            chat = {"id": uid, "type": "private", "first_name": first, "last_name": last}
            items.append((tg, {"update_id": 100 * n + k, "message": {
                "message_id": 10 * n + k, "from": {"id": uid, "is_bot": False, "first_name": first,
                                                   "last_name": last}, "chat": chat, "date": when - 600 + k,
                "text": text}}))
    items.append((wa, {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages",
        "value": {"messaging_product": "whatsapp", "metadata": {"display_phone_number": "74951234567",
                                                                 "phone_number_id": "1"},
                  "contacts": [{"profile": {"name": "Marina Sokolova"}, "wa_id": "79161234567"}],
                  "messages": [{"from": "79161234567", "id": "wamid.screens1", "timestamp": str(when - 300),
                                "type": "text", "text": {"body": "Спасибо, всё получила!"}}]}}]}]}))
    with transaction(app.sessions) as s:
        for receiver, body in items:
            receiver.store(s, [(receiver.parse(body), app.clock.now())])


def add_support_set(app: App) -> None:
    """A small synthetic assist set (tickets, tasks, the English guide) for the shop, for the support pages'
    screenshots (once: a re-import changes nothing)."""
    from retento.assist import service as assist, synthetic
    from retento.assist.schemas import DocsIn, TaskIn, TicketIn

    data = synthetic.generate(per_topic=2, queries_per_topic=1, duplicates=0, shops_per_industry=1)
    emb, now = app.assist.embedder, app.clock.now()  # type: ignore[attr-defined]
    with transaction(app.sessions) as s:
        assist.import_tickets(s, site="uyut", items=[TicketIn(**t) for t in data.tickets], embedder=emb, now=now)
        assist.import_tasks(s, site="uyut", items=[TaskIn(**t) for t in data.tasks], embedder=emb, now=now)
        en = [d for d in data.docs if d["path"].startswith("en/")]
        assist.import_docs(s, site="uyut", data=DocsIn(base_url=synthetic.DOCS_URL, files=en), embedder=emb, now=now)


class Server:
    """The console served by uvicorn on a free loopback port, in a thread of the test process."""

    def __init__(self, app: App) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = uvicorn.Server(uvicorn.Config(create_app(app), host="127.0.0.1", port=self.port,
                                                     log_level="warning", lifespan="on"))
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self.app = app

    def start(self) -> Server:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the console server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
