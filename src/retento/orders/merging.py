"""Orders when duplicate customers are merged (`customers.merging`): the merged customers' orders become the kept
customer's, each with its history entry (customer_id old -> new), as an edit of the order would record it.
No order_changed events: the merge's own customer_merged event says it, and the segments domain rebuilds the
rollups in the same transaction."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from retento.customers.merges import Merge
from retento.history import service as history
from retento.orders.models import Order

ENTITY = "order"
O = Order.__table__  # noqa: E741


def merge_customers(session: Session, merge: Merge) -> dict[str, int]:
    moved = session.execute(select(O.c.id, O.c.customer_id).where(O.c.customer_id.in_(merge.merged_ids))
                            .order_by(O.c.id)).all()
    if moved:
        session.execute(update(O).where(O.c.id.in_([oid for oid, _ in moved]))
                        .values(customer_id=merge.keep_id, updated_at=merge.now))
        history.write(session, [history.entry(entity=ENTITY, entity_id=oid, site_id=merge.site_id, ctx=merge.ctx,
                                              now=merge.now, field="customer_id", old=cid, new=merge.keep_id)
                                for oid, cid in moved])
    return {"orders": len(moved)}
