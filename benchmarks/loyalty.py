"""`retento bench loyalty`: the points ledger at a million members (issue 16), each figure against a plain SQL
insert of the same ledger rows in the same run.

Setup (not timed): a site and its program (5%, two levels, 14 days' returns window, a year's expiry), `n`
customers each a member with one completed order of one line, and that order's `order_status_changed` event,
written with SQLAlchemy Core executemany.
(1) Accrual: the worker's path for the `n` events (`bus.dispatch` of the `loyalty.orders` subscriber, batches of
    500: members looked up, orders read, points computed, one insert of operations and one of lots, levels
    reviewed). Baseline: the same operation and lot rows (computed beforehand) inserted with the plain driver
    (`sqlite3` / psycopg executemany), 500 orders a transaction, in a copy of the database taken before (1).
(2) Expiry: a year and a month later, the worker's expiry run (`runs.expire_in_parts`: parts of 100,000 account
    ids, two at once on PostgreSQL) burns every lot: one `expiry` operation per account. Baseline: the same rows
    inserted with the plain driver in one transaction, in a copy taken after (1).
(3) A single charge through the API: `charges` sequential `POST /api/v1/loyalty/accounts/{id}/charge` (one
    point, each its own idempotency key) against `retento serve`'s app in its own process, round robin over 100
    members with a fresh credit; latency per request at the client. Baseline: the same charge as plain SQL
    (lock the account, insert the operation and the move, commit) through the driver.
Goals: accrual within 3x of its baseline; expiry over 1,000,000 accounts < 10 s on PostgreSQL; charge p99 < 20 ms.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import func, insert, select, text

from benchmarks.api import free_port, percentile, start_server
from benchmarks.targets import Target
from retento.apikeys import service as apikeys
from retento.bootstrap import bootstrap, configure_process, settle_process
from retento.core.bus import Event
from retento.core.changes import ChangeContext, Source
from retento.core.config import Settings
from retento.core.db.transactions import transaction
from retento.customers.models import Customer
from retento.loyalty import events as ev, runs, service
from retento.loyalty.models import Account, Lot, Program
from retento.loyalty.schemas import ProgramIn, ProgramSettings
from retento.migrate import migrate
from retento.orders.models import Order, OrderItem
from retento.sites import service as sites
from retento.sites.schemas import SiteCreate

NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)
SETTINGS = ProgramSettings(percent=Decimal(5), activation_days=14, expiry_days=365,
                           levels=[{"code": "silver", "name": "Silver", "threshold": 0, "percent": 5},
                                   {"code": "gold", "name": "Gold", "threshold": 100000, "percent": 10}])
CHUNK = 20_000
BATCH = 500


@dataclass
class Result:
    version: str
    n: int
    accrual_s: float = 0.0
    accrual_base_s: float = 0.0
    expiry_s: float = 0.0
    expiry_base_s: float = 0.0
    expired: int = 0
    charge_ms: list[float] = field(default_factory=list)
    charge_base_ms: list[float] = field(default_factory=list)
    analyzes: int = 0  # PostgreSQL with autovacuum off: the ANALYZEs timed in the accrual (`_AutoAnalyze`)
    analyze_s: float = 0.0

    def p(self, values: list[float], q: float) -> float:
        return percentile(values, q)


def price(i: int) -> Decimal:
    return Decimal(500 + (i * 7919) % 9500)


def setup(target: Target, n: int, progress: Any) -> None:
    app = bootstrap(Settings(database_url=target.url))
    migrate(app)
    with transaction(app.sessions) as s:
        site_id = sites.create_site(s, data=SiteCreate(code="bench", name="Bench"), now=NOW).id
        program = service.set_program(s, site="bench", data=ProgramIn(name="Club", currency="RUB", settings=SETTINGS),
                                      now=NOW - timedelta(days=30))
        program_id = program.id
    task = progress.add_task(f"{target.backend}: members and orders", total=n)
    ts = NOW - timedelta(days=1)
    with app.engine.begin() as c:
        for start in range(1, n + 1, CHUNK):
            ids = range(start, min(n, start + CHUNK - 1) + 1)
            c.execute(insert(Customer.__table__), [
                {"id": i, "site_id": site_id, "personal_dates": {}, "custom_fields": {}, "email_confirmed": False,
                 "created_at": ts, "updated_at": ts} for i in ids])
            c.execute(insert(Account.__table__), [
                {"id": i, "program_id": program_id, "site_id": site_id, "customer_id": i, "status": "active",
                 "level": "silver", "joined_at": ts, "updated_at": ts} for i in ids])
            c.execute(insert(Order.__table__), [
                {"id": i, "site_id": site_id, "customer_id": i, "number": str(i), "status": "complete",
                 "status_updated_at": NOW, "currency": "RUB", "items_total": price(i), "discount_total": 0,
                 "delivery_cost": 0, "total": price(i), "paid_amount": price(i), "custom_fields": {}, "tags": [],
                 "created_at": ts, "updated_at": NOW} for i in ids])
            c.execute(insert(OrderItem.__table__), [
                {"id": i, "order_id": i, "name": "Item", "kind": "product", "quantity": 1, "price": price(i),
                 "discount": 0, "category": "Shoes"} for i in ids])
            c.execute(insert(Event.__table__), [
                {"id": i, "type": "order_status_changed", "occurred_at": NOW, "payload": {"new": "complete"},
                 "source": "api", "actor_type": "system", "depth": 0, "site_id": site_id, "customer_id": i,
                 "order_id": i} for i in ids])
            progress.update(task, completed=ids[-1])
        if target.backend == "postgres":  # explicit ids: the sequences (and the events' settled id) move past them
            for table in ("customers", "loyalty_accounts", "orders", "order_items", "events"):
                c.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {n})"))
    app.close()


class _AutoAnalyze:
    """PostgreSQL with `autovacuum = off` (the bench machine): what autovacuum's analyze does on a default server
    for the ledger tables the accrual fills, an ANALYZE of operations and lots whenever the rows written since the
    last one pass 50 + 10% of the rows then (`autovacuum_analyze_threshold` / `_scale_factor`). Run inside the
    timed accrual, so its cost counts on Retento's side (autovacuum would spend it in a process of its own)."""

    def __init__(self, target: Target) -> None:
        self.conn, self.count, self.took = None, 0, 0.0
        if target.backend != "postgres":
            return
        self._raw = target.raw()
        self.conn = self._raw.__enter__()
        self.conn.autocommit = True
        if self.conn.execute("SHOW autovacuum").fetchone()[0] == "on":
            self.close()
            return
        self.rows = self.conn.execute("SELECT COUNT(*) FROM loyalty_operations").fetchone()[0]
        self.since = 0

    def written(self, orders: int) -> None:
        if self.conn is None:
            return
        self.since += orders
        if self.since > 50 + self.rows // 10:
            started = time.perf_counter()
            self.conn.execute("ANALYZE loyalty_operations, loyalty_lots")
            self.took += time.perf_counter() - started
            self.count += 1
            self.rows, self.since = self.rows + self.since, 0

    def close(self) -> None:
        if self.conn is not None:
            self._raw.__exit__(None, None, None)
            self.conn = None


