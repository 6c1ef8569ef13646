"""`retento work`: queues of deferred work, dead letters, retry and drop."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from rich.console import Console

from retento.cmdline import Col, Format, FormatOption, Rows, emit, open_app, run_service
from retento.core.db.transactions import transaction
from retento.queues import service

app = typer.Typer(help="Deferred work: queues, dead letters, retry, drop. / Отложенная работа: очереди, "
                       "неудачные задания, повтор, удаление.", invoke_without_command=True)
console = Console()


def _age(oldest: str, now: datetime) -> str:
    seconds = int((now - datetime.fromisoformat(oldest)).total_seconds())
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds}s"


@app.callback()
def overview(ctx: typer.Context, fmt: FormatOption = Format.table) -> None:
    """Every queue: due now, later, leased, expired leases, dead, age of the oldest due work."""
    if ctx.invoked_subcommand is not None:
        return
    a = open_app()
    now = a.clock.now()
    with transaction(a.sessions) as s:
        rows = service.overview(s, a.work, now=now)
    columns = [Col("queue"), Col("label", "what"), *(Col(k, kind="int") for k in ("due", "later", "leased", "expired",
                                                                                   "dead")),
               Col("oldest_due", "oldest due", empty="-", show=lambda at: _age(at, now))]
    emit(fmt, Rows("queues", columns, rows), notes=[f"{r['queue']}: {note}" for r in rows for note in r["notes"]])


@app.command("dead")
def dead(queue: str, after_id: Annotated[int, typer.Option()] = 0,
         limit: Annotated[int, typer.Option(min=1, max=1000)] = 50, fmt: FormatOption = Format.table) -> None:
    """Dead letters of a queue (and its other states an operator acts on), oldest first, with the last error."""
    a = open_app()
    with transaction(a.sessions) as s:
        rows = run_service(lambda: service.dead(s, a.work, name=queue, after_id=after_id, limit=limit))
    emit(fmt, Rows("dead", [Col("id", kind="int"), Col("state"), Col("attempts", kind="int", empty="-"),
                            Col("error", "last error")], rows))


@app.command("retry")
def retry(queue: str, ids: list[int]) -> None:
    """Make dead work due again now, with fresh attempts (a message: resend it)."""
    _act("retry", queue, ids)


@app.command("drop")
def drop(queue: str, ids: list[int]) -> None:
    """Give dead work up for good."""
    _act("drop", queue, ids)


def _act(what: str, queue: str, ids: list[int]) -> None:
    a = open_app()
    with transaction(a.sessions) as s:
        done = run_service(lambda: getattr(service, what)(s, a.work, name=queue, ids=ids, now=a.clock.now()))
    skipped = sorted(set(ids) - set(done))
    why = "not dead, or the same work is live again" if what == "retry" else "not dead"
    console.print(f"{what}: {', '.join(map(str, done)) or 'nothing'}"
                  + (f"; left alone ({why}): {', '.join(map(str, skipped))}" if skipped else ""))
