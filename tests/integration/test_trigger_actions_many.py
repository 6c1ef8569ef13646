"""Set-based actions (`ActionSpec.many`) against the one-by-one handlers: a seeded random sequence of actions over
a few orders and customers, with repeats of the same entity, applied both ways from the same state (each in a
transaction rolled back afterwards) must leave the same rows in every table the actions touch."""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import select

from retento.core.bus import Event
from retento.core.changes import ActorType, ChangeContext, Source
from retento.core.db.transactions import transaction
from retento.core.errors import DomainError
from retento.customers import service as customers
from retento.customers.models import Consent, Customer, CustomerInterest, CustomerTag
from retento.history.models import HistoryEntry
from retento.orders import service as orders
from retento.orders.models import Order, OrderItem
from retento.sites import service as sites
from retento.sites.schemas import ManagerCreate
from retento.tasks import service as tasks
from retento.tasks.models import Task
from retento.tasks.schemas import TaskCreate
from retento.triggers import actions as registry, service, wiring
from retento.webhooks.models import WebhookDelivery
from tests import factories as f

# table -> columns left out of the comparison: ids the databases hand out (PostgreSQL's sequences do not roll back)
TABLES = {Order: (), OrderItem: ("id",), Customer: (), CustomerTag: (), CustomerInterest: (), Consent: (),
          Task: ("id",), HistoryEntry: ("id",), Event: ("id",), WebhookDelivery: ("id",)}
GENERATED = ("task_id", "webhook_delivery_id")  # ids in the actions' results
SPECS = {spec.name: spec for spec in registry.BUILT_IN}  # the built-in actions, by name
STATUSES = ["new", "client-confirmed", "assembling", "complete", "cancel-other"]
TAGS = ["vip", "late", "b2b", "gift"]


def rows(session) -> dict[str, list[dict[str, Any]]]:
    out = {}
    for model, skip in TABLES.items():
        t = model.__table__
        keys = [c for c in t.c if c.key not in skip]
        order = list(t.primary_key.columns)
        out[t.name] = [dict(r._mapping) for r in session.execute(select(*keys).order_by(*order))]
    return out


def setup(app) -> dict[str, Any]:
    f.site(app)
    with transaction(app.sessions) as s:
        managers = [sites.create_manager(s, data=ManagerCreate(name=n), now=app.clock.now()).id for n in "AB"]
    cids = [f.customer(app, email=f"c{n}@x.ru", manager_id=managers[n % 2], tags=["old"] if n else [])
            for n in range(3)]
    oids = [f.order(app, customer={"id": cids[n % 2]}, manager_id=managers[n % 2] if n else None,
                    custom_fields={"keep": 1}) for n in range(3)]
    oids.append(f.order(app))  # no customer
    with transaction(app.sessions) as s:
        tids = [service.create_trigger(s, raw={"name": f"t{n}", "events": ["order_changed"],
                                               "actions": [{"type": "add_tag", "tag": "x"}]}, now=app.clock.now()).id
                for n in range(3)]
    app.clock.advance(hours=1)  # the actions' `now` differs from the rows' own times
    return {"managers": managers, "customers": cids, "orders": oids, "triggers": tids}


def params_for(rnd: random.Random, name: str, data: dict[str, Any]) -> dict[str, Any]:
    if name in ("add_tag", "remove_tag"):
        return {"tag": rnd.choice(TAGS + ["old"]), "target": rnd.choice(["order", "customer"])}
    if name == "set_order_status":
        return {"status": rnd.choice(STATUSES)}
    if name == "set_order_field":
        field, value = rnd.choice([
            ("status", rnd.choice(STATUSES)), ("manager_id", rnd.choice(data["managers"] + [None])),
            ("manager_comment", rnd.choice(["call back", "ok", None])), ("payment_status", rnd.choice(["paid", None])),
            ("delivery_date", rnd.choice(["2026-03-05", "2026-03-06"])), ("delivery_type", "courier"),
            (f"custom_fields.{rnd.choice('abc')}", rnd.choice([1, "two", True, None]))])
        return {"field": field, "value": value}
    if name == "create_task":
        return {"title": rnd.choice(["Call {customer.email}", "Order {order.number}", "Check {event.id}"]),
                "text": rnd.choice([None, "by {trigger.name}"]), "due_in_minutes": rnd.choice([0, 60]),
                "assignee": rnd.choice(["order_manager", "customer_manager", None, data["managers"][1]])}
    if name == "webhook":
        return {"url": rnd.choice(["https://a.example/h", "https://b.example/h"]), "secret": None}
    return {"name": rnd.choice(["cart_abandoned", "viewed"]), "data": {"n": rnd.randint(1, 3)}}


