"""/api/v1/tasks: manager tasks."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Query

from retento.apikeys.api import require
from retento.apikeys.schemas import Principal
from retento.app import App
from retento.core.db.transactions import transaction
from retento.core.rest.problems import router as v1_router
from retento.routes import app_of
from retento.tasks import service
from retento.tasks.schemas import TaskCreate, TaskEdit, TaskOut

router = v1_router("tasks")
AppDep = Annotated[App, Depends(app_of)]


@router.get("/tasks", response_model=list[TaskOut], summary="Tasks, filtered by assignee, customer, order, done")
def list_tasks(app: AppDep, _: Annotated[Principal, Depends(require("tasks:read"))], manager_id: int | None = None,
               customer_id: int | None = None, order_id: int | None = None, done: bool | None = None,
               after_id: int = 0, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[Any]:
    with transaction(app.sessions) as s:
        return service.list_tasks(s, manager_id=manager_id, customer_id=customer_id, order_id=order_id, done=done,
                                  after_id=after_id, limit=limit)


@router.post("/tasks", response_model=TaskOut, status_code=201, summary="Create a task")
def create_task(app: AppDep, principal: Annotated[Principal, Depends(require("tasks:write"))],
                data: TaskCreate) -> Any:
    with transaction(app.sessions) as s:
        return service.create_task(s, data=data, ctx=principal.ctx, now=app.clock.now())


@router.patch("/tasks/{task_id}", response_model=TaskOut, summary="Mark done, reassign or reschedule a task")
def edit_task(app: AppDep, _: Annotated[Principal, Depends(require("tasks:write"))], task_id: int,
              data: TaskEdit) -> Any:
    with transaction(app.sessions) as s:
        return service.edit_task(s, task=service.get_task(s, task_id), data=data, now=app.clock.now())
