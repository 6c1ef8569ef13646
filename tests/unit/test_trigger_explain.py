"""The pure part of `retento triggers explain`: the data as it was after each event, what a false part saw, the
listening and loop rules, run limits. No database: events and snapshots are built here."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from retento.core.bus import Event
from retento.triggers import explain
from retento.triggers.compiled import Compiled
from retento.triggers.conditions import compile_condition
from retento.triggers.schemas import TriggerIn

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def trigger(condition: str = "true", **raw) -> Compiled:
    spec = TriggerIn(name="t", events=raw.pop("events", ["order_status_changed"]), condition=condition,
                     actions=[{"type": "add_tag", "tag": "x"}], **raw)
    return Compiled(7, "t", True, spec, compile_condition(condition), [], None, frozenset(), since=T0)


def event(id_: int, type_: str, minutes: int = 0, **kw) -> Event:
    values = {"name": None, "site_id": 1, "customer_id": 3, "order_id": 5, "payload": {}, "source": "api",
              "actor_type": "api_key", "actor_id": None, "depth": 0, **kw}
    return Event(id=id_, type=type_, occurred_at=T0 + timedelta(minutes=minutes), **values)


ORDER = {"id": 5, "status": "complete", "status_group": "complete", "total": Decimal("5000.00"), "tags": ["vip"],
         "created_at": T0}
GROUPS = {"new": "new", "assembling": "assembling", "complete": "complete"}
HISTORY = [
    event(1, "order_created"),
    event(2, "order_status_changed", 1, payload={"old": "new", "new": "assembling"}),
    event(3, "order_changed", 2, payload={"changes": [{"field": "total", "old": "500.00", "new": "5000.00"},
                                                      {"field": "tags", "old": [], "new": ["vip"]}]}),
    event(4, "order_status_changed", 3, payload={"old": "assembling", "new": "complete"}),
]


def explained(t: Compiled, events=HISTORY, **kw):
    return explain.explain(t, events, orders={5: ORDER}, customers={}, groups=GROUPS,
                           recorded=kw.pop("recorded", explain.Recorded()), max_depth=5, **kw)


def test_the_data_of_each_event_is_rebuilt_in_the_snapshot_types():
    states = explain.states_at(HISTORY, orders={5: ORDER}, customers={}, groups=GROUPS)
    assert states[4][0]["status"] == "complete" and states[4][0]["total"] == Decimal("5000.00")
    assert (states[2][0]["status"], states[2][0]["status_group"]) == ("assembling", "assembling")
    assert states[2][0]["total"] == Decimal("500.00") and states[2][0]["tags"] == []
    assert states[1][0]["status"] == "new"
    assert ORDER["status"] == "complete"  # the snapshots given are not changed


def test_a_false_part_shows_what_its_sub_expressions_gave():
    t = trigger('new_value("status") == "assembling" && order.total > 1000.0 && has_tag(order, "vip")')
    first, second = [x for x in explained(t) if x.event.type == "order_status_changed"]
    assert (first.outcome, first.part, first.part_text) == ("not_matched", 2, "order.total > 1000.0")
    assert first.values == {"order.total": 500.0}
    assert (second.part, second.values) == (1, {'new_value("status")': "complete", "changes.map(c, c.field)":
                                                ["status"]})
    t = trigger('days_since(order.created_at) > 30 && order.status.startsWith("x")')
    x = explained(t)[1]
    assert x.values == {"days_since(order.created_at)": 0, "order.created_at": "2026-03-02T09:00:00+00:00"}
    assert explained(trigger('has_tag(order, "gold")'))[3].values == {"order.tags": ["vip"]}


def test_an_evaluation_error_names_the_part():
    x = explained(trigger('order.status == "new" && order.custom_fields.size > 1'))[1]
    assert x.outcome == "not_matched" and x.part == 1
    x = explained(trigger('order.nothing_here == 1'))[1]
    assert x.outcome == "error" and "could not be evaluated" in x.reason and x.part == 1


def test_listening_and_loop_rules():
    assert explained(trigger())[0].reason == "the trigger listens to order_status_changed, not order_created"
    t = trigger(events=["custom"], event_names=["cart"])
    assert "'visit' is not among event_names (cart)" in explained(t, [event(9, "custom", name="visit")])[0].reason
    early = explained(trigger(), [event(9, "order_status_changed", -5)])[0]
    assert early.outcome == "not_listening" and "before the trigger was created" in early.reason
    own = explained(trigger(), [event(9, "order_status_changed", source="trigger", actor_id="7", depth=1)])[0]
    assert own.outcome == "skipped" and "made by this trigger" in own.reason
    deep = explained(trigger(max_depth=2), [event(9, "order_status_changed", source="trigger", actor_id="1",
                                                  depth=2)])[0]
    assert deep.reason == "chain of trigger-caused changes reached depth 2 (limit 2)"


def test_run_limits_count_the_firings_on_earlier_events():
    t = trigger(limits=[{"per": "order", "max": 1}])
    firings = [(2, 3, 5, T0)]
    out = explained(t, recorded=explain.Recorded(firings=firings))
    assert [x.outcome for x in out if x.event.type == "order_status_changed"] == ["matched", "limited"]
    assert out[3].reason == "run limit reached: 1 of 1 per order"
    t = trigger(limits=[{"per": "trigger", "max": 1, "period_days": 1}])
    later = [event(9, "order_status_changed", 60 * 25)]
    assert explained(t, later, recorded=explain.Recorded(firings=firings))[0].outcome == "matched"
