"""Every rule type and nested trees, on both databases, against a small hand-made shop."""

from datetime import datetime, timezone

import pytest
from sqlalchemy import func, select

from retento.core.bus import Event
from retento.core.db.transactions import transaction
from retento.core.errors import DomainError
from retento.customers import service as customers
from retento.segments import analytics, service
from retento.segments.schemas import SegmentCreate
from retento.sites.service import get_site
from tests import factories as f


def at(text: str) -> str:
    return f"{text}T12:00:00+00:00"


@pytest.fixture
def shop(app):
    """a: active buyer; b: one old purchase; c: never bought; d: only a cancelled order. Now: 2026-03-02 09:00."""
    f.site(app)
    ids = {
        "a": f.customer(app, email="a@example.com", first_name="Anna", tags=["vip", "sale"], interests=["shoes", "bags"],
                        entry_point="registration", birthday="1990-05-01",
                        consents={"email": {"granted": True, "source": "checkout"}},
                        custom_fields={"city": "Kazan", "age": 30}),
        "b": f.customer(app, email="b@example.com", first_name="Boris", tags=["sale"], interests=["bags"],
                        entry_point="purchase", created_at="2025-06-01T10:00:00+00:00",
                        consents={"email": {"granted": False, "source": "link"},
                                  "sms": {"granted": True, "source": "form"}},
                        custom_fields={"city": "Moscow", "age": 45}),
        "c": f.customer(app, phone="+79990000003", entry_point="chat"),
        "d": f.customer(app, email="d@other.org"),
    }
    item = [{"name": "Thing", "price": "100.00", "quantity": 1}]
    f.order(app, customer={"id": ids["a"]}, created_at=at("2025-12-01"), status="complete", items=item)
    f.order(app, customer={"id": ids["a"]}, created_at=at("2026-01-15"), status="complete",
            items=[{"name": "Boots", "category": "Shoes", "price": "150.00", "quantity": 2}])
    f.order(app, customer={"id": ids["a"]}, created_at=at("2026-02-20"),
            items=[{"name": "Bag", "price": "200.00", "quantity": 1}])
    f.order(app, customer={"id": ids["b"]}, created_at=at("2025-06-01"),
            items=[{"name": "Tote", "category": "Bags", "price": "50.00", "quantity": 1}])
    f.order(app, customer={"id": ids["d"]}, created_at=at("2026-02-01"), status="cancel-other",
            items=[{"name": "Big", "price": "999.00", "quantity": 1}])
    now = app.clock.now()
    for who, when in (("c", "2026-02-28T10:00:00+00:00"), ("d", "2025-12-01T10:00:00+00:00")):
        app.clock.set(datetime.fromisoformat(when))
        with transaction(app.sessions) as s:
            customers.emit_custom_event(s, customer=customers.get(s, ids[who]), name="cart_abandoned", payload={},
                                        ctx=f.API, now=app.clock.now())
    app.clock.set(now)
    app.worker.tick()
    return ids


