"""`retento import customers|orders|products FILE`: thin wrapper over `retento.imports.service`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from retento.cmdline import open_app
from retento.imports.formats import UnusableInput
from retento.imports.schemas import Kind
from retento.imports.service import import_file

import_app = typer.Typer(help="Import customers, orders or products from CSV or JSON Lines (see docs/import.md).",
                         no_args_is_help=True)
console = Console()
err = Console(stderr=True)
SHOWN = 20  # rejected rows printed on the terminal; all of them are in the .errors file

FileArg = Annotated[Path, typer.Argument(help="A .csv (header row) or .jsonl / .ndjson file")]
FormatOpt = Annotated[str | None, typer.Option("--format", help="csv or jsonl (default: from the extension)")]
SiteOpt = Annotated[str | None, typer.Option("--site", help="Site code for rows that name none")]
RejectsOpt = Annotated[Path | None, typer.Option(
    "--rejects", help="Where rejected rows go (default: FILE.rejects.EXT next to the input)")]
BatchOpt = Annotated[int, typer.Option("--batch", min=1, max=10_000, help="Rows per transaction")]


def _run(kind: Kind, path: Path, fmt: str | None, site: str | None, rejects: Path | None, batch: int) -> None:
    app = open_app(log=False)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("rows"),
               TimeElapsedColumn(), TimeRemainingColumn())
    try:
        with Progress(*columns, console=err, transient=False) as progress:
            task = progress.add_task(f"import {kind.value} from {path.name}", total=None)
            result = import_file(
                app.sessions, clock=app.clock, kind=kind, path=path, fmt=fmt, site=site, rejects=rejects,
                batch_size=batch,
                on_progress=lambda done, total: progress.update(task, completed=done, total=total),
            )
        with err.status("updating rollups and segments"):
            app.bring_up_to_date()  # what a worker would do: `retento rfm` and segments read them
    except UnusableInput as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    finally:
        app.close()
    for line, message in result.rejected[:SHOWN]:
        err.print(f"line {line}: {message}", markup=False, highlight=False, soft_wrap=True)
    if len(result.rejected) > SHOWN:
        err.print(f"... and {len(result.rejected) - SHOWN} more rejected rows")
    c = result.counts
    rate = result.total / result.seconds if result.seconds else 0.0
    console.print(f"{kind.value}: {result.total} rows, {c['created']} created, {c['updated']} updated, "
                  f"{c['unchanged']} unchanged, {len(result.rejected)} rejected "
                  f"({result.seconds:.1f} s, {rate:,.0f} rows/s)", highlight=False, soft_wrap=True)
    if result.rejected:
        err.print(f"rejected rows: {result.rejects_path}\nreasons: {result.errors_path}", highlight=False)
        raise typer.Exit(1)


@import_app.command("customers")
def import_customers(path: FileArg, fmt: FormatOpt = None, site: SiteOpt = None, rejects: RejectsOpt = None,
                     batch: BatchOpt = 500) -> None:
    """Import customers; a row with a stored externalId (on its site) updates that customer."""
    _run(Kind.CUSTOMERS, path, fmt, site, rejects, batch)


@import_app.command("orders")
def import_orders(path: FileArg, fmt: FormatOpt = None, site: SiteOpt = None, rejects: RejectsOpt = None,
                  batch: BatchOpt = 500) -> None:
    """Import orders (import their customers first); a row with a stored externalId updates that order."""
    _run(Kind.ORDERS, path, fmt, site, rejects, batch)


@import_app.command("products")
def import_products(path: FileArg, fmt: FormatOpt = None, site: SiteOpt = None, rejects: RejectsOpt = None,
                    batch: BatchOpt = 500) -> None:
    """Import goods and services of the catalogue; a row with a stored offer id updates that product."""
    _run(Kind.PRODUCTS, path, fmt, site, rejects, batch)
