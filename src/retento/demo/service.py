"""Loading the demo shop through the domain services, in time order, so history and events look lived-in.

Time is replayed window by window (a day for older data, an hour for the last weeks): the window's new
customers and orders are created in batches (`customers.service.create_many`, `orders.service.create_many`)
with `now` at the window's latest creation, then the status changes due in it are applied one by one
with `orders.service.edit` at their own past time, by the order's manager (source `user`) or a robot
(source `robot`). Creations carry source `demo`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_DOWN
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from retento.catalog import service as catalog
from retento.catalog.schemas import ProductIn
from retento.core.changes import ActorType, ChangeContext, Source
from retento.core.db.transactions import transaction
from retento.core.errors import DomainError
from retento.customers import service as customers
from retento.customers.models import Customer
from retento.customers.schemas import CustomerCreate
from retento.demo.generator import GROUP, DemoOrder, DemoProgram, Shop, Step
from retento.loyalty import runs as loyalty_runs, service as loyalty
from retento.loyalty.schemas import JoinIn, ProgramIn
from retento.orders import service as orders, snapshots as order_snapshots
from retento.orders.models import Order
from retento.sites import service as sites
from retento.sites.models import Manager, Site
from retento.sites.schemas import ManagerCreate, SiteCreate

CREATED = ChangeContext(Source.DEMO, ActorType.SYSTEM, "demo")
ROBOT = ChangeContext(Source.ROBOT, ActorType.SYSTEM, "demo-robot")
COMMIT_EVERY = 2000  # records and changes per transaction
BATCH = 500  # creations per create_many call
SPAN = timedelta(days=7)  # a batch of creations is recorded at most this long after its first one
RUNS_EVERY = timedelta(days=7)  # the loyalty program's expiry run and level review, replayed weekly


@dataclass
class Loaded:
    customers: int = 0
    orders: int = 0
    changes: int = 0
    members: int = 0
    seconds: float = 0.0


def has_customers(session: Session) -> bool:
    return session.scalar(select(Customer.id).limit(1)) is not None


def load(sessions: sessionmaker[Session], *, shop: Shop, now: datetime,
         on_progress: Callable[[int, int], None] | None = None) -> Loaded:
    """Store the shop; refuses (DomainError) if one of its sites already has customers."""
    started = time.perf_counter()
    with transaction(sessions) as s:
        managers = _reference_data(s, shop, now)
    replay = _Replay(sessions, managers, now, on_progress,
                     total=len(shop.customers) + len(shop.orders) + sum(len(o.steps) for o in shop.orders))
    replay.run(shop)
    for program in shop.loyalty:
        replay.result.members += enrol(sessions, shop=shop, program=program, now=now)
    replay.result.seconds = time.perf_counter() - started
    return replay.result


def _reference_data(s: Session, shop: Shop, now: datetime) -> dict[int, int]:
    """Sites, managers and the catalogue (created or reused); returns manager position -> stored id."""
    since = now - timedelta(days=730)
    have = sites.sites_by_code(s)
    for raw in shop.sites:
        if raw["code"] not in have:
            have[raw["code"]] = sites.create_site(s, data=SiteCreate(**raw), now=since)
    ours = [have[raw["code"]].id for raw in shop.sites]
    if s.scalar(select(Customer.id).where(Customer.site_id.in_(ours)).limit(1)) is not None:
        raise DomainError.one("site", "the demo shop's sites already have customers; load the demo into an empty "
                                      "database (or use --if-empty)")
    by_email = {e: i for i, e in s.execute(select(Manager.id, Manager.email))}
    ids = {}
    for n, raw in enumerate(shop.managers, start=1):
        if raw["email"] not in by_email:
            by_email[raw["email"]] = sites.create_manager(s, data=ManagerCreate(**raw), now=since).id
        ids[n] = by_email[raw["email"]]
    catalog.upsert_many(s, items=[ProductIn(**p) for p in shop.products], now=since)
    return ids


class _Replay:
    """Walks the shop's timeline: creations gather into batches, a status change is applied at its own time.

    A batch is stored (with `now` = its latest creation) before the first change of one of its orders, when
    it spans SPAN or when it is full, so no change is recorded before its order and history ids follow time.
    """

    def __init__(self, sessions: sessionmaker[Session], managers: dict[int, int], now: datetime,
                 on_progress: Callable[[int, int], None] | None, total: int) -> None:
        self.sessions, self.managers, self.now = sessions, managers, now
        self.on_progress, self.total, self.done = on_progress, total, 0
        self.result = Loaded()
        self.ids: dict[int, int] = {}  # id(DemoOrder) -> stored order id
        self.users = {n: ChangeContext(Source.USER, ActorType.USER, str(i)) for n, i in managers.items()}
        self.customers: list[dict[str, Any]] = []
        self.orders: list[DemoOrder] = []
        self.pending: set[int] = set()
        self.first = self.clock = self.clock_before = now  # times on the timeline: batch start, current, previous
        self.unsaved = 0  # records and changes in the open transaction

    @staticmethod
    def timeline(shop: Shop) -> list[tuple[datetime, int, int, Any]]:
        events: list[tuple[datetime, int, int, Any]] = [
            (c["created_at"], 0, n, c) for n, c in enumerate(shop.customers)]
        events += [(o.data["created_at"], 1, n, o) for n, o in enumerate(shop.orders)]
        seq = 0
        for o in shop.orders:
            for step in o.steps:
                seq += 1
                events.append((step.at, 2, seq, (o, step)))
        events.sort(key=lambda e: e[:3])
        return events

    def run(self, shop: Shop) -> None:
        self._tick(0)
        s = self._begin()
        try:
            for at, kind, _, item in self.timeline(shop):
                self.clock_before, self.clock = self.clock, at
                if kind == 2:
                    order, step = item
                    if id(order) in self.pending:
                        self._flush(s)
                    self._change(s, order, step, at)
                else:
                    gathered = len(self.customers) + len(self.orders)
                    if gathered and (gathered >= BATCH or at - self.first > SPAN):
                        self._flush(s)
                        gathered = 0
                    if not gathered:
                        self.first = at
                    (self.customers if kind == 0 else self.orders).append(item)
                    if kind == 1:
                        self.pending.add(id(item))
                if self.unsaved >= COMMIT_EVERY and not self.customers and not self.orders:
                    s.commit()
                    s.close()
                    s = self._begin()
            self._flush(s, final=True)
            s.commit()
        except BaseException:
            s.rollback()
            raise
        finally:
            s.close()
        self._tick(0)

    def _begin(self) -> Session:
        s = self.sessions()
        s.begin()
        s.info["demo_sites"] = list(s.scalars(select(Site)))  # held, so site lookups hit the identity map
        s.info["demo_orders"] = {}
        self.unsaved = 0
        return s

    def _tick(self, n: int) -> None:
        self.done += n
        self.unsaved += n
        if self.on_progress:
            self.on_progress(self.done, self.total)

    def _flush(self, s: Session, *, final: bool = False) -> None:
        """Store the gathered customers, then the gathered orders (which may point at them).

        They are recorded at the time of the last event before the one that made the batch close (the
        batch's newest creation or a later change of another order), so history ids keep following time.
        """
        at = self.clock if final else self.clock_before
        if self.customers:
            items = [_customer_input(self._mapped(c)) for c in self.customers]
            customers.create_many(s, items=items, ctx=CREATED, now=at)
            self.result.customers += len(items)
        if self.orders:
            items = [orders.parse_create(self._mapped(o.data)) for o in self.orders]
            for o, oid in zip(self.orders, orders.create_many(s, items=items, ctx=CREATED, now=at),
                              strict=True):
                self.ids[id(o)] = oid
            self.result.orders += len(items)
        self._tick(len(self.customers) + len(self.orders))
        self.customers, self.orders, self.pending = [], [], set()

    def _change(self, s: Session, order: DemoOrder, step: Step, at: datetime) -> None:
        held = s.info["demo_orders"]
        oid = self.ids[id(order)]
        if oid not in held:
            held[oid] = orders.get(s, oid)
        ctx = self.users[step.manager] if step.manager is not None else ROBOT
        orders.edit(s, order=held[oid], data=orders.parse_edit(self._mapped(step.changes)), ctx=ctx, now=at)
        self.result.changes += 1
        self._tick(1)

    def _mapped(self, raw: dict[str, Any]) -> dict[str, Any]:
        """The generator names managers by position; the database by id."""
        if raw.get("manager_id") is None:
            return raw
        return {**raw, "manager_id": self.managers[raw["manager_id"]]}


def _customer_input(raw: dict[str, Any]) -> CustomerCreate:
    try:
        return CustomerCreate.model_validate(raw)  # phones are already E.164: no region needed
    except ValidationError as exc:
        raise DomainError.from_pydantic(exc) from None


def enrol(sessions: sessionmaker[Session], *, shop: Shop, program: DemoProgram, now: datetime) -> int:
    """Run the site's loyalty program over the stored shop, in time order from its launch, through the loyalty
    service: the launch, members joining (welcome bonus), orders paid in part with points when they were created,
    accruals when they were completed (and what a cancel or return changes), the weekly expiry run and level
    review. Returns the members. (When the worker later dispatches the orders' events, each finds its order
    already in line and changes nothing.)"""
    with transaction(sessions) as s:
        loyalty.set_program(s, site=program.site, data=ProgramIn.model_validate(program.program),
                            now=program.launch)
        site = sites.get_site(s, program.site)
        people = dict(s.execute(select(Customer.external_id, Customer.id).where(Customer.site_id == site.id)).tuples().all())
        numbers = dict(s.execute(select(Order.number, Order.id).where(Order.site_id == site.id)).tuples().all())
    joined = {e: at for e, at in program.members}
    timeline: list[tuple[datetime, int, int]] = [(at, 0, people[e]) for e, at in program.members]
    for o in shop.orders:
        member = o.data["customer"]["external_id"]
        if o.data["site"] != program.site or member not in joined:
            continue
        order_id = numbers[o.data["number"]]
        if o.data["number"] in program.pay_with_points:
            timeline.append((o.data["created_at"], 1, order_id))
        settled = [st.at for st in o.steps if GROUP.get(st.changes.get("status", "")) in ("complete", "cancel")]
        if not o.steps and GROUP.get(o.status) in ("complete", "cancel"):
            settled = [o.data["created_at"]]  # stored with its outcome
        timeline += [(at, 2, order_id) for at in settled if at >= joined[member]]
    day = program.launch + RUNS_EVERY
    while day <= now:
        timeline.append((day, 3, 0))
        day += RUNS_EVERY
    timeline.sort()
    for first in range(0, len(timeline), COMMIT_EVERY):
        with transaction(sessions) as s:
            for at, kind, item in timeline[first:first + COMMIT_EVERY]:
                _loyalty_step(s, program, at, kind, item)
    return len(program.members)


def _loyalty_step(s: Session, program: DemoProgram, at: datetime, kind: int, item: int) -> None:
    """One moment of the program's history: 0 a customer joins, 1 an order is paid in part with points,
    2 an order reached a complete or cancel status, 3 the periodic runs."""
    if kind == 0:
        loyalty.join(s, data=JoinIn(site=program.site, customer_id=item), ctx=CREATED, now=at)
    elif kind == 1:
        order = orders.get(s, item)
        account = loyalty.account_of(s, site_id=order.site_id, customer_id=order.customer_id or 0)
        assert account is not None
        if account.status != loyalty.ACTIVE:  # the holdout group never pays with points
            return
        settings = loyalty.settings_of(loyalty.get_program(s, program.site))
        order_sum = loyalty.rules_order_sum(order_snapshots.snapshot(s, order))
        if order_sum < settings.min_order_sum:
            return
        balance = loyalty.account_out(s, account, now=at).balance
        amount = min(balance, order_sum * settings.max_redeem_share).to_integral_value(rounding=ROUND_DOWN)
        if amount >= 1:
            loyalty.charge(s, account_id=account.id, amount=amount, reason="paid part of the order",
                           idempotency_key=f"demo:pay:{item}", ctx=CREATED, now=at, order_id=item)
    elif kind == 2:
        loyalty.sync_order(s, order_id=item, ctx=ROBOT, now=at, key=f"demo:{item}:{at.isoformat()}")
    else:
        prog = loyalty.get_program(s, program.site)
        loyalty_runs.expire(s, program=prog, now=at)
        loyalty_runs.review_levels(s, program=prog, now=at)
