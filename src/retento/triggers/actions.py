"""What a trigger can do: a registry other domains extend with `register_action(name, schema, handler)`.

A handler gets an ActionContext (session, now, the ChangeContext to write with, the entity ids) and its
parsed parameters, makes its change through the owning domain's service in the caller's transaction,
and returns a small dict for the run log. A DomainError means "this action cannot be done here".
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.orm import Session

from retento.customers import service as customers
from retento.errors import DomainError
from retento.history.schemas import ChangeContext
from retento.orders import service as orders


@dataclass
class ActionContext:
    session: Session
    now: datetime
    ctx: ChangeContext  # source trigger, actor = the trigger id, depth = triggering event's depth + 1
    trigger_id: int
    trigger_name: str
    key: str  # unique per (trigger, entity, triggering event): base of idempotency keys
    event: dict[str, Any]
    order_id: int | None = None
    customer_id: int | None = None
    variables: dict[str, Any] = field(default_factory=dict)  # order / customer / event data for templates

    def need_order(self) -> Any:
        if self.order_id is None:
            raise DomainError.one("order", "the triggering event has no order")
        return orders.get(self.session, self.order_id)

    def need_customer(self) -> Any:
        if self.customer_id is None:
            raise DomainError.one("customer", "the triggering event has no customer")
        return customers.get(self.session, self.customer_id)


Handler = Callable[[ActionContext, Any], dict[str, Any]]
Check = Callable[[Session, Any], None]


@dataclass(frozen=True)
class ActionSpec:
    name: str
    schema: type[BaseModel]
    handler: Handler
    check: Check | None = None  # save-time checks against the database (e.g. the status exists)
    description: str = ""


_REGISTRY: dict[str, ActionSpec] = {}


def register_action(name: str, schema: type[BaseModel], handler: Handler, *, check: Check | None = None,
                    description: str = "") -> None:
    """Make an action available to triggers. Registering a name twice replaces it (reloads, tests)."""
    _REGISTRY[name] = ActionSpec(name, schema, handler, check, description or (schema.__doc__ or "").strip())


def registered() -> list[ActionSpec]:
    return list(_REGISTRY.values())


def parse(session: Session | None, type_: str, params: dict[str, Any], *, prefix: str) -> tuple[ActionSpec, Any]:
    """Validate one action's parameters; errors name `actions.N.<param>`."""
    spec = _REGISTRY.get(type_)
    if spec is None:
        raise DomainError.one(f"{prefix}type", f"unknown action {type_!r}; available: {', '.join(sorted(_REGISTRY))}")
    try:
        parsed = spec.schema.model_validate(params)
    except ValidationError as exc:
        raise DomainError.from_pydantic(exc, prefix) from None
    if spec.check is not None and session is not None:
        try:
            spec.check(session, parsed)
        except DomainError as exc:
            for e in exc.errors:
                e.field = f"{prefix}{e.field}"
            raise
    return spec, parsed


PLACEHOLDER = re.compile(r"\{(order|customer|event|trigger)\.([A-Za-z_]\w*)\}")


def render(text: str, variables: dict[str, Any]) -> str:
    """Fill `{order.number}`-style placeholders; unknown ones become empty."""

    def one(m: re.Match[str]) -> str:
        value = (variables.get(m.group(1)) or {}).get(m.group(2))
        return "" if value is None else str(value)

    return PLACEHOLDER.sub(one, text)


# ---- built-in actions -------------------------------------------------------------------------------------


class SetOrderStatus(BaseModel):
    """Move the order to a status."""

    model_config = ConfigDict(extra="forbid")
    status: str = Field(min_length=1, max_length=64)


def _check_status(session: Session, p: SetOrderStatus) -> None:
    if p.status not in orders.status_groups(session):
        raise DomainError.one("status", f"unknown status {p.status!r}")


def _edit_order(a: ActionContext, raw: dict[str, Any]) -> dict[str, Any]:
    order = a.need_order()
    changes = orders.edit(a.session, order=order, data=orders.parse_edit(raw), ctx=a.ctx, now=a.now)
    return {"changed": [c[0] for c in changes]}


def set_order_status(a: ActionContext, p: SetOrderStatus) -> dict[str, Any]:
    return _edit_order(a, {"status": p.status})


ORDER_FIELDS = {
    "status": lambda v: {"status": v},
    "manager_id": lambda v: {"manager_id": v},
    "manager_comment": lambda v: {"manager_comment": v},
    "customer_comment": lambda v: {"customer_comment": v},
    "payment_status": lambda v: {"payment": {"status": v}},
    "payment_type": lambda v: {"payment": {"type": v}},
    "delivery_type": lambda v: {"delivery": {"type": v}},
    "delivery_date": lambda v: {"delivery": {"date": v}},
}


class SetOrderField(BaseModel):
    """Set one order field: status, manager_id, manager_comment, customer_comment, payment_status,
    payment_type, delivery_type, delivery_date, or custom_fields.<name>."""

    model_config = ConfigDict(extra="forbid")
    field: str = Field(min_length=1, max_length=80)
    value: str | int | float | bool | None


def _field_edit(p: SetOrderField, current_custom: dict[str, Any] | None = None) -> dict[str, Any]:
    if p.field.startswith("custom_fields."):
        return {"custom_fields": {**(current_custom or {}), p.field.removeprefix("custom_fields."): p.value}}
    return ORDER_FIELDS[p.field](p.value)


