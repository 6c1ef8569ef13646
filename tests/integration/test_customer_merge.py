"""Merging duplicate customers through the service (customers.merging.merge): what the kept customer takes, what
each domain moves, where the merged ids go, repeats and refusals that write nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from retento.core.bus import Event
from retento.core.db.transactions import transaction
from retento.core.errors import DomainError
from retento.customers import merges, merging, service
from retento.history.models import HistoryEntry
from retento.orders import service as orders
from retento.segments import service as segments
from retento.segments.models import CustomerRollup
from retento.segments.schemas import MembersIn, SegmentCreate
from retento.tasks import service as tasks
from retento.tasks.schemas import TaskCreate
from retento.triggers import service as triggers
from tests import factories as f
from tests.loyalty import helpers as loyalty


def merge(app, keep, ids, *, site="shop", key=None):
    with transaction(app.sessions) as s:
        return merging.merge(s, site=site, keep_id=keep, merge_ids=ids, ctx=f.API, now=app.clock.now(),
                             idempotency_key=key)


def snap(app, cid):
    with transaction(app.sessions) as s:
        return service.snapshot(s, service.get(s, cid))


def counts(app):
    """What a refused merge must leave as it was: customers, history, events."""
    with transaction(app.sessions) as s:
        return tuple(s.scalar(select(func.count()).select_from(t)) for t in
                     (service.Customer.__table__, HistoryEntry.__table__, Event.__table__))


def test_merge_fills_the_kept_customer_moves_orders_and_answers_for_the_merged_id(app, clock):
    f.site(app)
    keep = f.customer(app, first_name="Анна", tags=["vip"], custom_fields={"size": "M"},
                      consents={"email": {"granted": True, "source": "checkout", "at": "2026-03-01T09:00:00+00:00"}})
    dup = f.customer(app, external_id="shop-77", first_name="Аня", last_name="Иванова", email="anna@example.com",
                     email_confirmed=True, phone="+79161234567", tags=["b2c"], custom_fields={"size": "S", "pets": 2},
                     consents={"email": {"granted": False, "source": "unsubscribe", "at": "2026-03-02T08:00:00+00:00"},
                               "sms": {"granted": True, "source": "form", "at": "2026-02-01T00:00:00+00:00"}})
    f.order(app, customer={"id": keep}, items=[{"name": "A", "price": "100.00", "quantity": 1}])
    moved = [f.order(app, customer={"id": dup}, items=[{"name": "B", "price": "50.00", "quantity": 2}])
             for _ in range(2)]
    app.bring_up_to_date()
    clock.advance(hours=1)

    done = merge(app, keep, [dup])

    assert done.merged_ids == [dup] and not done.replayed and done.moved["orders"] == 2
    s = snap(app, keep)
    assert (s["first_name"], s["last_name"], s["email"], s["phone"]) == ("Анна", "Иванова", "anna@example.com",
                                                                        "+79161234567")
    assert s["external_id"] == "shop-77" and s["email_confirmed"] is True
    assert s["tags"] == ["b2c", "vip"] and s["custom_fields"] == {"size": "M", "pets": 2}
    assert s["consents"]["email"]["granted"] is False and s["consents"]["email"]["source"] == "unsubscribe"
    assert s["consents"]["sms"]["granted"] is True  # the latest decision per channel, whoever made it
    with transaction(app.sessions) as ss:
        assert {orders.get(ss, o).customer_id for o in moved} == {keep}
        rollup = ss.get(CustomerRollup, keep)
        assert rollup.orders_count == 3 and str(rollup.orders_total) == "300.00"
        assert ss.get(CustomerRollup, dup) is None
        with pytest.raises(DomainError) as err:
            service.get(ss, dup)
        assert err.value.status == 404
        assert err.value.as_dict() == {"id": f"customer {dup} was merged into customer {keep}"}
        assert merges.merged_external(ss, site_id=s["site_id"], external_id="shop-77") == keep
        hist = {(h.entity, h.entity_id, h.field) for h in ss.scalars(select(HistoryEntry))}
        assert ("customer", dup, "merged_into") in hist and ("customer", keep, "merged") in hist
        assert {("order", o, "customer_id") for o in moved} <= hist
        merged = ss.scalars(select(Event).where(Event.type == "customer_merged")).one()
        assert merged.customer_id == keep and merged.payload["merged_ids"] == [dup]
        assert merged.payload["merged_external_ids"] == ["shop-77"]


def test_the_kept_customers_later_decision_stays_and_a_chain_of_merges_points_at_the_last(app, clock):
    f.site(app)
    a = f.customer(app, consents={"email": {"granted": True, "source": "form", "at": "2026-01-01T00:00:00+00:00"}})
    b = f.customer(app, consents={"email": {"granted": False, "source": "link", "at": "2026-02-01T00:00:00+00:00"}})
    c = f.customer(app, email="c@example.com")
    merge(app, b, [a])
    assert snap(app, b)["consents"]["email"]["granted"] is False
    merge(app, c, [b])
    assert snap(app, c)["consents"]["email"]["granted"] is False
    with transaction(app.sessions) as s:
        assert merges.merged_into(s, [a, b]) == {a: c, b: c}


def test_a_repeat_changes_nothing_and_a_reused_key_for_another_merge_is_a_conflict(app):
    f.site(app)
    keep, dup, other = (f.customer(app) for _ in range(3))
    merge(app, keep, [dup], key="k1")
    before = counts(app)
    again = merge(app, keep, [dup])
    assert again.replayed and again.merged_ids == []
    assert merge(app, keep, [dup], key="k1").replayed
    assert counts(app) == before
    with pytest.raises(DomainError) as err:
        merge(app, keep, [other], key="k1")
    assert err.value.status == 409 and "idempotency_key" in err.value.as_dict()
    with pytest.raises(DomainError) as err:  # merged into someone else before
        merge(app, other, [dup])
    assert err.value.status == 404 and err.value.as_dict() == {
        "merge.0": f"customer {dup} was merged into customer {keep}"}
    assert counts(app) == before


@pytest.mark.parametrize(("keep", "ids", "field", "status"), [
    ("a", [], "merge", 400),
    ("a", ["a"], "merge.0", 400),
    ("a", ["b", "b"], "merge.1", 400),
    ("a", ["b"] * 11, "merge", 400),
    ("a", [999999], "merge.0", 404),
    ("missing", ["b"], "keep", 404),
    ("a", ["b", "other"], "merge.1", 400),
])
def test_bad_input_names_the_field_and_writes_nothing(app, keep, ids, field, status):
    f.site(app)
    f.site(app, code="other")
    made = {"a": f.customer(app), "b": f.customer(app), "other": f.customer(app, site="other"), "missing": 888888}
    before = counts(app)
    with pytest.raises(DomainError) as err:
        merge(app, made[keep], [made.get(i, i) for i in ids])
    assert err.value.status == status and field in err.value.as_dict()
    assert counts(app) == before


def test_unknown_site_is_named(app):
    f.site(app)
    a, b = f.customer(app), f.customer(app)
    with pytest.raises(DomainError) as err:
        merge(app, a, [b], site="nope")
    assert "site" in err.value.as_dict()


def test_loyalty_account_moves_or_two_accounts_refuse_the_merge(app):
    f.site(app)
    loyalty.program(app)
    plain = f.customer(app)
    member, account = loyalty.member(app, phone="+79160000001")
    loyalty.credit(app, account, "150.00", "gift")
    done = merge(app, plain, [member])
    assert done.moved["loyalty_accounts"] == 1
    moved = loyalty.account(app, account)
    assert moved.customer_id == plain and str(moved.balance) == "150.00"

    other, _ = loyalty.member(app, phone="+79160000002")
    order = f.order(app, customer={"id": other})
    before = counts(app)
    with pytest.raises(DomainError) as err:
        merge(app, plain, [other])
    assert err.value.status == 409 and "loyalty program" in err.value.as_dict()["merge"]
    assert counts(app) == before
    with transaction(app.sessions) as s:
        assert orders.get(s, order).customer_id == other  # nothing moved


def test_static_segments_take_the_kept_customer_and_the_merged_one_leaves(app):
    f.site(app)
    keep, dup = f.customer(app), f.customer(app)
    with transaction(app.sessions) as s:
        seg = segments.create(s, data=SegmentCreate(site="shop", code="vip", name="VIP", kind="static"),
                              now=app.clock.now())
        segments.change_members(s, segment=seg, data=MembersIn(customer_ids=[dup]), add=True, now=app.clock.now())
        seg_id = seg.id
    assert merge(app, keep, [dup]).moved["static_segments_joined"] == 1
    with transaction(app.sessions) as s:
        seg = segments.get(s, seg_id)
        assert segments.member_ids(s, segment=seg) == [keep] and seg.size == 1


def test_delayed_trigger_runs_and_tasks_of_the_duplicate_go_on_for_the_kept_customer(app, clock):
    f.site(app)
    with transaction(app.sessions) as s:
        triggers.create_trigger(s, raw={"name": "hello", "events": ["customer_created"], "delay": {"hours": 1},
                                        "actions": [{"type": "add_tag", "target": "customer", "tag": "greeted"}]},
                                now=app.clock.now())
    keep = f.customer(app, first_name="Kept", tags=["vip"])
    dup = f.customer(app, first_name="Dup")
    app.worker.tick()
    with transaction(app.sessions) as s:
        tasks.create_task(s, data=TaskCreate(title="Call back", customer_id=dup), ctx=f.API, now=app.clock.now())
    done = merge(app, keep, [dup])
    assert done.moved["trigger_timers"] == 1 and done.moved["tasks"] == 1
    with transaction(app.sessions) as s:
        assert [(t.entity, t.entity_id, t.customer_id) for t in triggers.pending(s)] == [("customer", keep, keep)] * 2
        assert [t.title for t in tasks.list_tasks(s, customer_id=keep)] == ["Call back"]
    clock.advance(hours=1, minutes=1)
    app.worker.tick()
    assert snap(app, keep)["tags"] == ["greeted", "vip"]
    with transaction(app.sessions) as s:
        assert triggers.pending(s) == []
        assert "acted" in [r.outcome for r in triggers.runs(s, customer_id=keep) if r.phase == "fire"]
