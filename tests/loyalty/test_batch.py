"""The order events' batch handler (set-based accrual) on both databases: a batch mixing members completing one
order, a member completing two, a cancel and a non-member ends as the one-by-one path would: the same
operations, lots, keys and levels."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select

from retento.core.db.transactions import transaction
from retento.loyalty.models import Operation
from tests import factories as f
from tests.loyalty.helpers import account, events, member, operations, order, program


def test_a_batch_of_order_events_accrues_as_one_by_one(app, caplog):
    f.site(app)
    program(app, percent="5", activation_days=0, levels=[
        {"code": "silver", "name": "Silver", "threshold": "0", "percent": "5"},
        {"code": "gold", "name": "Gold", "threshold": "1000", "percent": "10"}])
    (c1, a1), (c2, a2), (c3, a3) = member(app), member(app), member(app)
    stranger = f.customer(app)
    o1 = order(app, c1, ("shoes", "2000.00", 1))
    o2a, o2b = order(app, c2, ("shoes", "100.00", 1)), order(app, c2, ("shoes", "300.00", 2))
    o3 = order(app, c3, ("shoes", "500.00", 1))
    o4 = order(app, stranger, ("shoes", "700.00", 1))
    app.bus.dispatch()
    for oid in (o1, o2a, o2b, o4):
        f.edit_order(app, oid, status="complete")
    f.edit_order(app, o3, status="cancel-other")
    app.bus.dispatch()
    assert "failed on a batch" not in caplog.text  # the batch handler decided, not the one-by-one fallback
    assert account(app, a1).balance == Decimal("100.00") and account(app, a1).level == "gold"
    assert account(app, a2).balance == Decimal("35.00") and account(app, a2).level == "silver"
    assert account(app, a3).balance == 0 and operations(app, a3) == []
    assert [(e["customer_id"], e["new"]) for e in events(app, "loyalty_level_changed")] == [(c1, "gold")]
    with transaction(app.sessions) as s:
        keys = list(s.scalars(select(Operation.idempotency_key).where(Operation.kind == "accrual")
                              .order_by(Operation.id)))
    assert len(keys) == 3 and all(k.startswith("event:") and k.endswith(":accrual") for k in keys)
    f.edit_order(app, o1, status="complete")  # no change: nothing more
    app.bus.dispatch()
    assert [o.kind for o in operations(app, a1)] == ["accrual"]
