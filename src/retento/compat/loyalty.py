"""RetailCRM API v5 loyalty methods: a translation over retento.loyalty (the same service as /api/v1/loyalty).
A program is RetailCRM's `loyalty`, a member's account its `loyaltyAccount`, a ledger operation its bonus
operation. Writes take an `Idempotency-Key` header (or `idempotencyKey` form field): the same key is the same
operation; without one, each call is a new operation, as in RetailCRM."""

from __future__ import annotations

import re
import uuid
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import func, or_, select

from retento.catalog.models import Product
from retento.compat import mapping as m, params
from retento.compat.api import customers_out, date_param, parsed, site_for
from retento.compat.dates import parse_datetime
from retento.compat.envelope import (
    ENTITY_ERROR,
    INPUT_ERROR,
    Call,
    RetailRoute,
    V5Error,
    fail,
    handle,
    pagination,
)
from retento.contacts import normalize_phone
from retento.core import parsing
from retento.core.rest.pagination import decode_cursor, encode_cursor
from retento.customers import queries as customer_q
from retento.customers.models import Customer
from retento.loyalty import ledger, rules, service
from retento.loyalty.ledger import ZERO
from retento.loyalty.models import Account, Lot, Operation, Program
from retento.loyalty.schemas import JoinIn
from retento.orders import queries as order_q
from retento.orders.models import Order
from retento.orders.snapshots import snapshots as order_snapshots
from retento.sites.models import Site
from retento.sites.service import list_sites

router = APIRouter(route_class=RetailRoute, include_in_schema=False)
V5 = "/api/v5"
READ, WRITE = "loyalty:read", "loyalty:write"
UNSUPPORTED_FILTERS = ("minAmount", "maxAmount", "minOrdersSum", "maxOrdersSum", "burnDateFrom", "burnDateTo",
                       "customer", "customFields")
DETAILS = ("waiting_activation", "burn_soon")
POINTS = re.compile(r"[0-9]{1,14}(\.[0-9]{1,2})?")


# --- reading requests -------------------------------------------------------------------------------------


def amount_param(call: Call, name: str, *, required: bool = True, zero: bool = False) -> Decimal:
    raw = call.param(name)
    if raw is None:
        if required:
            raise fail(f"Parameter '{name}' is missing")
        return ZERO
    if not POINTS.fullmatch(raw.strip()):
        raise fail(ENTITY_ERROR, **{name: "must be a positive number of points, to the cent (as 120 or 99.5)"})
    value = Decimal(raw.strip())
    if value == 0 and not zero:
        raise fail(ENTITY_ERROR, **{name: "must be a positive number of points, to the cent (as 120 or 99.5)"})
    return value


def comment(call: Call, default: str) -> str:
    text = params.text(call.plain, "comment", max_length=500)
    return text or default


def idempotency_key(call: Call, request: Request, kind: str) -> str:
    """The caller's key (header or form field), or a new one: each call without a key is its own operation."""
    key = request.headers.get("idempotency-key") or call.param("idempotencyKey")
    if key is not None and not 1 <= len(key) <= 150:
        raise fail(idempotencyKey="from 1 to 150 characters")
    return f"v5:{kind}:{key}" if key else f"v5:{kind}:{uuid.uuid4()}"


def int_uid(uid: str) -> int:
    number = parsing.integer(uid)
    if number is None:
        raise fail("Not found", 404)
    return number


def get_account(call: Call, uid: str) -> Account:
    account = call.session.get(Account, int_uid(uid))  # the session sees the key's sites only
    if account is None:
        raise fail("Not found", 404)
    return account


def get_program(call: Call, uid: str) -> Program:
    program = call.session.get(Program, int_uid(uid))
    if program is None:
        raise fail("Not found", 404)
    return program


def program_of_site(call: Call, site: Site) -> Program:
    program = call.session.scalar(select(Program).where(Program.site_id == site.id))
    if program is None:
        raise fail(ENTITY_ERROR, site=f"site {site.code!r} has no loyalty program")
    return program


