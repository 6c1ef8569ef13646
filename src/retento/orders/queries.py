"""Read side of orders for the API: filtered, cursor-paged lists and snapshots of many at once."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, case, func, select
from sqlalchemy.orm import Session

from retento.orders.models import Order, OrderItem, Status, StatusGroup
from retento.orders.service import ITEM_COLUMNS, _chunks, _snapshot

_READ_MANAGERS = select(Order.id, Order.manager_id).where(Order.id.in_(bindparam("ids", expanding=True)))


def _filtered(q: Any, *, site_ids: list[int] | None = None, status: list[str] | None = None,
              customer_id: int | None = None, external_id: str | None = None, number: str | None = None,
              created_from: datetime | None = None, created_to: datetime | None = None,
              ids: list[int] | None = None, external_ids: list[str] | None = None) -> Any:
    if site_ids is not None:
        q = q.where(Order.site_id.in_(site_ids))
    if status:
        q = q.where(Order.status.in_(status))
    if customer_id is not None:
        q = q.where(Order.customer_id == customer_id)
    if external_id is not None:
        q = q.where(Order.external_id == external_id)
    if number is not None:
        q = q.where(Order.number == number)
    if created_from is not None:
        q = q.where(Order.created_at >= created_from)
    if created_to is not None:
        q = q.where(Order.created_at < created_to)
    if ids is not None:
        q = q.where(Order.id.in_(ids))
    if external_ids is not None:
        q = q.where(Order.external_id.in_(external_ids))
    return q


def list_orders(session: Session, *, after_id: int = 0, limit: int = 50, offset: int = 0,
                **filters: Any) -> list[Order]:
    q = _filtered(select(Order), **filters).where(Order.id > after_id)
    return list(session.scalars(q.order_by(Order.id).offset(offset).limit(limit)))


def count_orders(session: Session, **filters: Any) -> int:
    return session.scalar(_filtered(select(func.count(Order.id)), **filters)) or 0


def snapshots(session: Session, orders: list[Order], site_codes: dict[int, str]) -> list[dict[str, Any]]:
    """`service.snapshot` for many orders with one query for their items."""
    items: dict[int, list[dict[str, Any]]] = defaultdict(list)
    ids = [o.id for o in orders]
    if ids:
        for r in session.scalars(select(OrderItem).where(OrderItem.order_id.in_(ids)).order_by(OrderItem.id)):
            items[r.order_id].append({"id": r.id, **{c: getattr(r, c) for c in ITEM_COLUMNS}})
    out = []
    for o in orders:
        row = {c.key: getattr(o, c.key) for c in Order.__table__.columns}
        snap = _snapshot(o.id, site_codes[o.site_id], row, items[o.id])
        snap["items"] = items[o.id]
        snap["updated_at"] = o.updated_at
        out.append(snap)
    return out


def statuses(session: Session) -> list[Status]:
    return list(session.scalars(select(Status).order_by(Status.ordering, Status.code)))


def status_groups(session: Session) -> list[StatusGroup]:
    return list(session.scalars(select(StatusGroup).order_by(StatusGroup.ordering, StatusGroup.code)))


def totals_by_period(session: Session, *, bounds: Sequence[datetime],
                     site_ids: Sequence[int] | None = None) -> list[tuple[int, str, int, Decimal]]:
    """Orders and their total per period and currency, cancelled orders left out: (period, currency, orders,
    total) where period i runs from bounds[i] to bounds[i + 1] (so periods may be months in any time zone).
    One statement over the orders created in the whole span, in either database."""
    if len(bounds) < 2:
        return []
    period = case(*((Order.created_at < b, i) for i, b in enumerate(bounds[1:])))
    cancelled = select(Status.code).where(Status.group_code == "cancel")
    q = (select(period, Order.currency, func.count(Order.id), func.coalesce(func.sum(Order.total), 0))
         .where(Order.created_at >= bounds[0], Order.created_at < bounds[-1], Order.status.not_in(cancelled))
         .group_by(period, Order.currency).order_by(period, Order.currency))
    if site_ids is not None:
        q = q.where(Order.site_id.in_(site_ids))
    return [(int(p), cur, int(n), Decimal(total)) for p, cur, n, total in session.execute(q)]


def managers_of(session: Session, order_ids: Sequence[int]) -> dict[int, int | None]:
    """order id -> its manager id, for the ids that exist (900 ids a query)."""
    ids, out = list(order_ids), {}
    for chunk in _chunks(ids):
        out.update(session.execute(_READ_MANAGERS, {"ids": chunk}).all())
    return out


def of_customers(session: Session, *, customer_ids: Sequence[int], since: datetime) -> list[dict[str, Any]]:
    """Orders of these customers created since `since`, oldest first: id, customer_id, created_at, total, currency,
    status_group (what attribution reports read), 900 customers a query."""
    ids, out = sorted(set(customer_ids)), []
    for chunk in _chunks(ids):
        q = (select(Order.id, Order.customer_id, Order.created_at, Order.total, Order.currency, Status.group_code)
             .join(Status, Status.code == Order.status)
             .where(Order.customer_id.in_(chunk), Order.created_at >= since).order_by(Order.created_at, Order.id))
        out += [{"id": r[0], "customer_id": r[1], "created_at": r[2], "total": r[3], "currency": r[4],
                 "status_group": r[5]} for r in session.execute(q)]
    return sorted(out, key=lambda o: (o["created_at"], o["id"]))
