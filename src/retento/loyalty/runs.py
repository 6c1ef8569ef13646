"""The program's set-based runs over all its accounts, each from where the last one stopped (`loyalty_runs`):
expiry (burn what is left of lots whose time came: one operation per account, one INSERT ... SELECT per part
of the accounts), burn warnings (`loyalty_points_will_burn` N days ahead, one per account) and the
daily level review (members whose purchases left the period move down); and the accrual of many completed
orders at once (the order events' batch handler)."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import String, and_, func, insert, literal, or_, select
from sqlalchemy.orm import Session

from retento.core import bus
from retento.core.changes import ChangeContext
from retento.core.db import bulk
from retento.core.db.transactions import transaction
from retento.core.db.types import UTCDateTime
from retento.customers.models import Customer
from retento.loyalty import accrual, events as ev, rules, service
from retento.loyalty.models import Account, Lot, Move, Operation, Program, Run
from retento.loyalty.schemas import Kind
from retento.orders import service as orders_service
from retento.orders.models import Order, OrderItem

BEGINNING = datetime(2000, 1, 1, tzinfo=timezone.utc)
EVERY = timedelta(minutes=10)  # the worker's expiry and warning runs, at most this often
SYSTEM = ChangeContext.system()
OPEN = service.EXPIRY_OPEN  # an expiry run begun in parts and not yet recorded (`expire_in_parts`)
L, M, OP, A = Lot.__table__, Move.__table__, Operation.__table__, Account.__table__


def last_run(session: Session, program: Program, kind: str) -> datetime | None:
    return session.scalar(select(func.max(Run.up_to)).where(Run.program_id == program.id, Run.kind == kind))


def _record(session: Session, program: Program, kind: str, now: datetime, count: int) -> None:
    session.add(Run(program_id=program.id, site_id=program.site_id, kind=kind, up_to=now, count=count,
                    created_at=now))
    session.flush()


def _left() -> object:
    moved = select(func.coalesce(func.sum(M.c.amount), 0)).where(M.c.lot_id == L.c.id).scalar_subquery()
    return (L.c.amount + moved).label("left")


def _burning(program: Program, since: datetime, now: datetime, accounts: tuple[int, int] | None = None) -> Any:
    """The program's lots whose burn time came in (since, now] with something left (of the accounts with ids in
    `accounts`, [from, to), when given): (id, account_id, site_id, left). What was moved from them is read in one
    aggregate over their moves (joined, not a subquery per lot)."""
    window = and_(L.c.site_id == program.site_id, L.c.expires_at > since, L.c.expires_at <= now)
    if accounts is not None:
        window = and_(window, L.c.account_id >= accounts[0], L.c.account_id < accounts[1])
    moved = (select(M.c.lot_id, func.sum(M.c.amount).label("moved"))
             .where(M.c.lot_id.in_(select(L.c.id).where(window))).group_by(M.c.lot_id).subquery("moved"))
    left = L.c.amount + func.coalesce(moved.c.moved, 0)
    return (select(L.c.id, L.c.account_id, L.c.site_id, left.label("left"))
            .outerjoin(moved, moved.c.lot_id == L.c.id).where(window, left > 0))


def _due(since: datetime, now: datetime, every: timedelta) -> bool:
    """Whether an expiry run from `since` (the last one's end) up to `now` is due."""
    return not (since > now - every or since >= now)


def _burn(session: Session, program: Program, since: datetime, now: datetime, *,
          accounts: tuple[int, int] | None = None, resumed: bool = False) -> int:
    """One `expiry` operation per account (the sum of what is left of its lots whose burn time came in (since,
    now]), in one `INSERT ... SELECT`; returns the accounts burnt. Nothing moves from the lots themselves: once a
    lot's time has come nothing is taken from it or given back to it (charges and reversals take from lots not
    yet burnt, a refund gives nothing back to a burnt one), so what was left of it then is what burnt, and the
    balance counts only lots not yet burnt. Locks the accounts first (PostgreSQL), so a charge that read a lot
    before its burn time commits before the lot's rest is read. `resumed`: an interrupted run's parts that
    committed are not written again (their operations carry the same key)."""
    key = f"expiry:{now.isoformat()}"
    burn = _burning(program, since, now, accounts).subquery()
    if session.get_bind().dialect.name == "postgresql":
        lock = select(A.c.id).where(A.c.id.in_(select(burn.c.account_id)))
        if accounts is not None:  # the part's range of the primary key, not every account of the program
            lock = lock.where(A.c.id >= accounts[0], A.c.id < accounts[1])
        session.execute(lock.order_by(A.c.id).with_for_update())
    q = (select(burn.c.account_id, burn.c.site_id, literal(Kind.EXPIRY.value, String), -func.sum(burn.c.left),
                literal(0), literal("expired", String), literal(key, String), literal(SYSTEM.source.value, String),
                literal(SYSTEM.actor_type.value, String), literal(now, UTCDateTime()))
         .group_by(burn.c.account_id, burn.c.site_id))
    if resumed:
        q = q.where(~select(OP.c.id).where(OP.c.account_id == burn.c.account_id, OP.c.idempotency_key == key)
                    .exists())
    columns = ["account_id", "site_id", "kind", "amount", "purchase", "reason", "idempotency_key", "source",
               "actor_type", "created_at"]
    return session.execute(insert(OP).from_select(columns, q), execution_options={"preserve_rowcount": True}).rowcount


def expire(session: Session, *, program: Program, now: datetime, every: timedelta = timedelta(0)) -> int:
    """Burn what is left of the program's lots whose time came since the last run, in the caller's transaction
    (every account at once); returns the accounts touched. The worker runs `expire_in_parts`."""
    since = last_run(session, program, "expiry") or BEGINNING
    if not _due(since, now, every):
        return 0
    count = _burn(session, program, since, now)
    _record(session, program, "expiry", now, count)
    return count


def expire_in_parts(sessions: Any, *, program_id: int, now: datetime, every: timedelta = timedelta(0),
                    part: int = 100_000, connections: int = 1) -> int:
    """The expiry run over a large program: the accounts in parts of `part` ids, each part its own short
    transaction (a charge waits for one part's locks at most, never for the whole run), on PostgreSQL up to
    `connections` parts at once. The run is marked open (`expiry_open`) before its first part and recorded when
    its last part is done; a run interrupted between (a process killed) is finished, with the same end and key,
    by the next call before anything else. Returns the accounts burnt by this call."""
    with transaction(sessions) as s:
        program = s.get(Program, program_id)
        assert program is not None
        since = last_run(s, program, "expiry") or BEGINNING
        opened = last_run(s, program, OPEN)
        resumed = opened is not None and opened > since
        if resumed:
            assert opened is not None
            now = opened
        else:
            if not _due(since, now, every):
                return 0
            _record(s, program, OPEN, now, 0)
        low, high = s.execute(select(func.min(A.c.id), func.max(A.c.id)).where(A.c.program_id == program_id)).one()
        parallel = s.get_bind().dialect.name == "postgresql" and connections > 1

    def one(ids: tuple[int, int]) -> int:
        with transaction(sessions) as s:
            return _burn(s, s.get(Program, program_id), since, now, accounts=ids, resumed=resumed)

    parts = [(a, min(a + part, high + 1)) for a in range(low, high + 1, part)] if low is not None else []
    if parallel and len(parts) > 1:
        with ThreadPoolExecutor(max_workers=connections, thread_name_prefix="loyalty-expiry") as pool:
            count = sum(pool.map(one, parts))
    else:
        count = sum(map(one, parts))
    with transaction(sessions) as s:
        _record(s, s.get(Program, program_id), "expiry", now, count)
    return count


def warn(session: Session, *, program: Program, now: datetime, every: timedelta = timedelta(0)) -> int:
    """`loyalty_points_will_burn` for each account with points that will burn within each of the program's
    `warn_days` (the part of that horizon that moved on since the last run); returns the events."""
    settings = service.settings_of(program)
    since = last_run(session, program, "warn") or program.created_at
    if since > now - every or since >= now or not settings.warn_days:
        return 0
    rows = []
    for days in settings.warn_days:
        ahead = timedelta(days=days)
        # a lot enters the horizon when its burn time comes within `days`, or when it is credited within it
        entered = or_(and_(L.c.expires_at > since + ahead, L.c.expires_at <= now + ahead),
                      and_(L.c.created_at > since, L.c.created_at <= now, L.c.expires_at <= since + ahead,
                           L.c.expires_at > now))
        lots = (select(L.c.account_id, L.c.expires_at, _left())
                .where(L.c.site_id == program.site_id, entered).subquery())
        q = (select(A.c.id, A.c.customer_id, func.sum(lots.c.left), func.min(lots.c.expires_at))
             .join(lots, lots.c.account_id == A.c.id).where(lots.c.left > 0, A.c.status == service.ACTIVE)
             .group_by(A.c.id, A.c.customer_id).order_by(A.c.id))
        for account_id, customer_id, amount, burn_at in session.execute(q):
            burn_at = UTCDateTime().process_result_value(burn_at, session.get_bind().dialect)
            rows.append(bus.event_row(ev.WILL_BURN, ctx=SYSTEM, now=now, site_id=program.site_id,
                                      customer_id=customer_id, payload={
                                          "account_id": account_id, "amount": str(service.ledger.points(
                                              Decimal(repr(amount) if isinstance(amount, float) else amount))),
                                          "burn_at": burn_at.isoformat(), "days": days}))
    bus.record(session, rows)
    _record(session, program, "warn", now, len(rows))
    return len(rows)


def review_levels(session: Session, *, program: Program, now: datetime, every: timedelta = timedelta(days=1)) -> int:
    """Once per `every`: every member to the level of its purchases over the period (down when old purchases left
    it); returns how many moved."""
    settings = service.settings_of(program)
    since = last_run(session, program, "levels")
    if not settings.levels or (since is not None and since > now - every):
        return 0
    start = now - timedelta(days=settings.level_period_days)
    spent = (select(OP.c.account_id, func.sum(OP.c.purchase).label("spent"))
             .where(OP.c.site_id == program.site_id, OP.c.created_at >= start).group_by(OP.c.account_id).subquery())
    rows = session.execute(select(A.c.id, A.c.level, func.coalesce(spent.c.spent, 0))
                           .outerjoin(spent, spent.c.account_id == A.c.id).where(A.c.program_id == program.id))
    moved = 0
    for account_id, level, total in rows.all():
        reached = rules.level_for(settings.levels, Decimal(repr(total) if isinstance(total, float) else total))
        if (reached.code if reached else None) != level:
            account = session.get(Account, account_id)
            assert account is not None
            moved += service.change_level(session, account=account, settings=settings,
                                          new=reached.code if reached else None, ctx=SYSTEM, now=now)
    _record(session, program, "levels", now, moved)
    return moved


def birthdays(session: Session, *, program: Program, now: datetime) -> int:
    """`loyalty_birthday_multiplier_active` for each active member whose birthday multiplier starts on a day since
    the last run (up to today); returns the events."""
    settings = service.settings_of(program)
    last = last_run(session, program, "birthday")
    today = now.date()
    if settings.birthday_multiplier == 1 or (last is not None and last.date() >= today):
        return 0
    first = last.date() + timedelta(days=1) if last is not None else today
    days = [first + timedelta(days=n) for n in range((today - first).days + 1)][-366:]
    q = (select(A.c.id, A.c.customer_id, Customer.birthday).join(Customer, Customer.id == A.c.customer_id)
         .where(A.c.program_id == program.id, A.c.status == service.ACTIVE, Customer.birthday.is_not(None)))
    rows = []
    for account_id, customer_id, birthday in session.execute(q):
        for day in days:
            if (window := rules.birthday_window(birthday, day, settings.birthday_days)) is not None:
                rows.append(bus.event_row(ev.BIRTHDAY, ctx=SYSTEM, now=now, site_id=program.site_id,
                                          customer_id=customer_id, payload={
                                              "account_id": account_id, "multiplier": str(settings.birthday_multiplier),
                                              "from": window[0].isoformat(), "until": window[1].isoformat()}))
    bus.record(session, rows)
    _record(session, program, "birthday", now, len(rows))
    return len(rows)


def run_all(sessions: Any, *, now: datetime, every: timedelta = timedelta(0), part: int = 100_000,
            connections: int = 1) -> int:
    """Every active program's expiry (`expire_in_parts`) and warnings (each at most once per `every`), level
    review and birthdays (daily); the work done."""
    with transaction(sessions) as s:
        programs = [p.id for p in service.list_programs(s) if p.active]
    done = 0
    for program_id in programs:
        done += expire_in_parts(sessions, program_id=program_id, now=now, every=every, part=part,
                                connections=connections)
        with transaction(sessions) as s:
            program = s.get(Program, program_id)
            assert program is not None
            done += warn(s, program=program, now=now, every=every)
            done += review_levels(s, program=program, now=now)
            done += birthdays(s, program=program, now=now)
    return done


# --- set-based accrual -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Due:
    """An order event to bring in line: the order, the member's account, the event's key and context."""

    order_id: int
    account_id: int
    key: str
    ctx: ChangeContext
    at: datetime
    event_id: int = 0  # the order among a batch's accruals (`accrual.review`)


def accrue(session: Session, dues: Sequence[Due]) -> tuple[list[Due], list[accrual.Accrued]]:
    """The common case of many order events at once, set-based: a completed order of an active member that has no
    points yet earns them. The orders' lines are read in one query, the points computed in one pass by the same
    rule (`rules.earned`) the one-by-one path uses, and every `accrual` operation and its lot are written in two
    multi-row inserts (one statement each on PostgreSQL), with their ids reserved beforehand; the members' levels
    are reviewed by the caller (`accrual.review`, with the accruals made set-based in SQL). Gives back the dues
    this does not decide (a second event of one account in the batch, an order with points already, a cancel, an
    inactive program or account), which the caller brings in line one by one with `service.sync_order`, in order,
    and the accruals made. The result is what `sync_order` gives."""
    if not dues:
        return [], []
    per_account: dict[int, int] = {}
    for d in dues:
        per_account[d.account_id] = per_account.get(d.account_id, 0) + 1
    dialect = session.get_bind().dialect.name
    ids = sorted(per_account)
    locking = select(A.c.id, A.c.program_id, A.c.site_id, A.c.customer_id, A.c.status, A.c.level).where(
        bulk.one_of(session, A.c.id, ids)).order_by(A.c.id)
    # `.all()`: the driver's fetchall, not a fetchone per row (a fifth of the batch's Python time on PostgreSQL)
    accounts = {r.id: r for r in session.execute(
        locking.with_for_update() if dialect == "postgresql" else locking).all()}
    order_ids = {d.order_id for d in dues}
    touched = set(session.execute(select(OP.c.account_id, OP.c.order_id).where(
        bulk.one_of(session, OP.c.order_id, order_ids))).tuples().all())
    orders = _orders(session, order_ids)
    groups = orders_service.status_groups(session)
    programs = {p.id: p for p in session.scalars(select(Program).where(Program.id.in_(
        {a.program_id for a in accounts.values()})))}
    settings_by = {p.id: service.settings_of(p) for p in programs.values()}
    birthdays = _birthdays(session, [a for a in accounts.values() if a.program_id in settings_by
                                     and settings_by[a.program_id].birthday_multiplier != 1])
    rest, ops, lots, made = [], [], [], []
    times: dict[tuple[int, datetime], tuple[datetime, datetime, datetime | None, str]] = {}
    for d in dues:
        account, order = accounts.get(d.account_id), orders.get(d.order_id)
        program = programs.get(account.program_id) if account is not None else None
        if (account is None or order is None or program is None or per_account[d.account_id] > 1
                or (d.account_id, d.order_id) in touched or account.status != service.ACTIVE or not program.active
                or order["customer_id"] != account.customer_id):
            rest.append(d)
            continue
        if groups.get(order["status"]) != "complete":
            if groups.get(order["status"]) == "cancel":
                rest.append(d)
            continue  # neither completed nor cancelled, and no points yet: nothing to do
        settings = settings_by[program.id]
        level = next((lv for lv in settings.levels if lv.code == account.level), None)
        e = rules.earned(settings, order=order, level=level, birthday=birthdays.get(account.customer_id),
                         redeemed=Decimal(0), at=d.at)
        if e.points <= 0:
            continue
        # one set of time objects per program and event time: the inserts convert each distinct one once
        at, active_from, expires_at, iso = times.get((program.id, d.at)) or times.setdefault(
            (program.id, d.at), (d.at, *rules.lot_times(settings, d.at, activation=True), d.at.isoformat()))
        # with nothing redeemed yet, the order's sum before points is the base the points were computed from
        ops.append({"account_id": account.id, "site_id": account.site_id, "kind": Kind.ACCRUAL.value,
                    "amount": e.points, "purchase": e.base, "order_id": d.order_id, "reason": None,
                    "details": {"order_sum": str(e.base), **e.detail, "at": iso},
                    "idempotency_key": f"{d.key}:accrual", "source": d.ctx.source.value,
                    "actor_type": d.ctx.actor_type.value, "actor_id": d.ctx.actor_id, "created_at": at})
        lots.append({"account_id": account.id, "site_id": account.site_id, "order_id": d.order_id,
                     "amount": e.points, "active_from": active_from, "expires_at": expires_at, "created_at": at})
        made.append(accrual.Accrued(d.event_id, account.id, program.id, d.at, d))
    if ops:
        for op, lot, op_id in zip(ops, lots, bulk.reserve_ids(session, OP, len(ops)), strict=True):
            op["id"] = lot["operation_id"] = op_id
        bulk.insert_rows(session, OP, ops)
        bulk.insert_rows(session, L, lots)
    return rest, made


def _orders(session: Session, order_ids: set[int]) -> dict[int, dict[str, Any]]:
    """What the accrual rule reads of each order (`rules.earned`'s order: customer, status, discount and item
    lines), in one query over the orders and their lines."""
    o, it = Order.__table__, OrderItem.__table__
    out: dict[int, dict[str, Any]] = {}
    q = (select(o.c.id, o.c.customer_id, o.c.status, o.c.discount_total, it.c.category, it.c.quantity, it.c.price,
                it.c.discount).outerjoin(it, it.c.order_id == o.c.id).where(bulk.one_of(session, o.c.id, order_ids))
         .order_by(o.c.id, it.c.id))
    for oid, customer_id, status, discount_total, category, quantity, price, discount in session.execute(q).all():
        order = out.get(oid)
        if order is None:
            order = out[oid] = {"customer_id": customer_id, "status": status, "discount_total": discount_total,
                                "items": []}
        if quantity is not None:
            order["items"].append({"category": category, "quantity": quantity, "price": price, "discount": discount})
    return out


def _birthdays(session: Session, accounts: list[Any]) -> dict[int, Any]:
    """Customer id -> birthday, for the members whose program has a birthday multiplier."""
    if not accounts:
        return {}
    return dict(session.execute(select(Customer.id, Customer.birthday).where(bulk.one_of(
        session, Customer.id, [a.customer_id for a in accounts]))).tuples().all())
