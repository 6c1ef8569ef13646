"""/api/v1 orders, statuses and status groups: thin routes over orders.service."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from retento import bulk
from retento.apikeys.api import require
from retento.apikeys.idempotency import Idempotency, idempotency
from retento.apikeys.schemas import Principal
from retento.core import scoping
from retento.core.db.transactions import transaction
from retento.core.rest.pagination import CreatedFrom, CreatedTo, CursorParam, Limit, SiteParam
from retento.core.rest.problems import router as v1_router
from retento.customers.models import Customer
from retento.orders import queries, service
from retento.orders.schemas import CustomerRef, OrderCreate, OrderEdit
from retento.routes import create_in_site, edit_and_return, list_page, reading
from retento.sites.service import site_codes

router = v1_router("orders")
Id = Annotated[int, Path(gt=0, le=2**53, description="Retento's order id")]


class CustomerRefIn(CustomerRef):
    id: int | None = Field(None, gt=0, le=2**53)


class OrderIn(OrderCreate):
    customer: CustomerRefIn | None = None
    manager_id: int | None = Field(None, gt=0, le=2**31 - 1)
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "site": "shop", "external_id": "o-5001", "customer": {"external_id": "c-1001"},
        "items": [{"offer_id": "SKU-1", "quantity": 2}, {"name": "Gift wrap", "price": "150.00"}],
        "delivery": {"type": "courier", "cost": "300.00"}}]})


class OrderPatch(OrderEdit):
    customer: CustomerRefIn | None = None
    manager_id: int | None = Field(None, gt=0, le=2**31 - 1)
    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "complete"}]})


class ItemOut(BaseModel):
    id: int
    product_id: int | None
    offer_id: str | None
    name: str
    kind: str
    category: str | None
    quantity: Decimal
    price: Decimal
    discount: Decimal


class OrderOut(BaseModel):
    id: int
    site: str
    external_id: str | None
    number: str
    status: str
    customer_id: int | None
    currency: str
    items: list[ItemOut]
    items_total: Decimal
    discount_total: Decimal
    delivery_cost: Decimal
    total: Decimal
    delivery_type: str | None
    delivery_date: dt.date | None
    delivery_address: dict[str, Any] | None
    payment_type: str | None
    payment_status: str | None
    paid_amount: Decimal
    manager_id: int | None
    customer_comment: str | None
    manager_comment: str | None
    custom_fields: dict[str, Any]
    created_at: dt.datetime
    status_updated_at: dt.datetime
    updated_at: dt.datetime

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": 42, "site": "shop", "external_id": "o-5001", "number": "o-5001", "status": "new", "customer_id": 17,
        "currency": "RUB", "items": [{"id": 90, "product_id": 3, "offer_id": "SKU-1", "name": "Kettle",
                                      "kind": "product", "category": "Kitchen", "quantity": "2.000",
                                      "price": "1990.00", "discount": "0.00"}],
        "items_total": "3980.00", "discount_total": "0.00", "delivery_cost": "300.00", "total": "4280.00",
        "delivery_type": "courier", "delivery_date": None, "delivery_address": None, "payment_type": None,
        "payment_status": None, "paid_amount": "0.00", "manager_id": None, "customer_comment": None,
        "manager_comment": None, "custom_fields": {}, "created_at": "2026-03-02T09:00:00Z",
        "status_updated_at": "2026-03-02T09:00:00Z", "updated_at": "2026-03-02T09:00:00Z"}]})


class OrderPage(BaseModel):
    items: list[OrderOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page")

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "items": OrderOut.model_config["json_schema_extra"]["examples"], "next_cursor": "aWQ6NDI"}]})


class StatusOut(BaseModel):
    code: str
    name: str
    name_ru: str
    group: str
    ordering: int
    active: bool

    model_config = ConfigDict(json_schema_extra={"examples": [{"code": "complete", "name": "Complete", "name_ru": "Выполнен", "group": "complete", "ordering": 130, "active": True}]})


class StatusGroupOut(BaseModel):
    code: str
    name: str
    name_ru: str
    ordering: int
    statuses: list[str]

    model_config = ConfigDict(json_schema_extra={"examples": [{"code": "complete", "name": "Complete", "name_ru": "Выполнен", "ordering": 50, "statuses": ["received", "complete"]}]})


def out(session: Session, orders: list[Any]) -> list[OrderOut]:
    return [OrderOut(**snap) for snap in queries.snapshots(session, orders, site_codes(session))]


@router.post("/orders", status_code=201, response_model=OrderOut, summary="Create an order")
def create_order(body: OrderIn, request: Request, principal: Annotated[Principal, Depends(require("orders:write"))],
                 idem: Annotated[Idempotency, Depends(idempotency)]) -> Response:
    return create_in_site(request, principal, idem, body.site, lambda s, now: out(
        s, [service.create(s, data=body, ctx=principal.ctx, now=now)])[0])


OrderBatchIn = bulk.batch_in("order", OrderIn.model_config["json_schema_extra"]["examples"][0])


@router.post("/orders/batch", response_model=bulk.BatchOut, summary=f"Create or update up to {bulk.MAX_ITEMS:,} orders",
             description="Upsert on `external_id` per site; a bad item is reported (`items.N.field`) and the others "
                         "are stored. See docs/api.md, Batch upserts.")
def upsert_orders(body: OrderBatchIn, request: Request,  # type: ignore[valid-type]
                  principal: Annotated[Principal, Depends(require("orders:write"))],
                  idem: Annotated[Idempotency, Depends(idempotency)]) -> Response:
    return bulk.upsert(request, principal, idem, body.items, parse=lambda s, raw: bulk.validated(OrderIn, raw),
                       store=service.upsert_many)


@router.get("/orders/{order_id}", response_model=OrderOut, summary="Get an order")
def get_order(order_id: Id, request: Request,
              principal: Annotated[Principal, Depends(require("orders:read"))]) -> OrderOut:
    with transaction(reading(request)) as s:
        return out(s, [service.get(s, order_id)])[0]


@router.patch("/orders/{order_id}", response_model=OrderOut, summary="Edit an order",
              description="Only the fields present change; `items`, when given, replace all items.")
def edit_order(order_id: Id, body: OrderPatch, request: Request,
               principal: Annotated[Principal, Depends(require("orders:write"))]) -> Any:
    return edit_and_return(request, lambda s: service.get(s, order_id),
                           lambda s, order, now: service.edit(s, order=order, data=body, ctx=principal.ctx, now=now),
                           lambda s, order: out(s, [order])[0])


@router.get("/orders", response_model=OrderPage, summary="List orders",
            description="Oldest first; every filter given must match. Page on with `cursor`.")
def list_orders(
    request: Request,
    principal: Annotated[Principal, Depends(require("orders:read"))],
    site: SiteParam = None,
    status: Annotated[list[str] | None, Query(max_length=50, description="Status codes (any of)")] = None,
    customer_id: Annotated[int | None, Query(gt=0, le=2**53)] = None,
    external_id: Annotated[str | None, Query(max_length=64)] = None,
    number: Annotated[str | None, Query(max_length=64)] = None,
    created_from: CreatedFrom = None,
    created_to: CreatedTo = None,
    cursor: CursorParam = None,
    limit: Limit = 50,
) -> Any:
    def fetch(s: Session, site_ids: list[int] | None, after_id: int, n: int) -> list[Any]:
        if customer_id is not None:
            scoping.require(s, Customer, customer_id, "customer_id")
        return queries.list_orders(s, site_ids=site_ids, status=status, customer_id=customer_id,
                                   external_id=external_id, number=number, created_from=created_from,
                                   created_to=created_to, after_id=after_id, limit=n)

    return list_page(request, site, cursor, limit, fetch, out, OrderPage)


@router.get("/statuses", response_model=list[StatusOut], tags=["reference"], summary="Order statuses")
def list_statuses(request: Request,
                  _: Annotated[Principal, Depends(require("reference:read"))]) -> list[StatusOut]:
    with transaction(reading(request)) as s:
        return [StatusOut(code=x.code, name=x.name, name_ru=x.name_ru, group=x.group_code, ordering=x.ordering,
                          active=x.active) for x in queries.statuses(s)]


@router.get("/status-groups", response_model=list[StatusGroupOut], tags=["reference"],
            summary="Order status groups")
def list_status_groups(request: Request,
                       _: Annotated[Principal, Depends(require("reference:read"))]) -> list[StatusGroupOut]:
    with transaction(reading(request)) as s:
        members: dict[str, list[str]] = {}
        for x in queries.statuses(s):
            members.setdefault(x.group_code, []).append(x.code)
        return [StatusGroupOut(code=g.code, name=g.name, name_ru=g.name_ru, ordering=g.ordering,
                               statuses=members.get(g.code, [])) for g in queries.status_groups(s)]
