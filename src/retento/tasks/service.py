"""Manager tasks: created by people, the API and triggers; listed per manager, customer or order."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from retento.customers.models import Customer
from retento.errors import NotFound
from retento.history.schemas import ChangeContext
from retento.orders.models import Order
from retento.sites.models import Manager
from retento.tasks.models import Task
from retento.tasks.schemas import TaskCreate, TaskEdit


def create_task(session: Session, *, data: TaskCreate, ctx: ChangeContext, now: datetime) -> Task:
    _check_refs(session, manager_id=data.manager_id, customer_id=data.customer_id, order_id=data.order_id)
    task = Task(**data.model_dump(), done=False, source=ctx.source.value, actor_type=ctx.actor_type.value,
                actor_id=ctx.actor_id, created_at=now)
    session.add(task)
    session.flush()
    return task


def _check_refs(session: Session, *, manager_id: int | None = None, customer_id: int | None = None,
                order_id: int | None = None) -> None:
    for field, model, value in (("manager_id", Manager, manager_id), ("customer_id", Customer, customer_id),
                                ("order_id", Order, order_id)):
        if value is not None and session.get(model, value) is None:
            raise NotFound(field, f"{field.removesuffix('_id')} {value} not found")


def get_task(session: Session, task_id: int) -> Task:
    task = session.get(Task, task_id)
    if task is None:
        raise NotFound("id", f"task {task_id} not found")
    return task


def edit_task(session: Session, *, task: Task, data: TaskEdit, now: datetime) -> Task:
    given = data.model_fields_set
    if "manager_id" in given:
        _check_refs(session, manager_id=data.manager_id)
        task.manager_id = data.manager_id
    if "due_at" in given:
        task.due_at = data.due_at
    if "done" in given and data.done is not None and data.done != task.done:
        task.done, task.done_at = data.done, (now if data.done else None)
    session.flush()
    return task


def list_tasks(session: Session, *, manager_id: int | None = None, customer_id: int | None = None,
               order_id: int | None = None, done: bool | None = None, after_id: int = 0,
               limit: int = 100) -> list[Task]:
    """Tasks by id (page on with the last id you got), optionally filtered."""
    q = select(Task).where(Task.id > after_id)
    for column, value in ((Task.manager_id, manager_id), (Task.customer_id, customer_id),
                          (Task.order_id, order_id), (Task.done, done)):
        if value is not None:
            q = q.where(column == value)
    return list(session.scalars(q.order_by(Task.id).limit(limit)))
