"""`retento bench triggers`: the trigger engine under 100 active triggers, and delayed runs falling due.

(1) Evaluation: `events` generated events (a mix of order and customer events, custom events and
    subscriptions) are inserted with the plain driver (`sqlite3` / psycopg `executemany`, one transaction per
    bus batch): that insert is the baseline, timed. Then the trigger subscriber of the bus evaluates them,
    timed from the first batch to the last: every listening trigger's condition is checked on fresh data,
    matching immediate triggers act (tags, tasks, through the services, which record history and new events
    that are evaluated in turn), delayed ones schedule a timer, every evaluation leaves a run-log row.
(2) Fire lag: `timers` pending timers with due times spread at `rate` per second, starting two seconds after the
    worker starts: the runs part (1) scheduled (their condition held on the event), the rest inserted with the
    driver for the delayed triggers on events of the types they listen to (not timed). The real worker loop
    (`Worker.run`, every job) runs on a clock that advances with wall time. Lag of a timer = wall-clock
    time of the commit that marked it done / skipped / cancelled minus its due time.
Setup (site, customers, orders with items, triggers) is written before timing and is not timed.
"""

from __future__ import annotations

import math
import multiprocessing
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from queue import Empty
from typing import Any

import orjson
from sqlalchemy import event as sa_event, func, insert, select, update

from benchmarks.targets import Target
from retento.bootstrap import App, bootstrap
from retento.core.bus import Event, SubscriberCursor
from retento.core.changes import ActorType, Source
from retento.core.clock import FrozenClock
from retento.core.config import Settings
from retento.core.db.transactions import transaction
from retento.customers.models import Customer
from retento.migrate import migrate
from retento.orders.models import Order, OrderItem
from retento.orders.statuses import STATUSES
from retento.sites import service as sites
from retento.sites.schemas import SiteCreate
from retento.triggers import service as triggers, timers
from retento.triggers.models import Run, Timer
from retento.triggers.wiring import engine_of

CREATED = datetime(2026, 3, 1, tzinfo=timezone.utc)  # the triggers exist from here on
OCCURRED = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)  # the events happen from here on
EVAL_NOW = OCCURRED + timedelta(hours=1)  # the evaluation's frozen clock
FIRE_START = datetime(2026, 3, 2, 0, 0, tzinfo=timezone.utc)  # the fire-lag clock starts here (before any
# timer the evaluation part scheduled: those are due 10 minutes after their event at the earliest)
GROUP = {code: group for code, group, *_ in STATUSES}
CODES = [code for code, *_ in STATUSES]
EVENT_MIX = (("order_status_changed", 40), ("order_changed", 20), ("order_created", 10),
             ("customer_changed", 15), ("custom", 10), ("subscribed", 5))
COLUMNS = ("type", "name", "occurred_at", "site_id", "customer_id", "order_id", "payload", "source", "actor_type",
           "actor_id", "depth", "idempotency_key")
WRITTEN = ("trigger_runs", "trigger_timers", "trigger_firings", "events", "history", "tasks")  # rows counted
TIMER_COLUMNS = ("trigger_id", "entity", "entity_id", "customer_id", "order_id", "event_id", "due_at", "state",
                 "created_at")


@dataclass
class Eval:
    """Evaluation of the generated events by `processes` worker processes (a fresh copy of the data each)."""

    processes: int
    events: int  # generated events evaluated (trigger-caused events come on top: `extra_events`)
    extra_events: int
    eval_s: float
    eval_cpu: float  # summed over the processes
    eval_driver_s: float  # summed over the processes: inside the database driver's execute
    written: dict[str, int]  # rows the evaluation added, per table (`WRITTEN`)
    outcomes: dict[str, int]

    @property
    def events_per_s(self) -> float:
        return self.events / self.eval_s

    @property
    def events_per_cpu_s(self) -> float:
        return self.events / self.eval_cpu

    @property
    def rows_per_event(self) -> float:
        return sum(self.written.values()) / self.events

    @property
    def driver_ceiling(self) -> float:
        """Events/s if everything but the driver's statements took no time (the processes' statements running
        side by side): what the statements alone allow."""
        return self.events * self.processes / self.eval_driver_s if self.eval_driver_s else math.inf

    @property
    def of_ceiling(self) -> float:
        return self.events_per_s / self.driver_ceiling