def customer_ref(call: Call, ref: Any, site: Site, field: str) -> int | None:
    """`{"id": N}` or `{"externalId": "x"}` of a customer of the site -> its id."""
    if ref is None:
        return None
    if not isinstance(ref, dict) or (ref.get("id") is None and ref.get("externalId") is None):
        raise fail(ENTITY_ERROR, **{field: "give the customer's id or externalId"})
    if ref.get("id") is not None:
        number = parsing.integer(str(ref["id"]))
        rows = customer_q.list_customers(call.session, ids=[number], site_ids=[site.id], limit=1) if number else []
    else:
        rows = customer_q.list_customers(call.session, external_ids=[str(ref["externalId"])], site_ids=[site.id],
                                         limit=1)
    if not rows:
        raise fail(ENTITY_ERROR, **{field: f"customer not found on site {site.code!r}"})
    return rows[0].id


def find_order(call: Call, entity: dict[str, Any]) -> Order:
    """The order named by `order.id` or `order.externalId` (with `site` when several sites have it)."""
    if entity.get("id") is not None:
        number = parsing.integer(str(entity["id"]))
        rows = order_q.list_orders(call.session, ids=[number], limit=1) if number is not None else []
    elif entity.get("externalId") is not None:
        site = site_for(call, call.param("site")) if call.param("site") else None
        rows = order_q.list_orders(call.session, external_ids=[str(entity["externalId"])], limit=2,
                                   site_ids=[site.id] if site else None)
        if len(rows) > 1:
            raise fail("Parameter 'site' is missing", site="several sites have this externalId; pass the site")
    else:
        raise fail(ENTITY_ERROR, order="give the order's id or externalId")
    if not rows:
        raise fail("Not found", 404)
    return rows[0]


# --- writing answers --------------------------------------------------------------------------------------


def accounts_out(call: Call, accounts: list[Account]) -> list[dict[str, Any]]:
    programs = {p.id: p for p in call.session.scalars(select(Program).where(
        Program.id.in_({a.program_id for a in accounts})))}
    people = {c["id"]: c for c in customers_out(call, list(customer_q.by_ids(
        call.session, {a.customer_id for a in accounts}).values()))}
    out = []
    for account in accounts:
        program = programs[account.program_id]
        view = service.account_out(call.session, account, now=call.now)
        out.append(m.account_out(view, program, service.settings_of(program).levels, people[account.customer_id],
                                 call.tz))
    return out


def operations_out(call: Call, ops: list[Operation], *, with_account: bool = False) -> list[dict[str, Any]]:
    ids = [o.id for o in ops]
    lots = {lot.operation_id: lot for lot in call.session.scalars(select(Lot).where(Lot.operation_id.in_(ids)))}
    orders = {o.id: o for o in order_q.list_orders(call.session, ids=sorted({o.order_id for o in ops if o.order_id}),
                                                   limit=len(ops) or 1)}
    programs = dict(call.session.execute(select(Account.id, Account.program_id).where(
        Account.id.in_({o.account_id for o in ops}))).tuples().all()) if with_account else {}
    return [m.operation_out(o, lots.get(o.id), orders.get(o.order_id or 0), call.tz, with_account=with_account,
                            program_id=programs.get(o.account_id)) for o in ops]


