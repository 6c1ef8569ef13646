"""/api/v1/loyalty: programs, accounts, credit, charge, operations."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from fastapi import Depends, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from retento.apikeys.api import require
from retento.apikeys.schemas import Principal
from retento.core.dates import AwareDatetime
from retento.core.db.transactions import transaction
from retento.core.errors import DomainError
from retento.core.rest.pagination import CursorParam, decode_cursor, page
from retento.core.rest.problems import json_response, router as v1_router
from retento.loyalty import codes, pnl, service
from retento.loyalty.schemas import (
    AccountEdit,
    AccountOut,
    JoinIn,
    OperationOut,
    OperationPage,
    PnlOut,
    PointsIn,
    ProgramIn,
    ProgramOut,
)
from retento.routes import app_of, reading

router = v1_router("loyalty")
Read = Annotated[Principal, Depends(require("loyalty:read"))]
Write = Annotated[Principal, Depends(require("loyalty:write"))]
Key = Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=150,
                                   description="The operation's idempotency key (or `idempotency_key` in the body)")]


@router.get("/loyalty/programs", response_model=list[ProgramOut], summary="Loyalty programs of the key's sites")
def list_programs(request: Request, _: Read) -> Any:
    with transaction(reading(request)) as s:
        return [service.program_out(s, p) for p in service.list_programs(s)]


@router.get("/loyalty/programs/{site}", response_model=ProgramOut, summary="A site's loyalty program")
def get_program(request: Request, _: Read, site: str) -> Any:
    with transaction(reading(request)) as s:
        return service.program_out(s, service.get_program(s, site))


@router.put("/loyalty/programs/{site}", response_model=ProgramOut,
            summary="Create a site's loyalty program or replace its settings")
def put_program(request: Request, _: Write, site: str, data: ProgramIn) -> Any:
    app = app_of(request)
    with transaction(app.sessions) as s:
        return service.program_out(s, service.set_program(s, site=site, data=data, now=app.clock.now()))


@router.get("/loyalty/programs/{site}/pnl", response_model=PnlOut, summary="The program's P&L over [from, to)")
def program_pnl(request: Request, _: Read, site: str,
                from_: Annotated[AwareDatetime | None, Query(alias="from", description="The launch by default")] = None,
                to: Annotated[AwareDatetime | None, Query(description="Now by default")] = None,
                window_days: Annotated[int, Query(ge=1, le=730)] = 90) -> Any:
    app = app_of(request)
    with transaction(reading(request)) as s:
        return pnl.report(s, site=site, start=from_, end=to, now=app.clock.now(), window_days=window_days)


@router.post("/loyalty/accounts", response_model=AccountOut, status_code=201,
             summary="Join a customer (by id or phone) to the site's program; 200 with the account if a member")
def join(request: Request, principal: Write, data: JoinIn) -> Response:
    app = app_of(request)
    with transaction(app.sessions) as s:
        now = app.clock.now()
        account, created = service.join(s, data=data, ctx=principal.ctx, now=now)
        out = service.account_out(s, account, now=now)
    return json_response(out.model_dump(mode="json"), 201 if created else 200)


@router.get("/loyalty/accounts/{account_id}", response_model=AccountOut,
            summary="A member's account: balance, pending points, level; with `lots=true` its lots")
def get_account(request: Request, _: Read, account_id: int, lots: bool = False) -> Any:
    app = app_of(request)
    with transaction(reading(request)) as s:
        return service.account_out(s, service.get_account(s, account_id), now=app.clock.now(), with_lots=lots)


@router.patch("/loyalty/accounts/{account_id}", response_model=AccountOut, summary="Block or unblock an account")
def edit_account(request: Request, _: Write, account_id: int, data: AccountEdit) -> Any:
    app = app_of(request)
    with transaction(app.sessions) as s:
        now = app.clock.now()
        account = service.edit_account(s, account=service.get_account(s, account_id), status=data.status,
                                       card_number=data.card_number, now=now)
        return service.account_out(s, account, now=now)


def _key(data: PointsIn, header: str | None) -> str:
    key = header or data.idempotency_key
    if not key:
        raise DomainError.one("idempotency_key", "give an Idempotency-Key header or idempotency_key: "
                                                 "a repeated request with it changes nothing")
    return f"key:{key}"


@router.post("/loyalty/accounts/{account_id}/credit", response_model=OperationOut, status_code=201,
             summary="Credit points with a reason (once per idempotency key)")
def credit(request: Request, principal: Write, account_id: int, data: PointsIn,
           idempotency_key: Key = None) -> Any:
    if data.order_id is not None:
        raise DomainError.one("order_id", "a credit is not tied to an order (orders earn points on completion)")
    app = app_of(request)
    with transaction(app.sessions) as s:  # another site's account: not found by the (scoped) lock, 404
        op = service.credit(s, account_id=account_id, amount=Decimal(data.amount), reason=data.reason,
                            idempotency_key=_key(data, idempotency_key), ctx=principal.ctx, now=app.clock.now(),
                            expires_in_days=data.expires_in_days)
        return OperationOut.model_validate(op)


@router.post("/loyalty/accounts/{account_id}/charge", response_model=OperationOut, status_code=201,
             summary="Charge points with a reason, optionally paying for an order (once per idempotency key)")
def charge(request: Request, principal: Write, account_id: int, data: PointsIn,
           idempotency_key: Key = None) -> Any:
    if data.expires_in_days is not None:
        raise DomainError.one("expires_in_days", "only a credit has an expiry")
    app = app_of(request)
    with transaction(app.sessions) as s:  # another site's account: 404, as for a credit
        op = service.charge(s, account_id=account_id, amount=Decimal(data.amount), reason=data.reason,
                            idempotency_key=_key(data, idempotency_key), ctx=principal.ctx, now=app.clock.now(),
                            order_id=data.order_id)
        return OperationOut.model_validate(op)


@router.get("/loyalty/accounts/{account_id}/operations", response_model=OperationPage,
            summary="A member's ledger, oldest first")
def operations(request: Request, _: Read, account_id: int, cursor: CursorParam = None,
               limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Any:
    with transaction(reading(request)) as s:
        rows = service.list_operations(s, account_id=account_id, after_id=decode_cursor(cursor), limit=limit + 1)
        items, nxt = page(rows, limit)
        return OperationPage(items=[OperationOut.model_validate(o) for o in items], next_cursor=nxt)


@router.post("/loyalty/programs/{site}/codes", summary="Convert promo codes and personal discounts (a CSV body) "
             "into points, each code once; the report names each skipped or invalid row by line and field",
             openapi_extra={"requestBody": {"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}}})
async def import_codes(request: Request, principal: Write, site: str,
                       dry_run: Annotated[bool, Query(description="Check every row, convert nothing")] = False) -> Any:
    raw = await request.body()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DomainError.one("body", "the CSV must be UTF-8") from None
    app = app_of(request)

    def run() -> dict[str, Any]:
        with transaction(app.sessions) as s:
            return codes.convert(s, site=site, text=text, ctx=principal.ctx, now=app.clock.now(),
                                 dry_run=dry_run).as_dict()

    return await run_in_threadpool(run)
