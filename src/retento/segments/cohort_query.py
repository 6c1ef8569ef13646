"""The lifecycle cohort report (cohorts.lifecycle) computed by the database: a few set-based statements over
each customer's purchase months, whatever the number of orders, on SQLite and PostgreSQL.

Each customer's purchases are grouped by month: orders, distinct purchase days, the last purchase day. A month
with purchases opens a stretch that lasts until the customer's next month with purchases: the customer is new
(one purchase day so far) or active (more) at the month ends while the last purchase is fewer than T days back,
then sleeping. So from each (customer, month) row the database derives, without visiting the months between:
- the months whose end sees each state (as +1 / -1 steps per month, summed up in Python),
- the state at the end of the month before (the row's origin in the migration matrix, and whose orders these are),
- the changes of state at month ends (origin -> first state, and new/active -> sleeping within the stretch).
Staying in a state is what the previous month's count leaves after the changes.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    case,
    func,
    insert,
    literal,
    select,
    text,
    union_all,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement

from retento.orders.models import Order, Status
from retento.segments import cohorts
from retento.segments.compiler import epoch_day

O = Order.__table__  # noqa: E741
EPOCH = date(1970, 1, 1)


class epoch_month(FunctionElement):  # noqa: N801 - reads as a SQL function
    """The month (year * 12 + month - 1) of a day given as whole days since 1970-01-01 (an integer)."""

    type = Integer()
    inherit_cache = True


@compiles(epoch_month, "sqlite")
def _epoch_month_sqlite(element: epoch_month, compiler: Any, **kw: Any) -> str:
    (day,) = list(element.clauses)
    at = f"({compiler.process(day, **kw)}) * 86400, 'unixepoch'"
    return f"(CAST(strftime('%Y', {at}) AS INTEGER) * 12 + CAST(strftime('%m', {at}) AS INTEGER) - 1)"


@compiles(epoch_month, "postgresql")
def _epoch_month_pg(element: epoch_month, compiler: Any, **kw: Any) -> str:
    (day,) = list(element.clauses)
    at = f"(DATE '1970-01-01' + ({compiler.process(day, **kw)}))"
    return f"(CAST(EXTRACT(YEAR FROM {at}) AS INTEGER) * 12 + CAST(EXTRACT(MONTH FROM {at}) AS INTEGER) - 1)"


def month_index(d: date) -> int:
    return d.year * 12 + d.month - 1


def month_of_index(i: int) -> date:
    return date(i // 12, i % 12 + 1, 1)


def stretches(*, site_id: int, today: date, threshold: float) -> Any:
    """One row per customer and month with purchases up to the end of `today`: the month, its orders, the state
    the month ends start in (`s0`, new or active), the first month whose end is `threshold` days or more after
    the month's last purchase (`sm`), the next month with purchases (`nm`; both `today`'s month + 1 when none),
    the state at the end of the previous month (`origin`, none before the first purchase) and the state at this
    month's end (`entered`)."""
    st = Status.__table__
    gap = math.ceil(threshold)  # a whole number of days is >= threshold when it is >= its ceiling
    today_day, end = (today - EPOCH).days, month_index(today) + 1
    day = epoch_day(O.c.created_at)
    daily = (select(O.c.customer_id, day.label("day"), func.count().label("orders"))
             .where(O.c.site_id == site_id, O.c.customer_id.is_not(None),
                    O.c.status.in_(select(st.c.code).where(st.c.group_code != "cancel")),
                    O.c.created_at < datetime.combine(today + timedelta(days=1), time.min, tzinfo=UTC))
             .group_by(O.c.customer_id, day).subquery("daily"))
    month = epoch_month(daily.c.day)
    monthly = (select(daily.c.customer_id, month.label("month"), func.sum(daily.c.orders).label("orders"),
                      func.count().label("days"), func.max(daily.c.day).label("last"))
               .group_by(daily.c.customer_id, month).subquery("monthly"))
    by_customer = {"partition_by": monthly.c.customer_id, "order_by": monthly.c.month}
    windowed = select(
        monthly.c.customer_id, monthly.c.month, monthly.c.orders, monthly.c.days, monthly.c.last,
        func.sum(monthly.c.days).over(**by_customer, rows=(None, 0)).label("cum"),
        func.coalesce(func.lead(monthly.c.month).over(**by_customer), end).label("nm"),
        func.lag(monthly.c.last).over(**by_customer).label("prev_last"),
        func.min(monthly.c.month).over(partition_by=monthly.c.customer_id).label("first"),
    ).subquery("w")

    def asleep_from(last: Any) -> Any:
        return case((last + gap <= today_day, epoch_month(last + gap)), else_=end)

    w = windowed.c
    s0 = case((w.cum == 1, "new"), else_="active")
    prev_cum = w.cum - w.days
    prev_sm = asleep_from(w.prev_last)
    origin = case((prev_cum == 0, cohorts.NONE), (prev_sm < w.month, "sleeping"), (prev_cum == 1, "new"),
                  else_="active")
    sm = asleep_from(w.last)
    rows = select(w.customer_id, w.month, w.orders, w.first, w.nm, s0.label("s0"), sm.label("sm"),
                  origin.label("origin")).subquery("rows")
    r = rows.c
    return select(*r, case((r.sm > r.month, r.s0), else_="sleeping").label("entered"))