def accrual(target: Target, n: int, progress: Any, result: Result | None = None) -> float:
    """The worker's path: its process settings (`configure_process`), the app built, the subscriber's cursor made
    and the GC settled (`settle_process`) as `retento worker` does before it takes events, then every batch."""
    settings = Settings(database_url=target.url)
    configure_process(settings)
    app = bootstrap(settings)
    app.bus.dispatch(names=[ev.SUBSCRIBER], max_batches=0)
    settle_process()
    task = progress.add_task(f"{target.backend}: accrual (Retento)", total=n)
    autoanalyze = _AutoAnalyze(target)
    started = time.perf_counter()
    while done := app.bus.dispatch(names=[ev.SUBSCRIBER], max_batches=10):
        progress.advance(task, done)
        autoanalyze.written(done)
    took = time.perf_counter() - started
    autoanalyze.close()
    if result is not None and autoanalyze.count:
        result.analyzes, result.analyze_s = autoanalyze.count, autoanalyze.took
    with transaction(app.sessions) as s:
        made = s.scalar(select(func.count()).select_from(Lot).where(Lot.order_id.is_not(None)))
    app.close()
    if made != n:
        raise RuntimeError(f"accrual made {made} lots for {n} orders")
    return took


def _ts(target: Target, value: datetime) -> Any:
    return f"{value.replace(tzinfo=None):%Y-%m-%d %H:%M:%S.%f}" if target.backend == "sqlite" else value


def _num(target: Target, value: Decimal) -> Any:
    return str(value) if target.backend == "sqlite" else value


