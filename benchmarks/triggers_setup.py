"""`retento bench triggers`, shared by its two parts: the 100 triggers, the generated data and events, and the
plain-driver helpers (the baseline inserts, row counts, driver time)."""

from __future__ import annotations

import random
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
from sqlalchemy import event as sa_event, func, insert, select, update
from sqlalchemy.engine.cursor import (
    BufferedRowCursorFetchStrategy,
    CursorFetchStrategy,
    FullyBufferedCursorFetchStrategy,
)
from sqlalchemy.engine.default import DefaultExecutionContext

from benchmarks.targets import Target
from retento.bootstrap import App
from retento.core.bus import Event, SubscriberCursor
from retento.core.changes import ActorType, Source
from retento.core.db.transactions import transaction
from retento.customers.models import Customer
from retento.orders.models import Order, OrderItem
from retento.orders.statuses import STATUSES
from retento.sites import service as sites
from retento.sites.schemas import SiteCreate
from retento.triggers import service as triggers
from retento.triggers.models import Run

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


class DriverTime:
    """Wall time spent inside the database driver: its `execute` / `executemany` (statements with their round
    trips and the server's work), its fetches of their rows (sqlite3 steps a query's rows as they are fetched,
    psycopg converts them then) and its commits, each counted apart (`parts`). Statement time is counted by
    SQLAlchemy's cursor hooks on the engine; fetches and commits by wrapping, while the instance is open, the
    points where SQLAlchemy calls the driver's fetch methods and the engine's dialect's `do_commit`. It
    separates what the statements cost from the Python around them: `seconds`, their sum, is what running the
    same statements with the plain driver would take at least."""

    _FETCHES = ((CursorFetchStrategy, ("fetchone", "fetchmany", "fetchall")),
                (BufferedRowCursorFetchStrategy, ("fetchone", "fetchmany", "fetchall", "_buffer_rows")),
                (FullyBufferedCursorFetchStrategy, ("__init__",)),
                (DefaultExecutionContext, ("fetchall_for_returning",)))
    _open: DriverTime | None = None  # the one instance the fetch wrappers count for

    def __init__(self, engine: Any) -> None:
        assert DriverTime._open is None, "one DriverTime at a time in a process"
        self.parts = {"execute": 0.0, "fetch": 0.0, "commit": 0.0}
        self._engine, self._saved, self._depth = engine, [], [0]
        sa_event.listen(engine, "before_cursor_execute", self._before)
        sa_event.listen(engine, "after_cursor_execute", self._after)
        for cls, names in self._FETCHES:
            for name in names:
                self._wrap(cls, name, "fetch")
        self._wrap(engine.dialect, "do_commit", "commit")
        DriverTime._open = self

    @property
    def seconds(self) -> float:
        return sum(self.parts.values())

    def _wrap(self, owner: Any, name: str, part: str) -> None:
        original = getattr(owner, name)
        parts, clock, depth = self.parts, time.perf_counter, self._depth

        def timed(*args: Any, **kwargs: Any) -> Any:
            if depth[0]:  # called from another counted point (a buffered fetch refilling): counted there
                return original(*args, **kwargs)
            depth[0], t0 = 1, clock()
            try:
                return original(*args, **kwargs)
            finally:
                depth[0] = 0
                parts[part] += clock() - t0

        self._saved.append((owner, name, vars(owner).get(name)))  # None: inherited, or the dialect's class
        setattr(owner, name, timed)

    def _before(self, conn: Any, *_: Any) -> None:
        conn.info["bench_t0"] = time.perf_counter()

    def _after(self, conn: Any, *_: Any) -> None:
        self.parts["execute"] += time.perf_counter() - conn.info.pop("bench_t0")

    def close(self) -> None:
        sa_event.remove(self._engine, "before_cursor_execute", self._before)
        sa_event.remove(self._engine, "after_cursor_execute", self._after)
        for owner, name, original in reversed(self._saved):
            if original is None:
                delattr(owner, name)  # the wrapper goes: the inherited method shows through again
            else:
                setattr(owner, name, original)
        self._saved.clear()
        DriverTime._open = None



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

def setup_data(app: App, n_orders: int, n_triggers: int) -> tuple[int, list[tuple[int, int]]]:
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
    when = random.Random(6)  # creation times over the year before: a shop's orders (all in one instant, the
    # revenue subscriber recomputed that one 15-minute slot from every order on each batch the fired runs touched)
    for start in range(0, n_orders, 10_000):
        rows = []
        for i in range(start, min(n_orders, start + 10_000)):
            total = rnd.choice((900, 4500, 12000, 26000, 48000, 90000))
            rows.append(dict(site_id=site_id, number=f"B{i}", customer_id=rnd.choice(customer_ids),
                             status=rnd.choice(CODES), status_updated_at=CREATED, currency="RUB", items_total=total,
                             discount_total=0, delivery_cost=0, total=total, paid_amount=0,
                             payment_status=rnd.choice(("paid", "not-paid", "paid-3")), custom_fields={}, tags=[],
                             created_at=CREATED - timedelta(minutes=when.randrange(365 * 24 * 60)),
                             updated_at=CREATED))
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


def driver_rows(target: Target, rows: list[dict[str, Any]], columns: tuple[str, ...]) -> list[tuple]:
    """Rows as the driver takes them (SQLite: naive UTC text times, JSON text; PostgreSQL: aware times)."""
    sqlite = target.backend == "sqlite"

    def value(v: Any) -> Any:
        if isinstance(v, datetime):
            return v.replace(tzinfo=None).isoformat(" ", "microseconds") if sqlite else v
        if isinstance(v, dict | list):
            return orjson.dumps(v).decode()
        return v

    return [tuple(value(r.get(c)) for c in columns) for r in rows]


def insert_sql(target: Target, table: str, columns: tuple[str, ...]) -> str:
    mark = "?" if target.backend == "sqlite" else "%s"
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})"


def driver_executemany(target: Target, sql: str, rows: list[tuple], batch: int, tick: Any) -> tuple[float, float]:
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


def row_counts(app: App) -> dict[str, int]:
    with app.engine.connect() as conn:
        return {t: conn.exec_driver_sql(f"SELECT count(*) FROM {t}").scalar_one() for t in WRITTEN}


def skip_other_subscribers(app: App) -> None:
    """Only the trigger engine is measured: other subscribers' cursors move past every event there is."""
    with transaction(app.sessions) as s:
        top = s.scalar(select(func.max(Event.id))) or 0
    for name in app.bus.subscribers:
        if name != "triggers":
            app.bus.dispatch(names=[name], max_batches=0)  # creates the cursor
    with transaction(app.sessions) as s:
        s.execute(update(SubscriberCursor).where(SubscriberCursor.subscriber.not_in(app.bus.cursors_of("triggers")))
                  .values(position=top))


def outcomes_of(app: App, phase: str) -> dict[str, int]:
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
