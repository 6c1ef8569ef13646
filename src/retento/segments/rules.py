"""The segment rule tree (pure): parse and validate JSON/YAML rules into a tree, with pointed errors.

A node is one of
    {"all": [node, ...]}   every child holds
    {"any": [node, ...]}   at least one child holds
    {"not": node}          the child does not hold
    {"<rule type>": {...}} a leaf of one of the application's rule types (`App.parts.segment_rules`).

The built-in leaf types are `compiler.BUILT_IN`; another domain adds its own (params model, SQL) by declaring a
`compiler.LeafType` and registering it in `bootstrap.assemble`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from retento.core.dates import parse_day
from retento.core.errors import DomainError, FieldError
from retento.core.registry import Registry

MAX_DEPTH = 12
Number = int | float
CMP_OPS = ("eq", "ne", "gt", "gte", "lt", "lte", "between")


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_cmp(op: str, value: Any, kind: str) -> None:
    """`value` fits `op` for a number, a date or a days-ago amount."""
    if op == "between":
        if not (isinstance(value, list | tuple) and len(value) == 2):
            raise ValueError("between takes a list of two values [low, high]")
        for v in value:
            _check_scalar(v, kind)
        if value[0] > value[1]:
            raise ValueError("between: low is greater than high")
        return
    if kind == "days_ago" and op in ("eq", "ne"):
        raise ValueError("days-ago metrics take gt, gte, lt, lte or between")
    _check_scalar(value, kind)


def days(value: Any) -> Any:
    """The date(s) of a rule: `YYYY-MM-DD` strings (JSON) or dates (YAML), inside Retento's date range."""
    return [parse_day(v) for v in value] if isinstance(value, list) else parse_day(value)


def _check_scalar(v: Any, kind: str) -> None:
    if kind == "date":
        if not isinstance(v, date):
            raise ValueError("value must be a date (YYYY-MM-DD)")
    elif isinstance(v, bool) or not isinstance(v, int | float):
        raise ValueError("value must be a number")
    elif kind == "days_ago" and v < 0:
        raise ValueError("days must not be negative")


STRING_FIELDS = ("email", "phone", "first_name", "last_name", "patronymic", "external_id", "locale", "timezone",
                 "entry_point", "telegram_id", "whatsapp_id", "vk_id")
DATE_FIELDS = ("birthday",)
TIME_FIELDS = ("created_at", "email_confirmed_at")
FIELD_OPS = {
    "string": ("eq", "ne", "in", "not_in", "contains", "starts_with", "is_set", "is_not_set"),
    "bool": ("eq", "ne"),
    "date": ("eq", "ne", "gt", "gte", "lt", "lte", "between", "is_set", "is_not_set"),
    "time": ("within_days", "older_than_days", "is_set", "is_not_set"),
    "int": ("eq", "ne", "in", "not_in", "is_set", "is_not_set"),
}


def field_kind(name: str) -> str:
    if name in STRING_FIELDS:
        return "string"
    if name in DATE_FIELDS:
        return "date"
    if name in TIME_FIELDS:
        return "time"
    return "bool" if name == "email_confirmed" else "int"


class CustomerRule(Params):
    """A column of the customer: {"customer": {"field": "email", "op": "is_set"}}."""

    field: Literal[STRING_FIELDS + DATE_FIELDS + TIME_FIELDS + ("email_confirmed", "manager_id")]  # type: ignore[valid-type]
    op: str
    value: Any = None

    @model_validator(mode="after")
    def _ops(self) -> CustomerRule:
        kind = field_kind(self.field)
        if self.op not in FIELD_OPS[kind]:
            raise ValueError(f"op {self.op!r} does not apply to {self.field}; use one of {', '.join(FIELD_OPS[kind])}")
        _check_field_value(kind, self.op, self.value)
        return self


