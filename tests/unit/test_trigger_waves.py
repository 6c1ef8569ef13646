"""Acting in waves (pure): runs that change the same order or customer act in turn, others together."""

from __future__ import annotations

from types import SimpleNamespace

from retento.triggers import actions
from retento.triggers.acting import Act, _waves

SPECS = {spec.name: spec for spec in actions.BUILT_IN}
TAG, STATUS, TASK = SPECS["add_tag"], SPECS["set_order_status"], SPECS["create_task"]


def run(order_id, *acts):
    t = SimpleNamespace(actions=[(spec, SimpleNamespace(**params)) for spec, params in acts])
    ev = SimpleNamespace(order_id=order_id, customer_id=order_id + 100)
    return Act(t, ev, "order", order_id, "event")  # type: ignore[arg-type]


def test_runs_changing_one_entity_act_in_turn_unless_one_many_call_keeps_their_order():
    tag = (TAG, {"target": "order", "tag": "x"})
    runs = [
        run(1, tag, (STATUS, {"status": "assembling"})),  # changes order 1 twice
        run(1, (STATUS, {"status": "complete"})),  # must come after: next wave
        run(2, tag),
        run(2, tag),  # same single action in the same slot: the same many call keeps the order
        run(1, (TASK, {})),  # a task changes no order or customer
        run(3, (TAG, {"target": "customer", "tag": "y"})),
    ]
    assert _waves(runs) == [[0, 2, 3, 4, 5], [1]]
