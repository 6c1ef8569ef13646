"""RetailCRM API v5 shapes <-> Retento's. Pure: no I/O, no clock; callers pass lookups and the time zone."""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation, localcontext
from typing import Any
from zoneinfo import ZoneInfo

from retento.compat.dates import fmt_date, fmt_datetime, parse_datetime, stored_time

SOURCES = {"api": "api", "user": "user", "trigger": "rule", "robot": "code", "import": "api", "system": "code",
           "demo": "code"}
MONEY = {"items_total", "discount_total", "delivery_cost", "total", "paid_amount"}


# --- values ----------------------------------------------------------------------------------------------


def created_at(entity: dict[str, Any], tz: ZoneInfo) -> datetime | None:
    """The entity's `createdAt` (`Y-m-d H:i:s` in the CRM's time zone); a ValueError names the field."""
    try:
        return parse_datetime(entity["createdAt"], tz)
    except ValueError as exc:
        raise ValueError(f"createdAt: {exc}") from None


def number(value: Any) -> int | float | None:
    """Money and quantities as RetailCRM writes them: JSON numbers."""
    if value is None:
        return None
    d = Decimal(str(value))
    return int(d) if d == d.to_integral_value() else float(d)


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


FIELD_NAMES = {"phone": "phones", "external_id": "externalId", "offer_id": "offer.externalId",
               "price": "initialPrice", "discount": "discountManualAmount", "discount_total": "discountManualAmount",
               "paid_amount": "payments", "manager_id": "managerId", "customer.external_id": "customer.externalId"}


