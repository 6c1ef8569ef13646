"""Incremental updates equal a full recompute after random event sequences; one event per membership change."""

import itertools
from collections import defaultdict
from datetime import date

from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import func, select

from retento.core.bus import Event
from retento.core.db.transactions import transaction
from retento.customers import service as customers
from retento.segments import rollups, service
from retento.segments.models import (
    CustomerCategoryRollup,
    CustomerGap,
    CustomerRollup,
    OrderCategoryFact,
    SegmentChange,
    SegmentMember,
)
from retento.segments.schemas import SegmentCreate
from tests import factories as f

SEGMENTS = {
    "repeat": {"orders": {"metric": "count", "op": "gte", "value": 2}},
    "big": {"orders": {"metric": "sum", "op": "gte", "value": 150}},
    "no-orders-vip": {"all": [{"tags": {"any": ["vip"]}}, {"orders": {"metric": "count", "op": "eq", "value": 0}}]},
    "recent": {"orders": {"metric": "last_order_days_ago", "op": "lte", "value": 20}},
    "active": {"lifecycle": {"state": ["active"]}},
    "sleepy-or-cart": {"any": [{"lifecycle": {"state": ["sleeping"]}},
                               {"event": {"type": "custom", "name": "cart", "within_days": 10}}]},
    "complete-shoes": {"orders": {"metric": "count", "op": "gte", "value": 1, "status_group": "complete",
                                  "category": "Shoes"}},
    "not-avg": {"not": {"orders": {"metric": "average", "op": "gt", "value": 80}}},
    # read the category rollups (all time, or the last purchase within N days) and the category facts (windows)
    "shoes-recent": {"orders": {"metric": "count", "op": "gte", "value": 1, "category": "Shoes", "within_days": 15}},
    "shoes-twice": {"orders": {"metric": "count", "op": "gte", "value": 2, "category": "Shoes"}},
    "bags-big": {"orders": {"metric": "sum", "op": "gte", "value": 150, "category": "Bags", "within_days": 30}},
    "few-bags": {"orders": {"metric": "count", "op": "lt", "value": 2, "category": "Bags", "within_days": 25}},
    "shoes-avg": {"orders": {"metric": "average", "op": "lte", "value": 90, "category": "Shoes"}},
}
STATUSES = ["new", "complete", "cancel-other", "assembling"]
CATEGORIES = [None, "Shoes", "Bags"]
items = st.lists(st.tuples(st.sampled_from(CATEGORIES), st.integers(1, 200), st.integers(1, 3)), min_size=1,
                 max_size=3)

