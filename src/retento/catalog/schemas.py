from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from retento.core.money import check_currency
from retento.core.parsing import Flag
from retento.orders.schemas import ItemKind, Money


class ProductIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    site: str = Field(min_length=1, max_length=64)
    offer_id: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=255)
    category: str | None = Field(None, max_length=255)
    kind: ItemKind = ItemKind.PRODUCT
    price: Money
    currency: str | None = None
    active: Flag = True

    @field_validator("currency")
    @classmethod
    def _currency(cls, v: str | None) -> str | None:
        return check_currency(v) if v is not None else None
