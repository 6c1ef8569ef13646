"""The program's own P&L for a site and a period: points issued, taken back, redeemed (the discount given),
expired, the liability at both ends; the site's revenue and the discount as a share of it (the ~5% "tax");
members' orders and revenue per month after joining against before; the four lifecycle cohort figures of the
months before the launch against those from it on. `summarise` and `before_after` are pure."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import case, func, or_, select
from sqlalchemy.orm import Session

from retento.core.errors import DomainError
from retento.core.money import round_money
from retento.loyalty import events as ev, service
from retento.loyalty.ledger import ZERO
from retento.loyalty.models import Account, Operation
from retento.loyalty.schemas import Kind, PnlOut
from retento.messaging.models import Message, Run as CascadeRun
from retento.orders.models import Order, Status
from retento.segments import analytics
from retento.triggers import service as triggers

MONTH_DAYS = Decimal(30)
CENT = Decimal("0.01")
FIGURES = ("conversion_new_active", "orders_per_active", "reactivated", "churn_active")


@dataclass(frozen=True)
class Member:
    joined_at: datetime
    before_orders: int
    before_revenue: Decimal
    before_days: int  # how long the "before" window is (the program's history may be shorter)
    after_orders: int
    after_revenue: Decimal
    after_days: int


def _dec(value: Any) -> Decimal:
    return Decimal(repr(value) if isinstance(value, float) else value or 0)


def summarise(sums: dict[str, Decimal], *, liability_start: Decimal, revenue: Decimal) -> dict[str, Any]:
    """Ledger sums per kind over the period -> the P&L's points lines."""
    redeemed = -(sums.get(Kind.CHARGE, ZERO) + sums.get(Kind.REFUND, ZERO))
    issued = sums.get(Kind.WELCOME, ZERO) + sums.get(Kind.ACCRUAL, ZERO) + sums.get(Kind.CREDIT, ZERO)
    reversed_ = -sums.get(Kind.REVERSAL, ZERO)
    expired = -sums.get(Kind.EXPIRY, ZERO)
    return {"issued": issued, "reversed": reversed_, "redeemed": redeemed, "expired": expired,
            "liability_start": liability_start,
            "liability_end": liability_start + issued - reversed_ - redeemed - expired,
            "revenue": revenue, "discount_share": (redeemed / revenue).quantize(Decimal("0.0001")) if revenue else None}


def before_after(members: Iterable[Member]) -> dict[str, Any]:
    """Orders and revenue per member and month (30 days) after joining against before, over members with
    both windows."""
    rows = [m for m in members if m.before_days > 0 and m.after_days > 0]
    if not rows:
        return {"members": 0, "before": None, "after": None}

    def per_month(orders: Sequence[int], revenue: Sequence[Decimal], days: Sequence[int]) -> dict[str, Any]:
        n = len(rows)
        return {"orders": round(sum(o * 30 / d for o, d in zip(orders, days, strict=True)) / n, 4),
                "revenue": round_money(sum((r * MONTH_DAYS / d for r, d in zip(revenue, days, strict=True)), ZERO) / n)}

    return {"members": len(rows),
            "before": per_month([m.before_orders for m in rows], [m.before_revenue for m in rows],
                                [m.before_days for m in rows]),
            "after": per_month([m.after_orders for m in rows], [m.after_revenue for m in rows],
                               [m.after_days for m in rows])}


def holdout(groups: dict[str, list[tuple[int, Decimal]]]) -> dict[str, Any] | None:
    """Orders and revenue per customer of the members against the holdout group ((orders, revenue) of each
    customer); None without a holdout group."""
    if not groups.get("holdout"):
        return None

    def figures(rows: list[tuple[int, Decimal]]) -> dict[str, Any]:
        n = len(rows)
        return {"customers": n, "orders": round(sum(o for o, _ in rows) / n, 4) if n else 0.0,
                "revenue": round_money(sum((r for _, r in rows), ZERO) / n) if n else ZERO}

    return {"members": figures(groups.get("members", [])), "holdout": figures(groups["holdout"])}


def communication_cost(session: Session, site_id: int, *, start: datetime, end: datetime) -> dict[str, Decimal]:
    """What the site's messages of the period cost, per currency, that triggers listening to loyalty events
    sent (their cascade runs are keyed `trigger:{id}:...`)."""
    loyal = [t.id for t in triggers.list_triggers(session)
             if set(t.definition.get("events") or ()) & set(ev.ALL)]
    if not loyal:
        return {}
    m, r = Message.__table__, CascadeRun.__table__
    q = (select(m.c.currency, func.sum(m.c.cost)).join(r, r.c.id == m.c.run_id)
         .where(m.c.site_id == site_id, m.c.created_at >= start, m.c.created_at < end,
                or_(*(r.c.idempotency_key.like(f"trigger:{tid}:%") for tid in loyal)))
         .group_by(m.c.currency).order_by(m.c.currency))
    return {currency: _dec(cost).quantize(Decimal("0.0001")) for currency, cost in session.execute(q)}