def sequence(seed: int, data: dict[str, Any], length: int = 120) -> list[tuple[str, dict[str, Any], Any]]:
    """(action, context fields, params) in stretches of one action (as `many` is called), entities repeating."""
    rnd = random.Random(seed)
    names = ["add_tag", "remove_tag", "set_order_status", "set_order_field", "create_task", "webhook", "emit_event"]
    out: list[tuple[str, dict[str, Any], Any]] = []
    while len(out) < length:
        rnd.shuffle(names)
        out += stretch(rnd, names[0], data)
        for name in names[1:]:
            if rnd.random() < 0.8:
                out += stretch(rnd, name, data)
    return out


def stretch(rnd: random.Random, name: str, data: dict[str, Any]) -> list[tuple[str, dict[str, Any], Any]]:
    """1-12 items of one action over random orders (the last has no customer, or an unrelated one)."""
    out = []
    spec = SPECS[name]
    for _ in range(rnd.randint(1, 12)):
        n = rnd.randrange(len(data["orders"]))
        oid = data["orders"][n]
        params = spec.schema.model_validate(params_for(rnd, name, data))
        cid = data["customers"][n % 2] if n < 3 else rnd.choice([None, data["customers"][2]])
        if cid is None and (name == "emit_event" or getattr(params, "target", "") == "customer"):
            cid = data["customers"][2]  # these need a customer (the failing case has its own test)
        tid = rnd.choice(data["triggers"])
        event_id = rnd.randint(1, 4)  # repeats: the same idempotency key now and then
        out.append((name, {"order_id": oid, "customer_id": cid, "trigger_id": tid, "depth": rnd.randint(1, 3),
                           "key": f"trigger:{tid}:order:{oid}:{event_id}"}, params))
    return out


def context(session, now, fields: dict[str, Any]) -> registry.ActionContext:
    tid = fields["trigger_id"]
    ctx = ChangeContext(Source.TRIGGER, ActorType.TRIGGER, str(tid), depth=fields["depth"])
    variables = {"order": {"number": f"N{fields['order_id']}"},
                 "customer": {"email": f"c{fields['customer_id']}@x.ru"} if fields["customer_id"] else None,
                 "event": {"id": fields["key"].rsplit(":", 1)[1]}, "trigger": {"id": tid, "name": f"t{tid}"}}
    return registry.ActionContext(session=session, now=now, ctx=ctx, trigger_id=tid, trigger_name=f"t{tid}",
                                  key=fields["key"], event=variables["event"], order_id=fields["order_id"],
                                  customer_id=fields["customer_id"], variables=variables)


def one_by_one(session, now, seq) -> list[Any]:
    out = []
    for name, fields, params in seq:
        try:
            out.append(SPECS[name].handler(context(session, now, fields), params))
        except DomainError as exc:
            out.append(("error", exc.message))
    return out


def stretches(seq):
    start = 0
    for n in range(1, len(seq) + 1):
        if n == len(seq) or seq[n][0] != seq[start][0]:
            yield seq[start:n]
            start = n


def batched(session, now, seq) -> list[Any]:
    """`many` per stretch of one action."""
    out = []
    for part in stretches(seq):
        spec = SPECS[part[0][0]]
        out += spec.many([context(session, now, fields) for _, fields, _ in part], [p for *_, p in part])
    return out


def without_ids(results: list[Any]) -> list[Any]:
    return [{k: v for k, v in r.items() if k not in GENERATED} if isinstance(r, dict) else r for r in results]


def run_both(app, seq):
    now = app.clock.now()
    with app.sessions() as s, s.begin():
        before = rows(s)
        singles = one_by_one(s, now, seq)
        single_rows = rows(s)
        s.rollback()
    with app.sessions() as s, s.begin():
        assert rows(s) == before
        many = batched(s, now, seq)
        many_rows = rows(s)
        s.rollback()
    return before, singles, single_rows, many, many_rows


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_many_leaves_the_same_rows_as_one_by_one(app, seed):
    data = setup(app)
    seq = sequence(seed, data)
    before, singles, single_rows, many, many_rows = run_both(app, seq)
    assert without_ids(many) == without_ids(singles)
    for table in TABLES:
        name = table.__tablename__
        assert many_rows[name] == single_rows[name], name
    # the sequence did something of every kind
    assert len(single_rows["tasks"]) > len(before["tasks"]) and len(single_rows["webhook_deliveries"]) > 0
    assert {h["field"] for h in single_rows["history"] if h["source"] == "trigger"} >= {"status", "tags", "manager_id"}
    assert {e["type"] for e in single_rows["events"][len(before["events"]):]} >= {
        "order_changed", "order_status_changed", "customer_changed", "custom"}
    # task ids and webhook call ids point at the rows made, in order
    ids = [r["task_id"] for r in many if isinstance(r, dict) and "task_id" in r]
    assert ids == sorted(ids) and len(ids) == len(many_rows["tasks"]) - len(before["tasks"])


