"""What the action steps do, each through the owning domain's service in the run's transaction: send (a messaging
cascade: consent, quiet hours and the frequency cap apply), tags, loyalty points, tasks, webhook calls. Each
change carries the journey as its actor; each idempotency key names the run and the step.

`MANY` does one kind of step for many runs at once through the domains' set-based forms (a few statements for the
whole batch), with the same effect as doing them one run at a time in list order; it raises the DomainError of
the first run whose step cannot be done, before writing anything (the runner then does that kind one run at a
time, so only the refused step is logged failed)."""

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
from retento.sites.models import Site
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


def credit(c: StepContext, step: Points) -> tuple[str, dict[str, Any]]:
    account = loyalty.account_of(c.session, site_id=c.customer["site_id"], customer_id=c.customer["id"])
    if account is None:
        return "skipped", {"reason": "not a loyalty member"}
    op = loyalty.credit(c.session, account_id=account.id, amount=step.amount, reason=step.reason,
                        idempotency_key=c.key(step.id), ctx=c.ctx, now=c.now, expires_in_days=step.expires_in_days)
    return "credited", {"operation_id": op.id, "amount": str(op.amount)}


Result = tuple[str, dict[str, Any]]


def send_many(cs: list[StepContext], steps: list[Send]) -> list[Result]:
    items = [{"cascade_id": st.cascade_id, "customer_id": c.customer["id"], "message_class": st.message_class,
              "context": {"order": c.order, "vars": {"journey": c.variables["journey"], "event": c.event or {}}},
              "idempotency_key": c.key(st.id)} for c, st in zip(cs, steps, strict=True)]
    ids = messaging.start_cascades(cs[0].session, items=items, now=cs[0].now)
    return [("started", {"cascade_run_id": i}) for i in ids]


def retag_many(cs: list[StepContext], steps: list[Tag]) -> list[Result]:
    session, new_tags = cs[0].session, [None] * len(cs)
    # the sites held while the batch parses its edits (the session's identity map keeps only what is referenced),
    # and one parsed edit per site and tag list
    sites = [session.get(Site, i) for i in {c.customer["site_id"] for c in cs}]
    parsed: dict[tuple[int, tuple[str, ...]], Any] = {}

    def edit(k: int, step: Tag) -> Any:
        def data(current: dict[str, Any]) -> Any:
            tags = set(current["tags"] or ())
            new = tags | {step.tag} if step.type == "add_tag" else tags - {step.tag}
            if new == tags:
                return None
            new_tags[k] = sorted(new)
            key = (current["site_id"], tuple(sorted(new)))
            if key not in parsed:
                parsed[key] = customers.parse_edit(session, {"tags": sorted(new)}, site_id=current["site_id"])
            return parsed[key]
        return data

    customers.edit_many(session, edits=[(c.customer["id"], edit(k, st), c.ctx)
                                        for k, (c, st) in enumerate(zip(cs, steps, strict=True))], now=cs[0].now)
    del sites
    out: list[Result] = []
    for c, tags in zip(cs, new_tags, strict=True):
        if tags is None:
            out.append(("unchanged", {}))
        else:
            c.customer["tags"] = tags
            out.append(("done", {"tags": tags}))
    return out


def credit_many(cs: list[StepContext], steps: list[Points]) -> list[Result]:
    return [credit(c, st) for c, st in zip(cs, steps, strict=True)]  # loyalty credits one account at a time


def task_many(cs: list[StepContext], steps: list[Task]) -> list[Result]:
    items, managers = [], []
    for c, st in zip(cs, steps, strict=True):
        manager_id = st.assignee if isinstance(st.assignee, int) else None
        if st.assignee == "customer_manager":
            manager_id = c.customer.get("manager_id")
        try:
            data = TaskCreate(title=render(st.title, c.variables, field="title")[:500],
                              text=render(st.text, c.variables, field="text") if st.text else None,
                              due_at=c.now + timedelta(minutes=st.due_in_minutes), manager_id=manager_id,
                              customer_id=c.customer["id"])
        except ValidationError as exc:
            raise DomainError.from_pydantic(exc) from None
        items.append((data, c.ctx))
        managers.append(manager_id)
    ids = tasks.create_many(cs[0].session, items=items, now=cs[0].now)
    return [("created", {"task_id": i, "manager_id": m}) for i, m in zip(ids, managers, strict=True)]


def webhook_many(cs: list[StepContext], steps: list[Webhook]) -> list[Result]:
    calls = [{"trigger_id": None, "key": c.key(st.id), "url": st.url, "secret": st.secret,
              "event_id": c.entry_event_id, "body": {"journey": c.variables["journey"], "step": st.id,
                                                     "run_id": c.run_id, "customer": c.customer, "order": c.order,
                                                     "event": c.event}} for c, st in zip(cs, steps, strict=True)]
    ids = webhooks.enqueue_calls(cs[0].session, calls=calls, now=cs[0].now)
    return [("queued", {"webhook_delivery_id": i}) for i in ids]


MANY = {"send": send_many, "add_tag": retag_many, "remove_tag": retag_many, "credit_points": credit_many,
        "create_task": task_many, "webhook": webhook_many}