def _groups(session: Session, site_id: int, *, start: datetime, end: datetime) -> dict[str, list[tuple[int, Decimal]]]:
    """(orders, revenue) in the period of each member and each holdout customer enrolled before `end`."""
    a, o, st = Account.__table__, Order.__table__, Status.__table__
    complete = select(st.c.code).where(st.c.group_code == "complete")
    q = (select(a.c.id, a.c.status, func.count(o.c.id), func.sum(o.c.total))
         .select_from(a.outerjoin(o, (o.c.customer_id == a.c.customer_id) & o.c.status.in_(complete)
                                  & (o.c.created_at >= start) & (o.c.created_at < end)))
         .where(a.c.site_id == site_id, a.c.joined_at < end).group_by(a.c.id, a.c.status))
    out: dict[str, list[tuple[int, Decimal]]] = {"members": [], "holdout": []}
    for _, status, n, revenue in session.execute(q):
        out["holdout" if status == service.HOLDOUT else "members"].append((int(n or 0), _dec(revenue)))
    return out


def _average(months: list[dict[str, Any]], name: str) -> float | None:
    values = [m[name] for m in months if m.get(name) is not None]
    return round(sum(values) / len(values), 4) if values else None


def cohort_figures(months: list[dict[str, Any]], *, launch: date, end: date, span: int = 6) -> dict[str, Any]:
    """The four lifecycle figures averaged over the complete months before the launch month (at most `span`)
    and over the months from it up to the period's end (at most `span`)."""
    key = launch.isoformat()[:7]
    before = [m for m in months if m["month"] < key and not m["provisional"]][-span:]
    after = [m for m in months if key <= m["month"] <= end.isoformat()[:7]][:span]
    return {"launch": launch, "before": {f: _average(before, f) for f in FIGURES}, "months_before": len(before),
            "after": {f: _average(after, f) for f in FIGURES}, "months_after": len(after)}


def report(session: Session, *, site: str, start: datetime | None, end: datetime | None, now: datetime,
           window_days: int = 90, cohort_months: list[dict[str, Any]] | None = None) -> PnlOut:
    """The P&L of the site's program over [start, end) (from its launch, up to now, by default).
    `window_days`: how far before and after joining a member's orders are compared. `cohort_months`: the rows of a
    cohort report already at hand (the console's stored one), else computed as of the period's end."""
    program = service.get_program(session, site)
    start, end = start or program.created_at, end or now
    if end <= start:
        raise DomainError.one("to", "must be after `from` (the program's launch by default)")
    op = Operation.__table__
    sums = {kind: _dec(total) for kind, total in session.execute(
        select(op.c.kind, func.sum(op.c.amount)).where(op.c.site_id == program.site_id, op.c.created_at >= start,
                                                       op.c.created_at < end).group_by(op.c.kind))}
    liability_start = _dec(session.scalar(select(func.sum(op.c.amount)).where(op.c.site_id == program.site_id,
                                                                               op.c.created_at < start)))
    o, st = Order.__table__, Status.__table__
    complete = select(st.c.code).where(st.c.group_code == "complete")
    revenue = _dec(session.scalar(select(func.sum(o.c.total)).where(
        o.c.site_id == program.site_id, o.c.status.in_(complete), o.c.created_at >= start, o.c.created_at < end)))
    out = {"site": site, "currency": program.currency, "from": start, "to": end,
           **summarise(sums, liability_start=liability_start, revenue=revenue),
           "members": session.scalar(select(func.count()).where(Account.site_id == program.site_id,
                                                                 Account.joined_at < end,
                                                                 Account.status != service.HOLDOUT)),
           "holdout": holdout(_groups(session, program.site_id, start=start, end=end)),
           "communication_cost": communication_cost(session, program.site_id, start=start, end=end),
           "per_member": before_after(_members(session, program.site_id, end=end, window=timedelta(days=window_days)))}
    as_of = min(end - timedelta(microseconds=1), now).date()
    months = cohort_months if cohort_months is not None else analytics.cohort_report(
        session, site=site, now=now, as_of=as_of)["months"]
    out["cohorts"] = cohort_figures(months, launch=program.created_at.date(), end=as_of)
    return PnlOut.model_validate(out)


