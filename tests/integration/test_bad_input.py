"""Bad input gets an error naming the field and the reason; nothing of that record is stored."""

import pytest
from sqlalchemy import func, select

from retento.core.bus import Event
from retento.core.db.transactions import transaction
from retento.core.errors import DomainError
from retento.customers.models import Customer
from retento.history.models import HistoryEntry
from retento.orders.models import Order, OrderItem
from tests import factories as f


def counts(app):
    with transaction(app.sessions) as s:
        return tuple(s.scalar(select(func.count()).select_from(m)) for m in (Customer, Order, OrderItem,
                                                                          HistoryEntry, Event))


@pytest.mark.parametrize(("raw", "field", "reason"), [
    ({"email": "not-an-email"}, "email", "invalid email"),
    ({"phone": "12"}, "phone", "invalid phone number"),
    ({"phone": "+7 999 000"}, "phone", "invalid phone number"),
    ({"birthday": "1990-02-30"}, "birthday", "date"),
    ({"timezone": "Mars/Olympus"}, "timezone", "unknown time zone"),
    ({"site": "nope"}, "site", "unknown site"),
    ({"consents": {"fax": {"granted": True}}}, "consents.fax", "Input should be"),
    ({"consents": {"email": {"granted": True, "at": "2026-01-01T10:00:00"}}}, "consents.email.at", "time zone"),
    ({"entry_point": "billboard"}, "entry_point", "Input should be"),
    ({"tags": ["ok", "a,b"]}, "tags.1", "String should match"),
    ({"unknown_field": 1}, "unknown_field", "Extra inputs"),
])
def test_bad_customer_is_rejected_naming_the_field(app, raw, field, reason):
    f.site(app)
    f.customer(app, external_id="keep", email="keep@example.com")
    before = counts(app)
    with pytest.raises(DomainError) as exc:
        f.customer(app, external_id="new", **raw)
    errors = exc.value.as_dict()
    assert field in errors, errors
    assert reason in errors[field]
    assert counts(app) == before


def test_duplicate_external_id_is_a_conflict(app):
    f.site(app)
    f.customer(app, external_id="c1")
    with pytest.raises(DomainError) as exc:
        f.customer(app, external_id="c1")
    assert exc.value.status == 409 and "external_id" in exc.value.as_dict()


@pytest.mark.parametrize(("raw", "field", "reason"), [
    ({"status": "lost-in-space"}, "status", "unknown status"),
    ({"site": "nope"}, "site", "unknown site"),
    ({"currency": "EUR"}, "currency", "does not accept EUR"),
    ({"currency": "RUBX"}, "currency", "ISO 4217"),
    ({"items": [{"name": "A", "price": "10", "quantity": -1}]}, "items.0.quantity", "greater than 0"),
    ({"items": [{"name": "A", "price": "-10"}]}, "items.0.price", "greater than or equal to 0"),
    ({"items": [{"name": "A", "price": "10", "discount": "11"}]}, "items.0.discount", "larger than"),
    ({"items": [{"offer_id": "NOPE"}]}, "items.0.offer_id", "no product"),
    ({"items": [{"name": "A"}]}, "items.0", "price is required"),
    ({"items": []}, "items", "at least 1"),
    ({"created_at": "2026-13-01T00:00:00+00:00"}, "created_at", "datetime"),
    ({"created_at": "2026-01-01T00:00:00"}, "created_at", "time zone"),
    ({"delivery": {"date": "yesterday"}}, "delivery.date", "date"),
    ({"customer": {"external_id": "ghost"}}, "customer.external_id", "not found"),
    ({"customer": {"id": 1, "external_id": "x"}}, "customer", "exactly one"),
    ({"manager_id": 99}, "manager_id", "unknown manager"),
    ({"discount_total": "1000"}, "discount_total", "larger than"),
])
def test_bad_order_is_rejected_naming_the_field(app, raw, field, reason):
    f.site(app)
    f.order(app, external_id="keep")
    before = counts(app)
    with pytest.raises(DomainError) as exc:
        f.order(app, external_id="new", **raw)
    errors = exc.value.as_dict()
    assert field in errors, errors
    assert reason in errors[field], errors
    assert counts(app) == before


def test_bad_order_edit_changes_nothing(app):
    f.site(app)
    oid = f.order(app, external_id="o1")
    before = counts(app)
    with pytest.raises(DomainError) as exc:
        f.edit_order(app, oid, manager_comment="will not be kept", status="nope")
    assert "status" in exc.value.as_dict()
    assert counts(app) == before
    with transaction(app.sessions) as s:
        assert s.get(Order, oid).manager_comment is None


def test_batch_with_one_bad_order_stores_none_and_names_its_index(app):
    from retento.orders import service

    f.site(app)
    before = counts(app)
    with pytest.raises(DomainError) as exc, transaction(app.sessions) as s:
        items = [service.parse_create({"site": "shop", "external_id": f"o{i}",
                                       "items": [{"name": "A", "price": "1"}],
                                       "status": "new" if i != 2 else "bogus"}) for i in range(4)]
        service.create_many(s, items=items, ctx=f.API, now=app.clock.now())
    assert "[2].status" in exc.value.as_dict()
    assert counts(app) == before
