"""RetailCRM API v5 compatible routes: a translation layer over the same services as /api/v1."""

from __future__ import annotations

import functools
from datetime import datetime
from importlib import resources
from typing import Any

import yaml
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from retento.catalog.queries import known_offers
from retento.compat import mapping as m, params
from retento.compat.dates import fmt_datetime, parse_datetime
from retento.compat.envelope import (
    AUTH_MESSAGES,
    ENTITY_ERROR,
    INPUT_ERROR,
    Call,
    RetailRoute,
    V5Error,
    envelope_error,
    fail,
    handle,
    pagination,
)
from retento.compat.mapping import error_field
from retento.core import parsing
from retento.core.errors import DomainError, NotFound
from retento.core.rest import routing
from retento.customers import merges, merging, queries as customer_q, service as customers
from retento.customers.api import edit_data
from retento.history import queries as history_q
from retento.orders import queries as order_q, service as orders
from retento.sites.models import Site
from retento.sites.service import get_site, list_sites, site_codes

router = APIRouter(route_class=RetailRoute, include_in_schema=False)
V5 = "/api/v5"


# --- helpers ---------------------------------------------------------------------------------------------


def site_for(call: Call, code: Any) -> Site:
    """The named site (it must exist, and another than the key's is a 403), or the only site the key may use."""
    if code:
        try:
            return get_site(call.session, str(code))
        except NotFound:
            raise fail(ENTITY_ERROR, site=f"site {code!r} not found") from None
    sites = list_sites(call.session)  # the session sees the key's sites only
    if len(sites) == 1:
        return sites[0]
    raise fail("Parameter 'site' is missing",
               site="the key has access to several sites; pass the site code")


def site_filter(call: Call, codes: list[str] | None) -> list[int] | None:
    """`filter[sites][]`: of the sites named, those the key may use (none: an empty list, as RetailCRM)."""
    if not codes:
        return None
    return [s.id for s in list_sites(call.session) if s.code in codes]


def date_param(call: Call, f: params.Filter, name: str) -> datetime | None:
    value = f.text(name)
    if value is None:
        return None
    try:
        return parse_datetime(value, call.tz)
    except ValueError as exc:
        raise fail(**{f"filter[{name}]": str(exc)}) from None


