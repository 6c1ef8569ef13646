"""An order completed before its customer joined earns nothing, even when its event is dispatched after the join
(the worker catching up on a backlog, the demo shop's history)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from retento.core.db.transactions import transaction
from retento.loyalty import service
from retento.loyalty.schemas import JoinIn
from tests import factories as f
from tests.loyalty.helpers import CTX, operations, order, program


def test_an_event_from_before_joining_earns_nothing(app) -> None:  # noqa: ANN001
    f.site(app)
    program(app, percent=Decimal(10), activation_days=0)
    customer_id = f.customer(app)
    before = order(app, customer_id, ("x", "1000", 1))
    f.edit_order(app, before, status="complete")  # recorded, not dispatched yet
    app.clock.advance(timedelta(hours=1))
    with transaction(app.sessions) as s:
        account_id = service.join(s, data=JoinIn(site="shop", customer_id=customer_id), ctx=CTX,
                                  now=app.clock.now())[0].id
    after = order(app, customer_id, ("x", "500", 1))
    f.edit_order(app, after, status="complete")
    app.bus.dispatch()
    assert [(o.kind, o.order_id, o.amount) for o in operations(app, account_id)] == [
        ("accrual", after, Decimal("50.00"))]
