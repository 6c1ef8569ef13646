"""What the action steps do, each through the owning domain's service in the run's transaction: send (a messaging
cascade: consent, quiet hours and the frequency cap apply), tags, loyalty points, tasks, webhook calls. Each
change carries the journey as its actor; each idempotency key names the run and the step."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from retento.core.changes import ActorType, ChangeContext, Source
from retento.core.errors import DomainError
from retento.customers import service as customers
from retento.journeys.schemas import Points, Send, Tag, Task, Webhook
from retento.loyalty import service as loyalty
from retento.messaging import service as messaging
from retento.tasks import service as tasks
from retento.tasks.schemas import TaskCreate
from retento.triggers.actions import render
from retento.webhooks import service as webhooks


@dataclass
class StepContext:
    session: Session
    now: datetime
    journey_id: int
    journey_name: str
    version: int
    run_id: int
    customer: dict[str, Any]
    entry_event_id: int | None
    order: dict[str, Any] | None = None  # the entry event's order, as it is now
    event: dict[str, Any] | None = None  # a custom entry event's data

    @property
    def ctx(self) -> ChangeContext:
        return ChangeContext(Source.ROBOT, ActorType.SYSTEM, f"journey:{self.journey_id}", depth=1)

    def key(self, step_id: str) -> str:
        return f"journey:{self.run_id}:{step_id}"

    @property
    def variables(self) -> dict[str, Any]:
        return {"customer": self.customer, "order": self.order or {}, "event": self.event or {},
                "journey": {"id": self.journey_id, "name": self.journey_name, "version": self.version}}


def send(c: StepContext, step: Send) -> tuple[str, dict[str, Any]]:
    run = messaging.start_cascade(c.session, cascade_id=step.cascade_id, customer_id=c.customer["id"], now=c.now,
                                  message_class=step.message_class, context={
                                      "order": c.order, "vars": {"journey": c.variables["journey"],
                                                                 "event": c.event or {}}},
                                  idempotency_key=c.key(step.id))
    return "started", {"cascade_run_id": run.id}


def retag(c: StepContext, step: Tag) -> tuple[str, dict[str, Any]]:
    tags = set(c.customer.get("tags") or ())
    new = tags | {step.tag} if step.type == "add_tag" else tags - {step.tag}
    if new == tags:
        return "unchanged", {}
    customer = customers.get(c.session, c.customer["id"])
    data = customers.parse_edit(c.session, {"tags": sorted(new)}, site_id=customer.site_id)
    customers.edit(c.session, customer=customer, data=data, ctx=c.ctx, now=c.now)
    c.customer["tags"] = sorted(new)
    return "done", {"tags": sorted(new)}


def credit(c: StepContext, step: Points) -> tuple[str, dict[str, Any]]:
    account = loyalty.account_of(c.session, site_id=c.customer["site_id"], customer_id=c.customer["id"])
    if account is None:
        return "skipped", {"reason": "not a loyalty member"}
    op = loyalty.credit(c.session, account_id=account.id, amount=step.amount, reason=step.reason,
                        idempotency_key=c.key(step.id), ctx=c.ctx, now=c.now, expires_in_days=step.expires_in_days)
    return "credited", {"operation_id": op.id, "amount": str(op.amount)}


def task(c: StepContext, step: Task) -> tuple[str, dict[str, Any]]:
    manager_id = step.assignee if isinstance(step.assignee, int) else None
    if step.assignee == "customer_manager":
        manager_id = c.customer.get("manager_id")
    try:
        data = TaskCreate(title=render(step.title, c.variables, field="title")[:500],
                          text=render(step.text, c.variables, field="text") if step.text else None,
                          due_at=c.now + timedelta(minutes=step.due_in_minutes), manager_id=manager_id,
                          customer_id=c.customer["id"])
    except ValidationError as exc:  # e.g. a title whose placeholders are all empty
        raise DomainError.from_pydantic(exc) from None
    created = tasks.create_task(c.session, data=data, ctx=c.ctx, now=c.now)
    return "created", {"task_id": created.id, "manager_id": manager_id}


def webhook(c: StepContext, step: Webhook) -> tuple[str, dict[str, Any]]:
    body = {"journey": c.variables["journey"], "step": step.id, "run_id": c.run_id, "customer": c.customer,
            "order": c.order, "event": c.event}
    (delivery,) = webhooks.enqueue_calls(c.session, calls=[{
        "trigger_id": None, "key": c.key(step.id), "url": step.url, "secret": step.secret,
        "event_id": c.entry_event_id, "body": body}], now=c.now)
    return "queued", {"webhook_delivery_id": delivery}


EFFECTS = {"send": send, "add_tag": retag, "remove_tag": retag, "credit_points": credit, "create_task": task,
           "webhook": webhook}
