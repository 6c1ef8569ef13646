"""The program's set-based runs over all its accounts, each from where the last one stopped (`loyalty_runs`):
expiry (burn what is left of lots whose time came: one operation per account and one move per lot, in two
INSERT ... SELECT statements), burn warnings (`loyalty_points_will_burn` N days ahead, one per account) and the
daily level review (members whose purchases left the period move down); and the accrual of many completed
orders at once (the order events' batch handler)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import String, and_, case, func, insert, literal, or_, select
from sqlalchemy.orm import Session

from retento.core import bus
from retento.core.changes import ChangeContext
from retento.core.db import bulk
from retento.core.db.types import UTCDateTime
from retento.customers.models import Customer
from retento.loyalty import events as ev, rules, service
from retento.loyalty.models import Account, Lot, Move, Operation, Program, Run
from retento.loyalty.schemas import Kind
from retento.orders import service as orders_service
from retento.orders.models import Order, OrderItem

BEGINNING = datetime(2000, 1, 1, tzinfo=timezone.utc)
EVERY = timedelta(minutes=10)  # the worker's expiry and warning runs, at most this often
SYSTEM = ChangeContext.system()
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


def _burning(program: Program, since: datetime, now: datetime) -> Any:
    """The program's lots whose burn time came in (since, now] with something left: (id, account_id, site_id,
    left). What was moved from them is read in one aggregate over their moves (joined, not a subquery per lot)."""
    window = and_(L.c.site_id == program.site_id, L.c.expires_at > since, L.c.expires_at <= now)
    moved = (select(M.c.lot_id, func.sum(M.c.amount).label("moved"))
             .where(M.c.lot_id.in_(select(L.c.id).where(window))).group_by(M.c.lot_id).subquery("moved"))
    left = L.c.amount + func.coalesce(moved.c.moved, 0)
    return (select(L.c.id, L.c.account_id, L.c.site_id, left.label("left"))
            .outerjoin(moved, moved.c.lot_id == L.c.id).where(window, left > 0))


def expire(session: Session, *, program: Program, now: datetime, every: timedelta = timedelta(0)) -> int:
    """Burn everything left of the program's lots that expired since the last run, set-based: one `expiry`
    operation per account (the sum of its lots' rests) and one move per lot, appended; returns the accounts
    touched. Locks those accounts first (PostgreSQL), so a charge running meanwhile sees the result. PostgreSQL:
    one statement (the lots to burn computed once, the operations inserted and the moves joined to them by
    account); SQLite: two `INSERT ... SELECT` (the moves find their operation by its key)."""
    since = last_run(session, program, "expiry") or BEGINNING
    if since > now - every or since >= now:
        return 0
    key = f"expiry:{now.isoformat()}"
    columns = ["account_id", "site_id", "kind", "amount", "purchase", "reason", "idempotency_key", "source",
               "actor_type", "created_at"]

    def ops_from(burn: Any) -> Any:  # SQLite's
        return (select(burn.c.account_id, burn.c.site_id, literal(Kind.EXPIRY.value, String), -func.sum(burn.c.left),
                       literal(0), literal("expired", String), literal(key, String),
                       literal(SYSTEM.source.value, String), literal(SYSTEM.actor_type.value, String),
                       literal(now, UTCDateTime()))
                .group_by(burn.c.account_id, burn.c.site_id))

    if session.get_bind().dialect.name == "postgresql":
        window = and_(L.c.site_id == program.site_id, L.c.expires_at > since, L.c.expires_at <= now)
        session.execute(select(A.c.id).where(A.c.id.in_(select(L.c.account_id).where(window)))
                        .order_by(A.c.id).with_for_update())
        # per account, oldest first (window functions, no join: a plan that stays linear whatever the planner
        # guesses of fresh rows): the account's first lot draws the operation's id, every lot carries it and
        # the account's total
        lots = _burning(program, since, now).add_columns(func.row_number().over(
            partition_by=L.c.account_id, order_by=(L.c.expires_at, L.c.id)).label("n")).subquery("lots")
        draw = case((lots.c.n == 1, func.nextval(func.pg_get_serial_sequence(OP.name, "id"))))
        burn = select(lots, func.max(draw).over(partition_by=lots.c.account_id).label("op_id"),
                      func.sum(lots.c.left).over(partition_by=lots.c.account_id).label("total")).cte("burn")
        ops = insert(OP).from_select(["id", *columns], select(
            burn.c.op_id, burn.c.account_id, burn.c.site_id, literal(Kind.EXPIRY.value, String), -burn.c.total,
            literal(0), literal("expired", String), literal(key, String), literal(SYSTEM.source.value, String),
            literal(SYSTEM.actor_type.value, String), literal(now, UTCDateTime())).where(burn.c.n == 1)).cte("ops")
        moves = insert(M).from_select(["lot_id", "operation_id", "account_id", "site_id", "amount"], select(
            burn.c.id, burn.c.op_id, burn.c.account_id, burn.c.site_id, -burn.c.left)).cte("moves")
        # PostgreSQL runs every data-modifying CTE of the statement, read or not
        count = session.scalar(select(func.count()).select_from(burn).where(burn.c.n == 1).add_cte(ops, moves))
    else:
        burn = _burning(program, since, now).subquery()
        count = session.execute(insert(OP).from_select(columns, ops_from(burn)),
                                execution_options={"preserve_rowcount": True}).rowcount
        if count:
            moves = (select(burn.c.id, OP.c.id, burn.c.account_id, burn.c.site_id, -burn.c.left)
                     .join(OP, and_(OP.c.account_id == burn.c.account_id, OP.c.idempotency_key == key)))
            session.execute(insert(M).from_select(["lot_id", "operation_id", "account_id", "site_id", "amount"],
                                                  moves))
    _record(session, program, "expiry", now, count)
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


def run_all(session: Session, *, now: datetime, every: timedelta = timedelta(0)) -> int:
    """Every active program's expiry and warnings (each at most once per `every`) and level review (daily);
    the work done."""
    done = 0
    for program in service.list_programs(session):
        if program.active:
            done += expire(session, program=program, now=now, every=every)
            done += warn(session, program=program, now=now, every=every)
            done += review_levels(session, program=program, now=now)
            done += birthdays(session, program=program, now=now)
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


def accrue(session: Session, dues: Sequence[Due]) -> list[Due]:
    """The common case of many order events at once, set-based: a completed order of an active member that has no
    points yet earns them. The orders' lines are read in one query, the points computed in one pass by the same
    rule (`rules.earned`) the one-by-one path uses, and every `accrual` operation and its lot are written in two
    multi-row inserts (one statement each on PostgreSQL), with their ids reserved beforehand; the members' levels
    are reviewed in one query. Gives back the dues this does not decide (a second event of one account in the
    batch, an order with points already, a cancel, an inactive program or account): the caller brings those in
    line one by one with `service.sync_order`, in order. The result is what `sync_order` gives."""
    if not dues:
        return []
    per_account: dict[int, int] = {}
    for d in dues:
        per_account[d.account_id] = per_account.get(d.account_id, 0) + 1
    dialect = session.get_bind().dialect.name
    ids = sorted(per_account)
    locking = select(A.c.id, A.c.program_id, A.c.site_id, A.c.customer_id, A.c.status, A.c.level).where(
        bulk.one_of(session, A.c.id, ids)).order_by(A.c.id)
    accounts = {r.id: r for r in session.execute(locking.with_for_update() if dialect == "postgresql" else locking)}
    order_ids = {d.order_id for d in dues}
    touched = set(session.execute(select(OP.c.account_id, OP.c.order_id).where(
        bulk.one_of(session, OP.c.order_id, order_ids))).tuples())
    orders = _orders(session, order_ids)
    groups = orders_service.status_groups(session)
    programs = {p.id: p for p in session.scalars(select(Program).where(Program.id.in_(
        {a.program_id for a in accounts.values()})))}
    settings_by = {p.id: service.settings_of(p) for p in programs.values()}
    birthdays = _birthdays(session, [a for a in accounts.values() if a.program_id in settings_by
                                     and settings_by[a.program_id].birthday_multiplier != 1])
    rest, ops, lots = [], [], []
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
    if ops:
        for op, lot, op_id in zip(ops, lots, bulk.reserve_ids(session, OP, len(ops)), strict=True):
            op["id"] = lot["operation_id"] = op_id
        bulk.insert_rows(session, OP, ops)
        bulk.insert_rows(session, L, lots)
        _review(session, [accounts[o["account_id"]] for o in ops], programs, dues)
    return rest


def _orders(session: Session, order_ids: set[int]) -> dict[int, dict[str, Any]]:
    """What the accrual rule reads of each order (`rules.earned`'s order: customer, status, discount and item
    lines), in one query over the orders and their lines."""
    o, it = Order.__table__, OrderItem.__table__
    out: dict[int, dict[str, Any]] = {}
    q = (select(o.c.id, o.c.customer_id, o.c.status, o.c.discount_total, it.c.category, it.c.quantity, it.c.price,
                it.c.discount).outerjoin(it, it.c.order_id == o.c.id).where(bulk.one_of(session, o.c.id, order_ids))
         .order_by(o.c.id, it.c.id))
    for oid, customer_id, status, discount_total, category, quantity, price, discount in session.execute(q):
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


def _review(session: Session, accounts: list[Any], programs: dict[int, Program], dues: Sequence[Due]) -> None:
    """Levels of the members that just earned, from their purchases over each program's period (one query per
    program); the few that move get `change_level` (and its event)."""
    when = {d.account_id: d for d in dues}
    for program_id in {a.program_id for a in accounts}:
        settings = service.settings_of(programs[program_id])
        mine = [a for a in accounts if a.program_id == program_id]
        if not settings.levels or not mine:
            continue
        now = max(when[a.id].at for a in mine)
        spent = dict(session.execute(select(OP.c.account_id, func.sum(OP.c.purchase)).where(
            bulk.one_of(session, OP.c.account_id, [a.id for a in mine]),
            OP.c.created_at >= now - timedelta(days=settings.level_period_days)).group_by(OP.c.account_id))
            .tuples().all())
        for a in mine:
            total = spent.get(a.id) or 0
            reached = rules.level_for(settings.levels, Decimal(repr(total) if isinstance(total, float) else total))
            if (reached.code if reached else None) != a.level:
                account = session.get(Account, a.id)
                assert account is not None
                d = when[a.id]
                service.change_level(session, account=account, settings=settings,
                                     new=reached.code if reached else None, ctx=d.ctx, now=d.at)
