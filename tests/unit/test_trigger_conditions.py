"""Pure parts of the trigger engine: conditions, their explanation, and when a delayed run is due."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from retento.triggers.conditions import ConditionError, Evaluator, compile_condition, split_conjuncts
from retento.triggers.schemas import Delay
from retento.triggers.timers import due_at

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
ORDER = {"id": 1, "status": "received", "status_group": "complete", "total": 1500.0, "tags": ["gift"],
         "created_at": datetime(2026, 2, 20, tzinfo=timezone.utc), "custom_fields": {}}
CUSTOMER = {"id": 2, "email": "a@b.ru", "tags": ["vip", "wholesale"], "birthday": "1990-05-01"}
CHANGES = [{"field": "status", "old": "delivering", "new": "received", "source": "user", "actor": "user:3"}]


def check(expr: str) -> tuple[bool, str | None]:
    ev = Evaluator()
    ev.bind(now=NOW, event={"type": "order_status_changed", "source": "user", "data": {}}, customer=CUSTOMER,
            order=ORDER, changes=CHANGES)
    verdict = ev.check(compile_condition(expr))
    return verdict.matched, verdict.reason


@pytest.mark.parametrize("expr", [
    'changed("status") && new_value("status") == "received" && old_value("status") == "delivering"',
    'has_tag(customer, "vip") && !has_tag(order, "vip")',
    'contains(customer.tags, "wholesale") && contains(customer.email, "@b.")',
    'in_status_group(order, "complete") && in_status_group(order, ["cancel", "complete"])',
    'days_since(order.created_at) == 10 && hours_since(order.created_at) == 249',
    'source_is("user") && source_is_not("trigger")',
    'order.total > 1000.0 && order.total < 2000',
    'now - order.created_at > duration("72h")',
    'changes.exists(c, c.field == "status" && c.actor == "user:3")',
    'days_since(customer.birthday) > 365',
])
def test_helpers_and_variables(expr):
    assert check(expr) == (True, None)


def test_a_false_condition_names_the_false_part():
    matched, reason = check('has_tag(customer, "vip") && (order.total > 5000.0 || order.status == "new") && true')
    assert not matched
    assert reason == 'part 2 of 3 is false: `(order.total > 5000.0 || order.status == "new")`'


def test_evaluation_errors_do_not_match_and_say_why():
    matched, reason = check('order.custom_fields.priority > 1')
    assert not matched and "could not be evaluated" in reason and "priority" in reason
    matched, reason = check('order.total')
    assert not matched and "must give true or false" in reason


def test_split_respects_parentheses_strings_and_or():
    assert split_conjuncts('a && (b && c) && "x && y" == s') == ["a", "(b && c)", '"x && y" == s']
    assert split_conjuncts("a && b || c") == ["a && b || c"]


@pytest.mark.parametrize("expr, words", [
    ("order.status ==", "syntax error at line 1"),
    ("customr.email == ''", "unknown variable 'customr'"),
    ("has_tags(customer, 'x')", "unknown function 'has_tags'"),
    ("customer.emial == ''", "customer has no field 'emial'"),
    ("event.typ == ''", "event has no field 'typ'"),
    ("   ", "is empty"),
])
def test_save_time_errors_point_at_the_problem(expr, words):
    with pytest.raises(ConditionError) as exc:
        compile_condition(expr, fields={"customer": {"email", "tags"}, "order": {"status"}})
    assert words in str(exc.value)


def test_strings_and_macro_variables_are_not_field_references():
    expr = 'customer.tags.exists(t, t == "order.nothing")'
    # `order` has no field `nothing`: were the string taken for a reference, saving would fail naming it
    condition = compile_condition(expr, fields={"customer": {"tags"}, "order": {"status"}})
    assert dict(condition.fields) == {"customer": frozenset({"tags"})}  # the macro's `t` is no entity either
    assert "order" not in condition.variables
    assert check(expr)[0] is False and check('customer.tags.exists(t, t == "vip")') == (True, None)


def test_due_at_fixed_delay_and_local_time():
    assert due_at(Delay(minutes=17), at=NOW, tz=None) == datetime(2026, 3, 2, 9, 17, tzinfo=timezone.utc)
    assert due_at(Delay(days=3), at=NOW, tz="Europe/Moscow") == datetime(2026, 3, 5, 9, 0, tzinfo=timezone.utc)
    # 09:00 UTC is 12:00 in Moscow; two days later at 10:00 Moscow = 07:00 UTC.
    assert due_at(Delay(days=2, at="10:00"), at=NOW, tz="Europe/Moscow") == datetime(
        2026, 3, 4, 7, 0, tzinfo=timezone.utc)
    assert due_at(Delay(days=68 * 365), at=NOW, tz=None).year == 2094


@pytest.mark.parametrize("raw, words", [
    ({"minutes": 9}, "at least 10 minutes"),
    ({"days": 25000}, "at most 68 years"),
    ({"days": 0, "at": "10:00"}, "at least 1"),
    ({"days": 1, "hours": 2, "at": "10:00"}, "only `days`"),
    ({"days": 1, "at": "9:5"}, "HH:MM"),
])
def test_delay_bounds(raw, words):
    with pytest.raises(ValueError) as exc:
        Delay.model_validate(raw)
    assert words in str(exc.value)


@pytest.mark.parametrize(("source", "marked"), [
    ('event.type == "x.y" && order.totl > 1', "order.totl"),  # a field (the string's dot is no reference)
    ("order.total > 1 && nope == 2", "nope"),
    ('has_tag(customer, "a") && frob(1)', "frob"),
    ("order.total >> 3", ">"),
    ("order.total > 1 &&\n  order.total >> 3", ">"),
])
def test_errors_say_where_the_wrong_part_is(source: str, marked: str) -> None:
    with pytest.raises(ConditionError) as caught:
        compile_condition(source, fields={"order": ["total"]})
    start, end = caught.value.span
    assert source[start:end] == marked
    if marked == ">":
        assert source[:start].endswith("order.total >")  # the second `>`, not the first
