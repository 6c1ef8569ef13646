"""Pure parts of segments: rule parsing, RFM cut points and scores, cohort states."""

from datetime import date

import numpy as np
import pytest

from retento.core.errors import DomainError
from retento.segments import cohorts, rfm, rules
from retento.segments.compiler import builtin_types
from retento.segments.ltv import discounted_value
from retento.segments.schemas import DEFAULT_CELLS

TYPES = builtin_types()


def test_rule_tree_parses_and_knows_time_dependence():
    node = rules.parse({"all": [{"tags": {"any": ["a"]}},
                                {"not": {"orders": {"metric": "last_order_days_ago", "op": "gt", "value": 3}}}]}, TYPES)
    assert isinstance(node, rules.All) and isinstance(node.children[1], rules.Not)
    assert rules.time_dependent(node, TYPES)
    assert not rules.time_dependent(rules.parse({"tags": {"none": ["a"]}}, TYPES), TYPES)


def test_every_problem_of_a_tree_is_reported():
    with pytest.raises(DomainError) as exc:
        rules.parse({"any": [{"tags": {}}, {"orders": {"metric": "count", "op": "gte", "value": True}}, 5]}, TYPES)
    assert set(exc.value.as_dict()) == {"rules.any.0.tags", "rules.any.1.orders", "rules.any.2"}


def test_cut_points_and_scores():
    assert rfm.cut_points([5, 1, 4, 2, 3]) == [1, 2, 3, 4]
    assert rfm.cut_points([0, 0, 0, 1, 7, 9, 12, 30, 31, 40]) == [0, 1, 9, 30]
    assert [rfm.score_up(x, [0, 1, 9, 30]) for x in (0, 1, 2, 31)] == [1, 2, 3, 5]
    assert [rfm.score_recency(d, [10, 30, 90, 180]) for d in (0, 10, 11, 200)] == [5, 5, 4, 1]
    assert rfm.monetary_cents(3001, 1000, 2) == 1001  # 20.01 / 2 = 10.005 -> 10.01 (half up)


def test_default_cells_partition_the_grid():
    names = [rfm.cell_of(r, f, DEFAULT_CELLS) for r in range(1, 6) for f in range(1, 6)]
    assert "other" not in names
    assert rfm.cell_of(5, 5, DEFAULT_CELLS) == "champions" and rfm.cell_of(1, 1, DEFAULT_CELLS) == "lost"


def test_states_and_median_gap():
    days = [date(2026, 1, 1), date(2026, 1, 11)]
    assert cohorts.state_at(days, date(2025, 12, 31), 30) == "none"
    assert cohorts.state_at(days, date(2026, 1, 5), 30) == "new"
    assert cohorts.state_at(days, date(2026, 2, 9), 30) == "active"
    assert cohorts.state_at(days, date(2026, 2, 10), 30) == "sleeping"
    assert cohorts.median_gap([days, [date(2026, 1, 1)] * 2, [date(2026, 1, 1), date(2026, 1, 21)]]) == 15.0
    assert cohorts.median_gap([[date(2026, 1, 1)]]) is None


def test_months_and_the_provisional_month():
    assert cohorts.parse_month("2026-02") == date(2026, 2, 1) == cohorts.parse_month("2026-02-17")
    for bad in ("2026-13", "Feb 2026", "2026"):
        with pytest.raises(ValueError, match="YYYY-MM"):
            cohorts.parse_month(bad)
    data = {1: [date(2026, 1, 10)]}
    # observed during 31 January the month is not over; as of the end of 31 January it is; as of the 30th it is not
    assert cohorts.lifecycle(data, threshold=30, today=date(2026, 1, 31)).months[0].provisional
    assert not cohorts.lifecycle(data, threshold=30, today=date(2026, 1, 31), day_over=True).months[0].provisional
    assert cohorts.lifecycle(data, threshold=30, today=date(2026, 1, 30), day_over=True).months[0].provisional


