"""The ready-made triggers, installed with one call, behave as their descriptions say."""

from __future__ import annotations

import pytest

from retento.core.db.transactions import transaction
from retento.core.errors import DomainError
from retento.orders import service as orders
from retento.tasks import service as tasks
from retento.triggers import service, templates
from tests import factories as f


def install(app, name, **params):
    with transaction(app.sessions) as s:
        return service.install_template(s, name=name, params=params, now=app.clock.now())[0].id


def titles(app):
    with transaction(app.sessions) as s:
        return [(t.title, t.order_id, t.manager_id) for t in tasks.list_tasks(s)]


def test_every_template_renders_to_a_valid_trigger(app):
    assert templates.names() == ["courier-17-minutes", "order-robot", "review-request"]
    with transaction(app.sessions) as s:
        for name in templates.names():
            service.parse(s, templates.render(name))


def test_review_request_three_days_after_received_unless_returned(app, clock):
    f.site(app)
    install(app, "review-request")
    kept, returned, completed = f.order(app, number="K"), f.order(app, number="R"), f.order(app, number="C")
    for oid in (kept, returned, completed):
        f.edit_order(app, oid, status="received")
    app.worker.tick()
    clock.advance(days=1)
    f.edit_order(app, returned, status="returned")
    f.edit_order(app, completed, status="complete")  # still in the complete group: a review is welcome
    app.worker.tick()
    clock.advance(days=2, minutes=-1)
    app.worker.tick()
    assert titles(app) == []
    clock.advance(minutes=1)
    app.worker.tick()
    assert sorted(t[1] for t in titles(app)) == [kept, completed]
    assert titles(app)[0][0] == "Ask for a review of order K / Попросить отзыв о заказе K"


def test_courier_rule_fires_after_17_minutes_only_if_still_ready(app, clock):
    f.site(app)
    with transaction(app.sessions) as s:
        from retento.sites.schemas import ManagerCreate
        from retento.sites.service import create_manager

        boss = create_manager(s, data=ManagerCreate(name="Courier manager"), now=clock.now()).id
    install(app, "courier-17-minutes", courier_manager=boss)
    waits, leaves = f.order(app, number="W"), f.order(app, number="L")
    f.edit_order(app, waits, status="ready-for-delivery")
    f.edit_order(app, leaves, status="ready-for-delivery")
    app.worker.tick()
    clock.advance(minutes=5)
    f.edit_order(app, leaves, status="send-to-delivery")
    clock.advance(minutes=12)
    app.worker.tick()
    assert titles(app) == [("Order W waits for a courier / Заказ W ждёт курьера", waits, boss)]
    with transaction(app.sessions) as s:
        assert orders.get(s, waits).tags == ["courier-waiting"] and orders.get(s, leaves).tags == []


def test_order_robot_confirms_and_moves_on_matching_orders(app):
    f.site(app)
    install(app, "order-robot")
    paid = f.order(app, payment={"status": "paid"})
    unpaid = f.order(app)
    huge = f.order(app, payment={"status": "paid"}, items=[{"name": "car", "price": "90000.00"}])
    app.worker.tick()
    f.edit_order(app, unpaid, payment={"status": "paid"})  # paid later: the robot takes it on the change
    app.worker.tick()
    app.worker.tick()
    with transaction(app.sessions) as s:
        got = {oid: (orders.get(s, oid).status, orders.get(s, oid).tags) for oid in (paid, unpaid, huge)}
        from retento.history import service as history

        statuses = [r.new_value for r in history.since(s, entity="order", entity_id=paid) if r.field == "status"
                    and not r.created]
    assert got == {paid: ("send-to-assembling", ["robot"]), unpaid: ("send-to-assembling", ["robot"]),
                   huge: ("new", [])}
    assert statuses == ["client-confirmed", "send-to-assembling"]


def test_robot_conditions_are_a_parameter_and_checked(app):
    f.site(app)
    install(app, "order-robot", condition='order.delivery_type == "pickup"')
    oid = f.order(app, delivery={"type": "pickup"})
    app.worker.tick()
    with transaction(app.sessions) as s:
        assert orders.get(s, oid).status == "send-to-assembling"
    with pytest.raises(DomainError) as exc:
        install(app, "order-robot", condition="order.delivery_typ == 1")
    assert "order has no field 'delivery_typ'" in exc.value.as_dict()["condition"]
    with pytest.raises(DomainError) as exc:
        install(app, "order-robot", speed=2)
    assert "params.speed" in exc.value.as_dict()