def order_calculation(call: Call, program: Program, account: Account | None, order: dict[str, Any],
                      charge: Decimal, customer: dict[str, Any] | None,
                      paid: Decimal = ZERO) -> tuple[dict[str, Any], dict[str, Any]]:
    """What the order earns when `charge` points pay for it, and the most points may pay (`paid`: points paying
    for it already, spent from the balance): (RetailCRM's order, its calculation)."""
    settings = service.settings_of(program)
    order_sum = service.rules_order_sum(order)
    balance, credit, most, kind = ZERO, ZERO, ZERO, "none"
    if account is not None and account.status == service.ACTIVE and program.active:
        kind = "bonus_percent"
        balance = ledger.balance(service.lot_states(call.session, account.id), call.now)
        most = ZERO if order_sum < settings.min_order_sum else min(
            balance + paid, ledger.points(order_sum * settings.max_redeem_share))
        level = next((lv for lv in settings.levels if lv.code == account.level), None)
        birthday = call.session.scalar(select(Customer.birthday).where(Customer.id == account.customer_id))
        credit = rules.earned(settings, order=order, level=level, birthday=birthday, redeemed=charge,
                              at=call.now).points
    lines = rules.paid_lines(order, ZERO)
    gross = sum((paid for _, _, paid in lines), ZERO)
    items, given, taken = [], ZERO, ZERO
    for n, (item, (_, quantity, paid)) in enumerate(zip(order.get("items") or [], lines, strict=True)):
        last = n == len(lines) - 1
        share = paid / gross if gross > 0 else ZERO
        line_credit = credit - given if last else ledger.points(credit * share)
        line_charge = charge - taken if last else ledger.points(charge * share)
        given, taken = given + line_credit, taken + line_charge
        price = Decimal(str(item["price"]))
        unit_discount = Decimal(str(item.get("discount") or 0)) / quantity if quantity else ZERO
        items.append({"bonusesChargeTotal": m.number(line_charge), "bonusesCreditTotal": m.number(line_credit),
                      "initialPrice": m.number(price), "discountTotal": m.number(unit_discount),
                      "prices": [{"price": m.number(price - unit_discount), "quantity": m.number(quantity)}],
                      "quantity": m.number(quantity)})
    delivery = Decimal(str(order.get("delivery_cost") or 0))
    out: dict[str, Any] = {
        "bonusesCreditTotal": m.number(credit), "bonusesChargeTotal": m.number(charge), "privilegeType": kind,
        "totalSumm": m.number(order_sum - charge + delivery), "site": order["site"],
        "customer": {k: v for k, v in {"id": (customer or {}).get("id"), "externalId": (customer or {}).get(
            "externalId"), "personalDiscount": 0}.items() if v is not None},
        "delivery": {"cost": m.number(delivery)}, "items": items,
    }
    if account is not None:
        out["loyaltyAccount"] = {"id": account.id, "amount": m.number(balance)}
    calculation = {"privilegeType": kind, "discount": m.number(charge), "creditBonuses": m.number(credit),
                   "maxChargeBonuses": m.number(most), "maximum": True}
    return out, calculation


# --- loyalties --------------------------------------------------------------------------------------------


@router.get(V5 + "/loyalty/loyalties")
async def loyalties(request: Request) -> Response:
    def run(call: Call) -> dict[str, Any]:
        limit, page = call.paging()
        f = call.filters()
        q = select(Program)
        if (ids := f.integers("ids")) is not None:
            q = q.where(Program.id.in_(ids))
        if (codes := f.texts("sites")) is not None:
            q = q.where(Program.site_id.in_([s.id for s in list_sites(call.session) if s.code in codes]))
        if (active := f.text("active")) is not None:
            if active not in ("0", "1", "true", "false"):
                raise fail(**{"filter[active]": "must be 0, 1, true or false"})
            q = q.where(Program.active.is_(active in ("1", "true")))
        total = call.session.scalar(select(func.count()).select_from(q.subquery())) or 0
        rows = call.session.scalars(q.order_by(Program.id).offset((page - 1) * limit).limit(limit))
        return {"pagination": pagination(limit, page, total), "loyalties": [m.loyalty_out(p, call.tz) for p in rows]}

    return await handle(request, READ, run)


@router.get(V5 + "/loyalty/loyalties/{uid}")
async def loyalty(uid: str, request: Request) -> Response:
    return await handle(request, READ, lambda call: {"loyalty": m.loyalty_out(get_program(call, uid), call.tz),
                                                     "requiredFields": []})


