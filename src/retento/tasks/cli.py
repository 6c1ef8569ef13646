"""`retento tasks ...`: manager tasks."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from retento.cmdline import open_app, run_service
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
) -> None:
    """List tasks."""
    a = open_app()
    table = Table("id", "due (UTC)", "manager", "order", "customer", "done", "title")
    with transaction(a.sessions) as s:
        for t in service.list_tasks(s, manager_id=manager, order_id=order, done=False if open_only else None,
                                    limit=limit):
            table.add_row(str(t.id), t.due_at.strftime("%Y-%m-%d %H:%M") if t.due_at else "-",
                          str(t.manager_id or "-"), str(t.order_id or "-"), str(t.customer_id or "-"),
                          "yes" if t.done else "no", t.title)
    console.print(table)


@app.command("done")
def done(task_id: int) -> None:
    """Mark a task done."""
    a = open_app()
    with transaction(a.sessions) as s:
        run_service(lambda: service.edit_task(s, task=service.get_task(s, task_id), data=TaskEdit(done=True),
                                              now=a.clock.now()))
    console.print(f"task {task_id} done")