@dataclass
class Result:
    backend: str
    version: str
    triggers: int
    events: int
    evals: list[Eval]
    insert_s: float
    insert_cpu: float
    timers: int
    rate: int
    fire_workers: int
    fire_s: float
    fire_cpu: float
    fire_driver_s: float  # summed over the worker processes
    lags: list[float] = field(repr=False)
    fire_outcomes: dict[str, int] = field(default_factory=dict)

    def ratio(self, ev: Eval) -> float:
        """Evaluation time against the driver insert of the same events."""
        return ev.eval_s / self.insert_s

    def lag(self, q: float) -> float:
        ordered = sorted(self.lags)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


class DriverTime:
    """Wall time spent inside the database driver's `execute` / `executemany` (statements with their round trips
    and the server's work, rows fetched by the driver; not commits), counted by SQLAlchemy cursor hooks on an
    engine. It separates what the statements cost from the Python around them."""

    def __init__(self, engine: Any) -> None:
        self.seconds, self._engine = 0.0, engine
        sa_event.listen(engine, "before_cursor_execute", self._before)
        sa_event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, conn: Any, *_: Any) -> None:
        conn.info["bench_t0"] = time.perf_counter()

    def _after(self, conn: Any, *_: Any) -> None:
        self.seconds += time.perf_counter() - conn.info.pop("bench_t0")

    def close(self) -> None:
        sa_event.remove(self._engine, "before_cursor_execute", self._before)
        sa_event.remove(self._engine, "after_cursor_execute", self._after)


class WallClock:
    """A clock that reads `at` at the wall time `epoch` (`time.time()`, the same in every worker process) and
    then advances with wall time."""

    def __init__(self, at: datetime, epoch: float) -> None:
        self._at, self._epoch = at, epoch

    def now(self) -> datetime:
        return self._at + timedelta(seconds=time.time() - self._epoch)


# --- the 100 triggers ------------------------------------------------------------------------------------------

def trigger_definitions(n: int = 100) -> list[dict[str, Any]]:
    """`n` triggers in the shape of the templates: courier rule, review request, robots, tags, reminders."""
    out: list[dict[str, Any]] = []
    for k in range(n):
        s = CODES[k % len(CODES)]
        kind = k % 8
        name = f"bench-{k}"
        if kind == 0:  # the 17-minute rule
            out.append({"name": name, "events": ["order_status_changed"],
                        "condition": f'new_value("status") == "{s}" && order.status == "{s}"',
                        "delay": {"minutes": 17 + k}, "on_change": {"policy": "cancel", "fields": ["status"]},
                        "actions": [{"type": "create_task", "title": "Order {order.number} waits",
                                     "assignee": None}, {"type": "add_tag", "target": "order", "tag": f"wait-{k}"}]})
        elif kind == 1:  # review request
            out.append({"name": name, "events": ["order_status_changed"],
                        "condition": f'new_value("status") == "{s}" && !in_status_group(order, "cancel")',
                        "delay": {"days": 1 + k % 5}, "limits": [{"per": "order", "max": 1}],
                        "actions": [{"type": "create_task", "title": "Ask for a review of {order.number}",
                                     "assignee": None}]})
        elif kind == 2:  # tag big orders reaching a status
            out.append({"name": name, "events": ["order_status_changed"],
                        "condition": f'new_value("status") == "{s}" && order.total > {20000 + 500 * k}.0 '
                                     '&& source_is_not("trigger")',
                        "actions": [{"type": "add_tag", "target": "order", "tag": f"big-{k}"}]})
        elif kind == 3:  # order robot
            out.append({"name": name, "events": ["order_created", "order_changed"],
                        "condition": f'order.status == "new" && order.payment_status == "paid-{k}" '
                                     f'&& order.total <= 50000.0 && size(order.items) > 0',
                        "limits": [{"per": "order", "max": 1}],
                        "actions": [{"type": "set_order_status", "status": "client-confirmed"},
                                    {"type": "add_tag", "target": "order", "tag": "robot"}]})
        elif kind == 4:  # changes of an order
            out.append({"name": name, "events": ["order_changed"],
                        "condition": f'changed("total") && new_value("total") > {30000 + 1000 * k}.0 '
                                     f'&& !has_tag(order, "big-{k}")',
                        "actions": [{"type": "add_tag", "target": "order", "tag": f"grown-{k}"}]})
        elif kind == 5:  # customer changes
            out.append({"name": name, "events": ["customer_changed"],
                        "condition": f'changed("email") && has_tag(customer, "vip-{k % 3}") '
                                     '&& source_is_not("import")',
                        "actions": [{"type": "add_tag", "target": "customer", "tag": f"email-changed-{k}"}]})
        elif kind == 6:  # abandoned cart reminder
            out.append({"name": name, "event_names": ["cart_abandoned"], "events": ["custom"],
                        "condition": f'event.data.amount > {1000 * (k % 10)}.0 && customer.email != null '
                                     '&& days_since(customer.created_at) > 1',
                        "delay": {"hours": 2 + k % 3},
                        "actions": [{"type": "create_task", "title": "Cart of {customer.email}",
                                     "assignee": "customer_manager"}]})
        else:  # welcome after subscribing, at 10:00 local time
            out.append({"name": name, "events": ["subscribed"],
                        "condition": f'event.data.channel == "{("email", "sms", "push")[k % 3]}"',
                        "delay": {"days": 1, "at": "10:00"},
                        "actions": [{"type": "add_tag", "target": "customer", "tag": "welcome"}]})
    return out