def test_the_order_and_customer_in_the_session_are_not_stale(app):
    data = setup(app)
    oid, cid = data["orders"][0], data["customers"][0]
    now = app.clock.now()
    with transaction(app.sessions) as s:
        order, customer = orders.get(s, oid), customers.get(s, cid)
        assert order.tags == [] and order.status == "new"
        fields = {"order_id": oid, "customer_id": cid, "trigger_id": data["triggers"][0], "depth": 1, "key": "trigger:1:order:1:1"}
        a = [context(s, now, fields), context(s, now, fields)]
        add = SPECS["add_tag"].many
        add(a, [registry.TagAction(tag="vip", target="order"), registry.TagAction(tag="b2b", target="order")])
        SPECS["set_order_field"].many(a, [registry.SetOrderField(field="status", value="complete"),
                                                       registry.SetOrderField(field="manager_id",
                                                                              value=data["managers"][1])])
        add(a, [registry.TagAction(tag="vip"), registry.TagAction(tag="vip")])
        assert order.tags == ["b2b", "vip"] and order.status == "complete"
        assert order.manager_id == data["managers"][1] and order.status_updated_at == now
        assert customers.snapshot(s, customer)["tags"] == ["vip"]
        assert customer.updated_at == now
        # the single path goes on from the batch's result
        SPECS["add_tag"].handler(a[0], registry.TagAction(tag="late", target="order"))
        assert order.tags == ["b2b", "late", "vip"]


@pytest.mark.parametrize("bad", ["unknown_order", "bad_status", "bad_manager", "no_customer"])
def test_a_failing_item_raises_and_the_savepoint_leaves_nothing(app, bad):
    data = setup(app)
    now = app.clock.now()
    oid = data["orders"][0]
    fields = {"order_id": oid, "customer_id": data["customers"][0], "trigger_id": data["triggers"][0], "depth": 1,
              "key": "trigger:1:order:1:1"}
    wrong = {**fields, "order_id": 999999} if bad == "unknown_order" else (
        {**fields, "customer_id": None} if bad == "no_customer" else fields)
    name, good_params, bad_params = {
        "unknown_order": ("set_order_status", {"status": "complete"}, {"status": "complete"}),
        "bad_status": ("set_order_status", {"status": "complete"}, {"status": "no-such-status"}),
        "bad_manager": ("create_task", {"title": "x"}, {"title": "y", "assignee": 424242}),
        "no_customer": ("add_tag", {"tag": "vip"}, {"tag": "vip"}),
    }[bad]
    spec = SPECS[name]
    with app.sessions() as s, s.begin():
        before = rows(s)
        with pytest.raises(DomainError):
            with s.begin_nested():
                spec.many([context(s, now, fields), context(s, now, wrong), context(s, now, fields)],
                          [spec.schema.model_validate(p) for p in (good_params, bad_params, good_params)])
        assert rows(s) == before
        assert orders.get(s, oid).status == "new"