CASES = [
    ({"customer": {"field": "email", "op": "is_set"}}, "abd"),
    ({"customer": {"field": "email", "op": "is_not_set"}}, "c"),
    ({"customer": {"field": "email", "op": "contains", "value": "EXAMPLE"}}, "ab"),
    ({"customer": {"field": "email", "op": "starts_with", "value": "d@"}}, "d"),
    ({"customer": {"field": "first_name", "op": "eq", "value": "Anna"}}, "a"),
    ({"customer": {"field": "first_name", "op": "ne", "value": "Anna"}}, "b"),
    ({"customer": {"field": "entry_point", "op": "in", "value": ["registration", "chat"]}}, "ac"),
    ({"customer": {"field": "created_at", "op": "within_days", "value": 30}}, "acd"),
    ({"customer": {"field": "created_at", "op": "older_than_days", "value": 30}}, "b"),
    ({"customer": {"field": "birthday", "op": "gte", "value": "1990-01-01"}}, "a"),
    ({"customer": {"field": "email_confirmed", "op": "eq", "value": False}}, "abcd"),
    ({"custom_field": {"name": "city", "op": "eq", "value": "Kazan"}}, "a"),
    ({"custom_field": {"name": "city", "op": "in", "value": ["Kazan", "Moscow"]}}, "ab"),
    ({"custom_field": {"name": "city", "op": "contains", "value": "mos"}}, "b"),
    ({"custom_field": {"name": "city", "op": "ne", "value": "Kazan"}}, "b"),
    ({"custom_field": {"name": "city", "op": "is_not_set"}}, "cd"),
    ({"custom_field": {"name": "age", "op": "gt", "value": 40}}, "b"),
    ({"custom_field": {"name": "age", "op": "lte", "value": 30}}, "a"),
    ({"tags": {"any": ["vip"]}}, "a"),
    ({"tags": {"any": ["sale", "nope"]}}, "ab"),
    ({"tags": {"all": ["vip", "sale"]}}, "a"),
    ({"tags": {"none": ["sale"]}}, "cd"),
    ({"interests": {"any": ["bags"]}}, "ab"),
    ({"interests": {"all": ["shoes", "bags"]}}, "a"),
    ({"entry_point": {"in": ["purchase"]}}, "b"),
    ({"consent": {"channel": "email"}}, "a"),
    ({"consent": {"channel": "email", "granted": False}}, "bcd"),
    ({"consent": {"channel": "sms", "granted": True}}, "b"),
    ({"orders": {"metric": "count", "op": "gte", "value": 1}}, "ab"),
    ({"orders": {"metric": "count", "op": "eq", "value": 0}}, "cd"),
    ({"orders": {"metric": "count", "op": "between", "value": [2, 3]}}, "a"),
    ({"orders": {"metric": "sum", "op": "gt", "value": 100}}, "a"),
    ({"orders": {"metric": "sum", "op": "lt", "value": 100}}, "bcd"),
    ({"orders": {"metric": "average", "op": "eq", "value": 200}}, "a"),
    ({"orders": {"metric": "average", "op": "lt", "value": 100}}, "b"),
    ({"orders": {"metric": "first_order_date", "op": "lt", "value": "2025-12-01"}}, "b"),
    ({"orders": {"metric": "first_order_date", "op": "eq", "value": "2025-12-01"}}, "a"),
    ({"orders": {"metric": "last_order_date", "op": "gte", "value": "2026-02-20"}}, "a"),
    ({"orders": {"metric": "last_order_date", "op": "between", "value": ["2025-01-01", "2025-12-31"]}}, "b"),
    ({"orders": {"metric": "last_order_days_ago", "op": "gt", "value": 90}}, "b"),
    ({"orders": {"metric": "last_order_days_ago", "op": "lte", "value": 30}}, "a"),
    ({"orders": {"metric": "first_order_days_ago", "op": "between", "value": [80, 100]}}, "a"),
    ({"orders": {"metric": "count", "op": "gte", "value": 1, "within_days": 60}}, "a"),
    ({"orders": {"metric": "count", "op": "eq", "value": 0, "within_days": 30}}, "bcd"),
    ({"orders": {"metric": "count", "op": "gte", "value": 1, "category": "Shoes"}}, "a"),
    ({"orders": {"metric": "sum", "op": "eq", "value": 300, "category": "Shoes"}}, "a"),
    ({"orders": {"metric": "sum", "op": "gte", "value": 50, "category": "Bags"}}, "b"),
    ({"orders": {"metric": "count", "op": "gte", "value": 1, "status_group": "cancel"}}, "d"),
    ({"orders": {"metric": "count", "op": "eq", "value": 2, "status_group": "complete"}}, "a"),
    ({"orders": {"metric": "average", "op": "gt", "value": 500, "status_group": "cancel"}}, "d"),
    ({"event": {"type": "custom", "name": "cart_abandoned"}}, "cd"),
    ({"event": {"type": "custom", "name": "cart_abandoned", "within_days": 7}}, "c"),
    ({"event": {"type": "custom", "name": "cart_abandoned", "within_days": 7, "did": False}}, "abd"),
    ({"event": {"type": "order_created", "min_count": 3}}, "a"),
    ({"event": {"type": "subscribed", "did": False}}, "cd"),
    ({"lifecycle": {"state": ["active"]}}, "a"),
    ({"lifecycle": {"state": ["sleeping"]}}, "b"),
    ({"lifecycle": {"state": ["none"]}}, "cd"),
    ({"lifecycle": {"state": ["new"]}}, ""),
    ({"all": [{"tags": {"any": ["sale"]}}, {"not": {"orders": {"metric": "count", "op": "gte", "value": 2}}}]}, "b"),
    ({"any": [{"lifecycle": {"state": ["sleeping"]}},
              {"all": [{"event": {"type": "custom", "name": "cart_abandoned", "within_days": 7}},
                       {"not": {"customer": {"field": "email", "op": "is_set"}}}]}]}, "bc"),
    ({"not": {"orders": {"metric": "average", "op": "gt", "value": 100}}}, "bcd"),
    ({"not": {"custom_field": {"name": "age", "op": "gt", "value": 40}}}, "acd"),
    ({"not": {"not": {"tags": {"all": ["vip", "sale"]}}}}, "a"),
]


