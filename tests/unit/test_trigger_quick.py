"""Conditions in the subset `triggers.quick` compiles run as plain Python: every verdict (matched, the false part,
the error and its words) must be the one CEL gives, on any data, including missing fields, nulls and odd types."""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from retento.triggers.conditions import Evaluator, compile_condition
from retento.triggers.quick import UNKNOWN, Scope, compile_part

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)

# ---- conditions of the subset -----------------------------------------------------------------------------------

FIELDS = ["order.status", "order.total", "order.payment_status", "order.manager_id", "order.delivery_date",
          "customer.email", "customer.created_at", "customer.first_name", "event.data.amount", "event.data.channel",
          "event.source", "event.name", "event.depth"]
LITERALS = ['"new"', '"paid-3"', '""', '"é"', "0", "1", "30000", "20000.0", "0.5", "9007199254740993", "true",
            "false", "null"]
atoms = st.one_of(
    st.sampled_from(FIELDS),
    st.sampled_from(LITERALS),
    st.sampled_from(['new_value("status")', 'old_value("status")', 'new_value("total")',
                     'days_since(customer.created_at)', 'hours_since(order.delivery_date)',
                     'minutes_since(event.data.channel)', "size(order.items)", "size(order.tags)"]),
)
predicates = st.one_of(
    st.builds(lambda a, op, b: f"{a} {op} {b}", atoms, st.sampled_from(["==", "!=", "<", "<=", ">", ">="]), atoms),
    st.sampled_from(['has_tag(order, "vip")', 'has_tag(customer, "vip-1")', 'in_status_group(order, "cancel")',
                     'changed("status")', 'changed("email")', 'source_is("user")', 'source_is_not("trigger")',
                     'contains(customer.email, "@b")', 'contains(customer.tags, "vip")', "true", "order.paid",
                     "event.data.flag", 'new_value("flag")']),
)
conditions = st.recursive(
    predicates,
    lambda inner: st.one_of(
        st.builds(lambda a: f"!{a}" if not a.startswith("!") else f"!({a})", inner),
        st.builds(lambda a, b: f"({a} && {b})", inner, inner),
        st.builds(lambda a, b: f"({a} || {b})", inner, inner),
    ),
    max_leaves=4,
)
top = st.lists(conditions, min_size=1, max_size=3).map(" && ".join)

# ---- data of any shape ------------------------------------------------------------------------------------------

values = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-5, max_value=40000),
    st.sampled_from([2 ** 53 + 1, -(2 ** 60), 2 ** 70]),
    st.floats(allow_infinity=True, allow_nan=True, width=64), st.sampled_from([0.5, 20000.0, 30000.0, -0.0]),
    st.sampled_from(["new", "paid-3", "", "é", "x@b.ru", "2026-02-01", "2026-02-28T10:00:00", "not a date",
                     "cancel", "user"]),
    st.sampled_from([Decimal("20000.00"), Decimal("0.5"), Decimal("NaN"), date(2026, 2, 1)]),
    st.sampled_from([datetime(2026, 2, 1, 8, 30), datetime(2026, 1, 1, tzinfo=timezone.utc),
                     datetime(2026, 3, 1, 23, 0, tzinfo=timezone(timedelta(hours=3)))]),
    st.lists(st.sampled_from(["vip", "vip-1", "a", 1, None]), max_size=3),
    st.dictionaries(st.sampled_from(["a", "tags"]), st.integers(), max_size=1),  # CEL words maps in any key order
)


def records(keys: list[str]) -> st.SearchStrategy:
    return st.dictionaries(st.sampled_from(keys), values, max_size=len(keys))


orders = st.one_of(st.none(), records(["status", "total", "payment_status", "manager_id", "delivery_date", "items",
                                       "tags", "status_group", "paid"]))
customers = st.one_of(st.none(), records(["email", "created_at", "first_name", "tags"]))
changes = st.lists(st.one_of(
    st.fixed_dictionaries({"field": st.sampled_from(["status", "total", "email", "flag"]), "old": values,
                           "new": values}),
    st.sampled_from([{"field": "status"}, {"old": 1, "new": 2}]),
), max_size=3)
events = st.one_of(st.none(), st.fixed_dictionaries({}, optional={
    "data": st.one_of(records(["amount", "channel", "flag"]), values),
    "source": st.sampled_from(["user", "trigger", "api", None, 3]), "name": values, "depth": values}))


def both(condition, *, event, order, customer, changes, whole):
    c = compile_condition(condition)
    fields = None if whole else {v: c.fields.get(v) for v in c.variables & {"event", "order", "customer", "changes"}}
    out = []
    for shortcuts in (True, False):
        ev = Evaluator(shortcuts=shortcuts)
        ev.bind(now=NOW, event=event, order=order, customer=customer, changes=changes, fields=fields)
        out.append(ev.check(c))
    return out


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(top, events, orders, customers, changes, st.booleans())
@example('order.total > 20000.0 && source_is_not("trigger")', {"source": "api"}, {"total": Decimal("26000.00")},
         None, [], False)
@example("size(order.items) > 0", None, {"items": [{"name": "x"}]}, None, [], False)
@example('event.data.amount > 1000.0 && customer.email != null && days_since(customer.created_at) > 1',
         {"data": {"amount": 5000}}, None, {"email": "a@b.ru", "created_at": datetime(2026, 1, 1)}, [], False)
@example('order.status == "new"', None, {}, None, [], False)
@example("contains(customer.email, event.data.channel)", {"data": {}}, None, {"email": None}, [], False)
@example('order.status == "new"', None, None, None, [], False)
def test_the_python_version_gives_cels_verdict(condition, event, order, customer, changes, whole):
    fast, cel = both(condition, event=event, order=order, customer=customer, changes=changes, whole=whole)
    assert fast == cel, condition


def test_the_bench_and_template_shapes_compile():
    """The shapes the engine meets most run without CEL (else this path would save nothing)."""
    for text in ['new_value("status") == "ready"', 'order.status == "ready"', '!in_status_group(order, "cancel")',
                 "order.total > 20500.0", 'source_is_not("trigger")', 'order.payment_status == "paid-3"',
                 "order.total <= 50000.0", "size(order.items) > 0", 'changed("total")', 'new_value("total") > 30000.0',
                 '!has_tag(order, "big-4")', 'has_tag(customer, "vip-1")', "event.data.amount > 1000.0",
                 "customer.email != null", "days_since(customer.created_at) > 1", 'event.data.channel == "email"']:
        assert compile_part(text) is not None, text


@pytest.mark.parametrize("text", ['order.tags.exists(t, t == "a")', "order.total + 1.0 > 2.0", '"a" in order.tags',
                                  'order.status.startsWith("n")', "now - order.created_at > duration(\"1h\")",
                                  'order["status"] == "x"', "-1 < order.total", "r\"x\" == order.status",
                                  "'x' == order.status", '"a\\"b" == order.status', "order == null",
                                  "order.total == 1.0 == true", "changes.size() > 0", "1e3 < order.total"])
def test_what_is_not_in_the_subset_is_left_to_cel(text):
    assert compile_part(text) is None


def test_unknown_where_cel_would_fail_and_cel_names_the_error():
    s = Scope()
    s.order = {"status": "new"}
    assert compile_part("order.total > 1.0")(s) is UNKNOWN  # a missing field: CEL's error, in its words
    s.order = {"total": math.nan}
    assert compile_part("order.total > 1.0")(s) is UNKNOWN
    fast, cel = both("order.total > 1.0", event=None, order={"status": "new"}, customer=None, changes=[], whole=False)
    assert fast == cel and fast.error and "total" in fast.reason
