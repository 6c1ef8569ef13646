"""From a record of an import file to the input dict of a service schema (pure, no I/O).

JSON Lines objects already have the schemas' shape. CSV cells are flat text, so columns are mapped:
`a.b` columns build nested objects, list and object fields take JSON in a cell, `tags` / `interests`
also take `a;b`, order `items` also take `OFFER:QTY;OFFER`, an order's `customer` also takes a bare
external id, and `consents.email` takes a yes/no. Keys written in camelCase (`externalId`) are accepted
everywhere a schema field is meant. See docs/import.md.
"""

from __future__ import annotations

import functools
import re
import types
import typing
from enum import StrEnum
from typing import Any

from pydantic import BaseModel

from retento.catalog.schemas import ProductIn
from retento.core import parsing
from retento.core.errors import DomainError, FieldError
from retento.customers.schemas import CustomerCreate
from retento.orders.schemas import OrderCreate


class Kind(StrEnum):
    CUSTOMERS = "customers"
    ORDERS = "orders"
    PRODUCTS = "products"


SCHEMAS: dict[Kind, type[BaseModel]] = {
    Kind.CUSTOMERS: CustomerCreate, Kind.ORDERS: OrderCreate, Kind.PRODUCTS: ProductIn,
}
LISTS = {"tags", "interests"}  # `a;b` in a cell
STRUCTURED = LISTS | {"items", "consents", "personal_dates", "custom_fields", "delivery", "payment", "customer"}
BOOLEANS = {"granted", "email_confirmed", "active"}
_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")


def snake(name: str) -> str:
    return _CAMEL.sub(r"_\1", name).lower()


def columns_problem(kind: Kind, header: list[str]) -> str | None:
    """A message naming the CSV columns no field of this kind has, or None."""
    fields = SCHEMAS[kind].model_fields
    unknown = [h for h in header if snake(h.split(".", 1)[0]) not in fields]
    if not unknown:
        return None
    return (f"unknown column{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
            f"(known: {', '.join(fields)})")


def from_csv(kind: Kind, cells: dict[str, str]) -> dict[str, Any]:
    """Nested input dict from the non-empty cells of one CSV row; DomainError names a bad column."""
    model = SCHEMAS[kind]
    out: dict[str, Any] = {}
    errors = []
    for column, cell in cells.items():
        path = [snake(column.split(".", 1)[0]), *column.split(".")[1:]]
        if path[0] == "consents" and len(path) == 2:
            path.append("granted")  # `consents.email` = yes / no
        try:
            value = _cell(model, path, cell.strip())
        except ValueError as exc:
            errors.append(FieldError(column, str(exc)))
            continue
        _put(out, path, value)
    if errors:
        raise DomainError(errors)
    if kind is Kind.CUSTOMERS and isinstance(out.get("consents"), dict):
        out["consents"] = {ch: v if isinstance(v, dict) else {"granted": v} for ch, v in out["consents"].items()}
    return out


def _cell(model: type[BaseModel], path: list[str], cell: str) -> Any:
    field = path[0]
    if field in STRUCTURED and cell[:1] in "[{":
        try:
            return parsing.json_value(cell, root="")
        except DomainError as exc:
            where, reason = exc.errors[0].field, exc.errors[0].reason
            raise ValueError(f"{where}: {reason}" if where else reason) from None
    if path[-1] in BOOLEANS:
        return parsing.flag_word(cell)
    if len(path) > 1:
        return cell
    if field in LISTS:
        return [v.strip() for v in cell.split(";") if v.strip()]
    if field == "items" and model is OrderCreate:
        return [_item(part.strip()) for part in cell.split(";") if part.strip()]
    if field == "customer" and model is OrderCreate:
        return {"external_id": cell}
    return cell


def _item(text: str) -> dict[str, str]:
    offer, sep, qty = text.rpartition(":")
    return {"offer_id": offer.strip(), "quantity": qty.strip()} if sep and offer.strip() else {"offer_id": text}


def _put(out: dict[str, Any], path: list[str], value: Any) -> None:
    node = out
    for key in path[:-1]:
        existing = node.get(key)
        if not isinstance(existing, dict):
            existing = node[key] = {}
        node = existing
    last = path[-1]
    if isinstance(node.get(last), dict) and isinstance(value, dict):
        node[last] = {**value, **node[last]}  # `delivery` JSON cell plus `delivery.type` column: the column wins
    else:
        node[last] = value


def normalize_keys(model: type[BaseModel], data: Any) -> Any:
    """camelCase keys to the schema's snake_case field names, into nested models; free-form dicts untouched."""
    if not isinstance(data, dict):
        return data
    fields = _fields(model)
    out = {}
    for key, value in data.items():
        name = key if key in fields or not isinstance(key, str) else _snake_field(model, key)
        sub = fields.get(name)
        if sub is not None:
            value = [normalize_keys(sub, v) for v in value] if isinstance(value, list) else normalize_keys(sub, value)
        out[name] = value
    return out


@functools.cache
def _fields(model: type[BaseModel]) -> dict[str, type[BaseModel] | None]:
    """Field name -> the model nested in it (or None), worked out once per schema."""
    return {name: _submodel(f.annotation) for name, f in model.model_fields.items()}


@functools.lru_cache(maxsize=4096)
def _snake_field(model: type[BaseModel], key: str) -> str:
    name = snake(key)
    return name if name in model.model_fields else key


def _submodel(annotation: Any) -> type[BaseModel] | None:
    """The model inside `X | None` or `list[X]`, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (list, typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _submodel(arg)
            if found is not None:
                return found
    return None


def with_site(data: dict[str, Any], site: str | None) -> dict[str, Any]:
    if site and not data.get("site"):
        return {**data, "site": site}
    return data
