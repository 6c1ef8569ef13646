"""RetailCRM's batch methods `POST /api/v5/customers/upload` and `/orders/upload`: up to 50 entities a request, as a
JSON array in the form field `customers` / `orders`; the same write path as `/api/v1/.../batch` and imports
(`batch.upsert_items` over the domain's `upsert_many`).

Answers: 201 `{"success": true, "uploadedCustomers": [{"id", "externalId"}]}` when every item was stored; when some
were refused, RetailCRM's 460 with `"success": false`, `errorMsg`, `errors` (per field, `customers[N].email`), the
stored ones in `uploadedCustomers` and the refused ones in `failedCustomers`; none stored is a 400. Registered
before the compat router, whose catch-all would take these paths.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy.orm import Session

from retento import batch
from retento.batch import Outcome
from retento.compat import mapping as m
from retento.compat.api import V5, free_lines, order_customer, site_for
from retento.compat.envelope import ENTITY_ERROR, INPUT_ERROR, Call, Partial, RetailRoute, fail, handle
from retento.core import parsing
from retento.core.errors import DomainError
from retento.customers import service as customers
from retento.orders import service as orders
from retento.sites.service import get_site, list_sites

router = APIRouter(route_class=RetailRoute, include_in_schema=False)
MAX_ITEMS = 50


@router.post(V5 + "/customers/upload")
async def customers_upload(request: Request) -> Response:
    def parse(call: Call, session: Session, entity: dict[str, Any], code: str) -> Any:
        raw = mapped(m.customer_in, entity, call)
        return customers.parse_create(session, {**raw, "site": code})

    return await handle(request, "customers:write", lambda call: upload(call, "customers", parse,
                                                                        customers.upsert_many), status=201)


@router.post(V5 + "/orders/upload")
async def orders_upload(request: Request) -> Response:
    def parse(call: Call, session: Session, entity: dict[str, Any], code: str) -> Any:
        raw = mapped(m.order_in, entity, call)
        site = get_site(session, code)
        raw["site"] = site.code
        orders.parse_create({**raw, "customer": None})  # the order's own fields first: no customer made for a bad one
        customer = order_customer(call, entity, site)
        if customer is not None:
            raw["customer"] = customer
        free_lines(call, raw, site)
        return orders.parse_create(raw)

    return await handle(request, "orders:write", lambda call: upload(call, "orders", parse, orders.upsert_many),
                        status=201)


def upload(call: Call, name: str, parse: Callable[[Call, Session, dict[str, Any], str], Any],
           store: Callable[..., list[Outcome]]) -> dict[str, Any] | Partial:
    entities = _entities(call, name)
    default = _default_site(call)

    def one(session: Session, entity: Any) -> Any:
        if not isinstance(entity, dict):
            raise DomainError.one("", "must be a JSON object")
        code = entity.get("site") or default
        if not isinstance(code, str):
            raise DomainError.one("site", "pass the site: as `site` of the request or of the entity")
        return parse(call, session, entity, code)

    outcomes = batch.upsert_items(call.session, entities, parse=one, store=store, ctx=call.principal.ctx,
                                  now=call.now, field=lambda n, f: f"{name}.{n}.{f}")
    key = name.title()
    uploaded, failed, errors = [], [], {}
    for n, (entity, o) in enumerate(zip(entities, outcomes, strict=True)):
        ext = entity.get("externalId") if isinstance(entity, dict) else None
        if isinstance(o, DomainError):
            failed.append({"externalId": ext} if ext is not None else {"index": n})
            errors.update({f"{name}[{n}]" + (f".{m.error_field(e.field)}" if e.field else ""): e.reason
                           for e in o.errors})
        else:
            uploaded.append({"id": o.id, **({"externalId": ext} if ext is not None else {})})
    if not failed:
        return {f"uploaded{key}": uploaded}
    return Partial(460 if uploaded else 400, {
        "errorMsg": f"{key} are loaded with errors" if uploaded else ENTITY_ERROR, "errors": errors,
        f"uploaded{key}": uploaded, f"failed{key}": failed})


def _entities(call: Call, name: str) -> list[Any]:
    """The JSON array in form field `name`: 1 to 50 entities."""
    raw = call.form.get(name)
    if raw in (None, ""):
        raise fail(f"Parameter '{name}' is missing")
    value = parsing.json_value(raw, root=name) if isinstance(raw, str) else None
    if not isinstance(value, list) or not value:
        raise fail(ENTITY_ERROR, **{name: "must be a JSON array of objects"})
    if len(value) > MAX_ITEMS:
        raise fail(INPUT_ERROR, **{name: f"at most {MAX_ITEMS} in one request (got {len(value)})"})
    return value


def _default_site(call: Call) -> str | None:
    """The request's `site`, else the key's only site (or the installation's only one), else none."""
    code = call.param("site")
    if code:
        return site_for(call, code).code
    sites = list_sites(call.session)
    return sites[0].code if len(sites) == 1 else None


def mapped(fn: Callable[[dict[str, Any], Any], dict[str, Any]], entity: dict[str, Any], call: Call) -> dict[str, Any]:
    """RetailCRM's entity as Retento's fields; what cannot be read is the item's error naming the field."""
    try:
        return fn(entity, call.tz)
    except ValueError as exc:
        field, _, reason = str(exc).partition(": ")
        raise DomainError.one(field if reason else "", reason or str(exc)) from None
