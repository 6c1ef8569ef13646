"""`retento bench console`: how fast each console page's HTML answers, on the demo shop.

A fresh database per backend gets the demo shop (`retento demo` at the given size) and a console admin; a
signed-in client (Starlette's TestClient: the whole ASGI application in process, without a socket) asks each
page `requests` times after two warm-up requests. The baseline, measured in the same run the same way, is the
sign-in page (a template rendered through the same stack, no database): the ratio says what each page costs
beyond rendering a page at all. Goal (issue 15): every page p95 < 100 ms on the demo shop.
"""

from __future__ import annotations

import re
import statistics
import time
from dataclasses import dataclass

from fastapi.testclient import TestClient
from rich.progress import Progress
from sqlalchemy import select

from benchmarks.targets import Target
from retento.api import create_app
from retento.bootstrap import bootstrap
from retento.core.config import Settings
from retento.core.db.transactions import transaction
from retento.customers.models import Customer
from retento.demo.generator import generate
from retento.demo.service import load
from retento.migrate import migrate
from retento.orders.models import Order
from retento.users import service as users

PASSWORD = "benchmark password"


@dataclass
class Page:
    path: str
    p50: float
    p95: float
    status: int


@dataclass
class Result:
    version: str
    customers: int
    orders: int
    pages: list[Page]
    baseline: Page


def run(target: Target, *, customers: int, orders: int, requests: int, progress: Progress) -> Result:
    app = bootstrap(Settings(database_url=target.url))
    try:
        migrate(app)
        now = app.clock.now()
        task = progress.add_task(f"{target.backend}: demo shop", total=None)
        shop = generate(seed=1, customers=customers, orders=orders, now=now)
        load(app.sessions, shop=shop, now=now,
             on_progress=lambda done, total: progress.update(task, completed=done, total=total))
        with transaction(app.sessions) as s:
            users.create(s, data=users.parse_create(email="bench@example.com", role="admin", password=PASSWORD),
                         now=now)
            customer = s.scalar(select(Customer).where(Customer.last_name.is_not(None)).order_by(Customer.id.desc()))
            order_id = s.scalar(select(Order.id).where(Order.customer_id == customer.id).limit(1)) or 1
        paths = ["/", f"/dashboard/lifecycle?site={shop.sites[0]['code']}", "/dashboard/savings", "/dashboard/work",
                 "/customers",
                 f"/customers?q={customer.last_name[:3]}", f"/customers/{customer.id}", f"/orders/{order_id}",
                 "/admin/users", "/admin/apikeys"]
        paths += ["/tasks?view=open", "/tasks?view=overdue", "/admin/webhooks"]  # the operations pages (console-ops)
        with TestClient(create_app(app), follow_redirects=False) as client:
            form = client.get("/signin").text
            token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
            signed = client.post("/signin", data={"email": "bench@example.com", "password": PASSWORD,
                                                  "csrf_token": token})
            assert signed.status_code == 303, signed.text
            task = progress.add_task(f"{target.backend}: pages", total=(len(paths) + 1) * requests)
            baseline = _measure(client, "/signin", requests, lambda: progress.advance(task))
            pages = [_measure(client, p, requests, lambda: progress.advance(task)) for p in paths]
        return Result(target.version, customers, orders, pages, baseline)
    finally:
        app.close()


def _measure(client: TestClient, path: str, requests: int, tick) -> Page:  # noqa: ANN001
    for _ in range(2):
        client.get(path)
    times, status = [], 200
    for _ in range(requests):
        started = time.perf_counter()
        answer = client.get(path)
        times.append(time.perf_counter() - started)
        status = max(status, answer.status_code)
        tick()
    times.sort()
    return Page(path, statistics.median(times) * 1000, times[max(0, int(len(times) * 0.95) - 1)] * 1000, status)
