"""`retento customers ...`: customers from the command line."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from retento.cmdline import open_app, run_service
from retento.core.changes import ChangeContext, Source
from retento.core.db.transactions import transaction
from retento.customers import merging

app = typer.Typer(help="Customers. / Клиенты.", no_args_is_help=True)
console = Console()
CLI = ChangeContext.system(Source.USER)


@app.command("merge")
def merge(
    keep: Annotated[int, typer.Argument(help="The customer that stays / клиент, который остаётся")],
    duplicates: Annotated[list[int], typer.Argument(
        metavar="MERGE...", help="Duplicates merged into KEEP and deleted / дубли, которые вливаются в KEEP")],
    site: Annotated[str, typer.Option(help="Site code of every customer named / код сайта")],
) -> None:
    """Merge duplicate customers into KEEP: their orders, dialogs, messages, loyalty account, journeys, tasks move
    to it, the fields KEEP lacks are filled from them, and their ids answer as merged into KEEP.
    / Объединить дубли с клиентом KEEP."""
    a = open_app()
    with transaction(a.sessions) as s:
        done = run_service(lambda: merging.merge(s, site=site, keep_id=keep, merge_ids=duplicates, ctx=CLI,
                                                 now=a.clock.now()))
    if done.replayed:
        console.print(f"customers {', '.join(map(str, duplicates))} were merged into customer {keep} before; "
                      "nothing changed")
        return
    moved = ", ".join(f"{k} {v}" for k, v in done.moved.items() if v) or "nothing else"
    console.print(f"merged {', '.join(map(str, done.merged_ids))} into customer {keep}; moved: {moved}")
