"""/api/v1 products (reference book)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated

from fastapi import Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from retento.apikeys.api import require
from retento.apikeys.schemas import Principal
from retento.catalog import queries
from retento.core.db.transactions import transaction
from retento.core.rest.pagination import CursorParam, Limit, decode_cursor, page
from retento.core.rest.problems import router as v1_router
from retento.routes import reading
from retento.sites.service import get_site, site_codes

router = v1_router("reference")


class ProductOut(BaseModel):
    id: int
    site: str
    offer_id: str
    name: str
    category: str | None
    kind: str
    price: Decimal
    currency: str
    active: bool
    created_at: dt.datetime
    updated_at: dt.datetime

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": 3, "site": "shop", "offer_id": "SKU-1", "name": "Kettle", "category": "Kitchen", "kind": "product",
        "price": "1990.00", "currency": "RUB", "active": True, "created_at": "2026-03-02T09:00:00Z",
        "updated_at": "2026-03-02T09:00:00Z"}]})


class ProductPage(BaseModel):
    items: list[ProductOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page")

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "items": ProductOut.model_config["json_schema_extra"]["examples"], "next_cursor": "aWQ6NDI"}]})


@router.get("/products", response_model=ProductPage, summary="Products and services")
def products(
    request: Request,
    principal: Annotated[Principal, Depends(require("reference:read"))],
    site: Annotated[str | None, Query(max_length=64)] = None,
    category: Annotated[str | None, Query(max_length=255)] = None,
    offer_id: Annotated[str | None, Query(max_length=64)] = None,
    cursor: CursorParam = None,
    limit: Limit = 50,
) -> ProductPage:
    with transaction(reading(request)) as s:
        site_ids = [get_site(s, site).id] if site else None
        rows = queries.list_products(s, site_ids=site_ids, category=category, offer_id=offer_id,
                                     after_id=decode_cursor(cursor), limit=limit + 1)
        rows, nxt = page(rows, limit)
        codes = site_codes(s)
        return ProductPage(items=[ProductOut(
            id=p.id, site=codes[p.site_id], offer_id=p.offer_id, name=p.name, category=p.category, kind=p.kind,
            price=p.price, currency=p.currency, active=p.active, created_at=p.created_at, updated_at=p.updated_at,
        ) for p in rows], next_cursor=nxt)