def _check_field_value(kind: str, op: str, value: Any) -> None:
    if op in ("is_set", "is_not_set"):
        return
    if op in ("in", "not_in"):
        if not isinstance(value, list) or not value:
            raise ValueError(f"{op} takes a non-empty list")
        return
    if op in ("within_days", "older_than_days"):
        _check_scalar(value, "days_ago")
    elif kind == "date":
        _check_cmp(op, days(value), "date")
    elif kind == "bool" and not isinstance(value, bool):
        raise ValueError("value must be true or false")
    elif kind == "string" and not isinstance(value, str):
        raise ValueError("value must be a string")
    elif kind == "int" and (isinstance(value, bool) or not isinstance(value, int)):
        raise ValueError("value must be an integer")


class CustomFieldRule(Params):
    """A custom field: {"custom_field": {"name": "city", "op": "eq", "value": "Kazan"}}."""

    name: str = Field(min_length=1, max_length=64)
    op: Literal["eq", "ne", "in", "not_in", "contains", "gt", "gte", "lt", "lte", "is_set", "is_not_set"]
    value: Any = None

    @model_validator(mode="after")
    def _value(self) -> CustomFieldRule:
        if self.op in ("gt", "gte", "lt", "lte"):
            _check_scalar(self.value, "number")
        elif self.op in ("in", "not_in"):
            _check_field_value("string", self.op, self.value)
        elif self.op not in ("is_set", "is_not_set") and (self.value is None or isinstance(self.value, list | dict)):
            raise ValueError(f"{self.op} takes a single value")
        return self


class LabelRule(Params):
    """Tags or interests: exactly one of any / all / none, each a non-empty list."""

    any: list[str] | None = Field(None, min_length=1)
    all: list[str] | None = Field(None, min_length=1)
    none: list[str] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _one(self) -> LabelRule:
        if sum(x is not None for x in (self.any, self.all, self.none)) != 1:
            raise ValueError("give exactly one of any, all, none")
        return self

    @property
    def mode_values(self) -> tuple[str, list[str]]:
        for mode in ("any", "all", "none"):
            if (v := getattr(self, mode)) is not None:
                return mode, v
        raise AssertionError


class EntryPointRule(Params):
    in_: list[str] = Field(alias="in", min_length=1)


class ConsentRule(Params):
    channel: Literal["email", "sms", "whatsapp", "telegram", "vk", "push"]
    granted: bool = True


ORDER_METRICS = {
    "count": "number", "sum": "number", "average": "number",
    "first_order_date": "date", "last_order_date": "date",
    "first_order_days_ago": "days_ago", "last_order_days_ago": "days_ago",
}


class OrdersRule(Params):
    """Order aggregates: {"orders": {"metric": "count", "op": "gte", "value": 3, "within_days": 90}}.

    Purchases are orders outside the `cancel` status group unless `status_group` names a group.
    `category` counts orders with an item of that category, and sums those items' amounts.
    """

    metric: Literal[tuple(ORDER_METRICS)]  # type: ignore[valid-type]
    op: Literal[CMP_OPS]  # type: ignore[valid-type]
    value: Any
    within_days: int | None = Field(None, gt=0)
    category: str | None = Field(None, min_length=1)
    status_group: Literal["new", "approval", "assembling", "delivery", "complete", "cancel"] | None = None

    @model_validator(mode="after")
    def _value(self) -> OrdersRule:
        kind = ORDER_METRICS[self.metric]
        filtered = self.within_days is not None or self.category is not None or self.status_group is not None
        if filtered and kind != "number":
            raise ValueError("within_days, category and status_group apply to count, sum and average")
        value = self.value
        if kind == "date":
            value = days(value)
            object.__setattr__(self, "value", value)
        _check_cmp(self.op, value, kind)
        return self

    @property
    def filtered(self) -> bool:
        return self.within_days is not None or self.category is not None or self.status_group is not None


class EventRule(Params):
    """Did / did not do something: {"event": {"type": "custom", "name": "cart_abandoned", "within_days": 7}}."""

    type: str = Field(min_length=1, max_length=64)
    name: str | None = Field(None, max_length=128)
    did: bool = True
    within_days: int | None = Field(None, gt=0)
    min_count: int = Field(1, ge=1)