def error_field(name: str) -> str:
    """A Retento field path (items.0.offer_id) -> RetailCRM's (items[0].offer.externalId)."""
    if name in FIELD_NAMES:
        return FIELD_NAMES[name]
    parts = []
    for part in name.split("."):
        if part.isdigit() and parts:
            parts[-1] += f"[{part}]"
        else:
            parts.append(FIELD_NAMES.get(part, camel(part)))
    return ".".join(parts)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _scalars(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        return None
    return {k: v for k, v in value.items() if isinstance(v, str | int | float | bool) or v is None}


# --- customers -------------------------------------------------------------------------------------------

CUSTOMER_FIELDS = {"externalId": "external_id", "firstName": "first_name", "lastName": "last_name",
                   "patronymic": "patronymic", "email": "email", "birthday": "birthday", "managerId": "manager_id",
                   "customFields": "custom_fields"}


def customer_in(entity: dict[str, Any], tz: ZoneInfo) -> dict[str, Any]:
    """A RetailCRM customer -> the fields of Retento's CustomerCreate / CustomerEdit that it sets."""
    raw: dict[str, Any] = {ours: entity[theirs] for theirs, ours in CUSTOMER_FIELDS.items() if theirs in entity}
    if "phones" in entity:
        phones = entity["phones"]
        first = phones[0] if isinstance(phones, list) and phones else None
        raw["phone"] = first.get("number") if isinstance(first, dict) else first
    if "tags" in entity and isinstance(entity["tags"], list):
        raw["tags"] = [t.get("name") if isinstance(t, dict) else t for t in entity["tags"]]
    if "subscribed" in entity:
        raw["consents"] = {"email": {"granted": bool(entity["subscribed"]), "source": "api"}}
    if "createdAt" in entity:
        raw["created_at"] = created_at(entity, tz)
    if "site" in entity:
        raw["site"] = entity["site"]
    return raw


def customer_out(snap: dict[str, Any], site: str, tz: ZoneInfo) -> dict[str, Any]:
    """A Retento customer snapshot (objects or their JSON form) -> RetailCRM's customer object."""
    consents = _dict(snap.get("consents"))
    email = _dict(consents.get("email"))
    out: dict[str, Any] = {
        "type": "customer", "id": snap["id"], "externalId": snap.get("external_id"), "isContact": False,
        "createdAt": fmt_datetime(snap.get("created_at"), tz), "managerId": snap.get("manager_id"),
        "vip": False, "bad": False, "site": site, "contragent": {"contragentType": "individual"},
        "tags": [{"name": t, "attached": False} for t in snap.get("tags") or []],
        "customFields": snap.get("custom_fields") or [], "personalDiscount": 0, "cumulativeDiscount": 0,
        "firstName": snap.get("first_name"), "lastName": snap.get("last_name"), "patronymic": snap.get("patronymic"),
        "email": snap.get("email"), "phones": [{"number": snap["phone"]}] if snap.get("phone") else [],
        "birthday": fmt_date(snap.get("birthday")),
    }
    if email:
        out["subscribed"] = bool(email.get("granted"))
        if not email.get("granted"):
            out["emailMarketingUnsubscribedAt"] = fmt_datetime(email.get("at"), tz)
    return {k: v for k, v in out.items() if v is not None}


# --- orders ----------------------------------------------------------------------------------------------


AMOUNT_MAX = Decimal(10) ** 14  # what Retento stores: NUMERIC(18, 2) with room for totals


def _money(value: Any, field: str, *, most: Decimal = AMOUNT_MAX) -> Decimal:
    """A number of the entity (a JSON number or a numeric string) whose size is below `most`."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{field}: not a number")
    try:
        d = Decimal(str(value).strip()) if len(str(value)) <= 64 else Decimal("NaN")
    except InvalidOperation:
        raise ValueError(f"{field}: not a number") from None
    if not d.is_finite():
        raise ValueError(f"{field}: not a number")
    if abs(d) >= most:
        raise ValueError(f"{field}: out of range (below {most:f} in absolute value)")
    return d


def money(value: Any, field: str) -> Decimal:
    return _money(value, field)


def item_in(item: Any, n: int) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise ValueError(f"items[{n}]: must be an object")
    offer = _dict(item.get("offer"))
    out: dict[str, Any] = {}
    if offer.get("externalId") is not None:
        out["offer_id"] = str(offer["externalId"])
    if item.get("productName") is not None:
        out["name"] = item["productName"]
    if item.get("initialPrice") is not None:
        out["price"] = item["initialPrice"]
    quantity = item.get("quantity", 1)
    out["quantity"] = quantity
    with localcontext(prec=60):  # bounded factors: exact, and the schema then refuses a discount too large
        discount = _discount(item, n, quantity)
        if discount:
            out["discount"] = str(discount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))
    return out


def _discount(item: dict[str, Any], n: int, quantity: Any) -> Decimal:
    discount = Decimal(0)
    if item.get("discountManualAmount") is not None:
        discount += _money(item["discountManualAmount"], f"items[{n}].discountManualAmount") * _money(
            quantity, f"items[{n}].quantity")
    if item.get("discountManualPercent") is not None and item.get("initialPrice") is not None:
        line = _money(item["initialPrice"], f"items[{n}].initialPrice") * _money(quantity, f"items[{n}].quantity")
        discount += line * _money(item["discountManualPercent"], f"items[{n}].discountManualPercent",
                                  most=Decimal(1000)) / 100
    return discount


ORDER_FIELDS = {"externalId": "external_id", "number": "number", "status": "status", "currency": "currency",
                "managerId": "manager_id", "customerComment": "customer_comment",
                "managerComment": "manager_comment", "customFields": "custom_fields",
                "discountManualAmount": "discount_total", "site": "site"}


def order_in(entity: dict[str, Any], tz: ZoneInfo) -> dict[str, Any]:
    """A RetailCRM order -> the fields of Retento's OrderCreate / OrderEdit it sets (customer handled apart)."""
    raw: dict[str, Any] = {ours: entity[theirs] for theirs, ours in ORDER_FIELDS.items() if theirs in entity}
    if "createdAt" in entity:
        raw["created_at"] = created_at(entity, tz)
    if "items" in entity:
        if not isinstance(entity["items"], list):
            raise ValueError("items: must be a list")
        raw["items"] = [item_in(item, n) for n, item in enumerate(entity["items"])]
    if isinstance(entity.get("delivery"), dict):
        d = entity["delivery"]
        delivery: dict[str, Any] = {}
        if "code" in d:
            delivery["type"] = d["code"]
        if "cost" in d:
            delivery["cost"] = d["cost"]
        if "date" in d:
            delivery["date"] = d["date"]
        if "address" in d:
            delivery["address"] = _scalars(d["address"])
        raw["delivery"] = delivery
    if isinstance(entity.get("payments"), list | dict):
        payments = entity["payments"]
        payments = [p for p in (payments.values() if isinstance(payments, dict) else payments) if isinstance(p, dict)]
        if payments:
            paid = sum((_money(p.get("amount", 0), "payments.amount") for p in payments if p.get("status") == "paid"),
                       Decimal(0))
            raw["payment"] = {"type": payments[0].get("type"), "status": payments[0].get("status"),
                              "paid_amount": str(paid)}
    return raw


def order_out(snap: dict[str, Any], tz: ZoneInfo, customer: dict[str, Any] | None = None) -> dict[str, Any]:
    """A Retento order snapshot -> RetailCRM's order object; `customer` is the RetailCRM customer, if loaded."""
    items = []
    for n, i in enumerate(snap.get("items") or []):
        qty = Decimal(str(i["quantity"]))
        items.append({k: v for k, v in {
            "id": i.get("id", n + 1), "offer": {"externalId": i["offer_id"]} if i.get("offer_id") else {},
            "productName": i["name"], "initialPrice": number(i["price"]), "quantity": number(qty),
            "discountTotal": number(Decimal(str(i["discount"])) / qty) if qty else 0,
            "prices": [{"price": number(Decimal(str(i["price"])) - (Decimal(str(i["discount"])) / qty if qty else 0)),
                        "quantity": number(qty)}],
        }.items() if v is not None})
    delivery = {k: v for k, v in {
        "code": snap.get("delivery_type"), "cost": number(snap.get("delivery_cost")),
        "date": fmt_date(snap.get("delivery_date")),
        "address": snap.get("delivery_address"),
    }.items() if v is not None}
    out: dict[str, Any] = {
        "slug": snap["id"], "id": snap["id"], "number": snap.get("number"), "externalId": snap.get("external_id"),
        "site": snap.get("site"), "status": snap.get("status"), "currency": snap.get("currency"),
        "createdAt": fmt_datetime(snap.get("created_at"), tz),
        "statusUpdatedAt": fmt_datetime(snap.get("status_updated_at"), tz),
        "summ": number(snap.get("items_total")), "totalSumm": number(snap.get("total")),
        "prepaySum": number(snap.get("paid_amount")), "discountManualAmount": number(snap.get("discount_total")),
        "managerId": snap.get("manager_id"), "customerComment": snap.get("customer_comment"),
        "managerComment": snap.get("manager_comment"), "customFields": snap.get("custom_fields") or [],
        "items": items, "delivery": delivery, "payments": {},
    }
    if snap.get("payment_type") or snap.get("payment_status"):
        out["payments"] = {"1": {k: v for k, v in {"type": snap.get("payment_type"),
                                                   "status": snap.get("payment_status"),
                                                   "amount": number(snap.get("paid_amount"))}.items()
                                 if v is not None}}
    if customer is not None:
        out["customer"] = customer
        for key in ("firstName", "lastName", "patronymic", "email"):
            if customer.get(key):
                out[key] = customer[key]
        if customer.get("phones"):
            out["phone"] = customer["phones"][0]["number"]
    elif snap.get("customer_id"):
        out["customer"] = {"type": "customer", "id": snap["customer_id"]}
    return {k: v for k, v in out.items() if v is not None}


# --- history ---------------------------------------------------------------------------------------------

HISTORY_FIELDS = {"phone": "phones", "manager_id": "manager", "customer_id": "customer", "items_total": "summ",
                  "total": "total_summ", "discount_total": "discount_manual_amount", "paid_amount": "prepay_sum",
                  "items": "order_product", "email_confirmed": "email_confirmed"}


def history_value(field: str, value: Any, tz: ZoneInfo) -> Any:
    if value is None:
        return None
    if field.endswith("_at"):
        return stored_time(value, tz)
    if field == "consents" and isinstance(value, dict):
        return {channel: {**c, "at": stored_time(c["at"], tz)} if isinstance(c, dict) and c.get("at") else c
                for channel, c in value.items()}
    if field in ("status", "delivery_type", "payment_type", "payment_status"):
        return {"code": value}
    if field in ("manager_id", "customer_id"):
        return {"id": value}
    if field in MONEY:
        return number(value)
    if field == "items":
        return [{"offer": {"externalId": i.get("offer_id")}, "productName": i.get("name"),
                 "initialPrice": number(i.get("price")), "quantity": number(i.get("quantity"))} for i in value]
    return value


def history_entry(row: Any, entity: dict[str, Any], *, tz: ZoneInfo, current_key: int | None) -> dict[str, Any]:
    """One Retento history row -> one RetailCRM history record (`entity` is the customer / order object)."""
    out: dict[str, Any] = {"id": row.id, "createdAt": fmt_datetime(row.created_at, tz)}
    if row.created:
        out["created"] = True
    if row.deleted:
        out["deleted"] = True
    out["source"] = SOURCES.get(row.source, "code")
    if row.actor_type == "api_key":
        out["apiKey"] = {"current": current_key is not None and row.actor_id == str(current_key)}
    elif row.actor_type == "user" and row.actor_id and row.actor_id.isdigit():
        out["user"] = {"id": int(row.actor_id)}
    if row.created:
        if row.entity == "customer":
            out.update(field="id", oldValue=None, newValue=row.entity_id)
        else:
            out.update(field="status", oldValue=None, newValue={"code": _dict(row.new_value).get("status", "new")})
    else:
        field = row.field or ""
        out.update(field=HISTORY_FIELDS.get(field, field), oldValue=history_value(field, row.old_value, tz),
                   newValue=history_value(field, row.new_value, tz))
    out[row.entity] = entity
    return out


# --- loyalty ---------------------------------------------------------------------------------------------

STATUSES = {"active": "activated", "blocked": "deactivated", "holdout": "deactivated"}
OPERATION_TYPES = {"welcome": "credit_for_event", "accrual": "credit_for_order", "reversal": "cancel_of_credit",
                   "credit": "credit_manual", "refund": "cancel_of_charge", "expiry": "burn"}


def local_date(value: datetime | None, tz: ZoneInfo) -> str | None:
    return fmt_date(value.astimezone(tz).date()) if value is not None else None


def loyalty_out(program: Any, tz: ZoneInfo) -> dict[str, Any]:
    """A Retento program -> RetailCRM's loyalty object (programs are active from their creation)."""
    out = {"active": bool(program.active), "blocked": False, "id": program.id, "name": program.name,
           "currency": program.currency, "confirmSmsCharge": False, "confirmSmsRegistration": False,
           "createdAt": fmt_datetime(program.created_at, tz),
           "activatedAt": fmt_datetime(program.created_at, tz) if program.active else None,
           "deactivatedAt": None if program.active else fmt_datetime(program.updated_at, tz)}
    return {k: v for k, v in out.items() if v is not None}


def level_out(levels: list[Any], code: str | None) -> dict[str, Any] | None:
    """A level of the program -> RetailCRM's level (`id`: its place among the program's levels, from 1)."""
    for n, level in enumerate(levels):
        if level.code == code:
            return {"type": "bonus_percent", "id": n + 1, "name": level.name, "privilegeSize": number(level.percent)}
    return None


def account_out(account: Any, program: Any, levels: list[Any], customer: dict[str, Any], tz: ZoneInfo) -> dict[str, Any]:
    """Retento's AccountOut (with its program, levels, RetailCRM customer) -> RetailCRM's loyaltyAccount."""
    upper = [lv.threshold for lv in levels if lv.threshold > account.purchases]
    out = {
        "active": account.status == "active", "id": account.id,
        "loyalty": {"id": program.id, "currency": program.currency},
        "customer": {k: customer.get(k) for k in ("id", "externalId", "site", "firstName", "lastName", "patronymic")
                     if customer.get(k) is not None},
        "phoneNumber": customer["phones"][0]["number"] if customer.get("phones") else None,
        "cardNumber": account.card_number, "amount": number(account.balance),
        "pendingAmount": number(account.pending), "ordersSum": number(account.purchases),
        "nextLevelSum": number(min(upper) - account.purchases) if upper else None,
        "level": level_out(levels, account.level), "createdAt": fmt_datetime(account.joined_at, tz),
        "activatedAt": fmt_datetime(account.joined_at, tz) if account.status == "active" else None,
        "status": STATUSES.get(account.status, account.status), "customFields": [],
    }
    return {k: v for k, v in out.items() if v is not None}


def operation_out(op: Any, lot: Any | None, order: Any | None, tz: ZoneInfo, *, with_account: bool = False,
                  program_id: int | None = None) -> dict[str, Any]:
    """A ledger operation (with the lot it credited and its order, if any) -> RetailCRM's bonus operation."""
    kind = str(op.kind)
    kind_name = ("charge_for_order" if op.order_id else "charge_manual") if kind == "charge" else OPERATION_TYPES[kind]
    out: dict[str, Any] = {"type": kind_name, "createdAt": fmt_datetime(op.created_at, tz), "amount": number(op.amount)}
    if op.order_id is not None:
        out["order"] = {k: v for k, v in {"id": op.order_id,
                                          "externalId": order.external_id if order else None}.items() if v is not None}
    if lot is not None:
        out["bonus"] = {k: v for k, v in {"activationDate": local_date(lot.active_from, tz),
                                          "expireDate": local_date(lot.expires_at, tz)}.items() if v is not None}
    if kind == "welcome":
        out["event"] = {"id": op.id, "type": "welcome_bonus"}
    if op.reason and kind in ("credit", "charge"):
        out["comment"] = op.reason
    if with_account:
        out["loyaltyAccount"] = {"id": op.account_id}
        out["loyalty"] = {"id": program_id}
    return out