op = st.one_of(
    st.tuples(st.just("customer"), st.booleans()),
    st.tuples(st.just("order"), st.integers(0, 5), items, st.sampled_from(STATUSES)),
    st.tuples(st.just("items"), st.integers(0, 9), items),
    st.tuples(st.just("status"), st.integers(0, 9), st.sampled_from(STATUSES)),
    st.tuples(st.just("move"), st.integers(0, 9), st.integers(0, 5)),
    st.tuples(st.just("tags"), st.integers(0, 5), st.booleans()),
    st.tuples(st.just("cart"), st.integers(0, 5)),
    st.tuples(st.just("wait"), st.integers(1, 40)),
    st.tuples(st.just("tick"),),
)  # each op is followed by a worker tick or not (events then pile up for one batch)
counter = itertools.count()


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                HealthCheck.too_slow])
@given(ops=st.lists(st.tuples(op, st.booleans()), min_size=8, max_size=20))
def test_incremental_equals_full_recompute(app, ops):
    code = f"s{next(counter)}"
    f.site(app, code)
    people = [f.customer(app, site=code, tags=["vip"]), f.customer(app, site=code)]
    orders: list[int] = []
    with transaction(app.sessions) as s:
        site_id = _site_id(s, code)
        segs = [service.create(s, data=SegmentCreate(site=code, code=k, name=k, rules=r), now=app.clock.now()).id
                for k, r in SEGMENTS.items()]
        mark = s.scalar(select(func.max(SegmentChange.id))) or 0
    for o, tick_after in ops:
        kind = o[0]
        if kind == "customer":
            people.append(f.customer(app, site=code, tags=["vip"] if o[1] else []))
        elif kind == "order":
            _, who, lines, status = o
            orders.append(f.order(app, site=code, customer={"id": people[who % len(people)]}, status=status,
                                  items=_items(lines)))
        elif kind == "items" and orders:
            f.edit_order(app, orders[o[1] % len(orders)], items=_items(o[2]))
        elif kind == "status" and orders:
            f.edit_order(app, orders[o[1] % len(orders)], status=o[2])
        elif kind == "move" and orders:
            f.edit_order(app, orders[o[1] % len(orders)], customer={"id": people[o[2] % len(people)]})
        elif kind == "tags":
            f.edit_customer(app, people[o[1] % len(people)], tags=["vip"] if o[2] else [])
        elif kind == "cart":
            with transaction(app.sessions) as s:
                customers.emit_custom_event(s, customer=customers.get(s, people[o[1] % len(people)]), name="cart",
                                            payload={}, ctx=f.API, now=app.clock.now())
        elif kind == "wait":
            app.clock.advance(days=o[1])
        if kind == "tick" or tick_after:
            app.worker.tick()
    app.worker.tick()

    with transaction(app.sessions) as s:
        # rollups kept from events equal rollups rebuilt from all orders
        kept = {r.customer_id: _row(r) for r in s.scalars(select(CustomerRollup).where(
            CustomerRollup.site_id == site_id))}
        rebuilt = {r[0]: tuple(r[2:]) for r in s.execute(rollups.rollup_select(site_id=site_id))}
        assert {k: tuple(_norm(x) for x in v) for k, v in kept.items()} == \
               {k: tuple(_norm(x) for x in v) for k, v in rebuilt.items()}
        # category rollups and facts kept from one-order deltas equal a rebuild from all orders
        facts = {(r[0], r[1]): tuple(_norm(x) for x in r[2:]) for r in s.execute(rollups.facts_select(site_id=site_id))}
        assert {(r.order_id, r.category): tuple(_norm(x) for x in (r.customer_id, r.site_id, r.amount, r.at))
                for r in s.scalars(select(OrderCategoryFact).where(OrderCategoryFact.site_id == site_id))} == facts
        assert {(r.customer_id, r.category): tuple(_norm(x) for x in (
                    r.site_id, r.orders_count, r.amount, r.first_order_at, r.last_order_at))
                for r in s.scalars(select(CustomerCategoryRollup).where(CustomerCategoryRollup.site_id == site_id))
                } == _category_rows(facts)
        # each customer's gaps and the site's gap histogram kept from deltas equal a rebuild from all orders
        rebuilt_gaps: dict[int, tuple[int, dict[int, int]]] = {}
        for customer, site, gap, n in s.execute(rollups.gaps_select(site_id=site_id)):
            rebuilt_gaps.setdefault(customer, (site, {}))[1][gap] = n
        assert {r.customer_id: (r.site_id, rollups.gap_counts(r.gaps)) for r in s.scalars(select(CustomerGap).where(
            CustomerGap.site_id == site_id))} == rebuilt_gaps
        histogram = {}
        for _customer, _site, gap, n in s.execute(rollups.gaps_select(site_id=site_id)):
            histogram[gap] = histogram.get(gap, 0) + n
        assert dict(rollups.gap_histogram(s, site_id=site_id)) == histogram
        for sid in segs:
            seg = service.get(s, sid)
            stored = set(s.scalars(select(SegmentMember.customer_id).where(SegmentMember.segment_id == sid)))
            full = {c["id"] for c in service.preview(s, site=code, raw_rules=seg.rules, now=app.clock.now(),
                                                     sample=100)["sample"]}
            assert stored == full, seg.code
            assert seg.size == len(stored), seg.code
            _history_and_events_agree(s, seg, stored, mark)


def _items(lines):
    return [{"name": "x", "price": f"{amount}.50", "quantity": qty, **({"category": cat} if cat else {})}
            for cat, amount, qty in lines]


def _category_rows(facts):
    """Category rollup rows computed in Python from the rebuilt facts."""
    rows: dict = {}
    for (_order, category), (customer, site, amount, at) in facts.items():
        r = rows.setdefault((customer, category), [site, 0, 0, at, at])
        r[1] += 1
        r[2] += amount
        r[3], r[4] = min(r[3], at), max(r[4], at)
    return {k: tuple(_norm(x) for x in v) for k, v in rows.items()}


def _site_id(s, code):
    from retento.sites.service import get_site

    return get_site(s, code).id


def _row(r):
    return (r.orders_count, r.orders_total, r.purchase_days, r.first_day_total, r.first_order_at, r.last_order_at)


def _norm(x):
    from decimal import Decimal

    return Decimal(str(x)).quantize(Decimal("0.01")) if isinstance(x, float | Decimal) else x


def _history_and_events_agree(s, seg, stored, mark):
    """History alternates enter/leave per customer and ends in the current state; each change after the first
    computation has exactly one event of the right type."""
    per: dict[int, list[bool]] = defaultdict(list)
    rows = s.execute(select(SegmentChange.id, SegmentChange.customer_id, SegmentChange.entered, SegmentChange.at)
                     .where(SegmentChange.segment_id == seg.id).order_by(SegmentChange.id)).all()
    for _, cid, entered, _at in rows:
        per[cid].append(entered)
    for cid, seq in per.items():
        assert seq == [i % 2 == 0 for i in range(len(seq))], (seg.code, cid, seq)
        assert (seq[-1]) == (cid in stored)
    assert not (stored - set(per))
    events = {e.idempotency_key: e for e in s.scalars(select(Event).where(
        Event.type.in_(["segment_entered", "segment_left"]), Event.payload["segment_id"].as_integer() == seg.id))}
    first = [r for r in rows if r.id <= mark]
    later = [r for r in rows if r.id > mark]
    assert len(events) == len(later)
    for r in later:
        e = events[f"segment-change:{r.id}"]
        assert e.customer_id == r.customer_id
        assert e.type == ("segment_entered" if r.entered else "segment_left")
    assert all(f"segment-change:{r.id}" not in events for r in first)