def month_starts(start: datetime, end: datetime) -> list[datetime]:
    """The first moment (UTC) of every calendar month that [start, end) touches."""
    at = start.astimezone(timezone.utc).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    out = []
    while at < end:
        out.append(at)
        at = (at + timedelta(days=32)).replace(day=1)
    return out


def monthly(session: Session, *, site: str, start: datetime | None, end: datetime | None,
            now: datetime) -> list[dict[str, Any]]:
    """The P&L's points lines, revenue and discount share per calendar month (UTC) of [start, end) (from the
    launch up to now by default), each month clipped to the period: what the console's charts draw."""
    program = service.get_program(session, site)
    start, end = start or program.created_at, end or now
    op, o, st = Operation.__table__, Order.__table__, Status.__table__
    complete = select(st.c.code).where(st.c.group_code == "complete")
    liability = _dec(session.scalar(select(func.sum(op.c.amount)).where(op.c.site_id == program.site_id,
                                                                         op.c.created_at < start)))
    starts = month_starts(start, end)
    if not starts:
        return []
    bounds = [max(first, start) for first in starts] + [end]
    sums: dict[int, dict[str, Decimal]] = {}
    period = case(*((op.c.created_at < b, i) for i, b in enumerate(bounds[1:])))
    for i, kind, total in session.execute(  # each month's sums in one statement, per kind
            select(period, op.c.kind, func.sum(op.c.amount)).where(
                op.c.site_id == program.site_id, op.c.created_at >= start, op.c.created_at < end)
            .group_by(period, op.c.kind)):
        sums.setdefault(int(i), {})[kind] = _dec(total)
    period = case(*((o.c.created_at < b, i) for i, b in enumerate(bounds[1:])))
    revenues = {int(i): _dec(total) for i, total in session.execute(
        select(period, func.sum(o.c.total)).where(o.c.site_id == program.site_id, o.c.status.in_(complete),
                                                  o.c.created_at >= start, o.c.created_at < end).group_by(period))}
    out = []
    for i, first in enumerate(starts):
        row = summarise(sums.get(i, {}), liability_start=liability, revenue=revenues.get(i, ZERO))
        liability = row["liability_end"]
        out.append({"month": first.date().isoformat()[:7], "from": bounds[i], "to": bounds[i + 1], **row})
    return out


def _shifted(column: Any, days: int, dialect: str) -> Any:
    """A UTC time column moved by whole days, in SQL, exactly: SQLite's stored text keeps its fraction of a second
    (`datetime()` drops it), PostgreSQL adds an interval."""
    if dialect == "postgresql":
        return column + func.make_interval(0, 0, 0, days)
    return func.datetime(column, f"{days:+d} days").op("||")(func.substr(column, 20))


def _members(session: Session, site_id: int, *, end: datetime, window: timedelta) -> list[Member]:
    """Each member's completed orders in the window before joining and in the one after it (up to `end`), counted
    and summed per member in one statement."""
    a, o, st = Account.__table__, Order.__table__, Status.__table__
    complete = select(st.c.code).where(st.c.group_code == "complete")
    first = session.scalar(select(func.min(o.c.created_at)).where(o.c.site_id == site_id))
    dialect = session.get_bind().dialect.name
    lo, hi = _shifted(a.c.joined_at, -window.days, dialect), _shifted(a.c.joined_at, window.days, dialect)
    before = (o.c.created_at >= lo) & (o.c.created_at < a.c.joined_at)
    after = (o.c.created_at >= a.c.joined_at) & (o.c.created_at < hi)
    q = (select(a.c.id, a.c.joined_at,
                func.count(case((before, o.c.id))), func.sum(case((before, o.c.total))),
                func.count(case((after, o.c.id))), func.sum(case((after, o.c.total))))
         .select_from(a.outerjoin(o, (o.c.customer_id == a.c.customer_id) & o.c.status.in_(complete)
                                  & (o.c.created_at < end) & (o.c.created_at >= lo) & (o.c.created_at < hi)))
         .where(a.c.site_id == site_id, a.c.joined_at < end, a.c.status != service.HOLDOUT)
         .group_by(a.c.id, a.c.joined_at))
    out = []
    for _, at, bo, br, ao, ar in session.execute(q):
        history = (at - max(at - window, min(first, at) if first else at)).days
        out.append(Member(at, bo, _cents(br), history, ao, _cents(ar), min((end - at).days, window.days)))
    return out


def _cents(value: Any) -> Decimal:
    return _dec(value).quantize(CENT)
