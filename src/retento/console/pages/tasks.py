"""Tasks for managers: mine (the manager with the user's email), overdue, open and done, in pages by key; create,
complete, reopen and reassign a task through the tasks service (the same one as /api/v1/tasks and triggers)."""

from __future__ import annotations

import secrets
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from retento.console import web
from retento.console.pages.customers import as_user
from retento.console.pages.messages import local_start
from retento.console.web import Viewer, app_of, reading, render, signed_in
from retento.core import parsing
from retento.core.db.transactions import transaction
from retento.core.errors import DomainError
from retento.sites import service as sites
from retento.tasks import service as tasks
from retento.tasks.schemas import TaskCreate, TaskEdit

router = web.router()
PAGE = web.Page(router, nav="Tasks", path="/tasks", order=15)
operations = web.may_change("operations")
PAGE_SIZE = 50
VIEWS = ("mine", "overdue", "open", "done")


def _filters(view: str, *, mine: int | None, manager: int | None, now: Any) -> dict[str, Any] | None:
    """The tasks service's filters of a view (None: "mine" for a user who is no manager)."""
    if view == "mine":
        return None if mine is None else {"manager_id": mine, "done": False}
    chosen = {"manager_id": manager} if manager else {}
    if view == "overdue":
        return {**chosen, "done": False, "due_before": now}
    return {**chosen, "done": view == "done"}


def _page(request: Request, viewer: Viewer, *, view: str, manager: int | None, after: int, status: int = 200,
          **context: Any) -> Response:
    now = app_of(request).clock.now()
    with transaction(reading(request)) as s:
        people = sites.list_managers(s)
        me = sites.manager_by_email(s, viewer.email)
        filters = _filters(view, mine=me.id if me else None, manager=manager, now=now)
        rows = [] if filters is None else tasks.list_tasks(s, **filters, after_id=after, limit=PAGE_SIZE + 1)
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    query = {"view": view, **({"manager": manager} if manager and view != "mine" else {})}
    return render(request, "tasks/list.html", status=status, tasks=rows, view=view, views=VIEWS, now=now,
                  key=secrets.token_urlsafe(16),
                  managers={m.id: m for m in people}, me=me, manager=manager, after=after,
                  query=urlencode(query), next_after=rows[-1].id if more else None, **context)


@router.get("/tasks")
def task_list(request: Request, viewer: Annotated[Viewer, Depends(signed_in)], view: str = "",
              manager: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
              after: Annotated[int, Query(ge=0, le=parsing.INT64_MAX)] = 0) -> Response:
    if view not in VIEWS:
        with transaction(reading(request)) as s:
            view = "mine" if sites.manager_by_email(s, viewer.email) else "open"
    return _page(request, viewer, view=view, manager=manager, after=after)


def _back(view: str, after: int = 0) -> str:
    return f"/tasks?{urlencode({'view': view if view in VIEWS else 'open', **({'after': after} if after else {})})}"


@router.post("/tasks")
def task_create(request: Request, viewer: Annotated[Viewer, Depends(operations)],
                title: Annotated[str, Form()] = "", text: Annotated[str, Form()] = "",
                due_at: Annotated[str, Form()] = "", manager_id: Annotated[str, Form()] = "",
                customer_id: Annotated[str, Form()] = "", order_id: Annotated[str, Form()] = "",
                view: Annotated[str, Form()] = "open",
                idempotency_key: Annotated[str, Form(max_length=64)] = "") -> Response:
    app = app_of(request)
    form = {"title": title, "text": text, "due_at": due_at, "manager_id": manager_id, "customer_id": customer_id,
            "order_id": order_id}
    try:
        raw = {"title": title, "text": text.strip() or None, "due_at": _due(due_at, viewer.timezone),
               **{k: form[k].strip() or None for k in ("manager_id", "customer_id", "order_id")}}
        data = _parse(TaskCreate, raw)
        with transaction(app.sessions) as s:
            task = tasks.create_task(s, data=data, ctx=as_user(viewer), now=app.clock.now(),
                                     idempotency_key=idempotency_key or None)
    except DomainError as exc:
        return _page(request, viewer, view=view if view in VIEWS else "open", manager=None, after=0, status=400,
                     errors=web.field_errors(exc), form=form)
    return RedirectResponse(f"{_back(view)}&saved={task.id}", status_code=303)


def _due(value: str, timezone: str) -> str | None:
    try:
        return local_start(value, timezone)
    except DomainError:
        raise DomainError.one("due_at", "not a date and time") from None


def _parse(model: Any, raw: dict[str, Any]) -> Any:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise DomainError.from_pydantic(exc) from None


def _edit(request: Request, task_id: int, data: TaskEdit) -> None:
    app = app_of(request)
    with transaction(app.sessions) as s:
        tasks.edit_task(s, task=tasks.get_task(s, task_id), data=data, now=app.clock.now())


@router.post("/tasks/{task_id}/done")
def task_done(request: Request, viewer: Annotated[Viewer, Depends(operations)], task_id: int,
              done: Annotated[bool, Form()] = True, view: Annotated[str, Form()] = "open",
              after: Annotated[int, Form(ge=0)] = 0) -> Response:
    """Mark a task done (or, with done=false, open again)."""
    _edit(request, task_id, TaskEdit(done=done))
    return RedirectResponse(f"{_back(view, after)}&saved={task_id}", status_code=303)


@router.post("/tasks/{task_id}/assign")
def task_assign(request: Request, viewer: Annotated[Viewer, Depends(operations)], task_id: int,
                manager_id: Annotated[str, Form()] = "", view: Annotated[str, Form()] = "open",
                after: Annotated[int, Form(ge=0)] = 0) -> Response:
    """Give a task to another manager (empty: to no one)."""
    _edit(request, task_id, _parse(TaskEdit, {"manager_id": manager_id.strip() or None}))
    return RedirectResponse(f"{_back(view, after)}&saved={task_id}", status_code=303)