# --- data ------------------------------------------------------------------------------------------------------

def _setup(app: App, n_orders: int, n_triggers: int) -> tuple[int, list[tuple[int, int]]]:
    """A site, customers, orders with items and the triggers; returns (site id, [(order id, customer id)])."""
    rnd = random.Random(5)
    with transaction(app.sessions) as s:
        site_id = sites.create_site(s, data=SiteCreate(code="bench", name="Bench"), now=CREATED).id
        for raw in trigger_definitions(n_triggers):
            triggers.create_trigger(s, raw=raw, now=CREATED)
    n_customers = max(10, n_orders // 2)
    cols = dict(site_id=site_id, created_at=CREATED - timedelta(days=30), updated_at=CREATED, personal_dates={},
                custom_fields={}, email_confirmed=False)
    for start in range(0, n_customers, 20_000):
        with transaction(app.sessions) as s:
            s.execute(insert(Customer), [{**cols, "first_name": "Анна", "email": f"c{i}@example.com"}
                                         for i in range(start, min(n_customers, start + 20_000))])
    with transaction(app.sessions) as s:
        customer_ids = list(s.scalars(select(Customer.id).order_by(Customer.id)))
    for start in range(0, n_orders, 10_000):
        rows = []
        for i in range(start, min(n_orders, start + 10_000)):
            total = rnd.choice((900, 4500, 12000, 26000, 48000, 90000))
            rows.append(dict(site_id=site_id, number=f"B{i}", customer_id=rnd.choice(customer_ids),
                             status=rnd.choice(CODES), status_updated_at=CREATED, currency="RUB", items_total=total,
                             discount_total=0, delivery_cost=0, total=total, paid_amount=0,
                             payment_status=rnd.choice(("paid", "not-paid", "paid-3")), custom_fields={}, tags=[],
                             created_at=CREATED, updated_at=CREATED))
        with transaction(app.sessions) as s:
            first = (s.scalar(select(func.max(Order.id))) or 0) + 1
            s.execute(insert(Order), rows)
            s.execute(insert(OrderItem), [dict(order_id=first + j, name="Товар", kind="product", quantity=1,
                                               price=r["total"], discount=0) for j, r in enumerate(rows)])
    with transaction(app.sessions) as s:
        return site_id, [tuple(r) for r in s.execute(select(Order.id, Order.customer_id).order_by(Order.id))]


def generate_events(n: int, site_id: int, orders: list[tuple[int, int]], *, seed: int = 11) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    kinds = [k for k, w in EVENT_MIX for _ in range(w)]
    out = []
    for i in range(n):
        kind = rnd.choice(kinds)
        order_id, customer_id = rnd.choice(orders)
        name, payload = None, {}
        if kind == "order_status_changed":
            old, new = rnd.choice(CODES), rnd.choice(CODES)
            payload = {"old": old, "new": new, "old_group": GROUP[old], "new_group": GROUP[new]}
        elif kind == "order_changed":
            fld = rnd.choice(("total", "manager_comment", "delivery_date", "payment_status"))
            new_value: Any = rnd.choice((5000.0, 35000.0, 70000.0)) if fld == "total" else f"v{i % 7}"
            payload = {"changes": [{"field": fld, "old": None, "new": new_value}]}
        elif kind == "order_created":
            payload = {"number": f"B{order_id}", "status": "new", "total": "4500.00", "currency": "RUB"}
        elif kind == "customer_changed":
            fld = rnd.choice(("email", "phone", "first_name"))
            payload = {"changes": [{"field": fld, "old": None, "new": f"x{i}"}]}
        elif kind == "custom":
            name, payload = rnd.choice(("cart_abandoned", "product_viewed")), {"amount": rnd.randrange(20000)}
        else:
            payload = {"channel": rnd.choice(("email", "sms", "push")), "source": "form"}
        if kind.startswith("customer") or kind in ("custom", "subscribed"):
            order_id = None
        out.append({"type": kind, "name": name, "occurred_at": OCCURRED + timedelta(milliseconds=i),
                    "site_id": site_id, "customer_id": customer_id, "order_id": order_id, "payload": payload,
                    "source": rnd.choice((Source.API.value, Source.USER.value, Source.IMPORT.value)),
                    "actor_type": ActorType.SYSTEM.value, "actor_id": None, "depth": 0, "idempotency_key": None})
    return out


def _driver_rows(target: Target, rows: list[dict[str, Any]], columns: tuple[str, ...]) -> list[tuple]:
    """Rows as the driver takes them (SQLite: naive UTC text times, JSON text; PostgreSQL: aware times)."""
    sqlite = target.backend == "sqlite"

    def value(v: Any) -> Any:
        if isinstance(v, datetime):
            return v.replace(tzinfo=None).isoformat(" ", "microseconds") if sqlite else v
        if isinstance(v, dict | list):
            return orjson.dumps(v).decode()
        return v

    return [tuple(value(r.get(c)) for c in columns) for r in rows]


def _insert_sql(target: Target, table: str, columns: tuple[str, ...]) -> str:
    mark = "?" if target.backend == "sqlite" else "%s"
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})"