# --- accounts ---------------------------------------------------------------------------------------------


def refuse_custom_fields(entity: dict[str, Any]) -> None:
    if entity.get("customFields"):
        raise fail(ENTITY_ERROR, **{"loyaltyAccount.customFields": "custom fields of loyalty accounts are not "
                                                                   "supported by Retento"})


@router.post(V5 + "/loyalty/account/create")
async def account_create(request: Request) -> Response:
    def run(call: Call) -> dict[str, Any]:
        entity = call.entity("loyaltyAccount")
        refuse_custom_fields(entity)
        site = site_for(call, call.param("site"))
        customer_id = customer_ref(call, entity.get("customer"), site, "loyaltyAccount.customer")
        phone, card = entity.get("phoneNumber"), entity.get("cardNumber")
        warnings = []
        if customer_id is not None and phone:
            warnings.append("phoneNumber: the member's phone is its customer's; the given one is not stored")
        if customer_id is None and not phone:
            raise fail(ENTITY_ERROR, **{"loyaltyAccount.customer": "give the customer or a phoneNumber"})
        data = parsed(lambda: JoinIn(site=site.code, customer_id=customer_id,
                                     phone=None if customer_id else str(phone),
                                     card_number=str(card) if card not in (None, "") else None))
        account, created = service.join(call.session, data=data, ctx=call.principal.ctx, now=call.now)
        if not created:
            warnings.append("the customer is already a member: this is the existing account")
        return {"site": site.code, "loyaltyAccount": accounts_out(call, [account])[0], "warnings": warnings}

    return await handle(request, WRITE, run, status=201)


@router.get(V5 + "/loyalty/account/{uid}")
async def account_get(uid: str, request: Request) -> Response:
    return await handle(request, READ, lambda call: {"loyaltyAccount": accounts_out(call, [get_account(call, uid)])[0]})


@router.post(V5 + "/loyalty/account/{uid}/edit")
async def account_edit(uid: str, request: Request) -> Response:
    def run(call: Call) -> dict[str, Any]:
        account = get_account(call, uid)
        entity = call.entity("loyaltyAccount")
        refuse_custom_fields(entity)
        if entity.get("phoneNumber"):
            raise fail(ENTITY_ERROR, **{"loyaltyAccount.phoneNumber": "the member's phone is its customer's: "
                                                                      "change it with customers/{externalId}/edit"})
        card = entity.get("cardNumber")
        if card not in (None, ""):
            if len(str(card)) > 64:
                raise fail(ENTITY_ERROR, **{"loyaltyAccount.cardNumber": "at most 64 characters"})
            service.edit_account(call.session, account=account, card_number=str(card).strip(), now=call.now)
        return {"loyaltyAccount": accounts_out(call, [account])[0]}

    return await handle(request, WRITE, run)


@router.post(V5 + "/loyalty/account/{uid}/activate")
async def account_activate(uid: str, request: Request) -> Response:
    def run(call: Call) -> dict[str, Any]:
        account = get_account(call, uid)
        service.set_status(call.session, account=account, status=service.ACTIVE, now=call.now)
        return {"loyaltyAccount": accounts_out(call, [account])[0]}

    return await handle(request, WRITE, run)