def accrual_baseline(target: Target, n: int, progress: Any) -> float:
    """The operation and lot rows (1) writes, computed before the clock starts, inserted with the driver."""
    ph = "?" if target.backend == "sqlite" else "%s"
    op_sql = (f"INSERT INTO loyalty_operations (id, account_id, site_id, kind, amount, purchase, order_id, details, "
              f"idempotency_key, source, actor_type, created_at) VALUES ({', '.join([ph] * 12)})")
    lot_sql = (f"INSERT INTO loyalty_lots (account_id, site_id, operation_id, order_id, amount, active_from, "
               f"expires_at, created_at) VALUES ({', '.join([ph] * 8)})")
    with target.raw() as conn:
        first = conn.execute("SELECT COALESCE(MAX(id), 0) FROM loyalty_operations").fetchone()[0] + 1
        site_id = conn.execute("SELECT id FROM sites").fetchone()[0]
    active, burns = NOW + timedelta(days=14), NOW + timedelta(days=14 + 365)
    chunks = []
    for start in range(1, n + 1, BATCH):
        ops, lots = [], []
        for i in range(start, min(n, start + BATCH - 1) + 1):
            points = (price(i) * 5 / 100).quantize(Decimal("0.01"))
            details = json.dumps({"order_sum": f"{price(i)}.00", "percent": "5", "level": "silver", "multipliers": [],
                                  "at": NOW.isoformat()})
            op_id = first + i - 1
            ops.append((op_id, i, site_id, "accrual", _num(target, points), _num(target, price(i)), i, details,
                        f"event:{i}:accrual", "api", "system", _ts(target, NOW)))
            lots.append((i, site_id, op_id, i, _num(target, points), _ts(target, active), _ts(target, burns),
                         _ts(target, NOW)))
        chunks.append((ops, lots))
    task = progress.add_task(f"{target.backend}: accrual (plain SQL)", total=n)
    with target.raw() as conn:
        started = time.perf_counter()
        for ops, lots in chunks:
            if target.backend == "sqlite":
                conn.execute("BEGIN")
                conn.executemany(op_sql, ops)
                conn.executemany(lot_sql, lots)
                conn.execute("COMMIT")
            else:
                with conn.transaction(), conn.cursor() as cur:
                    cur.executemany(op_sql, ops)
                    cur.executemany(lot_sql, lots)
            progress.advance(task, len(ops))
        return time.perf_counter() - started


LATER = NOW + timedelta(days=14 + 365 + 31)


def _settled(target: Target) -> None:
    """PostgreSQL: the copy just made of the database (`CREATE DATABASE ... TEMPLATE`) written out before the clock
    starts, so neither side of a pair pays for the other's copy."""
    if target.backend == "postgres":
        with target.raw() as conn:
            conn.autocommit = True
            conn.execute("CHECKPOINT")


def expiry(target: Target) -> tuple[float, int]:
    """The worker's expiry run (`runs.expire_in_parts` with the default settings' parts and connections)."""
    _settled(target)
    settings = Settings(database_url=target.url)
    app = bootstrap(settings)
    with transaction(app.sessions) as s:
        program_id = s.scalars(select(Program.id)).one()
    started = time.perf_counter()
    count = runs.expire_in_parts(app.sessions, program_id=program_id, now=LATER, part=settings.loyalty_expiry_part,
                                 connections=settings.loyalty_expiry_connections)
    took = time.perf_counter() - started
    app.close()
    return took, count


def expiry_baseline(target: Target) -> float:
    """The expiry operations (2) writes, read beforehand, inserted with the driver in one transaction."""
    ph = "?" if target.backend == "sqlite" else "%s"
    _settled(target)
    with target.raw() as conn:
        first = conn.execute("SELECT COALESCE(MAX(id), 0) FROM loyalty_operations").fetchone()[0] + 1
        lots = conn.execute("SELECT id, account_id, site_id, amount FROM loyalty_lots ORDER BY id").fetchall()
        ops = []
        for n, (_, account_id, site_id, amount) in enumerate(lots):
            ops.append((first + n, account_id, site_id, "expiry", _num(target, -Decimal(str(amount))),
                        _num(target, Decimal(0)), "expired", f"expiry:{LATER.isoformat()}", "system", "system",
                        _ts(target, LATER)))
        op_sql = (f"INSERT INTO loyalty_operations (id, account_id, site_id, kind, amount, purchase, reason, "
                  f"idempotency_key, source, actor_type, created_at) VALUES ({', '.join([ph] * 11)})")
        started = time.perf_counter()
        if target.backend == "sqlite":
            conn.execute("BEGIN")
            conn.executemany(op_sql, ops)
            conn.execute("COMMIT")
        else:
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(op_sql, ops)
        return time.perf_counter() - started