def _driver_executemany(target: Target, sql: str, rows: list[tuple], batch: int, tick: Any) -> tuple[float, float]:
    """executemany in transactions of `batch` rows; returns (wall s, CPU s)."""
    with target.raw() as conn:
        wall, cpu = time.perf_counter(), time.process_time()
        for i in range(0, len(rows), batch):
            if target.backend == "sqlite":
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(sql, rows[i:i + batch])
                conn.execute("COMMIT")
            else:
                with conn.cursor() as cur:
                    cur.executemany(sql, rows[i:i + batch])
                conn.commit()
            tick(len(rows[i:i + batch]))
        return time.perf_counter() - wall, time.process_time() - cpu


def _row_counts(app: App) -> dict[str, int]:
    with app.engine.connect() as conn:
        return {t: conn.exec_driver_sql(f"SELECT count(*) FROM {t}").scalar_one() for t in WRITTEN}


def _skip_other_subscribers(app: App) -> None:
    """Only the trigger engine is measured: other subscribers' cursors move past every event there is."""
    with transaction(app.sessions) as s:
        top = s.scalar(select(func.max(Event.id))) or 0
    for name in app.bus.subscribers:
        if name != "triggers":
            app.bus.dispatch(names=[name], max_batches=0)  # creates the cursor
    with transaction(app.sessions) as s:
        s.execute(update(SubscriberCursor).where(SubscriberCursor.subscriber.not_in(app.bus.cursors_of("triggers")))
                  .values(position=top))