@router.get(V5 + "/loyalty/accounts")
async def accounts_list(request: Request) -> Response:
    def run(call: Call) -> dict[str, Any]:
        limit, page = call.paging()
        f = call.filters()
        for name in UNSUPPORTED_FILTERS:
            if name in f.values:
                raise fail(**{f"filter[{name}]": "this filter is not supported by Retento"})
        q = select(Account)
        ids = [*(f.integers("ids") or []), *([n] if (n := f.integer("id")) is not None else [])]
        if ids or "ids" in f.values or "id" in f.values:
            q = q.where(Account.id.in_(ids))
        if (status := f.text("status")) is not None:
            if status not in ("activated", "deactivated", "not_confirmed"):
                raise fail(**{"filter[status]": "must be one of activated, deactivated, not_confirmed"})
            q = q.where(Account.status.in_([k for k, v in m.STATUSES.items() if v == status]))
        if (customer_id := f.integer("customerId")) is not None:
            q = q.where(Account.customer_id == customer_id)
        if (external := f.text("customerExternalId")) is not None:
            q = q.where(Account.customer_id.in_(select(Customer.id).where(Customer.external_id == external)))
        if (phone := f.text("phoneNumber")) is not None:
            numbers = set()
            for region in {s.default_region for s in list_sites(call.session)}:
                try:
                    numbers.add(normalize_phone(phone, region))
                except ValueError:
                    pass
            q = q.where(Account.customer_id.in_(select(Customer.id).where(Customer.phone.in_(numbers))))
        if (card := f.text("cardNumber")) is not None:
            q = q.where(Account.card_number == card)
        if (programs := f.integers("loyalties")) is not None:
            q = q.where(Account.program_id.in_(programs))
        if (codes := f.texts("sites")) is not None:
            q = q.where(Account.site_id.in_([s.id for s in list_sites(call.session) if s.code in codes]))
        if (start := date_param(call, f, "createdAtFrom")) is not None:
            q = q.where(Account.joined_at >= start)
        if (end := date_param(call, f, "createdAtTo")) is not None:
            q = q.where(Account.joined_at <= end)
        if (level := f.integer("level", lo=1)) is not None:
            pairs = [(p.id, lv[level - 1].code) for p in call.session.scalars(select(Program))
                     if len(lv := service.settings_of(p).levels) >= level]
            q = q.where(or_(*[(Account.program_id == p) & (Account.level == c) for p, c in pairs]) if pairs
                        else Account.id.in_([]))
        total = call.session.scalar(select(func.count()).select_from(q.subquery())) or 0
        rows = list(call.session.scalars(q.order_by(Account.id.desc()).offset((page - 1) * limit).limit(limit)))
        return {"pagination": pagination(limit, page, total), "loyaltyAccounts": accounts_out(call, rows)}

    return await handle(request, READ, run)


# --- bonuses ----------------------------------------------------------------------------------------------


@router.post(V5 + "/loyalty/account/{uid}/bonus/credit")
async def bonus_credit(uid: str, request: Request) -> Response:
    def run(call: Call) -> dict[str, Any]:
        account = get_account(call, uid)
        amount = amount_param(call, "amount")
        dates = {}
        for name in ("activationDate", "expireDate"):
            dates[name] = parsed(lambda n=name: _date(call, n))
        op = service.credit(call.session, account_id=account.id, amount=amount,
                            reason=comment(call, "credited through API v5"),
                            idempotency_key=idempotency_key(call, request, "credit"), ctx=call.principal.ctx,
                            now=call.now, active_from=dates["activationDate"], expires_at=dates["expireDate"])
        lot = call.session.scalar(select(Lot).where(Lot.operation_id == op.id))
        assert lot is not None
        bonus = {"amount": m.number(lot.amount), "activationDate": m.local_date(lot.active_from, call.tz),
                 "expireDate": m.local_date(lot.expires_at, call.tz)}
        return {"loyaltyBonus": {k: v for k, v in bonus.items() if v is not None}}

    return await handle(request, WRITE, run)


def _date(call: Call, name: str) -> Any:
    try:
        return parse_datetime(call.param(name), call.tz)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None


@router.post(V5 + "/loyalty/account/{uid}/bonus/charge")
async def bonus_charge(uid: str, request: Request) -> Response:
    def run(call: Call) -> dict[str, Any]:
        account = get_account(call, uid)
        service.charge(call.session, account_id=account.id, amount=amount_param(call, "amount"),
                       reason=comment(call, "charged through API v5"),
                       idempotency_key=idempotency_key(call, request, "charge"), ctx=call.principal.ctx,
                       now=call.now)
        return {}

    return await handle(request, WRITE, run)


