"""`retento bench ...`: performance benchmarks with a baseline measured in the same run."""

from __future__ import annotations

import os
import platform
import sys
from datetime import datetime, timezone
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from retento.bench import ingest as ingest_bench
from retento.bench.targets import DEFAULT_PG_DSN, fresh

bench_app = typer.Typer(help="Benchmarks (results belong in docs/benchmarks.md).", no_args_is_help=True)
console = Console()


@bench_app.command("ingest")
def ingest(
    orders: Annotated[int, typer.Option("--orders", min=1, help="How many orders to ingest")] = 100_000,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Orders per transaction")] = 1000,
    backends: Annotated[str, typer.Option(help="Comma-separated: sqlite, postgres")] = "sqlite,postgres",
    pg_dsn: Annotated[
        str, typer.Option(envvar="RETENTO_TEST_PG_DSN", help="PostgreSQL server for the throwaway databases")
    ] = DEFAULT_PG_DSN,
    seed: Annotated[int, typer.Option(help="Seed of the generated orders")] = 7,
) -> None:
    """Ingest generated orders through the service layer; compare with driver executemany of the same rows."""
    chosen = [b.strip() for b in backends.split(",") if b.strip()]
    if not chosen or set(chosen) - {"sqlite", "postgres"}:
        console.print("[red]error:[/red] --backends: use sqlite, postgres or both")
        raise typer.Exit(2)
    results, load, started = [], os.getloadavg()[0], datetime.now(timezone.utc)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        for backend in chosen:
            with fresh(backend, pg_dsn) as target:
                results.append(
                    ingest_bench.run(
                        target,
                        n_orders=orders,
                        batch=batch,
                        progress=progress,
                        seed=seed,
                    )
                )
    table = Table("backend", "orders", "rows", "Retento s", "orders/s", "orders/CPU s", "baseline s", "ratio",
                  "CPU ratio", title=f"ingest, {batch} orders per transaction")
    for r in results:
        table.add_row(r.version, f"{r.orders:,}", f"{r.total_rows:,}", f"{r.retento.wall:.2f}",
                      f"{r.orders_per_s:,.0f}", f"{r.orders_per_cpu_s:,.0f}", f"{r.baseline.wall:.2f}",
                      f"{r.ratio:.2f}x", f"{r.retento.cpu / r.baseline.cpu:.2f}x")
    console.print(table)
    print("\nMarkdown for docs/benchmarks.md (printed, not written to the file):\n")
    print(markdown(results, " ".join(sys.argv[1:]), load, started))


def markdown(results: list[ingest_bench.Result], command: str, load: float, started: datetime) -> str:
    lines = [
        f"Run {started:%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load average {load:.1f} at the start: `retento {command}`",
        "",
        "| backend | orders | rows written | Retento s | orders/s | Retento CPU s | orders/CPU s "
        "| baseline s | baseline CPU s | ratio |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        rows = ", ".join(f"{k} {v:,}" for k, v in r.rows.items())
        lines.append(
            f"| {r.version} | {r.orders:,} | {r.total_rows:,} ({rows}) | {r.retento.wall:.2f} | {r.orders_per_s:,.0f} "
            f"| {r.retento.cpu:.2f} | {r.orders_per_cpu_s:,.0f} | {r.baseline.wall:.2f} | {r.baseline.cpu:.2f} "
            f"| {r.ratio:.2f}x |"
        )
    return "\n".join(lines)