def parsed(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except ValueError as exc:
        name, _, reason = str(exc).partition(": ")
        raise fail(ENTITY_ERROR, **{name if reason else "entity": reason or str(exc)}) from None


def by_param(call: Call) -> str:
    return params.choice(call.plain, "by", ("externalId", "id"), "externalId")


def customers_out(call: Call, rows: list[Any]) -> list[dict[str, Any]]:
    codes = site_codes(call.session)
    return [m.customer_out(snap, codes[snap["site_id"]], call.tz) for snap in customer_q.snapshots(call.session, rows)]


def orders_out(call: Call, rows: list[Any]) -> list[dict[str, Any]]:
    snaps = order_q.snapshots(call.session, rows, site_codes(call.session))
    owners = customer_q.by_ids(call.session, {s["customer_id"] for s in snaps if s["customer_id"]})
    linked = {c["id"]: c for c in customers_out(call, list(owners.values()))}
    return [m.order_out(snap, call.tz, linked.get(snap["customer_id"])) for snap in snaps]


def listing(call: Call, name: str, count: Any, rows: Any, out: Any, *, limit: int, page: int,
            filters: dict[str, Any]) -> dict[str, Any]:
    """One page of a RetailCRM list: the matching rows of page `page` and the `pagination` object."""
    total = count(call.session, **filters)
    found = rows(call.session, limit=limit, offset=(page - 1) * limit, **filters)
    return {"pagination": pagination(limit, page, total), name: out(call, found)}


# --- api-versions, credentials ----------------------------------------------------------------------------

PATHS = {
    "customers:read": ["/api/v5/customers", "/api/v5/customers/{externalId}", "/api/v5/customers/history"],
    "customers:write": ["/api/v5/customers/create", "/api/v5/customers/upload", "/api/v5/customers/{externalId}/edit",
                        "/api/v5/customers/combine"],
    "orders:read": ["/api/v5/orders", "/api/v5/orders/{externalId}", "/api/v5/orders/history",
                    "/api/v5/orders/statuses"],
    "orders:write": ["/api/v5/orders/create", "/api/v5/orders/upload", "/api/v5/orders/{externalId}/edit"],
    "reference:read": ["/api/v5/reference/sites", "/api/v5/reference/statuses", "/api/v5/reference/status-groups"],
    "loyalty:read": ["/api/v5/loyalty/loyalties", "/api/v5/loyalty/loyalties/{id}", "/api/v5/loyalty/accounts",
                     "/api/v5/loyalty/account/{id}", "/api/v5/loyalty/account/{id}/bonus/operations",
                     "/api/v5/loyalty/account/{id}/bonus/{status}/details", "/api/v5/loyalty/bonus/operations"],
    "loyalty:write": ["/api/v5/loyalty/account/create", "/api/v5/loyalty/account/{id}/edit",
                      "/api/v5/loyalty/account/{id}/activate", "/api/v5/loyalty/account/{id}/bonus/credit",
                      "/api/v5/loyalty/account/{id}/bonus/charge", "/api/v5/loyalty/calculate",
                      "/api/v5/orders/loyalty/apply", "/api/v5/orders/loyalty/cancel-bonus-operations"],
}
SCOPE_NAMES = {"customers:read": "customer_read", "customers:write": "customer_write", "orders:read": "order_read",
               "orders:write": "order_write", "reference:read": "reference_read", "loyalty:read": "loyalty_read",
               "loyalty:write": "loyalty_write"}


@router.get("/api/api-versions")
async def api_versions(request: Request) -> Response:
    return await handle(request, None, lambda call: {"versions": ["5.0"]})


@router.get("/api/credentials")
async def credentials(request: Request) -> Response:
    def run(call: Call) -> dict[str, Any]:
        scopes = [s for s in PATHS if s in call.principal.scopes]
        sites = [s.code for s in list_sites(call.session)]
        return {"credentials": [p for s in scopes for p in PATHS[s]], "scopes": [SCOPE_NAMES[s] for s in scopes],
                "siteAccess": "access_full" if call.principal.site_ids is None else "access_selective",
                "sitesAvailable": sites}

    return await handle(request, None, run)


# --- customers --------------------------------------------------------------------------------------------


@router.get(V5 + "/customers")
async def customers_list(request: Request) -> Response:
    def run(call: Call) -> dict[str, Any]:
        limit, page = call.paging()
        f = call.filters()
        email = f.text("email", max_length=320)
        filters = {"site_ids": site_filter(call, f.texts("sites")), "ids": f.integers("ids"),
                   "external_ids": f.texts("externalIds"), "email": email.strip().lower() if email else None,
                   "tags": f.texts("tags"), "created_from": date_param(call, f, "dateFrom"),
                   "created_to": date_param(call, f, "dateTo")}
        return listing(call, "customers", customer_q.count_customers, customer_q.list_customers, customers_out,
                       limit=limit, page=page, filters=filters)

    return await handle(request, "customers:read", run)


@router.post(V5 + "/customers/create")
async def customers_create(request: Request) -> Response:
    def run(call: Call) -> dict[str, Any]:
        raw = parsed(m.customer_in, call.entity("customer"), call.tz)
        site = site_for(call, call.param("site") or raw.get("site"))
        data = customers.parse_create(call.session, {**raw, "site": site.code})
        return {"id": customers.create(call.session, data=data, ctx=call.principal.ctx, now=call.now).id}

    return await handle(request, "customers:write", run, status=201)


@router.get(V5 + "/customers/history")
async def customers_history(request: Request) -> Response:
    return await handle(request, "customers:read", lambda call: history(call, "customer"))


def find(call: Call, uid: str, list_rows: Any) -> Any:
    """The customer / order addressed by the path: `by=externalId` (default, with `site` if ambiguous) or `by=id`."""
    if by_param(call) == "id":
        number = parsing.integer(uid)
        rows = list_rows(call.session, ids=[number], limit=1) if number is not None else []
    else:
        site = site_for(call, call.param("site")) if call.param("site") else None
        rows = list_rows(call.session, external_ids=[uid], limit=2, site_ids=[site.id] if site else None)
        if len(rows) > 1:
            raise fail("Parameter 'site' is missing", site="several sites have this externalId; pass the site")
    if not rows:
        raise fail("Not found", 404)
    return rows[0]


def find_customer(call: Call, uid: str) -> Any:
    return find(call, uid, customer_q.list_customers)


@router.get(V5 + "/customers/{uid}")
async def customers_get(uid: str, request: Request) -> Response:
    return await handle(request, "customers:read",
                        lambda call: {"customer": customers_out(call, [find_customer(call, uid)])[0]})


@router.post(V5 + "/customers/{uid}/edit")
async def customers_edit(uid: str, request: Request) -> Response:
    def run(call: Call) -> dict[str, Any]:
        customer = find_customer(call, uid)
        raw = parsed(m.customer_in, call.entity("customer"), call.tz)
        if by_param(call) == "externalId":
            raw.pop("external_id", None)
        data = edit_data(call.session, customer, raw)
        customers.edit(call.session, customer=customer, data=data, ctx=call.principal.ctx, now=call.now)
        return {"id": customer.id}

    return await handle(request, "customers:write", run)


def form_json(call: Call, name: str) -> Any:
    """The JSON document (of any type) in form field `name`."""
    raw = call.form.get(name)
    if raw in (None, ""):
        raise fail(f"Parameter '{name}' is missing")
    if not isinstance(raw, str):
        raise fail(**{name: "must be a JSON document"})
    try:
        return parsing.json_value(raw, root=name)
    except DomainError as exc:
        raise fail(**exc.as_dict()) from None


def combined_id(call: Call, ref: Any, name: str, site: Site | None) -> int:
    """A customer of `customers/combine` named by `{"id": N}` or `{"externalId": "..."}` (on `site`, or the key's
    only site); an externalId of a customer merged before answers where it went."""
    if not isinstance(ref, dict) or (ref.get("id") is None) == (ref.get("externalId") is None):
        raise fail(**{name: 'an object with either "id" or "externalId"'})
    if ref.get("id") is not None:
        number = ref["id"] if type(ref["id"]) is int else parsing.integer(ref["id"])
        if number is None or not 0 < number <= 2**53:
            raise fail(**{f"{name}.id": "must be a positive integer"})
        return number
    ext, site = str(ref["externalId"]), site or site_for(call, None)
    if (found := customers.find(call.session, site_id=site.id, external_id=ext)) is not None:
        return found.id
    kept = merges.merged_external(call.session, site_id=site.id, external_id=ext)
    raise fail("Not found", 404, **{f"{name}.externalId": f"customer {ext!r} was merged into customer {kept}"
                                    if kept else f"customer {ext!r} not found"})


def combine_error(exc: DomainError) -> V5Error:
    """The service's error in RetailCRM's terms: `keep` is `resultCustomer`, `merge.N` is `customers[N]`."""
    def name(field: str) -> str:
        head, _, rest = field.partition(".")
        if head in ("keep", "id"):
            return "resultCustomer" + (f".{rest}" if rest and head == "keep" else "")
        if head == "merge":
            return f"customers[{rest}]" if rest.isdigit() else "customers"
        return error_field(field)

    errors = {name(e.field): e.reason for e in exc.errors}
    if exc.status == 404:
        return fail("Not found", 404, **errors)
    return fail(AUTH_MESSAGES["site"] if exc.status == 403 else INPUT_ERROR, 403 if exc.status == 403 else 400,
                **errors)


@router.post(V5 + "/customers/combine")
async def customers_combine(request: Request) -> Response:
    """Merge `customers` (a JSON array of `{"id"}` / `{"externalId"}`) into `resultCustomer`: customers.merging."""
    def run(call: Call) -> dict[str, Any]:
        refs, result = form_json(call, "customers"), form_json(call, "resultCustomer")
        if not isinstance(refs, list) or not refs:
            raise fail(customers="a non-empty JSON array of customers")
        site = site_for(call, call.param("site")) if call.param("site") else None
        try:
            keep = combined_id(call, result, "resultCustomer", site)
            site = site or call.session.get(Site, customers.get(call.session, keep).site_id)
            ids = [combined_id(call, ref, f"customers[{n}]", site) for n, ref in enumerate(refs)]
            merging.merge(call.session, site=site.code, keep_id=keep, merge_ids=ids, ctx=call.principal.ctx,
                          now=call.now)
        except DomainError as exc:
            raise combine_error(exc) from None
        return {}

    return await handle(request, "customers:write", run)


# --- orders -----------------------------------------------------------------------------------------------


def order_customer(call: Call, entity: dict[str, Any], site: Site) -> dict[str, Any] | None:
    """The order's customer reference; a customer named only by contacts is found by them or created."""
    ref = entity.get("customer")
    if isinstance(ref, dict) and (ref.get("id") is not None or ref.get("externalId") is not None):
        if ref.get("id") is not None:
            return {"id": ref["id"]}
        return {"external_id": str(ref["externalId"])}
    contact = {k: entity[k] for k in ("firstName", "lastName", "patronymic", "email") if entity.get(k)}
    if entity.get("phone"):
        contact["phones"] = [{"number": entity["phone"]}]
    if not contact:
        return None
    data = customers.parse_create(call.session, {**m.customer_in(contact, call.tz), "site": site.code},
                                  prefix="customer.")
    found = customer_q.find_by_contact(call.session, site_id=site.id, email=data.email, phone=data.phone)
    if found is None:
        found = customers.create(call.session, data=data, ctx=call.principal.ctx, now=call.now)
    return {"id": found.id}


def free_lines(call: Call, raw: dict[str, Any], site: Site) -> None:
    """Items whose offer is not in the catalogue but carry a name and price become free lines, as in RetailCRM."""
    items = raw.get("items") or []
    offers = {i["offer_id"] for i in items if isinstance(i, dict) and i.get("offer_id")}
    known = known_offers(call.session, site_id=site.id, offer_ids=offers)
    for item in items:
        if item.get("offer_id") and item["offer_id"] not in known and item.get("name") and "price" in item:
            item.pop("offer_id")


@router.get(V5 + "/orders")
async def orders_list(request: Request) -> Response:
    def run(call: Call) -> dict[str, Any]:
        limit, page = call.paging()
        f = call.filters()
        statuses = f.texts("extendedStatus")
        if statuses:
            groups = orders.status_groups(call.session)
            statuses = [c for c, g in groups.items() if c in statuses or g in statuses]
        filters = {"site_ids": site_filter(call, f.texts("sites")), "ids": f.integers("ids"),
                   "external_ids": f.texts("externalIds"), "status": statuses,
                   "customer_id": f.integer("customerId"), "number": f.text("number"),
                   "created_from": date_param(call, f, "createdAtFrom"),
                   "created_to": date_param(call, f, "createdAtTo")}
        if statuses == []:
            filters["ids"] = []
        return listing(call, "orders", order_q.count_orders, order_q.list_orders, orders_out,
                       limit=limit, page=page, filters=filters)

    return await handle(request, "orders:read", run)


@router.post(V5 + "/orders/create")
async def orders_create(request: Request) -> Response:
    def run(call: Call) -> dict[str, Any]:
        entity = call.entity("order")
        raw = parsed(m.order_in, entity, call.tz)
        site = site_for(call, call.param("site") or raw.get("site"))
        raw["site"] = site.code
        raw["customer"] = order_customer(call, entity, site)
        if raw["customer"] is None:
            raw.pop("customer")
        free_lines(call, raw, site)
        order = orders.create(call.session, data=orders.parse_create(raw), ctx=call.principal.ctx, now=call.now)
        return {"id": order.id, "order": orders_out(call, [order])[0]}

    return await handle(request, "orders:write", run, status=201)


@router.get(V5 + "/orders/history")
async def orders_history(request: Request) -> Response:
    return await handle(request, "orders:read", lambda call: history(call, "order"))


@router.get(V5 + "/orders/statuses")
async def orders_statuses(request: Request) -> Response:
    def run(call: Call) -> dict[str, Any]:
        ids = params.integers(call.query, "ids") or []
        external = params.texts(call.query, "externalIds") or []
        if not ids and not external:
            raise fail("Parameter 'ids' or 'externalIds' is missing")
        if len(ids) + len(external) > 500:
            raise fail(ids="at most 500 ids and externalIds together")
        rows = order_q.list_orders(call.session, ids=ids, limit=500) if ids else []
        if external:
            rows += order_q.list_orders(call.session, external_ids=external, limit=500)
        groups = orders.status_groups(call.session)
        seen: dict[int, Any] = {o.id: o for o in rows}
        return {"orders": [{k: v for k, v in {"id": o.id, "externalId": o.external_id, "status": o.status,
                                              "group": groups.get(o.status)}.items() if v is not None}
                           for o in seen.values()]}

    return await handle(request, "orders:read", run)


def find_order(call: Call, uid: str) -> Any:
    return find(call, uid, order_q.list_orders)


@router.get(V5 + "/orders/{uid}")
async def orders_get(uid: str, request: Request) -> Response:
    return await handle(request, "orders:read", lambda call: {"order": orders_out(call, [find_order(call, uid)])[0]})


@router.post(V5 + "/orders/{uid}/edit")
async def orders_edit(uid: str, request: Request) -> Response:
    def run(call: Call) -> dict[str, Any]:
        order = find_order(call, uid)
        entity = call.entity("order")
        raw = parsed(m.order_in, entity, call.tz)
        for key in ("external_id", "number", "site", "created_at"):
            raw.pop(key, None)
        site = call.session.get(Site, order.site_id)
        if "customer" in entity or any(k in entity for k in ("email", "phone")):
            customer = order_customer(call, entity, site)
            if customer is not None:
                raw["customer"] = customer
        free_lines(call, raw, site)
        orders.edit(call.session, order=order, data=orders.parse_edit(raw), ctx=call.principal.ctx, now=call.now)
        return {"id": order.id, "order": orders_out(call, [order])[0]}

    return await handle(request, "orders:write", run)


# --- history ----------------------------------------------------------------------------------------------


def history(call: Call, entity: str) -> dict[str, Any]:
    limit, page = call.paging()
    f = call.filters()
    rows, total = history_q.page(call.session, entity=entity, since_id=f.integer("sinceId") or 0,
                                 start=date_param(call, f, "startDate"), end=date_param(call, f, "endDate"),
                                 limit=limit, offset=(page - 1) * limit)
    codes = site_codes(call.session)
    ids = {r.entity_id for r in rows if not r.created}
    if entity == "customer":
        refs = {c.id: {"id": c.id, "externalId": c.external_id, "site": codes[c.site_id]}
                for c in customer_q.by_ids(call.session, ids).values()}
    else:
        refs = {o.id: {"id": o.id, "externalId": o.external_id, "number": o.number, "site": codes[o.site_id]}
                for o in order_q.list_orders(call.session, ids=sorted(ids), limit=len(ids) or 1)}
    out = []
    for r in rows:
        if r.created and entity == "customer":
            obj = m.customer_out(r.new_value, codes.get(r.site_id, ""), call.tz)
        elif r.created:
            obj = m.order_out(r.new_value, call.tz)
        else:
            obj = refs.get(r.entity_id, {"id": r.entity_id, "site": codes.get(r.site_id)})
        out.append(m.history_entry(r, {k: v for k, v in obj.items() if v is not None}, tz=call.tz,
                                   current_key=call.principal.key_id))
    return {"generatedAt": fmt_datetime(call.now, call.tz), "history": out,
            "pagination": pagination(limit, page, total)}


# --- reference --------------------------------------------------------------------------------------------


@router.get(V5 + "/reference/sites")
async def reference_sites(request: Request) -> Response:
    def run(call: Call) -> dict[str, Any]:
        sites = list_sites(call.session)
        return {"sites": {s.code: {k: v for k, v in {
            "id": s.id, "name": s.name, "url": s.url, "code": s.code, "defaultForCrm": False,
            "countryIso": s.default_region, "currency": s.currency, "ordering": n * 10 + 10, "isDemo": False,
        }.items() if v is not None} for n, s in enumerate(sites)}}

    return await handle(request, "reference:read", run)


@router.get(V5 + "/reference/statuses")
async def reference_statuses(request: Request) -> Response:
    def run(call: Call) -> dict[str, Any]:
        return {"statuses": {s.code: {"name": s.name_ru, "code": s.code, "active": s.active, "ordering": s.ordering,
                                      "group": s.group_code} for s in order_q.statuses(call.session)}}

    return await handle(request, "reference:read", run)


@router.get(V5 + "/reference/status-groups")
async def reference_status_groups(request: Request) -> Response:
    def run(call: Call) -> dict[str, Any]:
        members: dict[str, list[str]] = {}
        for s in order_q.statuses(call.session):
            members.setdefault(s.group_code, []).append(s.code)
        return {"statusGroups": {g.code: {
            "name": g.name_ru, "code": g.code, "active": True, "ordering": g.ordering,
            "process": g.code not in ("new", "complete", "cancel"), "statuses": members.get(g.code, []),
        } for g in order_q.status_groups(call.session)}}

    return await handle(request, "reference:read", run)



# --- the OpenAPI document of these routes ------------------------------------------------------------------


@functools.cache
def openapi_document() -> dict[str, Any]:
    """src/retento/compat/openapi.yaml: every route above in RetailCRM's documented shapes."""
    return yaml.safe_load(resources.files("retento.compat").joinpath("openapi.yaml").read_text(encoding="utf-8"))


@router.get(V5 + "/openapi.json")
async def openapi() -> Response:
    """Public, as /api/openapi.json is."""
    return JSONResponse(openapi_document())


# Registered last: any other /api/v5 path answers in RetailCRM's envelope, not Starlette's `{"detail": ...}`.
@router.api_route(V5 + "/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
@routing.fallback
async def unknown_method(path: str, request: Request) -> Response:
    """A known path asked with another HTTP method is a 405 (with `Allow`), as RetailCRM answers; anything else
    a 404."""
    allowed = routing.allowed_methods(request)
    if allowed:
        return RetailRoute.method_not_allowed(request, allowed)
    return envelope_error(404, "API method not found")