def test_an_order_moved_to_another_customer_updates_both(app):
    f.site(app)
    a, b = f.customer(app), f.customer(app)
    with transaction(app.sessions) as s:
        seg = service.create(s, data=SegmentCreate(site="shop", code="buyers", name="Buyers",
                                                   rules={"orders": {"metric": "count", "op": "gte", "value": 1}}),
                             now=app.clock.now())
    o = f.order(app, customer={"id": a})
    app.worker.tick()
    f.edit_order(app, o, customer={"id": b})
    app.worker.tick()
    with transaction(app.sessions) as s:
        assert service.member_ids(s, segment=service.get(s, seg.id)) == [b]
        assert s.get(CustomerRollup, a) is None


def test_static_lists_from_api_lists_and_csv(app):
    f.site(app)
    a = f.customer(app, email="a@example.com", external_id="A-1")
    b = f.customer(app, email="b@example.com", external_id="B-1")
    c = f.customer(app, email="c@example.com")
    from retento.segments.schemas import MembersIn

    with transaction(app.sessions) as s:
        seg = service.create(s, data=SegmentCreate(site="shop", code="vip-list", name="VIP list", kind="static"),
                             now=app.clock.now())
        assert service.change_members(s, segment=seg, data=MembersIn(customer_ids=[a], external_ids=["B-1"]),
                                      add=True, now=app.clock.now()) == (2, 0)
        # adding again changes nothing and emits nothing
        assert service.change_members(s, segment=seg, data=MembersIn(customer_ids=[a]), add=True,
                                      now=app.clock.now()) == (0, 0)
        csv = "email,note\nC@example.com,x\nb@example.com,y\n"
        assert service.change_members(s, segment=seg, data=service.parse_members_csv(csv), add=True,
                                      now=app.clock.now()) == (1, 0)
        assert service.change_members(s, segment=seg, data=MembersIn(customer_ids=[b]), add=False,
                                      now=app.clock.now()) == (0, 1)
        assert service.member_ids(s, segment=seg) == [a, c] and seg.size == 2
        evs = [(e.type, e.customer_id) for e in s.scalars(select(Event).where(
            Event.type.in_(["segment_entered", "segment_left"])).order_by(Event.id))]
        assert evs == [("segment_entered", a), ("segment_entered", b), ("segment_entered", c), ("segment_left", b)]
    # bad input names the field and stores nothing
    import pytest

    from retento.core.errors import DomainError

    with transaction(app.sessions) as s, pytest.raises(DomainError) as exc:
        service.change_members(s, segment=service.get(s, seg.id), data=MembersIn(customer_ids=[c, 999]), add=False,
                               now=app.clock.now())
    assert "customer_ids" in exc.value.as_dict()
    with pytest.raises(DomainError) as exc:
        service.parse_members_csv("email\nx@example.com\n\n,\n")
    assert "file.line 3" in exc.value.as_dict() or "file.line 4" in exc.value.as_dict()
    with transaction(app.sessions) as s:
        assert service.member_ids(s, segment=service.get(s, seg.id)) == [a, c]
        assert s.scalar(select(func.count()).select_from(SegmentChange)) == 4


def test_sizes_over_time(app):
    f.site(app)
    a, b = f.customer(app), f.customer(app)
    with transaction(app.sessions) as s:
        seg = service.create(s, data=SegmentCreate(site="shop", code="buyers", name="Buyers",
                                                   rules={"orders": {"metric": "count", "op": "gte", "value": 1}}),
                             now=app.clock.now())
    f.order(app, customer={"id": a})
    app.worker.tick()
    app.clock.advance(days=1)
    f.order(app, customer={"id": b})
    app.worker.tick()
    app.clock.advance(days=1)
    f.edit_order(app, 1, status="cancel-other")
    app.worker.tick()
    app.clock.advance(days=2)
    app.worker.tick()
    with transaction(app.sessions) as s:
        seg = service.get(s, seg.id)
        today = app.clock.now().date()
        assert service.sizes(s, segment=seg, today=today) == [
            {"date": "2026-03-02", "size": 1}, {"date": "2026-03-03", "size": 2}, {"date": "2026-03-04", "size": 1},
            {"date": "2026-03-05", "size": 1}, {"date": "2026-03-06", "size": 1}]  # days without a change carry on
        assert service.sizes(s, segment=seg, today=today, start=date(2026, 3, 3), end=date(2026, 3, 4)) == [
            {"date": "2026-03-03", "size": 2}, {"date": "2026-03-04", "size": 1}]
        assert service.sizes(s, segment=seg, today=today, start=date(2026, 2, 1), end=date(2026, 3, 2)) == [
            {"date": "2026-03-02", "size": 1}]  # nothing before the first computation
        assert service.sizes(s, segment=seg, today=today, end=date(2026, 3, 1)) == []
