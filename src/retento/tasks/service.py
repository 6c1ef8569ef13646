"""Manager tasks: created by people, the API and triggers; listed per manager, customer or order."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from retento.core import scoping
from retento.core.changes import ChangeContext
from retento.core.db.bulk import insert_rows, reserve_ids
from retento.core.errors import NotFound
from retento.customers.merges import Merge
from retento.customers.models import Customer
from retento.orders.models import Order
from retento.sites.models import Manager
from retento.tasks.models import Task
from retento.tasks.schemas import TaskCreate, TaskEdit


def create_task(session: Session, *, data: TaskCreate, ctx: ChangeContext, now: datetime,
                idempotency_key: str | None = None) -> Task:
    """A new task; with `idempotency_key`, the task this actor already created with that key, if any (a form sent
    twice, concurrently too, creates one)."""
    _check_refs(session, manager_id=data.manager_id, customer_id=data.customer_id, order_id=data.order_id)
    if idempotency_key is not None and (earlier := _by_key(session, ctx, idempotency_key)) is not None:
        return earlier
    task = Task(**_row(data, ctx, now), idempotency_key=idempotency_key)
    try:
        with session.begin_nested():
            session.add(task)
            session.flush()
    except IntegrityError:  # the same key committed first by a concurrent request
        if idempotency_key is None or (earlier := _by_key(session, ctx, idempotency_key)) is None:
            raise
        return earlier
    return task


def _by_key(session: Session, ctx: ChangeContext, key: str) -> Task | None:
    return session.scalar(select(Task).where(Task.actor_type == ctx.actor_type.value, Task.actor_id == ctx.actor_id,
                                             Task.idempotency_key == key))


def _row(data: TaskCreate, ctx: ChangeContext, now: datetime) -> dict[str, Any]:
    return {**data.model_dump(), "done": False, "done_at": None, "source": ctx.source.value,
            "actor_type": ctx.actor_type.value, "actor_id": ctx.actor_id, "created_at": now}


_REFS = (("manager_id", Manager), ("customer_id", Customer), ("order_id", Order))
_EXISTING = {field: select(model.id).where(model.id.in_(bindparam("ids", expanding=True)))  # built once
             for field, model in _REFS}


def create_many(session: Session, *, items: Sequence[tuple[TaskCreate, ChangeContext]], now: datetime) -> list[int]:
    """`create_task` for many (data, ctx): the same rows as creating them one by one in list order, in a few
    statements (one reference check per kind for all ids). Returns the new ids, in order. Raises the NotFound of
    the first task with an unknown manager, customer or order before writing anything."""
    if not items:
        return []
    found: dict[str, set[int]] = {}
    for field, query in _EXISTING.items():
        wanted = sorted({v for d, _ in items if (v := getattr(d, field)) is not None})
        found[field] = {i for n in range(0, len(wanted), 900)
                        for i in session.scalars(query, {"ids": wanted[n:n + 900]})}
    for d, _ in items:
        for field, _model in _REFS:
            if (value := getattr(d, field)) is not None and value not in found[field]:
                raise NotFound(field, f"{field.removesuffix('_id')} {value} not found")
    ids = reserve_ids(session, Task.__table__, len(items))
    insert_rows(session, Task.__table__, [{"id": i, **_row(d, ctx, now)} for i, (d, ctx) in zip(ids, items, strict=True)])
    return ids


def _check_refs(session: Session, *, manager_id: int | None = None, customer_id: int | None = None,
                order_id: int | None = None) -> None:
    """Each given manager, customer and order exists (and, for a site-limited key, is of its sites)."""
    for field, model, value in (("manager_id", Manager, manager_id), ("customer_id", Customer, customer_id),
                                ("order_id", Order, order_id)):
        if value is not None:
            scoping.require(session, model, value, field)


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
               order_id: int | None = None, done: bool | None = None, due_before: datetime | None = None,
               after_id: int = 0, limit: int = 100) -> list[Task]:
    """Tasks by id (page on with the last id you got), optionally filtered (by a manager, customer or order that
    exists: else a 404 naming the filter; `due_before`: due earlier than that time, e.g. now for the overdue)."""
    _check_refs(session, manager_id=manager_id, customer_id=customer_id, order_id=order_id)
    q = select(Task).where(Task.id > after_id)
    for column, value in ((Task.manager_id, manager_id), (Task.customer_id, customer_id),
                          (Task.order_id, order_id), (Task.done, done)):
        if value is not None:
            q = q.where(column == value)
    if due_before is not None:
        q = q.where(Task.due_at < due_before)
    return list(session.scalars(q.order_by(Task.id).limit(limit)))


def merge_customers(session: Session, merge: Merge) -> dict[str, int]:
    """The `customer_merge` handler (customers.merging): tasks about a merged customer are about the kept one."""
    return {"tasks": merge.move(session, Task.__table__)}