def _outcomes(app: App, phase: str) -> dict[str, int]:
    """Outcomes per trigger and event (an event's shared row counts once per trigger it names)."""
    with transaction(app.sessions) as s:
        q = (select(Run.outcome, func.count()).where(Run.phase == phase, Run.trigger_id.is_not(None))
             .group_by(Run.outcome))
        out = {outcome: count for outcome, count in s.execute(q)}
        for misses, scheduled in s.execute(select(Run.misses, Run.scheduled).where(Run.phase == phase,
                                                                                   Run.trigger_id.is_(None))):
            for outcome, entries in (("not_matched", misses), ("scheduled", scheduled)):
                if entries:
                    out[outcome] = out.get(outcome, 0) + len(entries)
        return dict(sorted(out.items()))


# --- (1) evaluation --------------------------------------------------------------------------------------------

def evaluate(target: Target, *, n_events: int, n_triggers: int, progress: Any,
             processes: tuple[int, ...] = (1,)) -> tuple[dict[str, Any], list[Eval]]:
    """Set up, time the driver insert of the events, then evaluate them with each number of worker `processes`
    on a copy of the same database (the first number on `target` itself, which part (2) then uses)."""
    settings = Settings(database_url=target.url)
    app = bootstrap(settings, clock=FrozenClock(EVAL_NOW))
    try:
        migrate(app)
        setup = progress.add_task(f"{target.backend}: customers, orders, {n_triggers} triggers", total=None)
        site_id, orders = _setup(app, max(100, n_events // 10), n_triggers)
        progress.update(setup, total=1, completed=1)
        rows = _driver_rows(target, generate_events(n_events, site_id, orders), COLUMNS)
        task = progress.add_task(f"{target.backend}: driver insert of {n_events:,} events", total=n_events)
        insert_s, insert_cpu = _driver_executemany(target, _insert_sql(target, "events", COLUMNS), rows,
                                                   settings.event_batch_size, lambda k: progress.advance(task, k))
        del rows
        _skip_other_subscribers(app)
        before = _row_counts(app)
    finally:
        app.close()
    copies = [target] + [target.clone(f"p{k}") for k in processes[1:]]
    evals = []
    for k, copy in zip(processes, copies, strict=True):
        task = progress.add_task(f"{target.backend}: evaluating {n_events:,} events, {k} worker "
                                 f"process{'es' if k > 1 else ''}", total=n_events)
        wall, cpu, driver_s = _eval_processes(copy.url, k, lambda n, t=task: progress.advance(t, n))
        app = bootstrap(Settings(database_url=copy.url), clock=FrozenClock(EVAL_NOW))
        try:
            after = _row_counts(app)
            evals.append(Eval(k, n_events, after["events"] - before["events"], wall, cpu, driver_s,
                              {t: after[t] - before[t] for t in WRITTEN}, _outcomes(app, "event")))
        finally:
            app.close()
    return {"events": n_events, "insert_s": insert_s, "insert_cpu": insert_cpu, "orders": orders}, evals


def _eval_processes(url: str, processes: int, tick: Any) -> tuple[float, float, float]:
    """`processes` spawned worker processes (each its own engine) dispatch the trigger subscriber's events
    until every partition has caught up with the last event. Returns (wall s from the shared start to the last
    process done, CPU s and driver s summed over the processes)."""
    ctx = multiprocessing.get_context("spawn")
    queue, go = ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=_eval_process, args=(url, go, queue), daemon=True) for _ in range(processes)]
    for p in procs:
        p.start()
    ready, finished, cpu, driver_s = 0, 0, 0.0, 0.0
    try:
        while ready < processes:
            kind, *data = queue.get(timeout=120)
            if kind == "error":
                raise RuntimeError(f"evaluation bench: a worker process failed: {data[0]}")
            ready += kind == "ready"
        start = time.perf_counter()
        go.set()
        while finished < processes:
            kind, *data = queue.get(timeout=600)
            if kind == "done":
                tick(data[0])
            elif kind == "end":
                finished += 1
                cpu += data[0]
                driver_s += data[1]
                wall = time.perf_counter() - start
            elif kind == "error":
                raise RuntimeError(f"evaluation bench: a worker process failed: {data[0]}")
        return wall, cpu, driver_s
    finally:
        go.set()
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()


