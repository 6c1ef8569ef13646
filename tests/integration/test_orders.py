"""Orders: items from the catalogue or free, goods and services, Decimal totals, status changes, upserts."""

from decimal import Decimal

import pytest
from sqlalchemy import select

from retento.core.bus import Event
from retento.core.db.transactions import transaction
from retento.core.errors import DomainError
from retento.orders import service
from retento.orders.models import Status
from tests import factories as f


def test_totals_items_and_catalogue_defaults(app):
    f.site(app)
    f.product(app, "SKU-1", price="199.90", category="shoes")
    f.product(app, "SRV-1", price="500.00", kind="service", name="Fitting", category="services")
    oid = f.order(app, number="A-1", items=[
        {"offer_id": "SKU-1", "quantity": "3", "discount": "9.70"},
        {"offer_id": "SRV-1"},
        {"name": "Gift wrap", "price": "0.10", "quantity": "0.5"},
    ], discount_total="50", delivery={"type": "courier", "cost": "300", "date": "2026-03-05",
                                     "address": {"city": "Москва", "text": "ул. Ленина, 1"}},
        payment={"type": "card", "status": "paid", "paid_amount": "1200"})
    with transaction(app.sessions) as s:
        o = service.get(s, oid)
        items = service.items_of(s, oid)
    assert [i["kind"] for i in items] == ["product", "service", "product"]
    assert items[0]["price"] == Decimal("199.90") and items[0]["category"] == "shoes"
    assert items[2]["quantity"] == Decimal("0.500")
    assert o.items_total == Decimal("599.70") - Decimal("9.70") + Decimal("500.00") + Decimal("0.05")
    assert o.total == o.items_total - Decimal("50") + Decimal("300")
    assert (o.currency, o.number, o.status, o.delivery_type) == ("RUB", "A-1", "new", "courier")
    assert o.delivery_address["city"] == "Москва" and o.paid_amount == Decimal("1200.00")


def test_number_defaults_to_external_id_or_id_with_a(app):
    f.site(app)
    o1 = f.order(app, external_id="ext-9")
    o2 = f.order(app)
    with transaction(app.sessions) as s:
        assert service.get(s, o1).number == "ext-9"
        assert service.get(s, o2).number == f"{o2}A"


def test_taken_external_ids_and_numbers_are_conflicts_per_site(app):
    f.site(app)
    f.site(app, code="other")
    f.order(app, external_id="ext-1")
    f.order(app, number="N-1")
    item = [{"name": "Thing", "price": "1"}]
    with transaction(app.sessions) as s:  # the same keys on another site are free
        assert len(service.create_many(s, items=service.parse_create_many([
            {"site": "other", "external_id": "ext-1", "items": item},
            {"site": "other", "number": "N-1", "items": item}]), ctx=f.API, now=app.clock.now())) == 2
    for raw, field in (({"external_id": "ext-1"}, "[1].external_id"), ({"number": "N-1"}, "[1].number"),
                       ({"external_id": "N-1"}, "[1].number")):
        with pytest.raises(DomainError) as exc, transaction(app.sessions) as s:
            batch = service.parse_create_many([{"site": "shop", "items": item},
                                               {"site": "shop", "items": item, **raw}])
            service.create_many(s, items=batch, ctx=f.API, now=app.clock.now())
        assert exc.value.status == 409 and field in exc.value.as_dict()


def test_status_change_emits_changed_and_status_changed_with_groups(app, clock):
    f.site(app)
    oid = f.order(app)
    clock.advance(minutes=17)
    f.edit_order(app, oid, status="ready-for-delivery")
    with transaction(app.sessions) as s:
        o = service.get(s, oid)
        evs = [(e.type, e.payload) for e in s.scalars(select(Event).where(Event.order_id == oid).order_by(Event.id))]
    assert o.status_updated_at == clock.now()
    assert [t for t, _ in evs] == ["order_created", "order_changed", "order_status_changed"]
    assert evs[2][1] == {"old": "new", "new": "ready-for-delivery", "old_group": "new", "new_group": "delivery"}


def test_items_replacement_recomputes_totals_and_is_one_history_change(app):
    f.site(app)
    oid = f.order(app, items=[{"name": "A", "price": "10"}])
    changes = f.edit_order(app, oid, items=[{"name": "B", "price": "7.50", "quantity": 2}])
    fields = [c[0] for c in changes]
    assert sorted(fields) == ["items", "items_total", "total"]
    with transaction(app.sessions) as s:
        assert service.get(s, oid).total == Decimal("15.00")
        assert [i["name"] for i in service.items_of(s, oid)] == ["B"]


def test_upsert_by_external_id(app):
    f.site(app)
    f.customer(app, external_id="c1")
    with transaction(app.sessions) as s:
        data = service.parse_create({"site": "shop", "external_id": "o1", "items": [{"name": "A", "price": "1"}]})
        oid, created = service.upsert(s, data=data, ctx=f.API, now=app.clock.now())
    with transaction(app.sessions) as s:
        data = service.parse_create({"site": "shop", "external_id": "o1", "status": "complete",
                                     "customer": {"external_id": "c1"}, "items": [{"name": "A", "price": "1"}]})
        oid2, created2 = service.upsert(s, data=data, ctx=f.API, now=app.clock.now())
    assert (created, created2, oid2) == (True, False, oid)
    with transaction(app.sessions) as s:
        o = service.get(s, oid)
        assert o.status == "complete" and o.customer_id is not None


def test_other_sites_customers_are_not_reachable(app):
    f.site(app)
    f.site(app, code="other")
    f.customer(app, site="other", external_id="c1")
    import pytest

    from retento.core.errors import DomainError

    with pytest.raises(DomainError) as exc:
        f.order(app, customer={"external_id": "c1"})
    assert "customer.external_id" in exc.value.as_dict()


def test_reference_data_read_once_per_transaction_follows_changes_and_rollbacks(app):
    """edit_many reads sites, statuses and managers once per transaction; a status added in the same transaction
    is known at once, one added in a savepoint that rolled back is not."""
    f.site(app)
    oid = f.order(app)
    now = app.clock.now()

    def to(s, status):
        return service.edit_many(s, edits=[(oid, service.parse_edit({"status": status}), f.API)], now=now)

    with transaction(app.sessions) as s:
        assert to(s, "assembling") == [[("status", "new", "assembling")]]  # reads the reference data
        s.add(Status(code="packed-twice", name="Packed twice", name_ru="Упакован дважды", group_code="assembling",
                     ordering=999))
        assert to(s, "packed-twice") == [[("status", "assembling", "packed-twice")]]
        assert service.status_groups(s)["packed-twice"] == "assembling"
        with pytest.raises(RuntimeError), s.begin_nested():
            s.add(Status(code="gone", name="Gone", name_ru="Нет", group_code="cancel", ordering=1000))
            to(s, "gone")
            raise RuntimeError("undo the savepoint")
        with pytest.raises(DomainError) as exc:
            to(s, "gone")
        assert "status" in exc.value.as_dict()