@pytest.mark.parametrize(("tree", "value"), [
    ({"orders": {"metric": "count", "op": "gte", "value": 2}}, False),
    ({"orders": {"metric": "count", "op": "lt", "value": 2}}, True),
    ({"orders": {"metric": "sum", "op": "between", "value": [0, 10]}}, True),
    ({"orders": {"metric": "average", "op": "gt", "value": 5}}, False),
    ({"orders": {"metric": "last_order_days_ago", "op": "gt", "value": 90}}, False),
    ({"orders": {"metric": "count", "op": "gte", "value": 1, "within_days": 30}}, None),  # reads order rows
    ({"lifecycle": {"state": ["sleeping", "active"]}}, False),
    ({"lifecycle": {"state": ["none"]}}, True),
    ({"tags": {"any": ["vip"]}}, None),
    ({"all": [{"tags": {"any": ["vip"]}}, {"lifecycle": {"state": ["active"]}}]}, False),
    ({"any": [{"tags": {"any": ["vip"]}}, {"lifecycle": {"state": ["active"]}}]}, None),
    ({"any": [{"tags": {"any": ["vip"]}}, {"lifecycle": {"state": ["none"]}}]}, True),
    ({"not": {"orders": {"metric": "count", "op": "gte", "value": 2}}}, True),
    ({"not": {"all": [{"tags": {"any": ["vip"]}}, {"lifecycle": {"state": ["none"]}}]}}, None),
])
def test_value_of_a_tree_for_a_customer_without_purchases(tree, value):
    """What lets a segment query inner-join the rollups: False means only buyers can match."""
    from retento.segments.compiler import without_orders

    assert without_orders(rules.parse(tree, TYPES), TYPES) is value


def test_discounted_value_discounts_each_month_of_expected_purchases():
    # one purchase a month (cumulative expectation grows by 1 every 30 days), worth 10 and 20
    out = discounted_value(lambda days: np.full(2, days / 30), np.array([10.0, 20.0]), months=12, discount_rate=0.01)
    by_hand = sum(1 / 1.01 ** k for k in range(1, 13))
    assert np.allclose(out, [10 * by_hand, 20 * by_hand], rtol=1e-12)
    # no purchases expected: no value; no discount: the plain sum
    assert np.allclose(discounted_value(lambda d: np.zeros(1), np.array([5.0]), months=3, discount_rate=0.1), [0])
    assert np.allclose(discounted_value(lambda d: np.full(1, d / 15), np.array([1.0]), months=3, discount_rate=0), [6])


def test_category_plan_adds_new_facts_as_deltas_and_recomputes_customers_who_lost_one():
    from datetime import datetime, timezone
    from decimal import Decimal

    from retento.segments.rollups import plan

    t1, t2 = datetime(2026, 1, 1, tzinfo=timezone.utc), datetime(2026, 2, 1, tzinfo=timezone.utc)
    old = {(1, "Shoes"): (10, 1, Decimal("5.00"), t1), (2, "Bags"): (11, 1, Decimal("7.00"), t1)}
    new = {(1, "Shoes"): (10, 1, Decimal("5.00"), t1),  # unchanged
           (2, "Bags"): (12, 1, Decimal("7.00"), t1),  # moved from customer 11 to 12
           (3, "Shoes"): (10, 1, Decimal("2.50"), t2), (4, "Shoes"): (10, 1, Decimal("1.00"), t1)}
    p = plan(old, new)
    assert p.orders == {2, 3, 4} and p.exact == {11}
    assert [(f["order_id"], f["customer_id"]) for f in p.facts] == [(2, 12), (3, 10), (4, 10)]
    assert p.deltas == [
        {"customer_id": 10, "category": "Shoes", "site_id": 1, "orders_count": 2, "amount": Decimal("3.50"),
         "first_order_at": t1, "last_order_at": t2},
        {"customer_id": 12, "category": "Bags", "site_id": 1, "orders_count": 1, "amount": Decimal("7.00"),
         "first_order_at": t1, "last_order_at": t1}]
    assert plan(new, new).orders == set()  # applying an order twice changes nothing
    cancelled = plan(new, {k: v for k, v in new.items() if k[0] != 3})
    assert cancelled.orders == {3} and cancelled.facts == [] and cancelled.exact == {10} and cancelled.deltas == []


def test_histogram_change_counts_only_what_differs():
    from retento.segments.rollups import gap_counts, histogram_change

    assert gap_counts("30:2,7:2") == {7: 2, 30: 2} and gap_counts("") == {}
    old = [(1, "7:2,30:1"), (1, "5:1")]
    new = [(1, "30:2,7:2,44:1")]  # one gap more of 30 days, one new of 44; the second customer lost its only gap
    assert histogram_change(old, new) == {(1, 5): -1, (1, 30): 1, (1, 44): 1}  # (1, 7) unchanged: not counted
    assert histogram_change(new, new) == {}
    assert histogram_change([(1, "9:1")], [(2, "9:1")]) == {(1, 9): -1, (2, 9): 1}  # a customer now of site 2
