"""`retento bench ingest`: orders through the service layer against the driver's executemany of the same rows.

Retento side: raw order dicts (as an API client or an import sends them) are validated with
`orders.service.parse_create_many` and stored with `orders.service.create_many`, one transaction per batch, so
every order gets its items, a history row and an `order_created` event.

Baseline: afterwards the rows Retento wrote (orders, order_items, history, events, with the very column
values stored) are read back and inserted into a copy of the database as it was before the run, with the
plain driver (`sqlite3` / psycopg `executemany`), the same batches and transaction boundaries. Only the
inserts and commits are timed on either side; generating the input and reading rows back are not.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from benchmarks.targets import Target
from retento.bootstrap import App, bootstrap
from retento.catalog import service as catalog
from retento.catalog.schemas import ProductIn
from retento.core.bus import Event
from retento.core.changes import ActorType, ChangeContext, Source
from retento.core.config import Settings
from retento.core.db.transactions import transaction
from retento.customers import service as customers
from retento.history.models import HistoryEntry
from retento.migrate import migrate
from retento.orders import service as orders
from retento.orders.models import Order, OrderItem
from retento.orders.statuses import STATUSES
from retento.sites import service as sites
from retento.sites.schemas import SiteCreate

CTX = ChangeContext(Source.IMPORT, ActorType.SYSTEM, "bench")
SITES = (("bench-ru", "RUB", ["RUB"]), ("bench-eu", "EUR", ["EUR", "USD"]))
TABLES = (Order.__table__, OrderItem.__table__, HistoryEntry.__table__, Event.__table__)
Tick = Callable[[int], None]


@dataclass
class Shop:
    """Reference data the generated orders point at (created before timing)."""

    customers: dict[str, list[str]] = field(default_factory=dict)  # site -> customer external ids
    products: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # site -> (offer id, kind)


@dataclass
class Stopwatch:
    """Wall-clock and this process's CPU seconds of the timed sections."""

    wall: float = 0.0
    cpu: float = 0.0

    @contextmanager
    def timing(self) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.process_time()
        yield
        self.wall += time.perf_counter() - wall
        self.cpu += time.process_time() - cpu


@dataclass
class Result:
    backend: str
    version: str
    orders: int
    batch: int
    rows: dict[str, int]
    retento: Stopwatch
    baseline: Stopwatch

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    @property
    def orders_per_s(self) -> float:
        return self.orders / self.retento.wall

    @property
    def orders_per_cpu_s(self) -> float:
        return self.orders / self.retento.cpu

    @property
    def ratio(self) -> float:
        return self.retento.wall / self.baseline.wall