def _eval_process(url: str, go: Any, queue: Any) -> None:
    try:
        app = bootstrap(Settings(database_url=url), clock=FrozenClock(EVAL_NOW))
        try:
            app.bus.dispatch(names=["triggers"], max_batches=0)  # the cursors exist before the clock starts
            with transaction(app.sessions) as s:  # triggers compiled before too (as a running worker has them)
                engine_of(app).triggers(s)
            queue.put(("ready",))
            go.wait()
            driver, cpu = DriverTime(app.engine), time.process_time()
            while True:
                done = app.bus.dispatch(names=["triggers"], max_batches=1)
                if done:
                    queue.put(("done", done))
                elif _caught_up(app):
                    break
                else:
                    time.sleep(0.005)  # every partition with work is held by another process
            driver.close()
            queue.put(("end", time.process_time() - cpu, driver.seconds))
        finally:
            app.close()
    except BaseException as exc:  # noqa: BLE001 - tell the parent instead of leaving it waiting
        queue.put(("error", repr(exc)))
        raise


def _caught_up(app: App) -> bool:
    """Every cursor of the trigger subscriber is at the last event (no batch is under way that adds more)."""
    with transaction(app.sessions) as s:
        last = s.scalar(select(func.max(Event.id))) or 0
        lowest = s.scalar(select(func.min(SubscriberCursor.position)).where(
            SubscriberCursor.subscriber.in_(app.bus.cursors_of("triggers"))))
        return lowest is not None and lowest >= last


# --- (2) fire lag ----------------------------------------------------------------------------------------------

