"""Entries of every kind, exits (events, and conditions checked before every step), re-entry rules, one active
run per customer and journey, versioning with customers inside. Frozen clock, explicit worker ticks."""

from __future__ import annotations

from retento.core.db.transactions import transaction
from retento.customers import service as customers
from retento.segments import service as segments
from retento.segments.schemas import SegmentCreate
from tests import factories as f
from tests.journeys import helpers as j
from tests.messaging import helpers as h


def _tagging(name: str, entry: dict, **kw) -> dict:
    """A journey that tags at once, waits a day, then tags again."""
    return {"name": name, "site": "shop", "entry": entry, **kw, "steps": [
        {"id": "first", "type": "add_tag", "tag": f"{name}-1", "next": "pause"},
        {"id": "pause", "type": "wait", "days": 1, "next": "second"},
        {"id": "second", "type": "add_tag", "tag": f"{name}-2"}]}


def test_each_entry_kind(app):
    f.site(app)
    with transaction(app.sessions) as s:
        segments.create(s, data=SegmentCreate(site="shop", code="vip", name="VIP", rules={"tags": {"any": ["vip"]}}),
                        now=app.clock.now())
    j.save(app, _tagging("reg", {"kind": "customer_created", "entry_points": ["registration"]}))
    j.save(app, _tagging("conf", {"kind": "email_confirmed"}))
    j.save(app, _tagging("seg", {"kind": "segment_entered", "segment": "vip"}))
    j.save(app, _tagging("cart", {"kind": "event", "event": "custom", "event_name": "cart_abandoned",
                                  "condition": "event.data.total > 3000.0"}))
    j.save(app, _tagging("big", {"kind": "event", "event": "order_created", "condition": "order.total > 100.0"}))
    reg = f.customer(app, email="r@example.com", entry_point="registration")
    other = f.customer(app, email="o@example.com", entry_point="callback")
    h.drain(app)
    f.edit_customer(app, other, email_confirmed=True)
    f.edit_customer(app, reg, tags=["vip", "reg-1"])
    with transaction(app.sessions) as s:
        c = customers.get(s, other)
        customers.emit_custom_event(s, customer=c, name="cart_abandoned", payload={"total": 5000},
                                    ctx=f.API, now=app.clock.now(), idempotency_key="cart-1")
        customers.emit_custom_event(s, customer=c, name="cart_abandoned", payload={"total": 10},
                                    ctx=f.API, now=app.clock.now(), idempotency_key="cart-2")
    f.order(app, customer={"id": other}, items=[{"name": "TV", "price": "500.00", "quantity": 1}])
    f.order(app, customer={"id": reg}, items=[{"name": "Pen", "price": "5.00", "quantity": 1}])
    h.drain(app)
    assert sorted(j.tags(app, reg)) == ["reg-1", "seg-1", "vip"]
    assert sorted(j.tags(app, other)) == ["big-1", "cart-1", "conf-1"]
    app.clock.advance(days=1, minutes=1)
    h.drain(app)
    assert sorted(j.tags(app, reg)) == ["reg-1", "reg-2", "seg-1", "seg-2", "vip"]
    assert sorted(j.tags(app, other)) == ["big-1", "big-2", "cart-1", "cart-2", "conf-1", "conf-2"]
    assert {r.state for r in j.runs(app)} == {"finished"} and len(j.runs(app)) == 5


def test_exit_events_and_conditions_checked_before_every_step(app):
    f.site(app)
    jid = j.save(app, _tagging("w", {"kind": "customer_created"}, exits=[
        {"event": "ordered"}, {"condition": 'has_tag(customer, "stop")'}]))
    buyer = f.customer(app, email="b@example.com")
    stopper = f.customer(app, email="s@example.com")
    stays = f.customer(app, email="x@example.com")
    h.drain(app)
    f.order(app, customer={"id": buyer})
    f.edit_customer(app, stopper, tags=["w-1", "stop"])
    h.drain(app)
    by_customer = {r.customer_id: r for r in j.runs(app, jid)}
    assert (by_customer[buyer].state, by_customer[buyer].exit_reason) == ("exited", "ordered")
    assert by_customer[stopper].state == "active"  # a condition is checked when the next step is due
    app.clock.advance(days=2)
    h.drain(app)
    by_customer = {r.customer_id: r for r in j.runs(app, jid)}
    assert (by_customer[stopper].state, by_customer[stopper].exit_reason) == ("exited", "condition:1")
    assert by_customer[stays].state == "finished"
    assert j.tags(app, buyer) == ["w-1"] and sorted(j.tags(app, stopper)) == ["stop", "w-1"]
    assert j.tags(app, stays) == ["w-1", "w-2"]


def test_reentry_rules_and_one_active_run(app):
    f.site(app)
    never = j.save(app, _tagging("n", {"kind": "event", "event": "custom", "event_name": "visit"}))
    after = j.save(app, _tagging("a", {"kind": "event", "event": "custom", "event_name": "visit"},
                                 reentry={"policy": "after", "days": 3}))
    always = j.save(app, _tagging("y", {"kind": "event", "event": "custom", "event_name": "visit"},
                                  reentry={"policy": "always"}))
    cid = f.customer(app, email="v@example.com")

    def visit(n: int) -> None:
        with transaction(app.sessions) as s:
            customers.emit_custom_event(s, customer=customers.get(s, cid), name="visit", payload={}, ctx=f.API,
                                        now=app.clock.now(), idempotency_key=f"visit-{n}")
        h.drain(app)

    visit(1)
    visit(2)  # all three have an active run: nobody enters twice at once
    assert [len(j.runs(app, x)) for x in (never, after, always)] == [1, 1, 1]
    app.clock.advance(days=2)
    h.drain(app)  # every run finished (a day's wait)
    visit(3)
    assert [len(j.runs(app, x)) for x in (never, after, always)] == [1, 1, 2]
    app.clock.advance(days=2)
    h.drain(app)
    visit(4)  # 4 days after the first entry into `after`
    assert [len(j.runs(app, x)) for x in (never, after, always)] == [1, 2, 3]


def test_versions_runs_finish_on_theirs_and_migrate_moves_them(app):
    f.site(app)
    definition = _tagging("v", {"kind": "customer_created"})
    jid = j.save(app, definition)
    first = f.customer(app, email="1@example.com")
    h.drain(app)
    assert j.save(app, definition) == jid  # the same definition: no new version
    definition["steps"][2]["tag"] = "v-2-new"
    j.save(app, definition)
    second = f.customer(app, email="2@example.com")
    h.drain(app)
    app.clock.advance(days=1, minutes=1)
    h.drain(app)
    assert j.tags(app, first) == ["v-1", "v-2"]  # finished on version 1
    assert j.tags(app, second) == ["v-1", "v-2-new"]

    definition["steps"][2]["tag"] = "v-3"
    third = f.customer(app, email="3@example.com")
    h.drain(app)  # enters version 2
    j.save(app, definition)  # version 3
    with transaction(app.sessions) as s:
        from retento.journeys import service
        assert service.migrate(s, journey=service.get(s, jid)) == {"moved": 1, "left": 0}
    app.clock.advance(days=1, minutes=1)
    h.drain(app)
    assert j.tags(app, third) == ["v-1", "v-3"]