@router.get(V5 + "/loyalty/account/{uid}/bonus/operations")
async def account_operations(uid: str, request: Request) -> Response:
    def run(call: Call) -> dict[str, Any]:
        account = get_account(call, uid)
        limit, page = call.paging()
        f = call.filters()
        q = select(Operation).where(Operation.account_id == account.id)
        if (start := date_param(call, f, "createdAtFrom")) is not None:
            q = q.where(Operation.created_at >= start)
        if (end := date_param(call, f, "createdAtTo")) is not None:
            q = q.where(Operation.created_at <= end)
        total = call.session.scalar(select(func.count()).select_from(q.subquery())) or 0
        rows = list(call.session.scalars(q.order_by(Operation.id.desc()).offset((page - 1) * limit).limit(limit)))
        return {"pagination": pagination(limit, page, total), "bonusOperations": operations_out(call, rows)}

    return await handle(request, READ, run)


@router.get(V5 + "/loyalty/account/{uid}/bonus/{status}/details")
async def bonus_details(uid: str, status: str, request: Request) -> Response:
    """`waiting_activation`: points credited for orders still in their returns window, by the day they become
    usable; `burn_soon`: usable points by the day they burn (up to `filter[date]`)."""
    def run(call: Call) -> dict[str, Any]:
        account = get_account(call, uid)
        if status not in DETAILS:
            raise V5Error(400, INPUT_ERROR, {"status": f"must be one of {', '.join(DETAILS)}"})
        limit, page = call.paging()
        until = date_param(call, call.filters(), "date")
        lots = service.lot_states(call.session, account.id)
        if status == "waiting_activation":
            rows = [(lot.active_from, lot.left) for lot in lots if lot.pending(call.now) and lot.left > 0]
        else:
            rows = [(lot.expires_at, lot.left) for lot in lots
                    if lot.live(call.now) and lot.left > 0 and lot.expires_at is not None]
        rows = sorted((at, left) for at, left in rows if until is None or at <= until)
        part = rows[(page - 1) * limit: page * limit]
        return {"pagination": pagination(limit, page, len(rows)),
                "statistic": {"totalAmount": m.number(sum((left for _, left in rows), ZERO))},
                "bonuses": [{"date": m.fmt_datetime(at, call.tz), "amount": m.number(left)} for at, left in part]}

    return await handle(request, READ, run)


@router.get(V5 + "/loyalty/bonus/operations")
async def bonus_operations(request: Request) -> Response:
    """Every operation of the programs the key sees, oldest first, in cursor pages."""
    def run(call: Call) -> dict[str, Any]:
        limit = params.integer(call.query, "limit", lo=1, hi=1000) or 20
        after = decode_cursor(params.text(call.query, "cursor", max_length=200))
        q = select(Operation).where(Operation.id > after)
        if (programs := call.filters().integers("loyalties")) is not None:
            q = q.where(Operation.account_id.in_(select(Account.id).where(Account.program_id.in_(programs))))
        rows = list(call.session.scalars(q.order_by(Operation.id).limit(limit + 1)))
        more = len(rows) > limit
        rows = rows[:limit]
        return {"pagination": {"nextCursor": encode_cursor(rows[-1].id)} if more else {},
                "bonusOperations": operations_out(call, rows, with_account=True)}

    return await handle(request, READ, run)


# --- orders -----------------------------------------------------------------------------------------------