def _timer_rows(app: App, n: int, rate: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """n timers due at `rate` per second: the pending runs part (1) scheduled (moved to their slots; their
    condition held on the event, so many act when they fire), and more of the delayed triggers, each on an event
    of a type its trigger listens to. Returns (new rows, moved rows {id, due_at, created_at})."""
    with transaction(app.sessions) as s:
        delayed = [(t.id, t.spec.events[0], t.spec.event_names) for t in engine_of(app).triggers(s).values()
                   if t.spec.delay is not None]
        by_type: dict[tuple[str, str | None], list[tuple[int, int | None, int | None]]] = {}
        for ev_id, typ, name, order_id, customer_id in s.execute(
                select(Event.id, Event.type, Event.name, Event.order_id, Event.customer_id).where(Event.depth == 0)):
            by_type.setdefault((typ, name), []).append((ev_id, order_id, customer_id))
        seen = set(s.execute(select(Timer.trigger_id, Timer.event_id)).tuples())  # scheduled by part (1)
        existing = list(s.scalars(select(Timer.id).where(Timer.state == "pending").order_by(Timer.id).limit(n)))
    start = FIRE_START + timedelta(seconds=2)
    slots = [start + timedelta(seconds=k / rate) for k in range(n)]
    taken = {j * n // len(existing) for j in range(len(existing))} if existing else set()
    moved = [{"due_at": slots[j * n // len(existing)], "created_at": FIRE_START, "id": timer_id}
             for j, timer_id in enumerate(existing)]
    free = [slots[k] for k in range(n) if k not in taken]
    rows: list[dict[str, Any]] = []
    i = 0
    while len(rows) < len(free) and i < 3 * n:
        trigger_id, typ, names = delayed[i % len(delayed)]
        pool = by_type.get((typ, names[0] if names else None)) or []
        i += 1
        if not pool:
            continue
        ev_id, order_id, customer_id = pool[(i // len(delayed)) % len(pool)]
        if (trigger_id, ev_id) in seen:
            continue
        seen.add((trigger_id, ev_id))
        entity, entity_id = ("order", order_id) if order_id is not None else ("customer", customer_id)
        rows.append({"trigger_id": trigger_id, "entity": entity, "entity_id": entity_id, "customer_id": customer_id,
                     "order_id": order_id, "event_id": ev_id, "state": "pending", "created_at": FIRE_START,
                     "due_at": free[len(rows)]})
    return rows, moved


def fire(target: Target, *, n_timers: int, rate: int, progress: Any, workers: int = 1) -> dict[str, Any]:
    """Part (2): `workers` processes (1: this one) each run the real worker loop until every timer is done."""
    setup = bootstrap(Settings(database_url=target.url), clock=FrozenClock(FIRE_START))
    try:
        new, moved = _timer_rows(setup, n_timers, rate)
        _skip_other_subscribers(setup)
    finally:
        setup.close()
    task = progress.add_task(f"{target.backend}: {len(new) + len(moved):,} pending timers ({len(moved):,} "
                             "scheduled by the events)", total=len(new) + len(moved))
    mark = "?" if target.backend == "sqlite" else "%s"
    _driver_executemany(target, _insert_sql(target, "trigger_timers", TIMER_COLUMNS),
                        _driver_rows(target, new, TIMER_COLUMNS), 20_000, lambda k: progress.advance(task, k))
    _driver_executemany(target, f"UPDATE trigger_timers SET due_at = {mark}, created_at = {mark} WHERE id = {mark}",
                        _driver_rows(target, moved, ("due_at", "created_at", "id")), 20_000,
                        lambda k: progress.advance(task, k))
    total = len(new) + len(moved)
    window = (FIRE_START + timedelta(seconds=2), FIRE_START + timedelta(seconds=2 + n_timers / rate))
    task = progress.add_task(f"{target.backend}: firing {total:,} timers at {rate:,}/s, {workers} worker "
                             f"process{'es' if workers > 1 else ''}", total=total)
    tally = _Tally(total, lambda k: progress.advance(task, k))
    guard_s = total / rate + 600  # never hang: give up 10 minutes after the last due time
    if workers == 1:
        stop = threading.Event()
        tally.on_done = stop.set
        guard = threading.Timer(guard_s, stop.set)
        guard.start()
        try:
            epoch = time.time()
            fire_cpu, fire_driver_s = _fire_worker(target.url, window, epoch, stop, tally.add)
            fire_s = time.time() - epoch
        finally:
            guard.cancel()
    else:
        fire_s, fire_cpu, fire_driver_s = _fire_processes(target.url, window, workers, tally, guard_s)
    report = bootstrap(Settings(database_url=target.url), clock=FrozenClock(FIRE_START))
    try:
        outcomes = _outcomes(report, "fire")
        if tally.done < total:  # the run gave up (10 minutes after the last due time): their lag is unbounded
            outcomes["not fired when the run gave up"] = total - tally.done
        return {"timers": total, "rate": rate, "fire_workers": workers, "fire_s": fire_s, "fire_cpu": fire_cpu,
                "fire_driver_s": fire_driver_s, "lags": tally.lags + [math.inf] * (total - tally.done),
                "fire_outcomes": outcomes}
    finally:
        report.close()


class _Tally:
    """Timers done and their lags, from one worker or reported by several."""

    def __init__(self, total: int, tick: Any) -> None:
        self.total, self.tick, self.done, self.lags = total, tick, 0, []
        self.on_done: Any = None

    def add(self, done: int, lags: list[float]) -> None:
        self.done += done
        self.lags += lags
        self.tick(done)
        if self.done >= self.total and self.on_done is not None:
            self.on_done()


def _fire_worker(url: str, window: tuple[datetime, datetime], epoch: float, stop: Any,
                 report: Any) -> tuple[float, float]:
    """One worker (`Worker.run`, every job) on a wall clock that reads FIRE_START at `epoch` (shared by all the
    worker processes); reports (timers done, lags) after each commit that finished some. Returns its (CPU s,
    driver s)."""
    clock = WallClock(FIRE_START, epoch)
    app = bootstrap(Settings(database_url=url, worker_poll_seconds=0.05), clock=clock)
    try:
        watch = _LagWatch(clock, window, report)
        sa_event.listen(app.sessions, "before_commit", watch.before_commit)
        sa_event.listen(app.sessions, "after_commit", watch.after_commit)
        sa_event.listen(app.sessions, "after_rollback", watch.after_rollback)
        driver, cpu = DriverTime(app.engine), time.process_time()
        app.worker.run(stop)
        return time.process_time() - cpu, driver.seconds
    finally:
        app.close()


def _fire_processes(url: str, window: tuple[datetime, datetime], workers: int, tally: _Tally,
                    guard_s: float) -> tuple[float, float, float]:
    """`workers` worker processes (spawned, each with its own engine) started together; their reports come back
    through a queue. Returns (wall s from the shared start to the last timer done, CPU s and driver s of all
    workers)."""
    ctx = multiprocessing.get_context("spawn")
    queue, stop, go = ctx.Queue(), ctx.Event(), ctx.Event()
    epoch = ctx.Value("d", 0.0)
    procs = [ctx.Process(target=_worker_process, args=(url, window, epoch, go, stop, queue), daemon=True)
             for _ in range(workers)]
    for p in procs:
        p.start()
    ready, cpu, driver_s, finished = 0, 0.0, 0.0, 0
    try:
        while ready < workers:
            kind, *data = queue.get(timeout=120)
            if kind == "ready":
                ready += 1
        epoch.value = time.time()
        go.set()
        deadline = epoch.value + guard_s
        while finished < workers:
            try:
                kind, *data = queue.get(timeout=0.5)
            except Empty:
                kind = None
            if kind == "lags":
                tally.add(*data)
                if tally.done >= tally.total:
                    stop.set()
                    fire_s = time.time() - epoch.value
            elif kind == "cpu":
                cpu += data[0]
                driver_s += data[1]
                finished += 1
            elif kind == "error":
                stop.set()
                raise RuntimeError(f"fire-lag bench: a worker process failed: {data[0]}")
            if time.time() > deadline or not any(p.is_alive() for p in procs):
                stop.set()
        if tally.done < tally.total:
            fire_s = time.time() - epoch.value
        return fire_s, cpu, driver_s
    finally:
        stop.set()
        go.set()
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()


def _worker_process(url: str, window: tuple[datetime, datetime], epoch: Any, go: Any, stop: Any,
                    queue: Any) -> None:
    try:
        queue.put(("ready",))
        go.wait()
        queue.put(("cpu", *_fire_worker(url, window, epoch.value, stop,
                                        lambda done, lags: queue.put(("lags", done, lags)))))
    except BaseException as exc:  # noqa: BLE001 - tell the parent instead of leaving it waiting
        queue.put(("error", repr(exc)))
        raise


class _LagWatch:
    """Session hooks: the bench's timers (due within `window`) a transaction finished (`timers.FINISHED`),
    stamped with the commit's wall time. A timer cancelled before it was due (its order changed) counts as done
    but has no lag."""

    def __init__(self, clock: WallClock, window: tuple[datetime, datetime], report: Any) -> None:
        self._clock, (self._lo, self._hi), self._report = clock, window, report
        self._pending: dict[int, dict[int, tuple[datetime, datetime]]] = {}
        self._seen: set[int] = set()

    def before_commit(self, session: Any) -> None:
        finished = {i: (due, at) for i, due, at in session.info.pop(timers.FINISHED, ())
                    if self._lo <= due <= self._hi and i not in self._seen}
        if finished:
            self._pending[id(session)] = finished

    def after_commit(self, session: Any) -> None:
        finished = self._pending.pop(id(session), None)
        if not finished:
            return
        now = self._clock.now()
        self._seen.update(finished)
        self._report(len(finished), [(now - due).total_seconds() for due, at in finished.values() if at >= due])

    def after_rollback(self, session: Any) -> None:
        self._pending.pop(id(session), None)
        session.info.pop(timers.FINISHED, None)


def run(target: Target, *, n_events: int, n_triggers: int, n_timers: int, rate: int, progress: Any,
        fire_workers: int = 1, eval_processes: tuple[int, ...] = (1,)) -> Result:
    ev, evals = evaluate(target, n_events=n_events, n_triggers=n_triggers, progress=progress,
                         processes=eval_processes)
    ev.pop("orders")
    fired = fire(target, n_timers=n_timers, rate=rate, progress=progress, workers=fire_workers) if n_timers else \
        {"timers": 0, "rate": rate, "fire_workers": fire_workers, "fire_s": 0.0, "fire_cpu": 0.0,
         "fire_driver_s": 0.0, "lags": []}
    return Result(target.backend, target.version, n_triggers, evals=evals, **ev, **fired)
