"""A batch of orders is validated in one call; each error names the order's index and the field."""

import pytest

from retento.core.errors import DomainError
from retento.orders.service import parse_create, parse_create_many


def test_batch_gives_the_same_orders_as_one_by_one():
    raws = [
        {"site": "shop", "items": [{"offer_id": "SKU-1", "quantity": "2"}],
         "created_at": "2026-01-02T03:04:05+03:00"},
        {"site": "shop", "external_id": "E-1", "delivery": {"cost": "300"},
         "customer": {"external_id": "C-1"},
         "items": [{"name": "Gift wrapping", "price": "150", "kind": "service"}]},
    ]
    assert parse_create_many(raws) == [parse_create(r) for r in raws]


def test_batch_errors_name_the_order_and_field():
    raws = [
        {"site": "shop", "items": [{"name": "a", "price": "1"}]},
        {"site": "shop", "items": [{"name": "a", "price": "-1"}]},
        {"site": "shop", "items": [{"name": "a", "price": "1"}], "currency": "XXX"},
        "not an order",
    ]
    with pytest.raises(DomainError) as err:
        parse_create_many(raws)
    fields = [e.field for e in err.value.errors]
    assert fields == ["[1].items.0.price", "[2].currency", "[3]"]
