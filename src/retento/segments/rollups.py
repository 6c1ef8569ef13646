"""Per-customer order rollups kept current from order events; segments and RFM read these, not raw orders.

A purchase is an order outside the `cancel` status group. One statement rebuilds the rollups of a set of
customers (or of everyone) from their orders, so the incremental and the full path give the same rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Select, case, delete, func, insert, select
from sqlalchemy.orm import Session

from retento.orders.models import Order, Status
from retento.segments.compiler import epoch_day
from retento.segments.models import CustomerRollup

R = CustomerRollup.__table__
O = Order.__table__  # noqa: E741
COLUMNS = ("customer_id", "site_id", "orders_count", "orders_total", "purchase_days", "first_day_total",
           "first_order_at", "last_order_at")


def rollup_select(customer_ids: Sequence[int] | Select | None = None, *, site_id: int | None = None,
                  before: datetime | None = None) -> Select:
    """The rollup rows (columns named as in the table) from the orders; `before`: only orders created earlier."""
    st = Status.__table__
    conds = [O.c.customer_id.is_not(None),
             O.c.status.in_(select(st.c.code).where(st.c.group_code != "cancel"))]
    if customer_ids is not None:
        conds.append(O.c.customer_id.in_(customer_ids if isinstance(customer_ids, Select) else list(customer_ids)))
    if site_id is not None:
        conds.append(O.c.site_id == site_id)
    if before is not None:
        conds.append(O.c.created_at < before)
    p = select(O.c.customer_id, O.c.site_id, O.c.total, O.c.created_at,
               epoch_day(O.c.created_at).label("day")).where(*conds).cte("purchases")
    first = select(p.c.customer_id, func.min(p.c.day).label("first_day")).group_by(p.c.customer_id).cte("first")
    return (
        select(
            p.c.customer_id, func.min(p.c.site_id).label("site_id"), func.count().label("orders_count"),
            func.sum(p.c.total).label("orders_total"), func.count(p.c.day.distinct()).label("purchase_days"),
            func.sum(case((p.c.day == first.c.first_day, p.c.total), else_=0)).label("first_day_total"),
            func.min(p.c.created_at).label("first_order_at"), func.max(p.c.created_at).label("last_order_at"),
        )
        .select_from(p.join(first, first.c.customer_id == p.c.customer_id))
        .group_by(p.c.customer_id)
    )


def refresh(session: Session, *, customer_ids: Sequence[int] | Select | None = None,
            site_id: int | None = None) -> int:
    """Rebuild the rollups of these customers (a list or a SELECT of ids; all of the site or everyone: None)."""
    if customer_ids is not None and not isinstance(customer_ids, Select) and not customer_ids:
        return 0
    stmt = delete(R)
    if customer_ids is not None:
        stmt = stmt.where(R.c.customer_id.in_(
            customer_ids if isinstance(customer_ids, Select) else list(customer_ids)))
    if site_id is not None:
        stmt = stmt.where(R.c.site_id == site_id)
    session.execute(stmt)
    result = session.execute(insert(R).from_select(COLUMNS, rollup_select(customer_ids, site_id=site_id)),
                             execution_options={"preserve_rowcount": True})
    return result.rowcount