STRETCHES = Table("cohort_stretches", MetaData(), Column("customer_id", BigInteger, nullable=False),
                  *(Column(c, BigInteger if c == "orders" else Integer, nullable=False)
                    for c in ("month", "orders", "first", "nm", "sm")),
                  *(Column(c, String(8), nullable=False) for c in ("s0", "origin", "entered")),
                  prefixes=["TEMPORARY"])  # the stretches of one report, computed once


def report(session: Session, *, site_id: int, today: date, threshold: float, day_over: bool = False
           ) -> cohorts.Report:
    """cohorts.lifecycle for the site's purchases up to the end of `today`, from the database's aggregates: the
    stretches go into a temporary table once, four GROUP BYs read it."""
    conn = session.connection()
    STRETCHES.drop(conn, checkfirst=True)
    STRETCHES.create(conn)
    try:
        q = stretches(site_id=site_id, today=today, threshold=threshold)
        session.execute(insert(STRETCHES).from_select([c.name for c in q.selected_columns], q))
        if conn.dialect.name == "postgresql":
            session.execute(text(f"ANALYZE {STRETCHES.name}"))
        return _assemble(*_aggregates(session), today=today, threshold=threshold, day_over=day_over)
    finally:
        STRETCHES.drop(conn, checkfirst=True)


def _aggregates(session: Session) -> tuple[dict[int, Counter], dict[int, Counter], dict[int, Counter],
                                           dict[int, tuple[int, int]]]:
    """Per month: the +1 / -1 steps of each state's count, the changes of state, the orders by the state at the
    end of the month before; per month of first purchase: customers and how many of them were ever active."""
    c = STRETCHES.c
    one = literal(1)
    steps = union_all(
        select(c.s0.label("state"), c.month.label("month"), one.label("n")).where(c.sm > c.month),
        select(c.s0, case((c.sm < c.nm, c.sm), else_=c.nm), -one).where(c.sm > c.month),
        select(literal("sleeping"), c.sm, one).where(c.sm < c.nm),
        select(literal("sleeping"), c.nm, -one).where(c.sm < c.nm),
    ).subquery("steps")
    deltas: dict[int, Counter] = {}
    for state, month, n in session.execute(select(steps.c.state, steps.c.month, func.sum(steps.c.n))
                                           .group_by(steps.c.state, steps.c.month)):
        deltas.setdefault(int(month), Counter())[state] += int(n)
    changes = union_all(
        select(c.origin.label("a"), c.entered.label("b"), c.month.label("month")).where(c.origin != c.entered),
        select(c.s0, literal("sleeping"), c.sm).where(c.sm > c.month, c.sm < c.nm),
    ).subquery("changes")
    moved: dict[int, Counter] = {}
    for a, b, month, n in session.execute(select(changes.c.a, changes.c.b, changes.c.month, func.count())
                                          .group_by(changes.c.a, changes.c.b, changes.c.month)):
        moved.setdefault(int(month), Counter())[(a, b)] += int(n)
    orders: dict[int, Counter] = {}
    for month, origin, n in session.execute(select(c.month, c.origin, func.sum(c.orders))
                                            .group_by(c.month, c.origin)):
        orders.setdefault(int(month), Counter())[origin] += int(n)
    active = case((and_(c.s0 == "active", c.sm > c.month), 1), else_=0)
    per_customer = (select(c.first, func.max(active).label("active")).group_by(c.customer_id, c.first)
                    .subquery("per_customer"))
    acquired = {int(m): (int(n), int(a or 0)) for m, n, a in session.execute(
        select(per_customer.c.first, func.count(), func.sum(per_customer.c.active)).group_by(per_customer.c.first))}
    return deltas, moved, orders, acquired


def _assemble(deltas: dict[int, Counter], moved: dict[int, Counter], orders: dict[int, Counter],
              acquired: dict[int, tuple[int, int]], *, today: date, threshold: float, day_over: bool
              ) -> cohorts.Report:
    if not acquired:
        return cohorts.Report(threshold, [], [])
    first, current = min(acquired), month_index(today)
    table, counts = [], Counter()
    for i in range(first, current + 1):
        m = month_of_index(i)
        last_day = cohorts.next_month(m) - timedelta(days=1)
        row = cohorts.Month(m, provisional=last_day > today or (last_day == today and not day_over))
        before = Counter(counts)
        counts.update(deltas.get(i, Counter()))
        row.counts = {s: counts[s] for s in cohorts.STATES}
        changed = moved.get(i, Counter())
        row.migrations = Counter({k: n for k, n in changed.items() if n})
        for s in cohorts.STATES:
            stayed = before[s] - sum(n for (a, _b), n in changed.items() if a == s)
            if stayed:
                row.migrations[(s, s)] = stayed
        by_origin = orders.get(i, Counter())
        row.orders = sum(by_origin.values())
        row.new_base, row.new_to_active = before["new"], changed[("new", "active")]
        row.active_base, row.active_orders = before["active"], by_origin["active"]
        row.churned = changed[("active", "sleeping")]
        row.sleeping_base, row.reactivated = before["sleeping"], changed[("sleeping", "active")]
        row.reactivated_orders = by_origin["sleeping"]
        table.append(row)
    made = []
    for i in range(first, current + 1):
        m = month_of_index(i)
        size, active = acquired.get(i, (0, 0))
        made.append(cohorts.Cohort(m, size=size, became_active=active, provisional=(
            today - (cohorts.next_month(m) - timedelta(days=1))).days < threshold))
    return cohorts.Report(threshold, table, made)
