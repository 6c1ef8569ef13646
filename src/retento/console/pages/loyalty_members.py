"""Loyalty members: the site's members (keyset pages), a member's account (balance, level, lots, upcoming
expiries, the ledger), manual credit and charge with a reason (marketers and admins), blocking, and joining a
customer from their profile. Every change goes through loyalty.service, recorded as the user's, once per
idempotency key (a key is put in each form when it is shown, so sending the form twice changes nothing)."""

from __future__ import annotations

import secrets
from collections import defaultdict
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from fastapi import Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from retento.console import web
from retento.console.pages.customers import as_user
from retento.console.web import Viewer, app_of, reading, render, signed_in
from retento.core.db.transactions import transaction
from retento.core.errors import DomainError, NotFound
from retento.customers import queries as customer_queries, service as customers
from retento.loyalty import service
from retento.loyalty.schemas import JoinIn, PointsIn
from retento.sites import service as sites

router = web.router()
PAGE = web.Page(router)  # reached from the Loyalty pages and customer profiles
PAGE_SIZE = 50
LEDGER_SIZE = 100
Text = Annotated[str, Form()]


@router.get("/loyalty/members")
def member_list(request: Request, viewer: Annotated[Viewer, Depends(signed_in)], site: str = "",
                status: Annotated[str, Query(pattern=r"^(|active|blocked|holdout)$")] = "",
                after: Annotated[int, Query(ge=0)] = 0) -> Response:
    app = app_of(request)
    with transaction(reading(request)) as s:
        visible = sites.list_sites(s)
        chosen = next((x for x in visible if x.code == site), visible[0] if visible else None)
        try:
            program = service.get_program(s, chosen.code) if chosen else None
        except NotFound:
            program = None
        rows = (service.list_accounts(s, program_id=program.id, after_id=after, limit=PAGE_SIZE + 1,
                                      status=status or None) if program else [])
        more = len(rows) > PAGE_SIZE
        rows = rows[:PAGE_SIZE]
        balances = service.balances(s, [a.id for a in rows], now=app.clock.now())
        people = customer_queries.by_ids(s, {a.customer_id for a in rows})
    return render(request, "loyalty/members.html", sites=visible, site=chosen, program=program, accounts=rows,
                  balances=balances, people=people, status_filter=status, after=after,
                  next_after=rows[-1].id if more else None)


def _account(s: Any, account_id: int, now: Any, after: int) -> dict[str, Any]:
    account = service.get_account(s, account_id)  # another site's account is not found
    out = service.account_out(s, account, now=now, with_lots=True)
    program = service.get_program(s, out.site)
    settings = service.settings_of(program)
    burning: dict[date, Decimal] = defaultdict(Decimal)
    for lot in out.lots or []:
        if lot.left > 0 and lot.expires_at is not None and lot.expires_at > now:
            burning[lot.expires_at.date()] += lot.left
    return {"account": out, "program": program, "customer": customers.get(s, account.customer_id),
            "level": next((lv for lv in settings.levels if lv.code == out.level), None),
            "lots": sorted(out.lots or [], key=lambda lot: lot.id, reverse=True),
            "burning": sorted(burning.items())[:12], "now": now,
            "operations": service.list_operations(s, account_id=account_id, after_id=after, limit=LEDGER_SIZE + 1),
            "after": after}


def _render_account(request: Request, account_id: int, *, after: int = 0, saved: str = "", status: int = 200,
                    errors: dict[str, str] | None = None, form: dict[str, str] | None = None) -> Response:
    app = app_of(request)
    with transaction(reading(request)) as s:
        context = _account(s, account_id, app.clock.now(), after)
    ops = context.pop("operations")
    return render(request, "loyalty/account.html", status=status, operations=ops[:LEDGER_SIZE],
                  next_after=ops[LEDGER_SIZE - 1].id if len(ops) > LEDGER_SIZE else None, saved=saved,
                  errors=errors or {}, form=form or {}, key=secrets.token_urlsafe(16), **context)


@router.get("/loyalty/accounts/{account_id:int}")
def account_page(request: Request, viewer: Annotated[Viewer, Depends(signed_in)], account_id: int,
                 after: Annotated[int, Query(ge=0)] = 0, saved: str = "") -> Response:
    return _render_account(request, account_id, after=after, saved=saved)