def test_services_many_versions_match_one_by_one_for_general_edits(app):
    """orders.edit_many / customers.edit_many / tasks.create_many with edits the actions do not make (items,
    discounts, consents, email, externalId) against edit / create_task one by one."""
    data = setup(app)
    f.product(app, "SKU-1", price="30.00")
    o1, o2 = data["orders"][:2]
    c1, c2 = data["customers"][:2]
    ctx = [ChangeContext(Source.TRIGGER, ActorType.TRIGGER, str(t), depth=1) for t in data["triggers"]]
    order_edits = [
        (o1, {"items": [{"offer_id": "SKU-1", "quantity": 2}], "discount_total": "5.00"}, ctx[0]),
        (o2, {"status": "complete", "customer": {"id": c2}}, ctx[1]),
        (o1, {"status": "assembling", "delivery": {"type": "pickup", "cost": "3.00"}}, ctx[2]),
        (o1, {"status": "new"}, ctx[0]),  # back: status_updated_at is still now
        (o2, {"items": [{"name": "Box", "price": "1.50"}, {"offer_id": "SKU-1"}]}, ctx[1]),
        (o2, {"status": "complete"}, ctx[1]),  # no change
    ]
    customer_edits = [
        (c1, {"consents": {"email": {"granted": True, "source": "form"}}, "tags": ["a", "b"]}, ctx[0]),
        (c2, {"email": "new@x.ru", "external_id": "E-2", "custom_fields": {"k": 1}}, ctx[1]),
        (c1, {"consents": {"email": {"granted": False, "source": "link"}}, "email_confirmed": True}, ctx[2]),
        (c2, {"external_id": "E-3", "interests": ["tea"]}, ctx[0]),
        (c1, {"external_id": "E-2"}, ctx[1]),  # free again: c2 moved on to E-3
    ]
    now = app.clock.now()
    task_items = [(TaskCreate(title=f"t{n}", manager_id=data["managers"][n % 2], order_id=o1 if n % 2 else None,
                              customer_id=c1), ctx[n % 3]) for n in range(4)]

    def customer_data(s, raw):  # externalId is set through upserts: a CustomerCreate
        return customers.parse_create(s, {"site": "shop", **raw}) if "external_id" in raw else customers.parse_edit(
            s, raw, site_id=1)

    def single(s):
        out = [orders.edit(s, order=orders.get(s, oid), data=orders.parse_edit(raw), ctx=c, now=now)
               for oid, raw, c in order_edits]
        for cid, raw, c in customer_edits:
            cust = customers.get(s, cid)
            out.append(customers.edit(s, customer=cust, data=customer_data(s, raw), ctx=c, now=now))
        for d, c in task_items:
            tasks.create_task(s, data=d, ctx=c, now=now)
        return out

    def many(s):
        out = orders.edit_many(s, edits=[(oid, orders.parse_edit(raw), c) for oid, raw, c in order_edits], now=now)
        out += customers.edit_many(s, edits=[(cid, customer_data(s, raw), c) for cid, raw, c in customer_edits],
                                   now=now)
        tasks.create_many(s, items=task_items, now=now)
        return out

    results = []
    for apply in (single, many):
        with app.sessions() as s, s.begin():
            changes = apply(s)
            results.append((changes, rows(s)))
            s.rollback()
    (single_changes, single_rows), (many_changes, many_rows) = results
    assert many_changes == single_changes
    assert single_changes[3] != [] and single_changes[5] == []
    for table in TABLES:
        name = table.__tablename__
        assert many_rows[name] == single_rows[name], name
    with app.sessions() as s, s.begin():
        with pytest.raises(DomainError, match="E-1"):
            f_edits = [(c1, customer_data(s, {"external_id": "E-1"}), ctx[0]),
                       (c2, customer_data(s, {"external_id": "E-1"}), ctx[0])]
            customers.edit_many(s, edits=f_edits, now=now)


def test_the_engine_acts_on_a_batch_through_many(app):
    f.site(app)
    calls: list[tuple[str, int]] = []

    def counted(spec):
        def many(cs, ps):
            calls.append((spec.name, len(cs)))
            return spec.many(cs, ps)
        return many

    for name in ("add_tag", "create_task"):  # the app's actions, swapped for counting ones
        spec = app.parts.actions[name]
        app.parts.actions.add(name, dataclasses.replace(spec, many=counted(spec)), replace=True)
    with transaction(app.sessions) as s:
        service.create_trigger(s, raw={"name": "t", "events": ["order_created"], "condition": "true",
                                       "actions": [{"type": "add_tag", "target": "order", "tag": "seen"},
                                                   {"type": "create_task", "title": "Call {order.number}",
                                                    "assignee": None}]}, now=app.clock.now())
    cids = [f.customer(app, email=f"c{n}@x.ru") for n in range(5)]
    oids = [f.order(app, number=f"N{n}", customer={"id": cid}) for n, cid in enumerate(cids)]
    app.worker.tick()
    # one call per action and batch of runs (a lone run acts alone); on PostgreSQL the trigger subscriber is
    # partitioned by order, a batch each
    parts = wiring.PARTITIONS if app.engine.dialect.name == "postgresql" else 1
    sizes = sorted(n for n in Counter(oid % parts for oid in oids).values() if n > 1)
    assert sorted(n for name, n in calls if name == "add_tag") == sizes
    assert sorted(n for name, n in calls if name == "create_task") == sizes
    with transaction(app.sessions) as s:
        assert all(orders.get(s, oid).tags == ["seen"] for oid in oids)
        assert sorted(t.title for t in tasks.list_tasks(s)) == [f"Call N{n}" for n in range(5)]


def test_two_triggers_on_one_event_act_run_after_run(app):
    """One by one, t1's actions (tag, then status `assembling`) come before t2's (status `complete`)."""
    f.site(app)
    with transaction(app.sessions) as s:
        for name, actions in (("t1", [{"type": "add_tag", "target": "order", "tag": "x"},
                                      {"type": "set_order_status", "status": "assembling"}]),
                              ("t2", [{"type": "set_order_status", "status": "complete"}])):
            service.create_trigger(s, raw={"name": name, "events": ["order_created"], "condition": "true",
                                           "actions": actions}, now=app.clock.now())
    oid = f.order(app, customer={"id": f.customer(app, email="a@b.ru")})
    app.worker.tick()
    with transaction(app.sessions) as s:
        assert orders.get(s, oid).status == "complete"