def test_each_rule_type_and_nested_trees(app, shop):
    names = {v: k for k, v in shop.items()}
    wrong = []
    with transaction(app.sessions) as s:
        for rules, expected in CASES:
            got = service.preview(s, site="shop", raw_rules=rules, now=app.clock.now(), sample=100)
            found = "".join(sorted(names[c["id"]] for c in got["sample"]))
            if found != expected or got["count"] != len(expected):
                wrong.append(f"{rules}: expected {expected!r}, got {found!r} (count {got['count']})")
    assert wrong == []


def test_rfm_cells_in_rules(app, shop):
    with transaction(app.sessions) as s:
        analytics.compute_rfm(s, site_id=1, now=app.clock.now())
        # a: 10 days since last, 2 repeat days -> R5 F3 (potential); b: 274 days, no repeats -> R3 F1
        potential = service.preview(s, site="shop", raw_rules={"rfm": {"cell": ["potential"]}}, now=app.clock.now())
        r3 = service.preview(s, site="shop", raw_rules={"rfm": {"r": [3], "f": [1]}}, now=app.clock.now())
    assert [c["id"] for c in potential["sample"]] == [shop["a"]]
    assert [c["id"] for c in r3["sample"]] == [shop["b"]]


def test_stored_segment_equals_preview_and_emits_on_change(app, shop):
    rules = {"all": [{"tags": {"any": ["sale"]}}, {"orders": {"metric": "count", "op": "gte", "value": 1}}]}
    with transaction(app.sessions) as s:
        seg = service.create(s, data=SegmentCreate(site="shop", code="sale-buyers", name="Sale buyers", rules=rules),
                             now=app.clock.now())
        assert sorted(service.member_ids(s, segment=seg)) == sorted([shop["a"], shop["b"]])
        assert seg.size == 2
    f.edit_customer(app, shop["b"], tags=[])  # b leaves
    f.order(app, customer={"id": shop["c"]})  # c has no sale tag: stays out
    f.edit_customer(app, shop["d"], tags=["sale"])  # d's only order is cancelled: stays out
    app.worker.tick()
    with transaction(app.sessions) as s:
        seg = service.get(s, seg.id)
        assert service.member_ids(s, segment=seg) == [shop["a"]]
        assert seg.size == 1
        evs = [(e.type, e.customer_id, e.payload["segment_code"]) for e in s.scalars(
            select(Event).where(Event.type.in_(["segment_entered", "segment_left"])))]
        # the first computation records history but emits nothing; b's exit emits exactly one event
        assert evs == [("segment_left", shop["b"], "sale-buyers")]
        assert [(c["customer_id"], c["entered"]) for c in service.changes(s, segment=seg)] == [
            (shop["a"], True), (shop["b"], True), (shop["b"], False)]