def shop_size(n_orders: int) -> tuple[int, int]:
    """(customers, catalogue products) per site for a run of n orders."""
    return max(50, n_orders // 40), max(20, min(500, n_orders // 200))


def generate_orders(n: int, shop: Shop, *, seed: int = 7) -> Iterator[dict[str, Any]]:
    """n order inputs as a client would send them: 1-5 items each, catalogue goods, free lines and services."""
    rnd = random.Random(seed)
    statuses = [code for code, *_ in STATUSES]
    start = datetime(2024, 11, 1, tzinfo=timezone(timedelta(hours=3)))
    site_codes = [code for code, *_ in SITES]
    for i in range(n):
        site = site_codes[0] if rnd.random() < 0.7 else site_codes[1]
        items = [_item(rnd, shop.products[site]) for _ in range(rnd.randint(1, 5))]
        raw: dict[str, Any] = {
            "site": site,
            "status": rnd.choice(statuses),
            "items": items,
            "created_at": (start + timedelta(minutes=rnd.randrange(2 * 365 * 24 * 60))).isoformat(),
            "delivery": {
                "type": rnd.choice(["courier", "pickup", "post"]),
                "cost": rnd.choice(["0", "300", "450.50"]),
                "address": {
                    "city": rnd.choice(["Moscow", "Kazan", "Berlin"]),
                    "index": f"{rnd.randrange(10**6):06d}",
                    "text": f"{rnd.randrange(1, 200)} Lenina st., apt {rnd.randrange(1, 300)}",
                },
            },
            "payment": {
                "type": rnd.choice(["card", "cash", "sbp"]),
                "status": rnd.choice(["paid", "not-paid"]),
            },
            "custom_fields": {
                "utm_source": rnd.choice(["google", "yandex", "email", "direct"]),
                "gift": rnd.random() < 0.1,
            },
        }
        if rnd.random() < 0.97:  # a few orders come without the shop's id and are numbered by Retento
            raw["external_id"] = f"B{i:07d}"
        if rnd.random() < 0.95:
            raw["customer"] = {"external_id": rnd.choice(shop.customers[site])}
        if rnd.random() < 0.2:
            raw["customer_comment"] = "Please call before delivery / Позвоните перед доставкой"
        if site != site_codes[0] and rnd.random() < 0.3:
            raw["currency"] = "USD"
        yield raw


def _item(rnd: random.Random, products: list[tuple[str, str]]) -> dict[str, Any]:
    roll = rnd.random()
    if roll < 0.75:  # a catalogue product or service at its catalogue price, sometimes discounted
        offer_id, _kind = rnd.choice(products)
        item: dict[str, Any] = {"offer_id": offer_id, "quantity": str(rnd.randint(1, 3))}
        if rnd.random() < 0.15:
            item["discount"] = "10.00"
        return item
    if roll < 0.9:  # a free line, not in the catalogue
        return {
            "name": f"Custom engraving #{rnd.randrange(1000)}",
            "price": f"{rnd.randrange(100, 5000)}.{rnd.randrange(100):02d}",
            "quantity": "1",
            "category": "custom",
        }
    return {"name": "Gift wrapping", "kind": "service", "price": "150.00", "quantity": "1"}


def setup_shop(app: App, n_orders: int, *, tick: Tick | None = None) -> Shop:
    """Sites, customers and products through the services (not timed)."""
    n_customers, n_products = shop_size(n_orders)
    shop = Shop()
    now = app.clock.now()
    rnd = random.Random(11)
    for code, currency, accepted in SITES:
        with transaction(app.sessions) as s:
            sites.create_site(
                s, data=SiteCreate(code=code, name=code, currency=currency, currencies=accepted), now=now
            )
            products = [
                ProductIn(
                    site=code,
                    offer_id=f"{code}-{k:04d}",
                    name=f"Product {k}",
                    category=f"cat-{k % 12}",
                    price=f"{rnd.randrange(200, 20000)}.{rnd.randrange(100):02d}",
                )
                for k in range(n_products)
            ]
            products += [
                ProductIn(
                    site=code, offer_id=f"{code}-svc-{k}", name=f"Service {k}", kind="service", price="500.00"
                )
                for k in range(5)
            ]
            catalog.upsert_many(s, items=products, now=now)
        shop.products[code] = [(p.offer_id, p.kind.value) for p in products]
        shop.customers[code] = [f"{code}-c{k}" for k in range(n_customers)]
        for start in range(0, n_customers, 1000):
            ids = shop.customers[code][start : start + 1000]
            with transaction(app.sessions) as s:
                data = [
                    customers.parse_create(
                        s,
                        {
                            "site": code,
                            "external_id": ext,
                            "first_name": f"Name{ext}",
                            "email": f"{ext}@example.com",
                        },
                    )
                    for ext in ids
                ]
                customers.create_many(s, items=data, ctx=CTX, now=now)
            if tick:
                tick(len(ids))
    return shop


def ingest(
    app: App, inputs: Iterator[dict[str, Any]], *, batch: int, tick: Tick | None = None
) -> tuple[Stopwatch, list[int]]:
    """Store the orders batch by batch through the service layer. Returns (time, last order id of each batch).

    Each batch of inputs is generated just before it is timed, so the process holds one batch, as a server would.
    """
    spent, bounds = Stopwatch(), []
    while chunk := list(itertools.islice(inputs, batch)):
        with spent.timing(), transaction(app.sessions) as s:
            data = orders.parse_create_many(chunk)
            ids = orders.create_many(s, items=data, ctx=CTX, now=app.clock.now())
        bounds.append(ids[-1])
        if tick:
            tick(len(chunk))
    return spent, bounds


def baseline(
    source: Target, copy: Target, bounds: list[int], *, marks: dict[str, int], tick: Tick | None = None
) -> tuple[Stopwatch, dict[str, int]]:
    """Insert the rows Retento wrote into `copy` with the plain driver, batch by batch. Returns (time, rows)."""
    rows = {t.name: 0 for t in TABLES}
    spent, low = Stopwatch(), marks["orders"]
    ph = "?" if source.backend == "sqlite" else "%s"
    inserts = [
        f"INSERT INTO {t.name} ({', '.join(c.name for c in t.columns)}) "
        f"VALUES ({', '.join([ph] * len(t.columns))})"
        for t in TABLES
    ]
    with source.raw() as src, copy.raw() as dst:
        for high in bounds:
            batch = _rows_of(src, low, high, ph, marks)
            with spent.timing():
                if copy.backend == "sqlite":
                    dst.execute("BEGIN IMMEDIATE")
                    for sql, data in zip(inserts, batch, strict=True):
                        dst.executemany(sql, data)
                    dst.execute("COMMIT")
                else:
                    with dst.cursor() as cur:
                        for sql, data in zip(inserts, batch, strict=True):
                            cur.executemany(sql, data)
                    dst.commit()
            for t, data in zip(TABLES, batch, strict=True):
                rows[t.name] += len(data)
            if tick:
                tick(high - low)
            low = high
    return spent, rows


def _rows_of(conn: Any, low: int, high: int, ph: str, marks: dict[str, int]) -> list[list[tuple]]:
    """The rows of orders low < id <= high in each table, as stored, in id order."""

    def q(table: Any, where: str, *args: Any) -> list[tuple]:
        cols = ", ".join(c.name for c in table.columns)
        return list(
            conn.execute(f"SELECT {cols} FROM {table.name} WHERE {where} ORDER BY id", args).fetchall()
        )

    orders_t, items_t, history_t, events_t = TABLES
    return [
        q(orders_t, f"id > {ph} AND id <= {ph}", low, high),
        q(items_t, f"order_id > {ph} AND order_id <= {ph}", low, high),
        q(
            history_t,
            f"id > {ph} AND entity = 'order' AND entity_id > {ph} AND entity_id <= {ph}",
            marks["history"],
            low,
            high,
        ),
        q(events_t, f"id > {ph} AND order_id > {ph} AND order_id <= {ph}", marks["events"], low, high),
    ]


def _max_ids(app: App) -> dict[str, int]:
    with app.engine.connect() as conn:
        return {
            t.name: conn.exec_driver_sql(f"SELECT COALESCE(MAX(id), 0) FROM {t.name}").scalar()
            for t in TABLES
        }


def run(target: Target, *, n_orders: int, batch: int, progress: Any = None, seed: int = 7) -> Result:
    """The whole benchmark on one backend: setup, Retento's ingest, the baseline on a copy, row checks."""

    def task(label: str, total: int) -> Tick | None:
        if progress is None:
            return None
        tid = progress.add_task(f"{target.backend}: {label}", total=total)
        return lambda n: progress.advance(tid, n)

    app = bootstrap(Settings(database_url=target.url))
    try:
        migrate(app)
        shop = setup_shop(
            app, n_orders, tick=task("customers and catalogue", shop_size(n_orders)[0] * len(SITES))
        )
        marks = _max_ids(app)
    finally:
        app.close()
    copy = target.clone("raw")  # the database before the orders: the baseline starts from the same state
    app = bootstrap(Settings(database_url=target.url))
    try:
        spent, bounds = ingest(
            app,
            generate_orders(n_orders, shop, seed=seed),
            batch=batch,
            tick=task("Retento ingest", n_orders),
        )
        written = {name: count - marks[name] for name, count in _max_ids(app).items()}
        base, rows = baseline(
            target, copy, bounds, marks=marks, tick=task("driver executemany", n_orders)
        )
    finally:
        app.close()
    if rows["orders"] != n_orders or rows != written:
        raise RuntimeError(f"baseline copied {rows}, Retento wrote {written}")
    return Result(target.backend, target.version, n_orders, batch, rows, spent, base)