class RfmRule(Params):
    """An RFM cell, or score lists: {"rfm": {"cell": ["champions"]}} or {"rfm": {"r": [4, 5], "f": [5]}}."""

    cell: list[str] | None = Field(None, min_length=1)
    r: list[int] | None = Field(None, min_length=1)
    f: list[int] | None = Field(None, min_length=1)
    m: list[int] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _some(self) -> RfmRule:
        if not any((self.cell, self.r, self.f, self.m)):
            raise ValueError("give cell or at least one of r, f, m")
        for name in ("r", "f", "m"):
            if any(not 1 <= s <= 5 for s in getattr(self, name) or ()):
                raise ValueError(f"{name} scores are between 1 and 5")
        return self


class LifecycleRule(Params):
    """Current lifecycle state: {"lifecycle": {"state": ["sleeping"]}}; `none` = never bought."""

    state: list[Literal["new", "active", "sleeping", "none"]] = Field(min_length=1)


class RuleType(Protocol):
    """A leaf type as the application registers it (`App.parts.segment_rules`; `compiler.LeafType`)."""

    params: type[Params]
    time_dependent: Callable[[Any], bool]


RuleTypes = Registry[Any]  # name -> RuleType


@dataclass(frozen=True)
class All:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class AnyOf:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    child: Node


@dataclass(frozen=True)
class Leaf:
    type: str
    params: Any


Node = All | AnyOf | Not | Leaf


def parse(raw: Any, types: RuleTypes, *, path: str = "rules") -> Node:
    """Validate a rule tree with the application's leaf `types`; every problem is reported with its path (e.g.
    rules.all.1.orders.op)."""
    errors: list[FieldError] = []
    node = _parse(raw, types, path, 0, errors)
    if errors:
        raise DomainError(errors)
    assert node is not None
    return node


def _parse(raw: Any, types: RuleTypes, path: str, depth: int, errors: list[FieldError]) -> Node | None:
    if depth > MAX_DEPTH:
        errors.append(FieldError(path, f"rules are nested deeper than {MAX_DEPTH} levels"))
        return None
    if not isinstance(raw, dict) or len(raw) != 1:
        errors.append(FieldError(path, "a rule is an object with exactly one key: all, any, not or a rule type "
                                       f"({', '.join(sorted(types))})"))
        return None
    (key, body), = raw.items()
    sub = f"{path}.{key}"
    if key in ("all", "any"):
        if not isinstance(body, list) or not body:
            errors.append(FieldError(sub, "takes a non-empty list of rules"))
            return None
        children = [_parse(child, types, f"{sub}.{i}", depth + 1, errors) for i, child in enumerate(body)]
        if any(c is None for c in children):
            return None
        return (All if key == "all" else AnyOf)(tuple(children))  # type: ignore[arg-type]
    if key == "not":
        child = _parse(body, types, sub, depth + 1, errors)
        return Not(child) if child is not None else None
    rule_type = types.get(key)
    if rule_type is None:
        errors.append(FieldError(path, f"unknown rule type {key!r}; known: all, any, not, "
                                       f"{', '.join(sorted(types))}"))
        return None
    if not isinstance(body, dict):
        errors.append(FieldError(sub, "takes an object"))
        return None
    try:
        return Leaf(key, rule_type.params.model_validate(body))
    except ValidationError as exc:
        errors.extend(DomainError.from_pydantic(exc, f"{sub}.").errors)
        return None


def leaves(node: Node) -> list[Leaf]:
    if isinstance(node, Leaf):
        return [node]
    if isinstance(node, Not):
        return leaves(node.child)
    return [leaf for child in node.children for leaf in leaves(child)]


def time_dependent(node: Node, types: RuleTypes) -> bool:
    """True if membership can change with the passage of time alone (windows relative to now)."""
    return any(types[leaf.type].time_dependent(leaf.params) for leaf in leaves(node))
