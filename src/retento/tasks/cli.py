"""`retento tasks ...`: manager tasks."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from retento.cmdline import Col, Format, FormatOption, Rows, emit, open_app, run_service
from retento.core.db.transactions import transaction
from retento.tasks import service
from retento.tasks.schemas import TaskEdit

app = typer.Typer(help="Manager tasks. / Задачи менеджеров.", no_args_is_help=True)
console = Console()


@app.command("list")
def list_(
    manager: Annotated[int | None, typer.Option(help="Assignee manager id")] = None,
    order: Annotated[int | None, typer.Option(help="Order id")] = None,
    open_only: Annotated[bool, typer.Option("--open/--all", help="Only tasks not done")] = True,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    fmt: FormatOption = Format.table,
) -> None:
    """List tasks."""
    a = open_app()
    with transaction(a.sessions) as s:
        rows = [{"id": t.id, "due_at": t.due_at, "manager_id": t.manager_id, "order_id": t.order_id,
                 "customer_id": t.customer_id, "done": t.done, "title": t.title}
                for t in service.list_tasks(s, manager_id=manager, order_id=order, done=False if open_only else None,
                                            limit=limit)]
    emit(fmt, Rows("tasks", [Col("id", kind="int"), Col("due_at", "due (UTC)", kind="time", empty="-"),
                             Col("manager_id", "manager", empty="-"), Col("order_id", "order", empty="-"),
                             Col("customer_id", "customer", empty="-"),
                             Col("done", show=lambda done: "yes" if done else "no"), Col("title")], rows))


@app.command("done")
def done(task_id: int) -> None:
    """Mark a task done."""
    a = open_app()
    with transaction(a.sessions) as s:
        run_service(lambda: service.edit_task(s, task=service.get_task(s, task_id), data=TaskEdit(done=True),
                                              now=a.clock.now()))
    console.print(f"task {task_id} done")
