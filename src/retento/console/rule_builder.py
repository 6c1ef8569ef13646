"""The segment rule builder's rows <-> the segment rule tree (segments/rules.py), pure.

A row is one condition as the form shows it: `kind` (a leaf rule type), `key` (a field, metric, mode, channel,
event type or custom field name), `op`, `value` (text; lists comma-separated) and `days` (a window). Rows joined
by `match` ("all" or "any") make the tree {match: [leaf, ...]}. A tree the rows cannot express (nesting, order
categories, ...) is edited as JSON instead: `rows_of` answers None for it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from retento.console.i18n import N_
from retento.core.errors import DomainError, FieldError
from retento.segments import rules


@dataclass(frozen=True)
class Kind:
    label: str
    keys: tuple[tuple[str, str], ...] = ()  # (value, label); empty: a free text key (or none, see free_key)
    ops: tuple[str, ...] = ()
    free_key: str | None = None  # the label of a free text key
    days: bool = False


OPS = {"eq": "=", "ne": "≠", "gt": ">", "gte": "≥", "lt": "<", "lte": "≤", "between": N_("between"),
       "in": N_("one of"), "not_in": N_("none of"), "contains": N_("contains"), "starts_with": N_("starts with"),
       "is_set": N_("is set"), "is_not_set": N_("is not set"), "within_days": N_("within the last N days"),
       "older_than_days": N_("more than N days ago")}
YES_NO = {"eq": N_("yes"), "ne": N_("no")}
FIELDS = (("email", N_("Email")), ("phone", N_("Phone")), ("first_name", N_("First name")),
          ("last_name", N_("Last name")), ("patronymic", N_("Patronymic")), ("external_id", N_("External ID")),
          ("locale", N_("Language")), ("timezone", N_("Time zone")), ("entry_point", N_("Entry point")),
          ("telegram_id", N_("Telegram ID")), ("whatsapp_id", N_("WhatsApp ID")), ("vk_id", N_("VK ID")),
          ("birthday", N_("Birthday")), ("created_at", N_("Created")),
          ("email_confirmed_at", N_("Email confirmed at")), ("email_confirmed", N_("Email confirmed")),
          ("manager_id", N_("Manager ID")))
METRICS = (("count", N_("Number of orders")), ("sum", N_("Order total")), ("average", N_("Average order")),
           ("first_order_date", N_("First order date")), ("last_order_date", N_("Last order date")),
           ("first_order_days_ago", N_("Days since the first order")),
           ("last_order_days_ago", N_("Days since the last order")))
LABEL_MODES = (("any", N_("has any of")), ("all", N_("has all of")), ("none", N_("has none of")))
CHANNELS = tuple((c, c) for c in ("email", "sms", "whatsapp", "telegram", "vk", "push"))
KINDS = {
    "customer": Kind(N_("Customer field"), FIELDS, tuple(dict.fromkeys(
        op for ops in rules.FIELD_OPS.values() for op in ops))),
    "orders": Kind(N_("Orders"), METRICS, rules.CMP_OPS, days=True),
    "tags": Kind(N_("Tags"), LABEL_MODES),
    "interests": Kind(N_("Interests"), LABEL_MODES),
    "consent": Kind(N_("Consent"), CHANNELS, ("eq", "ne")),
    "event": Kind(N_("Event"), (), ("eq", "ne"), free_key=N_("Event type"), days=True),
    "custom_field": Kind(N_("Custom field"), (), rules.CustomFieldRule.model_fields["op"].annotation.__args__,
                         free_key=N_("Field name")),
    "rfm": Kind(N_("RFM"), (("cell", N_("cell")), ("r", "R"), ("f", "F"), ("m", "M"))),
    "lifecycle": Kind(N_("Lifecycle state")),
}


@dataclass(frozen=True)
class Row:
    kind: str = ""
    key: str = ""
    op: str = ""
    value: str = ""
    days: str = ""


def _list(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def _number(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text.strip()  # the rule's validation names it


def _value(kind: str, op: str, text: str, scalar: Any) -> Any:
    if op in ("is_set", "is_not_set"):
        return None
    if op in ("in", "not_in"):
        return [scalar(x) for x in _list(text)]
    if op == "between":
        return [scalar(x) for x in _list(text)]
    return scalar(text.strip())


def _customer_scalar(field: str, op: str) -> Any:
    kind = rules.field_kind(field) if field else "string"
    if op in ("within_days", "older_than_days") or kind == "int":
        return _number
    if kind == "bool":
        return lambda t: {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}.get(
            t.strip().lower(), t)
    return str.strip


def leaf(row: Row) -> dict[str, Any]:
    """The rule tree leaf of a row (validated later by rules.parse, which names the wrong part)."""
    k, key, op, text = row.kind, row.key.strip(), row.op, row.value
    days = _number(row.days) if row.days.strip() else None
    if k == "customer":
        return {k: {"field": key, "op": op, "value": _value(k, op, text, _customer_scalar(key, op))}}
    if k == "orders":
        body = {"metric": key, "op": op, "value": _value(k, op, text, _number if "date" not in key else str.strip)}
        return {k: body | ({"within_days": days} if days is not None else {})}
    if k in ("tags", "interests"):
        return {k: {key or "any": _list(text)}}
    if k == "consent":
        return {k: {"channel": key, "granted": op != "ne"}}
    if k == "event":
        body = {"type": key, "did": op != "ne"} | ({"name": text.strip()} if text.strip() else {})
        return {k: body | ({"within_days": days} if days is not None else {})}
    if k == "custom_field":
        scalar = _number if op in ("gt", "gte", "lt", "lte") else str.strip
        return {k: {"name": key, "op": op, "value": _value(k, op, text, scalar)}}
    if k == "rfm":
        return {k: {key or "cell": [_number(x) if key in ("r", "f", "m") else x for x in _list(text)]}}
    if k == "lifecycle":
        return {k: {"state": _list(text)}}
    return {k or "?": {}}


def tree(match: str, rows: list[Row]) -> dict[str, Any]:
    """The rule tree of the rows (blank rows left out); refused naming `rules` when there is no condition."""
    used = [r for r in rows if r.kind]
    if not used:
        raise DomainError.one("rules", "add at least one condition")
    return {"any" if match == "any" else "all": [leaf(r) for r in used]}


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _row(node: dict[str, Any]) -> Row | None:
    (k, body), = node.items()
    if not isinstance(body, dict):
        return None
    if k in ("customer", "custom_field"):
        key = body.get("field" if k == "customer" else "name", "")
        return Row(k, key, body.get("op", ""), _text(body.get("value")))
    if k == "orders":
        return Row(k, body.get("metric", ""), body.get("op", ""), _text(body.get("value")),
                   _text(body.get("within_days")))
    if k in ("tags", "interests", "rfm") and len(body) == 1:
        (key, values), = body.items()
        return Row(k, key, "", _text(values))
    if k == "consent":
        return Row(k, body.get("channel", ""), "eq" if body.get("granted", True) else "ne")
    if k == "event":
        return Row(k, body.get("type", ""), "eq" if body.get("did", True) else "ne", _text(body.get("name")),
                   _text(body.get("within_days")))
    if k == "lifecycle":
        return Row(k, "", "", _text(body.get("state")))
    return None


def rows_of(raw: Any, types: rules.RuleTypes) -> tuple[str, list[Row]] | None:
    """(match, rows) of a stored tree, or None when the rows cannot express it exactly (then: JSON)."""
    if not isinstance(raw, dict) or len(raw) != 1:
        return None
    (key, body), = raw.items()
    match, nodes = (key, body) if key in ("all", "any") else ("all", [raw])
    if not isinstance(nodes, list) or not all(isinstance(n, dict) and len(n) == 1 and next(iter(n)) in KINDS
                                              for n in nodes):
        return None
    rows = [_row(n) for n in nodes]
    if any(r is None for r in rows):
        return None
    try:  # the rows mean exactly the stored tree
        made = tree(match, rows) if key in ("all", "any") else leaf(rows[0])  # type: ignore[arg-type]
        if rules.parse(made, types) != rules.parse(raw, types):
            return None
    except DomainError:
        return None
    return match, rows  # type: ignore[return-value]


def from_form(form: Any) -> tuple[str, list[Row], dict[str, Any]]:
    """(match, rows, tree) of a builder form (a multi-dict): the rows when any is filled in, otherwise the
    `rules_json` text. Bad JSON is refused naming `rules_json`."""
    match = form.get("match", "all")
    columns = [form.getlist(name) for name in ("kind", "key", "op", "value", "days")]
    rows = [Row(*(col[i] if i < len(col) else "" for col in columns)) for i in range(len(columns[0]))]
    if any(r.kind for r in rows) or not form.get("rules_json", "").strip():
        return match, rows, tree(match, rows)
    try:
        raw = json.loads(form["rules_json"])
    except ValueError as exc:
        raise DomainError([FieldError("rules_json", f"not JSON: {exc}")]) from None
    return match, rows, raw


def row_of_error(field: str) -> int | None:
    """The row an error path such as `rules.all.2.orders.op` points at."""
    parts = field.split(".")
    if len(parts) > 2 and parts[0] == "rules" and parts[1] in ("all", "any") and parts[2].isdigit():
        return int(parts[2])
    return None