def charges(target: Target, count: int, progress: Any) -> list[float]:
    """Latency (ms) of `count` single charges through the API, after 50 not counted."""
    app = bootstrap(Settings(database_url=target.url))
    real = datetime.now(timezone.utc)
    with transaction(app.sessions) as s:
        _, raw = apikeys.create(s, name="bench", scopes="all", now=real)
        for account_id in range(1, 101):
            service.credit(s, account_id=account_id, amount=Decimal(count), reason="bench",
                           idempotency_key=f"b{account_id}", ctx=ChangeContext.system(Source.SYSTEM), now=real)
    app.close()
    port = free_port()
    server = start_server(target, port, wait=300)  # a loaded shared machine starts it slowly
    task = progress.add_task(f"{target.backend}: charges through the API", total=count + 50)
    out = []
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": raw}, timeout=30) as http:
            for i in range(count + 50):
                started = time.perf_counter()
                r = http.post(f"/api/v1/loyalty/accounts/{i % 100 + 1}/charge",
                              json={"amount": "1", "reason": "bench", "idempotency_key": f"c{i}"})
                took = (time.perf_counter() - started) * 1000
                if r.status_code != 201:
                    raise RuntimeError(f"charge answered {r.status_code}: {r.text}")
                if i >= 50:
                    out.append(took)
                progress.advance(task)
    finally:
        server.terminate()
        server.wait(timeout=30)
    return out


def charges_baseline(target: Target, count: int) -> list[float]:
    """The same charge as plain SQL: lock the account (PostgreSQL), insert the operation and one move, commit."""
    ph = "?" if target.backend == "sqlite" else "%s"
    out = []
    with target.raw() as conn:
        lot = {a: lot_id for lot_id, a in conn.execute(
            "SELECT MAX(id), account_id FROM loyalty_lots WHERE account_id <= 100 GROUP BY account_id").fetchall()}
        first = conn.execute("SELECT COALESCE(MAX(id), 0) FROM loyalty_operations").fetchone()[0] + 1
        real = datetime.now(timezone.utc)
        for i in range(count):
            account = i % 100 + 1
            started = time.perf_counter()
            op = (first + i, account, 1, "charge", _num(target, Decimal(-1)), _num(target, Decimal(0)), "bench",
                  f"base:{i}", "api", "api_key", _ts(target, real))
            op_sql = (f"INSERT INTO loyalty_operations (id, account_id, site_id, kind, amount, purchase, reason, "
                      f"idempotency_key, source, actor_type, created_at) VALUES ({', '.join([ph] * 11)})")
            move_sql = (f"INSERT INTO loyalty_moves (lot_id, operation_id, account_id, site_id, amount) "
                        f"VALUES ({', '.join([ph] * 5)})")
            move = (lot[account], first + i, account, 1, _num(target, Decimal(-1)))
            if target.backend == "sqlite":
                conn.execute("BEGIN IMMEDIATE")
                conn.execute(op_sql, op)
                conn.execute(move_sql, move)
                conn.execute("COMMIT")
            else:
                with conn.transaction():
                    conn.execute(f"SELECT id FROM loyalty_accounts WHERE id = {ph} FOR UPDATE", (account,))
                    conn.execute(op_sql, op)
                    conn.execute(move_sql, move)
            out.append((time.perf_counter() - started) * 1000)
    return out


def run(target: Target, *, n: int, charge_count: int, progress: Any, build: bool = True) -> Result:
    """The three measures on `target`, after building its `n` members and orders (`build`), or on the ones it
    holds (then `n` is their number)."""
    if build:
        setup(target, n, progress)
    else:  # kept data: brought to the current schema first (not measured)
        app = bootstrap(Settings(database_url=target.url))
        migrate(app)
        app.close()
        with target.raw() as conn:
            n = conn.execute("SELECT COUNT(*) FROM orders").fetchone()[0]
    target.analyze()  # both sides of each pair start from the same statistics
    result = Result(target.version, n)
    before = target.clone("before")
    result.accrual_s = accrual(target, n, progress, result)
    after = target.clone("after")
    result.expiry_s, result.expired = expiry(target)
    result.accrual_base_s = accrual_baseline(before, n, progress)
    result.expiry_base_s = expiry_baseline(after)
    result.charge_ms = charges(target, charge_count, progress)
    result.charge_base_ms = charges_baseline(target, charge_count)
    return result
