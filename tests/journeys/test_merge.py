"""Merging duplicate customers in journeys: a duplicate's active run goes on as the kept customer's, unless the kept
customer is in that journey already (then it exits `customer_merged`): never two active runs per journey."""

from __future__ import annotations

from retento.core.db.transactions import transaction
from retento.customers import merging, service as customers
from tests import factories as f
from tests.journeys import helpers as j
from tests.journeys.test_entries_exits import _tagging
from tests.messaging import helpers as h


def test_active_runs_move_or_exit_and_the_moved_one_goes_on(app):
    f.site(app)
    welcome = j.save(app, _tagging("welcome", {"kind": "customer_created"}))
    cart = j.save(app, _tagging("cart", {"kind": "event", "event": "custom", "event_name": "cart_abandoned"}))
    keep, dup = f.customer(app, first_name="Kept"), f.customer(app, first_name="Dup")
    with transaction(app.sessions) as s:
        customers.emit_custom_event(s, customer=customers.get(s, dup), name="cart_abandoned", payload={},
                                    ctx=f.API, now=app.clock.now())
    h.drain(app)
    assert [r.state for r in j.runs(app, customer_id=dup)] == ["active", "active"]
    with transaction(app.sessions) as s:
        done = merging.merge(s, site="shop", keep_id=keep, merge_ids=[dup], ctx=f.API, now=app.clock.now())
    assert done.moved["journey_runs"] == 2 and done.moved["journey_runs_ended"] == 1
    runs = {(r.journey_id, r.state, r.exit_reason) for r in j.runs(app, customer_id=keep)}
    assert runs == {(welcome, "active", None), (welcome, "exited", "customer_merged"), (cart, "active", None)}
    app.clock.advance(days=1, minutes=1)
    h.drain(app)
    assert sorted(j.tags(app, keep)) == ["cart-1", "cart-2", "welcome-1", "welcome-2"]
    assert [r.state for r in j.runs(app, customer_id=keep) if r.exit_reason is None] == ["finished"] * 2