def _check_field(session: Session, p: SetOrderField) -> None:
    if p.field not in ORDER_FIELDS and not (p.field.startswith("custom_fields.") and len(p.field) > 14):
        raise DomainError.one("field", f"cannot set order field {p.field!r}; settable: "
                                       f"{', '.join(ORDER_FIELDS)}, custom_fields.<name>")
    orders.parse_edit(_field_edit(p), prefix="value:")  # type errors point at the value
    if p.field == "status":
        _check_status(session, SetOrderStatus(status=str(p.value)))


def set_order_field(a: ActionContext, p: SetOrderField) -> dict[str, Any]:
    order = a.need_order()
    return _edit_order(a, _field_edit(p, order.custom_fields))


Label = Field(min_length=1, max_length=64, pattern=r"^[^\s,][^,]*$")


class TagAction(BaseModel):
    """Add or remove a tag on the customer or the order."""

    model_config = ConfigDict(extra="forbid")
    tag: str = Label
    target: Literal["customer", "order"] = "customer"


def _retag(a: ActionContext, p: TagAction, add: bool) -> dict[str, Any]:
    if p.target == "order":
        order = a.need_order()
        tags = set(order.tags or ())
        new = tags | {p.tag} if add else tags - {p.tag}
        return _edit_order(a, {"tags": sorted(new)}) if new != tags else {"changed": []}
    customer = a.need_customer()
    tags = set(customers.snapshot(a.session, customer)["tags"])
    new = tags | {p.tag} if add else tags - {p.tag}
    if new == tags:
        return {"changed": []}
    data = customers.parse_edit(a.session, {"tags": sorted(new)}, site_id=customer.site_id)
    changes = customers.edit(a.session, customer=customer, data=data, ctx=a.ctx, now=a.now)
    return {"changed": [c[0] for c in changes]}


class CreateTask(BaseModel):
    """Create a task for a manager, linked to the customer and the order of the event."""

    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=500, description="May use {order.number}, {customer.email}, ...")
    text: str | None = Field(None, max_length=10000)
    due_in_minutes: int = Field(0, ge=0, le=525600)
    assignee: int | Literal["order_manager", "customer_manager"] | None = Field(
        "order_manager", description="A manager id, the order's or the customer's manager, or nobody")


def _check_task(session: Session, p: CreateTask) -> None:
    from retento.sites.service import manager_ids

    if isinstance(p.assignee, int) and p.assignee not in manager_ids(session):
        raise DomainError.one("assignee", f"unknown manager {p.assignee}")


def create_task(a: ActionContext, p: CreateTask) -> dict[str, Any]:
    from retento.tasks import service as tasks
    from retento.tasks.schemas import TaskCreate

    manager_id = p.assignee if isinstance(p.assignee, int) else None
    if p.assignee == "order_manager" and a.order_id is not None:
        manager_id = orders.get(a.session, a.order_id).manager_id
    elif p.assignee == "customer_manager" and a.customer_id is not None:
        manager_id = customers.get(a.session, a.customer_id).manager_id
    data = TaskCreate(title=render(p.title, a.variables)[:500], text=render(p.text, a.variables) if p.text else None,
                      due_at=a.now + timedelta(minutes=p.due_in_minutes), manager_id=manager_id,
                      customer_id=a.customer_id, order_id=a.order_id)
    task = tasks.create_task(a.session, data=data, ctx=a.ctx, now=a.now)
    return {"task_id": task.id, "manager_id": manager_id}


class Webhook(BaseModel):
    """POST the event, order and customer as JSON to a URL, signed with HMAC-SHA256 when a secret is given."""

    model_config = ConfigDict(extra="forbid")
    url: str = Field(min_length=8, max_length=2000, pattern=r"^https?://\S+$")
    secret: str | None = Field(None, min_length=8, max_length=200)


def webhook(a: ActionContext, p: Webhook) -> dict[str, Any]:
    from retento.triggers import outbox

    call_id = outbox.enqueue(a.session, trigger_id=a.trigger_id, key=f"{a.key}:webhook:{p.url}", url=p.url,
                             secret=p.secret, body={"trigger": {"id": a.trigger_id, "name": a.trigger_name},
                                                    **a.variables}, now=a.now)
    return {"webhook_call_id": call_id}


class EmitEvent(BaseModel):
    """Record a custom event for the customer (other triggers and chains can react to it)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")
    data: dict[str, Any] = Field(default_factory=dict)


def emit_event(a: ActionContext, p: EmitEvent) -> dict[str, Any]:
    customer = a.need_customer()
    stored = customers.emit_custom_event(a.session, customer=customer, name=p.name, payload=p.data, ctx=a.ctx,
                                         now=a.now, idempotency_key=f"{a.key}:event:{p.name}")
    return {"emitted": stored}


register_action("set_order_status", SetOrderStatus, set_order_status, check=_check_status)
register_action("set_order_field", SetOrderField, set_order_field, check=_check_field)
register_action("add_tag", TagAction, lambda a, p: _retag(a, p, True), description="Add a tag to the customer or order")
register_action("remove_tag", TagAction, lambda a, p: _retag(a, p, False),
                description="Remove a tag from the customer or order")
register_action("create_task", CreateTask, create_task, check=_check_task)
register_action("webhook", Webhook, webhook)
register_action("emit_event", EmitEvent, emit_event)