def test_one_batch_moves_several_segments_each_with_its_own_events_and_size(app, shop):
    """One re-evaluation settles every segment at once: each event names its own segment and site."""
    buyers = {"orders": {"metric": "count", "op": "gte", "value": 1}}
    twice = {"orders": {"metric": "count", "op": "gte", "value": 2}}
    with transaction(app.sessions) as s:
        ids = {code: service.create(s, data=SegmentCreate(site="shop", code=code, name=code.title(), rules=r),
                                    now=app.clock.now()).id for code, r in (("buyers", buyers), ("twice", twice))}
        before = {code: service.get(s, i).size for code, i in ids.items()}
        mark = s.scalar(select(func.max(Event.id))) or 0
    f.order(app, customer={"id": shop["c"]})  # c buys for the first time: joins buyers
    f.order(app, customer={"id": shop["b"]})  # b's second purchase: joins twice
    app.worker.tick()
    with transaction(app.sessions) as s:
        evs = sorted((e.payload["segment_code"], e.payload["segment_id"], e.site_id, e.type, e.customer_id)
                     for e in s.scalars(select(Event).where(Event.id > mark, Event.type.in_(
                         ["segment_entered", "segment_left"]))))
        site_id = get_site(s, "shop").id
        assert evs == [("buyers", ids["buyers"], site_id, "segment_entered", shop["c"]),
                       ("twice", ids["twice"], site_id, "segment_entered", shop["b"])]
        assert {code: service.get(s, i).size for code, i in ids.items()} == {
            code: n + 1 for code, n in before.items()}


@pytest.mark.parametrize("rules, field, fragment", [
    ({"orders": {"metric": "count", "op": "gte"}}, "rules.orders.value", "Field required"),
    ({"all": [{"tags": {"any": ["x"]}}, {"orders": {"metric": "count", "op": "about", "value": 1}}]},
     "rules.all.1.orders.op", "Input should be"),
    ({"any": []}, "rules.any", "non-empty"),
    ({"nope": {}}, "rules", "unknown rule type 'nope'"),
    ({"tags": {"any": ["a"], "all": ["b"]}}, "rules.tags", "exactly one of any, all, none"),
    ({"customer": {"field": "email", "op": "gt", "value": "x"}}, "rules.customer", "does not apply to email"),
    ({"orders": {"metric": "last_order_days_ago", "op": "eq", "value": 3}}, "rules.orders", "gt, gte, lt, lte"),
    ({"orders": {"metric": "last_order_date", "op": "gt", "value": "yesterday"}}, "rules.orders", "YYYY-MM-DD"),
    ({"orders": {"metric": "first_order_date", "op": "eq", "value": "2026-01-01", "within_days": 3}},
     "rules.orders", "apply to count, sum and average"),
    ({"rfm": {"r": [6]}}, "rules.rfm", "between 1 and 5"),
    ({"not": {"all": [{"all": [{"tags": {"bad": 1}}]}]}}, "rules.not.all.0.all.0.tags.bad", "Extra inputs"),
])
def test_bad_rules_get_pointed_errors(app, rules, field, fragment):
    f.site(app)
    with transaction(app.sessions) as s, pytest.raises(DomainError) as exc:
        service.create(s, data=SegmentCreate(site="shop", code="x", name="X", rules=rules), now=app.clock.now())
    errors = exc.value.as_dict()
    assert field in errors, errors
    assert fragment in errors[field]
    with transaction(app.sessions) as s:
        assert service.list_segments(s) == []


def test_time_windows_move_with_the_clock(app, shop):
    rules = {"orders": {"metric": "last_order_days_ago", "op": "lte", "value": 30}}
    with transaction(app.sessions) as s:
        seg = service.create(s, data=SegmentCreate(site="shop", code="recent", name="Recent", rules=rules),
                             now=app.clock.now())
        assert seg.time_dependent and service.member_ids(s, segment=seg) == [shop["a"]]
    app.clock.set(datetime(2026, 3, 25, tzinfo=timezone.utc))  # a's last order is now 33 days old
    app.worker.tick()
    with transaction(app.sessions) as s:
        assert service.member_ids(s, segment=service.get(s, seg.id)) == []
        assert [e.type for e in s.scalars(select(Event).where(Event.type == "segment_left"))] == ["segment_left"]
