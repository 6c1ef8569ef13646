"""The demo generator is pure: same seed and `now`, same shop; every record fits the service schemas."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from retento.catalog.schemas import ProductIn
from retento.customers.schemas import CustomerCreate
from retento.demo.generator import GROUP, generate
from retento.orders.schemas import OrderCreate, OrderEdit
from retento.sites.schemas import ManagerCreate, SiteCreate

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def dump(shop):
    return (shop.sites, shop.managers, shop.products, shop.customers,
            [(o.data, [(s.at, s.changes, s.manager) for s in o.steps]) for o in shop.orders])


def test_same_seed_same_shop_other_seed_other_shop():
    a = generate(seed=5, customers=150, orders=600, now=NOW)
    assert dump(a) == dump(generate(seed=5, customers=150, orders=600, now=NOW))
    b = generate(seed=6, customers=150, orders=600, now=NOW)
    assert a.customers != b.customers and [o.data for o in a.orders] != [o.data for o in b.orders]


def test_every_record_fits_the_service_schemas():
    shop = generate(seed=3, customers=200, orders=800, now=NOW)
    for raw in shop.sites:
        SiteCreate(**raw)
    for raw in shop.managers:
        ManagerCreate(**raw)
    for raw in shop.products:
        ProductIn(**raw)
    for raw in shop.customers:
        c = CustomerCreate.model_validate(raw)
        assert c.manager_id is None or 1 <= c.manager_id <= len(shop.managers)
        assert c.phone is None or c.phone == raw["phone"]  # generated already in E.164
    for o in shop.orders:
        OrderCreate.model_validate(o.data)
        for step in o.steps:
            OrderEdit.model_validate(step.changes)


def test_times_are_in_the_two_years_before_now_and_in_order():
    shop = generate(seed=1, customers=200, orders=1000, now=NOW)
    signed_up = {c["external_id"]: c["created_at"] for c in shop.customers}
    start = NOW - timedelta(days=730)
    assert all(start <= t < NOW for t in signed_up.values())
    for o in shop.orders:
        created = o.data["created_at"]
        assert signed_up[o.data["customer"]["external_id"]] < created < NOW
        times = [s.at for s in o.steps]
        assert times == sorted(times) and all(created < t <= NOW for t in times)
    assert [o.data["created_at"] for o in shop.orders] == sorted(o.data["created_at"] for o in shop.orders)


def test_the_shop_has_what_the_demo_promises():
    shop = generate(seed=1, customers=200, orders=1000, now=NOW)
    groups = Counter(GROUP[o.status] for o in shop.orders)
    assert set(groups) == {"new", "approval", "assembling", "delivery", "complete", "cancel"}
    assert {o.status for o in shop.orders} >= {"complete", "received", "returned"}
    assert {c["locale"] for c in shop.customers} == {"ru", "en"}
    assert {c["site"] for c in shop.customers} == {"uyut", "cozyhome", "flora"}
    assert {p["kind"] for p in shop.products} == {"product", "service"}
    assert any(i["kind"] == "service" for o in shop.orders for i in o.data["items"])
    assert {o.data.get("currency") for o in shop.orders if o.data["site"] == "cozyhome"} == {None, "USD"}
    for key in ("telegram_id", "whatsapp_id", "vk_id", "birthday", "personal_dates", "tags", "interests",
                "manager_id", "custom_fields"):
        assert any(key in c for c in shop.customers), key
    assert {c["entry_point"] for c in shop.customers} == {"purchase", "registration", "subscription", "lead_magnet",
                                                          "callback", "chat"}
    consents = [x for c in shop.customers for x in c["consents"].values()]
    assert {x["granted"] for x in consents} == {True, False} and all(x["at"] and x["source"] for x in consents)
    assert {c.get("email_confirmed") for c in shop.customers} == {None, True, False}
    assert any(len(o.steps) >= 5 for o in shop.orders)  # recent orders go through every stage
    assert any(s.manager is None for o in shop.orders for s in o.steps)  # some changes are made by robots