def _points(operation: str, amount: str, reason: str, order_id: str, expires_in_days: str,
            key: str) -> PointsIn:
    """The form as the API's body (the same validation and field names)."""
    try:
        value = Decimal(amount.replace(",", ".").replace(" ", "")) if amount.strip() else None
    except InvalidOperation:
        raise DomainError.one("amount", "a number of points") from None
    body: dict[str, Any] = {"amount": value, "reason": reason, "idempotency_key": key or None}
    if operation == "charge" and order_id.strip():
        body["order_id"] = order_id.strip()
    if operation == "credit" and expires_in_days.strip():
        body["expires_in_days"] = expires_in_days.strip()
    try:
        return PointsIn.model_validate(body)
    except ValidationError as exc:
        raise DomainError.from_pydantic(exc) from None


@router.post("/loyalty/accounts/{account_id:int}/credit")
def credit(request: Request, viewer: Annotated[Viewer, Depends(web.may_change("marketing"))], account_id: int,
           amount: Text = "", reason: Text = "", expires_in_days: Text = "", idempotency_key: Text = "") -> Response:
    return _operate(request, viewer, account_id, "credit", amount, reason, "", expires_in_days, idempotency_key)


@router.post("/loyalty/accounts/{account_id:int}/charge")
def charge(request: Request, viewer: Annotated[Viewer, Depends(web.may_change("marketing"))], account_id: int,
           amount: Text = "", reason: Text = "", order_id: Text = "", idempotency_key: Text = "") -> Response:
    return _operate(request, viewer, account_id, "charge", amount, reason, order_id, "", idempotency_key)


def _operate(request: Request, viewer: Viewer, account_id: int, operation: str, amount: str, reason: str,
             order_id: str, expires_in_days: str, key: str) -> Response:
    app = app_of(request)
    try:
        data = _points(operation, amount, reason, order_id, expires_in_days, key)
        if not data.idempotency_key:
            raise DomainError.one("idempotency_key", "reload the page: the form has no key")
        with transaction(app.sessions) as s:
            service.get_account(s, account_id)  # another site's account: not found
            common: dict[str, Any] = {"account_id": account_id, "amount": Decimal(data.amount), "reason": data.reason,
                                      "idempotency_key": f"console:{viewer.user_id}:{data.idempotency_key}",
                                      "ctx": as_user(viewer), "now": app.clock.now()}
            if operation == "credit":
                service.credit(s, expires_in_days=data.expires_in_days, **common)
            else:
                service.charge(s, order_id=data.order_id, **common)
    except DomainError as exc:
        if web.field_errors(exc).keys() == {"account_id"} and exc.status == 404:
            raise
        form = {"operation": operation, "amount": amount, "reason": reason, "order_id": order_id,
                "expires_in_days": expires_in_days}
        return _render_account(request, account_id, status=exc.status, errors=web.field_errors(exc), form=form)
    return RedirectResponse(f"/loyalty/accounts/{account_id}?saved={operation}", status_code=303)


@router.post("/loyalty/accounts/{account_id:int}/status")
def account_status(request: Request, viewer: Annotated[Viewer, Depends(web.may_change("marketing"))],
                   account_id: int, status: Text = "") -> Response:
    if status not in ("active", "blocked"):
        return _render_account(request, account_id, status=400, errors={"status": "active or blocked"})
    app = app_of(request)
    try:
        with transaction(app.sessions) as s:
            service.set_status(s, account=service.get_account(s, account_id), status=status, now=app.clock.now())
    except DomainError as exc:
        if exc.status == 404:
            raise
        return _render_account(request, account_id, status=exc.status, errors=web.field_errors(exc))
    return RedirectResponse(f"/loyalty/accounts/{account_id}?saved=status", status_code=303)


@router.post("/loyalty/accounts")
def join(request: Request, viewer: Annotated[Viewer, Depends(web.may_change("marketing"))],
         customer_id: Annotated[int, Form(gt=0)] = 1) -> Response:
    """Join a customer (from their profile) to their site's program; a member already: to the account."""
    app = app_of(request)
    with transaction(app.sessions) as s:
        customer = customers.get(s, customer_id)
        data = JoinIn(site=sites.site_code(s, customer.site_id), customer_id=customer_id)
        account, _ = service.join(s, data=data, ctx=as_user(viewer), now=app.clock.now())
        account_id = account.id
    return RedirectResponse(f"/loyalty/accounts/{account_id}?saved=joined", status_code=303)
