"""Input shapes of orders; validation of a single order lives here."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from operator import itemgetter
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from retento.core import limits
from retento.core.dates import AwareDatetime, Day
from retento.core.money import CENT, check_currency
from retento.customers.schemas import CustomFields, CustomValue, Labels

# Amounts keep the stored scale (10 -> 10.00, quantity 2 -> 2.000), so an unchanged value never diffs as a change.
MILLI = Decimal("0.001")


def _cents(v: Decimal) -> Decimal:
    return v.quantize(CENT)


def _millis(v: Decimal) -> Decimal:
    return v.quantize(MILLI)


Money = Annotated[Decimal, Field(ge=0, max_digits=16, decimal_places=2), AfterValidator(_cents)]
Quantity = Annotated[Decimal, Field(gt=0, max_digits=15, decimal_places=3), AfterValidator(_millis)]
ZERO = Decimal("0.00")


class ItemKind(StrEnum):
    PRODUCT = "product"
    SERVICE = "service"


class ItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    offer_id: str | None = Field(None, min_length=1, max_length=64, description="Product's offer id in the catalogue")
    name: str | None = Field(None, min_length=1, max_length=255, description="Required when offer_id is not given")
    kind: ItemKind | None = None
    category: str | None = Field(None, max_length=255)
    quantity: Quantity = Decimal("1.000")
    price: Money | None = Field(None, description="Unit price; the catalogue price when omitted")
    discount: Money = ZERO

    @model_validator(mode="after")
    def _named(self) -> ItemIn:
        if self.offer_id is None and self.name is None:
            raise ValueError("an item needs offer_id (a catalogue product) or name")
        if self.offer_id is None and self.price is None:
            raise ValueError("price is required for an item that is not in the catalogue")
        return self


class CustomerRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: int | None = Field(None, gt=0)
    external_id: str | None = Field(None, min_length=1, max_length=64)

    @model_validator(mode="after")
    def _one(self) -> CustomerRef:
        if (self.id is None) == (self.external_id is None):
            raise ValueError("give exactly one of id or external_id")
        return self


class Delivery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str | None = Field(None, max_length=64)
    cost: Money = ZERO
    date: Day | None = None
    address: Annotated[dict[str, CustomValue], AfterValidator(limits.json_size())] | None = None


class Payment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str | None = Field(None, max_length=64)
    status: str | None = Field(None, max_length=32)
    paid_amount: Money = ZERO


class OrderFields(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    status: str | None = Field(None, min_length=1, max_length=64)
    customer: CustomerRef | None = None
    currency: str | None = None
    items: list[ItemIn] | None = Field(None, min_length=1, max_length=1000,
                                       description="When given, replace all items: an order has at least one")
    discount_total: Money | None = None
    delivery: Delivery | None = None
    payment: Payment | None = None
    manager_id: int | None = Field(None, gt=0)
    customer_comment: str | None = Field(None, max_length=2000)
    manager_comment: str | None = Field(None, max_length=2000)
    custom_fields: CustomFields | None = None
    tags: Labels | None = None

    @field_validator("currency")
    @classmethod
    def _currency(cls, v: str | None) -> str | None:
        return check_currency(v) if v is not None else None


class OrderCreate(OrderFields):
    site: str = Field(min_length=1, max_length=64)
    external_id: str | None = Field(None, min_length=1, max_length=64)
    number: str | None = Field(None, min_length=1, max_length=64)
    items: list[ItemIn] = Field(min_length=1, max_length=1000)
    created_at: AwareDatetime | None = None  # for imports of past orders; default now


class OrderEdit(OrderFields):
    """Only the fields present change; `items`, when given, replace all items."""


ITEM_KEYS = ("offer_id", "name", "kind", "category", "quantity", "price", "discount")
_item_values = itemgetter(*ITEM_KEYS)


def dump_items(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [dict(zip(ITEM_KEYS, _item_values(i), strict=True)) for i in items]