@router.post(V5 + "/loyalty/calculate")
async def calculate(request: Request) -> Response:
    """What an order (not stored) would earn and may pay in points, for its customer's account."""
    def run(call: Call) -> dict[str, Any]:
        entity = call.entity("order")
        raw = parsed(m.order_in, entity, call.tz)
        site = site_for(call, call.param("site") or raw.get("site"))
        program = program_of_site(call, site)
        customer_id = customer_ref(call, entity.get("customer"), site, "order.customer")
        account = service.find_account(call.session, program_id=program.id, customer_id=customer_id) \
            if customer_id is not None else None
        offers = {i["offer_id"] for i in raw.get("items", []) if i.get("offer_id")}
        categories = dict(call.session.execute(select(Product.offer_id, Product.category).where(
            Product.site_id == site.id, Product.offer_id.in_(sorted(offers)))).tuples().all()) if offers else {}
        items = [{"price": parsed(lambda i=i, n=n: m.money(i.get("price", 0), f"items[{n}].initialPrice")),
                  "quantity": parsed(lambda i=i, n=n: m.money(i["quantity"], f"items[{n}].quantity")),
                  "discount": i.get("discount") or "0", "category": categories.get(i.get("offer_id"))}
                 for n, i in enumerate(raw.get("items", []))]
        order = {"site": site.code, "items": items, "discount_total": raw.get("discount_total") or 0,
                 "delivery_cost": (raw.get("delivery") or {}).get("cost") or 0}
        bonuses = amount_param(call, "bonuses", required=False, zero=True)
        out, calc = order_calculation(call, program, account, order, bonuses, _customer(call, customer_id))
        if bonuses > Decimal(str(calc["maxChargeBonuses"])):
            raise fail(ENTITY_ERROR, bonuses=f"at most {calc['maxChargeBonuses']} points can pay for this order")
        return {"order": out, "calculations": [calc]}

    return await handle(request, WRITE, run)


def _customer(call: Call, customer_id: int | None) -> dict[str, Any] | None:
    if customer_id is None:
        return None
    return customers_out(call, list(customer_q.by_ids(call.session, {customer_id}).values()))[0]


def member_order(call: Call) -> tuple[Order, Program, Account, dict[str, Any]]:
    order = find_order(call, call.entity("order"))
    site = call.session.get(Site, order.site_id)
    assert site is not None
    program = program_of_site(call, site)
    account = service.find_account(call.session, program_id=program.id, customer_id=order.customer_id) \
        if order.customer_id is not None else None
    if account is None:
        raise fail(ENTITY_ERROR, order="the order's customer has no loyalty account")
    return order, program, account, order_snapshots(call.session, [order.id])[order.id]


@router.post(V5 + "/orders/loyalty/apply")
async def order_apply(request: Request) -> Response:
    """Pay `bonuses` points in total for a stored order (the points already paying for it count): once per
    total, so repeating the call changes nothing."""
    def run(call: Call) -> dict[str, Any]:
        order, program, account, snap = member_order(call)
        target = amount_param(call, "bonuses")
        paid = service.paid_for_order(call.session, account.id, order.id)
        if target < paid:
            raise fail(ENTITY_ERROR, bonuses=f"{paid} points already pay for this order; cancel them with "
                                             "orders/loyalty/cancel-bonus-operations first")
        if target > paid:
            service.charge(call.session, account_id=account.id, amount=target - paid, reason="orders/loyalty/apply",
                           idempotency_key=f"v5:apply:{order.id}:{target}", ctx=call.principal.ctx, now=call.now,
                           order_id=order.id)
        out, _ = order_calculation(call, program, account, snap, target, _customer(call, account.customer_id),
                                   paid=target)
        return {"order": out}

    return await handle(request, WRITE, run)


@router.post(V5 + "/orders/loyalty/cancel-bonus-operations")
async def order_cancel_bonuses(request: Request) -> Response:
    """Give back the points paying for an order (the order then earns on its full sum when completed)."""
    def run(call: Call) -> dict[str, Any]:
        order, _, account, _ = member_order(call)
        service.refund_order(call.session, account_id=account.id, order_id=order.id, ctx=call.principal.ctx,
                             now=call.now)
        return {}

    return await handle(request, WRITE, run)
