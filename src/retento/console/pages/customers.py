"""Customers: the list (keyset pages, search, filters), a customer's profile (contacts, consent, tags, RFM,
orders, history with the source of each change; tags edited through the customers service, recorded as the
user's change; a duplicate merged into it, after a confirmation) and an order's page."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from retento.console import web
from retento.console.web import Viewer, app_of, reading, render, signed_in
from retento.contacts import normalize_email, normalize_phone
from retento.core import parsing
from retento.core.changes import ActorType, ChangeContext, Source
from retento.core.db.transactions import transaction
from retento.core.errors import DomainError
from retento.customers import merges, merging, queries as customer_queries, service as customers
from retento.customers.models import Customer
from retento.history import service as history
from retento.loyalty import service as loyalty
from retento.messaging import service as messaging
from retento.orders import queries as order_queries, service as orders
from retento.segments import analytics, service as segments
from retento.sites import service as sites
from retento.sites.models import Site

router = web.router()
PAGE = web.Page(router, nav="Customers", path="/customers", order=10)
PAGE_SIZE = 50
MESSAGES = 20  # the newest shown on the profile


def as_user(viewer: Viewer) -> ChangeContext:
    """Changes made in the console: source `user`, the signed-in user as the actor."""
    return ChangeContext(Source.USER, ActorType.USER, str(viewer.user_id))


@router.get("/customers")
def customer_list(request: Request, viewer: Annotated[Viewer, Depends(signed_in)],
                  q: Annotated[str, Query(max_length=255)] = "", site: str = "", tag: str = "",
                  after: Annotated[int, Query(ge=0)] = 0) -> Response:
    filters: dict[str, Any] = {"search": q or None, "tag": tag or None}
    with transaction(reading(request)) as s:
        visible = sites.list_sites(s)
        if site:
            filters["site_ids"] = [sites.get_site(s, site).id]
        rows = customer_queries.list_customers(s, after_id=after, limit=PAGE_SIZE + 1, **filters)
    codes = {x.id: x for x in visible}
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    context = {"customers": rows, "sites": codes, "q": q, "site": site, "tag": tag, "after": after,
               "next_after": rows[-1].id if more else None}
    if request.headers.get("HX-Request") and request.headers.get("HX-Target") == "results":
        return render(request, "customers/_results.html", **context)
    return render(request, "customers/list.html", **context)


@router.get("/customers/{customer_id}")
def profile(request: Request, viewer: Annotated[Viewer, Depends(signed_in)], customer_id: int,
            saved: bool = False, merged: Annotated[int | None, Query(ge=1, le=parsing.INT64_MAX)] = None) -> Response:
    with transaction(reading(request)) as s:
        if (kept := merges.merged_into(s, [customer_id]).get(customer_id)) is not None:
            # an old link to a merged duplicate: the customer it became
            return RedirectResponse(f"/customers/{kept}?merged={customer_id}", status_code=303)
        context = _profile(s, customer_id)
    return render(request, "customers/profile.html", saved=saved, merged=merged, **context)


def _profile(s: Any, customer_id: int) -> dict[str, Any]:
    customer = customers.get(s, customer_id)
    snap = customers.snapshot(s, customer)
    site = next(x for x in sites.list_sites(s) if x.id == customer.site_id)
    return {"customer": customer, "snap": snap, "site": site,
            "scores": analytics.customer_scores(s, customer_id=customer_id),
            "segments": segments.segments_of(s, customer_id=customer_id),
            "orders": order_queries.list_orders(s, customer_id=customer_id, limit=100),
            "history": history.since(s, entity="customer", entity_id=customer_id, limit=200),
            "statuses": {x.code: x for x in order_queries.statuses(s)},
            "loyalty": loyalty.account_of(s, site_id=customer.site_id, customer_id=customer_id),
            "has_program": any(p.site_id == customer.site_id for p in loyalty.list_programs(s)),
            "messages": messaging.messages_of(s, customer_id=customer_id, limit=MESSAGES + 1)}


@router.get("/customers/{customer_id}/messages")
def customer_messages(request: Request, viewer: Annotated[Viewer, Depends(signed_in)], customer_id: int,
                      before: Annotated[int | None, Query(ge=1, le=parsing.INT64_MAX)] = None) -> Response:
    """Every message of a customer, newest first, 50 a page by key."""
    with transaction(reading(request)) as s:
        customer = customers.get(s, customer_id)
        rows = messaging.messages_of(s, customer_id=customer_id, before_id=before, limit=PAGE_SIZE + 1)
    return render(request, "customers/messages.html", customer=customer, messages=rows, limit=PAGE_SIZE,
                  before=before)


@router.post("/customers/{customer_id}/tags")
def edit_tags(request: Request, viewer: Annotated[Viewer, Depends(web.may_change("operations"))],
              customer_id: int, tags: Annotated[str, Form()] = "") -> Response:
    """Replace the customer's tags (comma-separated) through the customers service."""
    wanted = sorted({t.strip() for t in tags.split(",") if t.strip()})
    app = app_of(request)
    try:
        with transaction(app.sessions) as s:
            data = customers.parse_edit(s, {"tags": wanted}, site_id=customers.get(s, customer_id).site_id)
            customers.edit(s, customer=customers.get(s, customer_id), data=data, ctx=as_user(viewer),
                           now=app.clock.now())
    except DomainError as exc:
        if web.field_errors(exc).keys() == {"id"}:  # the customer or order itself is not there (or not visible)
            raise
        with transaction(reading(request)) as s:
            context = _profile(s, customer_id)
        return render(request, "customers/profile.html", status=400, errors=web.field_errors(exc), **context)
    return RedirectResponse(f"/customers/{customer_id}?saved=1", status_code=303)


