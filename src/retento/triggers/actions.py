"""What a trigger can do: actions (`action(name, schema, handler, ...)`) the application registers in
`App.parts.actions` (`bootstrap.assemble`: the built-in ones below, and other domains' like `start_cascade`).

A handler gets an ActionContext (session, now, the ChangeContext to write with, the entity ids) and its
parsed parameters, makes its change through the owning domain's service in the caller's transaction,
and returns a small dict for the run log. A DomainError means "this action cannot be done here".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Literal

from jinja2 import Template
from jinja2.sandbox import SecurityError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from sqlalchemy.orm import Session

from retento.core import templates
from retento.core.changes import ChangeContext
from retento.core.errors import DomainError, NotFound
from retento.core.registry import Registry
from retento.customers import service as customers
from retento.orders import queries as order_queries, service as orders
from retento.sites.service import manager_ids
from retento.tasks import service as tasks
from retento.tasks.schemas import TaskCreate
from retento.webhooks import service as webhooks


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
Many = Callable[[list[ActionContext], list[Any]], list[dict[str, Any]]]
Check = Callable[[Session, Any], None]


@dataclass(frozen=True)
class ActionSpec:
    name: str
    schema: type[BaseModel]
    handler: Handler
    check: Check | None = None  # save-time checks against the database (e.g. the status exists)
    description: str = ""
    many: Many | None = None  # the same as `handler` for each (context, params) in list order, set-based
    # which of the run's "order" / "customer" the action changes (None: possibly both); runs that change the
    # same entity act one after the other, the others together
    changes: Callable[[Any], Iterable[str]] | None = None
    # the URLs the action calls, by parameter name: the SSRF guard checks them when a trigger is saved
    calls: Callable[[Any], dict[str, str]] | None = None
    # whether the action reads the run's order / customer data (`ActionContext.variables`; None: it may): a run on
    # an event whose actions do not read it acts without reading them again
    reads: Callable[[Any], bool] | None = None


def action(name: str, schema: type[BaseModel], handler: Handler, *, check: Check | None = None,
           description: str = "", many: Many | None = None, changes: Callable[[Any], Iterable[str]] | None = None,
           calls: Callable[[Any], dict[str, str]] | None = None,
           reads: Callable[[Any], bool] | None = None) -> ActionSpec:
    """An action triggers can use, for the application's registry (`App.parts.actions`, filled in
    `bootstrap.assemble`). The description defaults to the schema's docstring.

    `many(contexts, params)`, optional: does what `handler` does for each (context, params) pair, in list order,
    in the caller's transaction, with exactly the same rows, history and events, but in a few statements for the
    whole list; returns `handler`'s dict for each. If any pair cannot be done it raises DomainError (the caller
    rolls its savepoint back and goes one by one with `handler`).

    `changes(params)`, optional: which of the run's `order` / `customer` the action changes (an action that only
    adds rows of its own, like a task, changes neither); by default both.

    `calls(params)`, optional: the URLs the action will request, by parameter name (`{"url": ...}`); saving a
    trigger refuses those the outgoing request policy refuses (loopback, private addresses, ...).

    `reads(params)`, optional: whether the action reads the run's order and customer data
    (`ActionContext.variables`: templates, a webhook's body); by default it may. Without it they are read for
    every run of the trigger; an action that says False gets them only if another action of the run reads them."""
    return ActionSpec(name, schema, handler, check, description or (schema.__doc__ or "").strip(), many, changes,
                      calls, reads)


def parse(registry: Registry[ActionSpec], session: Session | None, type_: str, params: dict[str, Any], *,
          prefix: str) -> tuple[ActionSpec, Any]:
    """Validate one action's parameters against the application's actions; errors name `actions.N.<param>`."""
    spec = registry.get(type_)
    if spec is None:
        raise DomainError.one(f"{prefix}type", f"unknown action {type_!r}; available: {', '.join(sorted(registry))}")
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


@lru_cache(maxsize=1024)
def _template(text: str) -> Template:
    return templates.compile_template(text, field="text")


def render(text: str, variables: dict[str, Any], *, field: str) -> str:
    """An action's text in the template language (`core.templates`, lenient: what is missing is empty)."""
    return templates.render(_template(text), variables, field=field)


def template_text(value: str | None, info: ValidationInfo) -> str | None:
    """Validator of a parameter that is a template: `{order.number}` written before the sandbox becomes
    `{{ order.number }}`; a template that does not compile, or reaches for what the sandbox refuses, names the
    parameter (other failures depend on the data and show when acting)."""
    if value is None:
        return None
    text = templates.from_legacy(value)
    try:
        _template(text).render({})
    except DomainError as exc:  # does not compile
        raise ValueError(exc.errors[0].reason) from None
    except SecurityError as exc:
        raise ValueError(f"not allowed in a template: {exc}") from None
    except Exception:  # noqa: BLE001, S110 - e.g. comparing a missing order's total: depends on the data
        pass
    return text


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
    title: str = Field(min_length=1, max_length=500, description="A template: {{ order.number }}, "
                       "{{ customer.email }}, ... (see docs/triggers.md)")
    text: str | None = Field(None, max_length=10000, description="A template, like `title`")
    due_in_minutes: int = Field(0, ge=0, le=525600)
    assignee: int | Literal["order_manager", "customer_manager"] | None = Field(
        "order_manager", description="A manager id, the order's or the customer's manager, or nobody")

    _templates = field_validator("title", "text")(template_text)


def _check_task(session: Session, p: CreateTask) -> None:
    if isinstance(p.assignee, int) and p.assignee not in manager_ids(session):
        raise DomainError.one("assignee", f"unknown manager {p.assignee}")


def create_task(a: ActionContext, p: CreateTask) -> dict[str, Any]:
    manager_id = p.assignee if isinstance(p.assignee, int) else None
    if p.assignee == "order_manager" and a.order_id is not None:
        manager_id = orders.get(a.session, a.order_id).manager_id
    elif p.assignee == "customer_manager" and a.customer_id is not None:
        manager_id = customers.get(a.session, a.customer_id).manager_id
    task = tasks.create_task(a.session, data=_task_data(a, p, manager_id), ctx=a.ctx, now=a.now)
    return {"task_id": task.id, "manager_id": manager_id}


class Webhook(BaseModel):
    """POST the event, order and customer as JSON to a URL, signed with HMAC-SHA256 when a secret is given."""

    model_config = ConfigDict(extra="forbid")
    url: str = Field(min_length=8, max_length=2000, pattern=r"^https?://\S+$")
    secret: str | None = Field(None, min_length=8, max_length=200)


def webhook(a: ActionContext, p: Webhook) -> dict[str, Any]:
    return webhook_many([a], [p])[0]


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


# ---- the same actions for many runs at once (`many`) --------------------------------------------------------

Part = Callable[[list[ActionContext], list[Any]], list[dict[str, Any]]]


def _runs(contexts: list[ActionContext], params: list[Any], part: Part,
          key: Callable[[ActionContext, Any], Any] = lambda a, p: None) -> list[dict[str, Any]]:
    """`part` for each stretch of consecutive items with the same session, `now` and key, in list order."""
    if len(contexts) != len(params):
        raise ValueError("one params per context")
    out: list[dict[str, Any]] = []
    i = 0
    while i < len(contexts):
        first, k, j = contexts[i], key(contexts[i], params[i]), i + 1
        while (j < len(contexts) and contexts[j].session is first.session and contexts[j].now == first.now
               and key(contexts[j], params[j]) == k):
            j += 1
        out += part(contexts[i:j], params[i:j])
        i = j
    return out


def _order_ids(contexts: list[ActionContext]) -> list[int]:
    for a in contexts:
        if a.order_id is None:
            raise DomainError.one("order", "the triggering event has no order")
    return [a.order_id for a in contexts]  # type: ignore[misc]


def _customer_ids(contexts: list[ActionContext]) -> list[int]:
    for a in contexts:
        if a.customer_id is None:
            raise DomainError.one("customer", "the triggering event has no customer")
    return [a.customer_id for a in contexts]  # type: ignore[misc]


def _edit_orders(contexts: list[ActionContext], datas: list[Any]) -> list[dict[str, Any]]:
    edits = [(oid, d, a.ctx) for oid, d, a in zip(_order_ids(contexts), datas, contexts, strict=True)]
    changes = orders.edit_many(contexts[0].session, edits=edits, now=contexts[0].now)
    return [{"changed": [c[0] for c in ch]} for ch in changes]


def set_order_status_many(contexts: list[ActionContext], params: list[SetOrderStatus]) -> list[dict[str, Any]]:
    parsed: dict[str, Any] = {}  # one OrderEdit per status (edit_many does not change its data)

    def data(p: SetOrderStatus) -> Any:
        if p.status not in parsed:
            parsed[p.status] = orders.parse_edit({"status": p.status})
        return parsed[p.status]

    return _runs(contexts, params, lambda cs, ps: _edit_orders(cs, [data(p) for p in ps]))


def _field_data(p: SetOrderField) -> Any:
    if p.field.startswith("custom_fields."):  # merged into the custom fields as earlier edits left them
        return lambda current: orders.parse_edit(_field_edit(p, current["custom_fields"]))
    return orders.parse_edit(_field_edit(p))


def set_order_field_many(contexts: list[ActionContext], params: list[SetOrderField]) -> list[dict[str, Any]]:
    return _runs(contexts, params, lambda cs, ps: _edit_orders(cs, [_field_data(p) for p in ps]))


def _retag_many(contexts: list[ActionContext], params: list[TagAction], add: bool) -> list[dict[str, Any]]:
    # Stretches of one target: orders and customers are written apart, and the history and events must come
    # in list order.
    return _runs(contexts, params, lambda cs, ps: _retag_part(cs, ps, add), key=lambda a, p: p.target)


def _retag_part(contexts: list[ActionContext], params: list[TagAction], add: bool) -> list[dict[str, Any]]:
    session = contexts[0].session

    def retag(tag: str, current: list[str] | None) -> list[str] | None:
        tags = set(current or ())
        new = tags | {tag} if add else tags - {tag}
        return sorted(new) if new != tags else None

    if params[0].target == "order":
        def order_data(tag: str) -> Any:
            return lambda cur: None if (new := retag(tag, cur["tags"])) is None else orders.parse_edit({"tags": new})

        return _edit_orders(contexts, [order_data(p.tag) for p in params])

    def customer_data(tag: str) -> Any:
        return lambda cur: None if (new := retag(tag, cur["tags"])) is None else customers.parse_edit(
            session, {"tags": new}, site_id=cur["site_id"])

    edits = [(cid, customer_data(p.tag), a.ctx)
             for cid, p, a in zip(_customer_ids(contexts), params, contexts, strict=True)]
    changes = customers.edit_many(session, edits=edits, now=contexts[0].now)
    return [{"changed": [c[0] for c in ch]} for ch in changes]


def _task_data(a: ActionContext, p: CreateTask, manager_id: int | None) -> Any:
    try:
        return TaskCreate(title=render(p.title, a.variables, field="title")[:500],
                          text=render(p.text, a.variables, field="text") if p.text else None,
                          due_at=a.now + timedelta(minutes=p.due_in_minutes), manager_id=manager_id,
                          customer_id=a.customer_id, order_id=a.order_id)
    except ValidationError as exc:  # e.g. a title whose placeholders are all empty
        raise DomainError.from_pydantic(exc) from None


def create_task_many(contexts: list[ActionContext], params: list[CreateTask]) -> list[dict[str, Any]]:
    return _runs(contexts, params, _create_tasks)


def _create_tasks(contexts: list[ActionContext], params: list[CreateTask]) -> list[dict[str, Any]]:
    session = contexts[0].session
    wanted = {"order_manager": {a.order_id for a, p in zip(contexts, params, strict=True)
                                if p.assignee == "order_manager" and a.order_id is not None},
              "customer_manager": {a.customer_id for a, p in zip(contexts, params, strict=True)
                                   if p.assignee == "customer_manager" and a.customer_id is not None}}
    managers = {"order_manager": order_queries.managers_of(session, sorted(wanted["order_manager"])),
                "customer_manager": customers.managers_of(session, sorted(wanted["customer_manager"]))}
    items, assignees = [], []
    for a, p in zip(contexts, params, strict=True):
        manager_id = p.assignee if isinstance(p.assignee, int) else None
        if p.assignee == "order_manager" and a.order_id is not None:
            if a.order_id not in managers["order_manager"]:
                raise NotFound("id", f"order {a.order_id} not found")
            manager_id = managers["order_manager"][a.order_id]
        elif p.assignee == "customer_manager" and a.customer_id is not None:
            if a.customer_id not in managers["customer_manager"]:
                raise NotFound("id", f"customer {a.customer_id} not found")
            manager_id = managers["customer_manager"][a.customer_id]
        items.append((_task_data(a, p, manager_id), a.ctx))
        assignees.append(manager_id)
    ids = tasks.create_many(session, items=items, now=contexts[0].now)
    return [{"task_id": i, "manager_id": m} for i, m in zip(ids, assignees, strict=True)]


def _webhook_body(a: ActionContext) -> dict[str, Any]:
    return {"trigger": {"id": a.trigger_id, "name": a.trigger_name}, **a.variables}


def webhook_many(contexts: list[ActionContext], params: list[Webhook]) -> list[dict[str, Any]]:
    """Deliveries of the webhooks domain (its outbox, signature, client and delivery log), one per run and URL."""
    def part(cs: list[ActionContext], ps: list[Webhook]) -> list[dict[str, Any]]:
        calls = [{"trigger_id": a.trigger_id, "key": f"{a.key}:webhook:{p.url}", "url": p.url, "secret": p.secret,
                  "event_id": (a.event or {}).get("id"), "body": _webhook_body(a)} for a, p in zip(cs, ps, strict=True)]
        return [{"webhook_delivery_id": i} for i in webhooks.enqueue_calls(cs[0].session, calls=calls, now=cs[0].now)]

    return _runs(contexts, params, part)


def emit_event_many(contexts: list[ActionContext], params: list[EmitEvent]) -> list[dict[str, Any]]:
    def part(cs: list[ActionContext], ps: list[EmitEvent]) -> list[dict[str, Any]]:
        items = [(cid, p.name, p.data, a.ctx, f"{a.key}:event:{p.name}")
                 for cid, a, p in zip(_customer_ids(cs), cs, ps, strict=True)]
        return [{"emitted": e} for e in customers.emit_custom_events(cs[0].session, items=items, now=cs[0].now)]

    return _runs(contexts, params, part)


def _task_reads(p: CreateTask) -> bool:
    """A task's texts read the order or the customer (`{{ order.number }}`, or `{order.number}` as before)."""
    return any({"order", "customer"} & templates.variables(templates.from_legacy(text or ""))
               for text in (p.title, p.text))


ORDER, NONE, NO = ("order",), (), (lambda p: False)
BUILT_IN = (
    action("set_order_status", SetOrderStatus, set_order_status, check=_check_status, many=set_order_status_many,
           changes=lambda p: ORDER, reads=NO),
    action("set_order_field", SetOrderField, set_order_field, check=_check_field, many=set_order_field_many,
           changes=lambda p: ORDER, reads=NO),
    action("add_tag", TagAction, lambda a, p: _retag(a, p, True), description="Add a tag to the customer or order",
           many=lambda cs, ps: _retag_many(cs, ps, True), changes=lambda p: (p.target,), reads=NO),
    action("remove_tag", TagAction, lambda a, p: _retag(a, p, False),
           description="Remove a tag from the customer or order", many=lambda cs, ps: _retag_many(cs, ps, False),
           changes=lambda p: (p.target,), reads=NO),
    action("create_task", CreateTask, create_task, check=_check_task, many=create_task_many, changes=lambda p: NONE,
           reads=_task_reads),
    action("webhook", Webhook, webhook, many=webhook_many, changes=lambda p: NONE, calls=lambda p: {"url": p.url}),
    action("emit_event", EmitEvent, emit_event, many=emit_event_many, changes=lambda p: NONE, reads=NO),
)  # registered in `bootstrap.assemble`
