"""The guard index (pure): which triggers an event can match without running their conditions."""

from __future__ import annotations

from dataclasses import dataclass, field

from retento.triggers import dispatch
from retento.triggers.conditions import compile_condition, split_conjuncts


@dataclass
class T:
    id: int
    condition: str
    guards: list[dispatch.Guard] = field(init=False)

    def __post_init__(self) -> None:
        self.guards = dispatch.guards_of(split_conjuncts(self.condition))


def plan(*triggers: T) -> dispatch.Plan[T]:
    return dispatch.build_plan(triggers, lambda t: t.guards, lambda t: None)


def test_guards_are_recognised_in_any_part_and_the_rest_is_left_to_cel():
    gs = dispatch.guards_of(split_conjuncts(
        'order.total > 5.0 && new_value("status") == "paid" && changed("total") && event.data.channel == "sms" '
        '&& "x" == new_value("f") && order.payment_status == "paid" && customer.email != null'))
    assert [(g.kind, g.key, g.value, g.part) for g in gs] == [
        ("new", "status", "paid", 2), ("changed", "total", True, 3), ("data", "channel", "sms", 4),
        ("new", "f", "x", 5), ("order", "payment_status", "paid", 6)]
    assert dispatch.guards_of(['new_value("status") == "a" || true']) == []


def test_the_most_selective_guard_is_indexed():
    a = T(1, 'order.status == "new" && order.payment_status == "p1"')
    b = T(2, 'order.status == "new" && order.payment_status == "p2"')
    c = T(3, 'new_value("status") == "sent" && order.total > 1.0')
    d = T(4, "order.total > 1.0")
    p = plan(a, b, c, d)
    assert p.unguarded == [d]
    (entity,) = p.entity_groups
    assert entity.key == "payment_status"  # two literals beat one
    assert entity.split("p2") == [b]
    assert entity.split("other") == []
    assert entity.split(dispatch.MISSING) == [a, b]  # no value: the condition decides (and explains)
    (event,) = p.event_groups
    value = dispatch.event_value("new", "status", changes=[{"field": "status", "new": "sent"}], payload={}, event={})
    assert event.split(value) == [c]
    assert event.split(None) == []


def test_fields_used_are_what_cel_is_given():
    c = compile_condition('has_tag(order, "x") && order.total > 1.0 && event.data.amount > 2 && customer != null')
    assert c.fields["order"] == frozenset({"tags", "total"})
    assert c.fields["event"] == frozenset({"data"})
    assert c.fields["customer"] is None  # used whole