@router.post("/customers/{customer_id}/merge")
def merge_duplicate(request: Request, viewer: Annotated[Viewer, Depends(web.may_change("operations"))],
                    customer_id: int, duplicate: Annotated[str, Form(max_length=320)] = "",
                    duplicate_id: Annotated[int | None, Form(ge=1, le=parsing.INT64_MAX)] = None) -> Response:
    """Merge a duplicate into this customer. The duplicate is looked up by id, phone or email on this customer's
    site and shown for confirmation; the confirmed form (`duplicate_id`) merges through customers.merging."""
    app = app_of(request)
    try:
        if duplicate_id is None:
            with transaction(reading(request)) as s:
                customer = customers.get(s, customer_id)
                found = _duplicate(s, viewer, customer, duplicate)
                return render(request, "customers/merge.html", customer=customer, duplicate=found,
                              snap=customers.snapshot(s, found),
                              orders=order_queries.list_orders(s, customer_id=found.id, limit=100))
        with transaction(app.sessions) as s:
            merging.merge(s, site=sites.site_code(s, customers.get(s, customer_id).site_id), keep_id=customer_id,
                          merge_ids=[duplicate_id], ctx=as_user(viewer), now=app.clock.now())
    except DomainError as exc:
        if web.field_errors(exc).keys() == {"id"}:  # this customer is not there (or not visible)
            raise
        with transaction(reading(request)) as s:
            context = _profile(s, customer_id)
        return render(request, "customers/profile.html", status=400, merge_errors=web.field_errors(exc),
                      duplicate=duplicate, **context)
    return RedirectResponse(f"/customers/{customer_id}?merged={duplicate_id}", status_code=303)


def _duplicate(s: Any, viewer: Viewer, customer: Any, text: str) -> Any:
    """The customer of `customer`'s site that `text` names: an id, an email or a phone number."""
    text = text.strip()
    if not text:
        raise DomainError.one("duplicate", viewer.gettext("Give the duplicate's id, phone or email."))
    if (number := parsing.integer(text)) is not None and len(text) < 10:
        if (kept := merges.merged_into(s, [number]).get(number)) is not None:
            raise DomainError.one("duplicate", viewer.gettext("Customer %(id)s was merged into customer %(kept)s "
                                                              "before.") % {"id": number, "kept": kept})
        found = s.get(Customer, number)
    else:
        site = s.get(Site, customer.site_id)
        try:
            email = normalize_email(text) if "@" in text else None
            phone = None if email else normalize_phone(text, site.default_region)
        except ValueError:
            raise DomainError.one("duplicate", viewer.gettext("Not an id, a phone number or an email.")) from None
        found = customer_queries.find_by_contact(s, site_id=customer.site_id, email=email, phone=phone)
    if found is None or found.site_id != customer.site_id:
        raise DomainError.one("duplicate", viewer.gettext("No customer of this site has this id, phone or email."))
    if found.id == customer.id:
        raise DomainError.one("duplicate", viewer.gettext("That is this customer: pick another one."))
    return found


@router.get("/orders/{order_id}")
def order(request: Request, viewer: Annotated[Viewer, Depends(signed_in)], order_id: int,
          saved: bool = False) -> Response:
    with transaction(reading(request)) as s:
        context = _order(s, order_id)
    return render(request, "customers/order.html", saved=saved, **context)


def _order(s: Any, order_id: int) -> dict[str, Any]:
    row = orders.get(s, order_id)
    site = next(x for x in sites.list_sites(s) if x.id == row.site_id)
    return {"order": row, "snap": order_queries.snapshots(s, [row], {site.id: site.code})[0], "site": site,
            "statuses": {x.code: x for x in order_queries.statuses(s) if x.active or x.code == row.status},
            "history": history.since(s, entity="order", entity_id=order_id, limit=200)}


@router.post("/orders/{order_id}/status")
def order_status(request: Request, viewer: Annotated[Viewer, Depends(web.may_change("operations"))],
                 order_id: int, status: Annotated[str, Form()] = "") -> Response:
    """Move the order to another status through the orders service (history: source `user`, this user)."""
    app = app_of(request)
    try:
        with transaction(app.sessions) as s:
            orders.edit(s, order=orders.get(s, order_id), data=orders.parse_edit({"status": status}),
                        ctx=as_user(viewer), now=app.clock.now())
    except DomainError as exc:
        if web.field_errors(exc).keys() == {"id"}:  # the customer or order itself is not there (or not visible)
            raise
        with transaction(reading(request)) as s:
            context = _order(s, order_id)
        return render(request, "customers/order.html", status=400, errors=web.field_errors(exc), **context)
    return RedirectResponse(f"/orders/{order_id}?saved=1", status_code=303)

