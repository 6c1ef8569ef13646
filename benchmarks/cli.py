"""`retento bench ...`: performance benchmarks with a baseline measured in the same run."""

from __future__ import annotations

import math
import os
import platform
import sys
from datetime import datetime, timedelta, timezone
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from benchmarks import assist as assist_bench, ingest as ingest_bench
from benchmarks.targets import DEFAULT_PG_DSN, fresh

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


@bench_app.command("api")
def api(
    rate: Annotated[int, typer.Option(min=1, max=5000, help="Requests per second, per scenario")] = 500,
    seconds: Annotated[float, typer.Option(min=1, max=120, help="Measured duration of each scenario")] = 10,
    warmup: Annotated[float, typer.Option(min=0, max=30, help="Unmeasured warm-up of each scenario")] = 2,
    backends: Annotated[str, typer.Option(help="Comma-separated: sqlite, postgres")] = "sqlite",
    server_workers: Annotated[str, typer.Option(help="Comma-separated uvicorn worker counts to run, e.g. 1,2")] = "1",
    clients: Annotated[int, typer.Option(min=1, max=256, help="Keep-alive connections sending the load")] = 16,
    routes: Annotated[str, typer.Option(help="Comma-separated: hello, customer, event, inbox")] = "hello,customer,event",
    capacity: Annotated[bool, typer.Option(help="Also each route as fast as the clients get answers")] = False,
    pg_dsn: Annotated[str, typer.Option(envvar="RETENTO_TEST_PG_DSN",
                                        help="PostgreSQL server for the throwaway databases")] = DEFAULT_PG_DSN,
) -> None:
    """A real server in its own process, driven over loopback at a fixed rate: GET a customer, POST an event,
    and a bare hello-world route of the same app as the baseline; with --capacity also the most each route
    answers (closed loop), to compare worker counts."""
    from benchmarks import api as api_bench

    chosen = [b.strip() for b in backends.split(",") if b.strip()]
    if not chosen or set(chosen) - {"sqlite", "postgres"}:
        console.print("[red]error:[/red] --backends: use sqlite, postgres or both")
        raise typer.Exit(2)
    picked = tuple(r for r in api_bench.ROUTES if r in {r.strip() for r in routes.split(",")})
    if not picked or {r.strip() for r in routes.split(",") if r.strip()} - set(api_bench.ROUTES):
        console.print("[red]error:[/red] --routes: use hello, customer, event, inbox (comma-separated)")
        raise typer.Exit(2)
    try:
        worker_counts = [int(w) for w in server_workers.split(",") if w.strip()]
    except ValueError:
        worker_counts = []
    if not worker_counts or not all(1 <= w <= 16 for w in worker_counts):
        console.print("[red]error:[/red] --server-workers: whole numbers from 1 to 16, e.g. 1,2")
        raise typer.Exit(2)
    rows = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    load = os.getloadavg()
    with Progress(*columns, console=console, transient=False) as progress:
        for backend in chosen:
            for workers in worker_counts:
                with fresh(backend, pg_dsn) as target:
                    version = target.version
                    rows += [(version, r) for r in api_bench.run(
                        target, rate=rate, seconds=seconds, warmup=warmup, progress=progress, workers=workers,
                        clients=clients, routes=picked, capacity=capacity)]
    load = tuple(max(a, b) for a, b in zip(load, os.getloadavg(), strict=True))
    lines = [f"Run {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, "
             f"Python {platform.python_version()}, load average (1/5/15 min, the higher of start and end) "
             f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}, {clients} clients: `retento {' '.join(sys.argv[1:])}`",
             "",
             "| backend | workers | route | target rps | achieved rps | errors | p50 ms | p99 ms | max ms "
             "| p99 vs baseline | server CPU ms / request | client CPU ms / request | to the live stream p99 ms |",
             "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    table = Table("backend", "workers", "route", "target rps", "achieved rps", "errors", "p50 ms", "p99 ms",
                  "max ms", "p99 / baseline", "server CPU ms/req", "client CPU ms/req", "stream p99 ms",
                  title="API latency at a fixed rate")
    base = {(version, r.workers, r.rate): r.p99_ms for version, r in rows if r.name.startswith("GET /bench/hello")}
    for version, r in rows:
        baseline = base.get((version, r.workers, r.rate))
        ratio = f"{r.p99_ms / baseline:.1f}x" if baseline else "-"
        cells = (version, str(r.workers), r.name, str(r.rate or "max"), f"{r.rps:,.0f}", str(r.errors),
                 f"{r.p50_ms:.1f}",
                 f"{r.p99_ms:.1f}", f"{r.max_ms:.1f}", ratio, f"{r.cpu_ms_per_request:.2f}",
                 f"{r.client_cpu_s * 1000 / r.sent:.2f}" if r.sent else "nan",
                 f"{api_bench.percentile(r.screen_ms, 0.99):.0f} ({len(r.screen_ms):,})" if r.screen_ms else "-")
        table.add_row(*cells)
        lines.append("| " + " | ".join(cells) + " |")
    console.print(table)
    print("\nMarkdown for docs/benchmarks.md (printed, not written to the file):\n")
    print("\n".join(lines))


@bench_app.command("inbox")
def inbox(
    rate: Annotated[int, typer.Option(min=1, max=5000, help="Inbound messages per second")] = 500,
    seconds: Annotated[float, typer.Option(min=1, max=120, help="Measured duration")] = 10,
    backends: Annotated[str, typer.Option(help="Comma-separated: sqlite, postgres")] = "sqlite,postgres",
    server_workers: Annotated[str, typer.Option(help="Comma-separated API process counts, e.g. 1,2")] = "1,2",
    clients: Annotated[int, typer.Option(min=1, max=256, help="Connections delivering updates (a Telegram bot's "
                                         "default `max_connections` is 40)")] = 40,
    warmup: Annotated[float, typer.Option(min=0, max=30, help="Unmeasured warm-up of each scenario")] = 2,
    capacity: Annotated[bool, typer.Option(help="Also as fast as the server answers")] = False,
    pg_dsn: Annotated[str, typer.Option(envvar="RETENTO_TEST_PG_DSN",
                                        help="PostgreSQL server for the throwaway databases")] = DEFAULT_PG_DSN,
) -> None:
    """Inbound webhook ingestion (Telegram updates, one in ten a repeat stored once) at a fixed rate, with an
    operator's live stream open: messages/s, p99, and each message's delay to the screen; the app's bare
    hello-world route is the baseline of the same run (`bench api --routes hello,inbox`)."""
    api(rate=rate, seconds=seconds, warmup=warmup, backends=backends, server_workers=server_workers, clients=clients,
        routes="hello,inbox", capacity=capacity, pg_dsn=pg_dsn)


@bench_app.command("cascade")
def cascade(
    recipients: Annotated[int, typer.Option(min=1, help="Campaign members to plan")] = 1_000_000,
    deliver: Annotated[int, typer.Option(min=1, help="Messages to deliver over HTTP")] = 50_000,
    emails: Annotated[int, typer.Option(min=0, help="Emails sent over SMTP for the per-message window (0: skip)")]
    = 20_000,
    wait_minutes: Annotated[float, typer.Option(min=1, help="The email step's window")] = 60,
    tick: Annotated[float, typer.Option(min=0.1, help="Seconds between cascade timer ticks")] = 1.0,
    workers: Annotated[int, typer.Option(min=1, help="Sending worker processes (1 on SQLite)")] = 2,
    backends: Annotated[str, typer.Option(help="Comma-separated: sqlite, postgres")] = "sqlite,postgres",
    pg_dsn: Annotated[str, typer.Option(envvar="RETENTO_TEST_PG_DSN")] = DEFAULT_PG_DSN,
) -> None:
    """Cascade planning against a driver insert of the same outbox rows; delivery against a minimal client;
    emails/s over SMTP against a minimal smtplib client, and the window each email was granted."""
    from benchmarks import cascade as cascade_bench, cascade_window

    chosen = [b.strip() for b in backends.split(",") if b.strip()]
    if not chosen or set(chosen) - {"sqlite", "postgres"}:
        console.print("[red]error:[/red] --backends: use sqlite, postgres or both")
        raise typer.Exit(2)
    results, windows = [], []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        for backend in chosen:
            n = 1 if backend == "sqlite" else workers
            with fresh(backend, pg_dsn) as plan_target, fresh(backend, pg_dsn) as deliver_target:
                results.append(cascade_bench.run(plan_target, deliver_target, recipients=recipients, deliver=deliver,
                                                 workers=n, progress=progress))
            if emails:
                with fresh(backend, pg_dsn) as target:
                    windows.append(cascade_window.run(target, emails=emails, workers=n,
                                                      wait=timedelta(minutes=wait_minutes),
                                                      tick=timedelta(seconds=tick), progress=progress))
    lines = [f"Run {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, Python "
             f"{platform.python_version()}, load average {os.getloadavg()[0]:.1f}: "
             f"`retento {' '.join(sys.argv[1:])}`", "",
             "| backend | recipients | planning s | recipients/s | driver insert s | ratio | delivered | workers "
             "| delivery s | msgs/s | minimal client s | ratio |", "| --- |" + " ---: |" * 11]
    for r in results:
        lines.append(f"| {r.version} | {r.recipients:,} | {r.plan_s:.1f} | {r.plan_rate:,.0f} | {r.baseline_s:.1f} "
                     f"| {r.plan_ratio:.2f}x | {r.deliver:,} | {r.workers} | {r.deliver_s:.1f} "
                     f"| {r.deliver / r.deliver_s:,.0f} | {r.client_s:.1f} | {r.deliver_ratio:.2f}x |")
    if windows:
        lines += ["", *cascade_window.table(windows, {r.backend: r.version for r in results})]
    print("\n".join(lines))


@bench_app.command("triggers")
def triggers(
    events: Annotated[int, typer.Option(min=1, help="Events the 100 triggers evaluate")] = 1_000_000,
    timers: Annotated[int, typer.Option(min=0, help="Pending delayed runs for the fire-lag part (0: skip it)")]
    = 1_000_000,
    rate: Annotated[int, typer.Option(min=1, help="Timers falling due per second")] = 10_000,
    n_triggers: Annotated[int, typer.Option("--triggers", min=8, help="Active triggers")] = 100,
    fire_workers: Annotated[int, typer.Option(
        min=1, help="Worker processes firing the timers (SQLite has one writer: more only wait for it)")] = 1,
    eval_processes: Annotated[str, typer.Option(
        help="Comma-separated numbers of worker processes evaluating the events, each on a copy of the same data "
             "(SQLite has one writer and the subscriber one partition there: a second process takes turns)")] = "1,2",
    backends: Annotated[str, typer.Option(help="Comma-separated: sqlite, postgres")] = "sqlite,postgres",
    pg_dsn: Annotated[str, typer.Option(envvar="RETENTO_TEST_PG_DSN",
                                        help="PostgreSQL server for the throwaway databases")] = DEFAULT_PG_DSN,
) -> None:
    """Events evaluated per second by the trigger engine against a driver insert of the same events; fire lag
    of delayed runs falling due at a fixed rate, the worker on a clock that advances with wall time."""
    from benchmarks import triggers as triggers_bench

    chosen = [b.strip() for b in backends.split(",") if b.strip()]
    if not chosen or set(chosen) - {"sqlite", "postgres"}:
        console.print("[red]error:[/red] --backends: use sqlite, postgres or both")
        raise typer.Exit(2)
    try:
        counts = tuple(int(x) for x in eval_processes.split(",") if x.strip())
    except ValueError:
        counts = ()
    if not counts or min(counts) < 1:
        console.print("[red]error:[/red] --eval-processes: positive numbers separated by commas, e.g. 1,2")
        raise typer.Exit(2)
    results, load, started = [], os.getloadavg(), datetime.now(timezone.utc)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        for backend in chosen:
            with fresh(backend, pg_dsn) as target:
                results.append(triggers_bench.run(
                    target, n_events=events, n_triggers=n_triggers, n_timers=timers, rate=rate, progress=progress,
                    fire_workers=fire_workers, eval_processes=counts))
    end_load = os.getloadavg()
    lines = [f"Run {started:%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, Python {platform.python_version()}, "
             f"load average {load[0]:.1f} at the start, {end_load[0]:.1f} at the end "
             f"(5 min: {end_load[1]:.1f}): `retento {' '.join(sys.argv[1:])}`", "",
             "| backend | worker processes | events | evaluating s | events/s | CPU s | events/CPU s "
             "| in the driver s | events/s the statements allow | of that | rows written per event "
             "| driver insert s | ratio to the insert | trigger-caused events |", "| --- |" + " ---: |" * 13]
    for r in results:
        for e in r.evals:
            lines.append(f"| {r.version} | {e.processes} | {e.events:,} | {e.eval_s:.1f} | {e.events_per_s:,.0f} "
                         f"| {e.eval_cpu:.1f} | {e.events_per_cpu_s:,.0f} | {e.eval_driver_s:.1f} "
                         f"| {e.driver_ceiling:,.0f} | {e.of_ceiling:.0%} | {e.rows_per_event:.2f} "
                         f"| {r.insert_s:.1f} | {r.ratio(e):.1f}x | {e.extra_events:,} |")
    lines.append("")
    for r in results:  # what "in the driver" is made of; the execute part alone was the measure until 2026-12-07
        for e in r.evals:
            d = e.eval_driver
            alone = e.events * e.processes / d["execute"] if d.get("execute") else math.inf
            lines.append(f"{r.version}, {e.processes} process{'es' if e.processes > 1 else ''}: in the driver "
                         f"{d.get('execute', 0):.2f} s executing, {d.get('fetch', 0):.2f} s fetching rows, "
                         f"{d.get('commit', 0):.2f} s committing; the executes alone allow {alone:,.0f} events/s "
                         f"({e.events_per_s / alone:.0%} of that).")
    lines += [f"{r.version}, {e.processes} process{'es' if e.processes > 1 else ''}: {e.vacuums[0]} tables "
              f"vacuumed or analyzed meanwhile as autovacuum would ({e.vacuums[1]:.1f} s; the server runs "
              "autovacuum=off: `targets.Autovacuum`)." for r in results for e in r.evals if e.vacuums[0]]
    lines.append("")
    for r in results:  # the rows the evaluation must add, priced at the plain insert's cost per row
        e = r.evals[0]
        per_row = r.insert_s / r.events
        floor = e.rows_per_event * per_row
        outcomes = ", ".join(f"{k} {v:,}" for k, v in sorted(e.outcomes.items()))
        lines.append(f"{r.version}: outcomes {outcomes}; rows added by the evaluation: "
                     + ", ".join(f"{t} {n:,}" for t, n in e.written.items())
                     + f". At the driver insert's {per_row * 1e6:.1f} µs per event row, these rows alone take "
                       f"{floor * 1e6:.1f} µs per event ({1 / floor if floor else math.inf:,.0f} events/s).")
    if any(r.timers for r in results):
        lines += ["", "| backend | timers | due per s | worker processes | run s | worker CPU s | in the driver s "
                  "| runs/s the statements allow | lag p50 s | lag p99 s | lag max s | outcomes |",
                  "| --- |" + " ---: |" * 10 + " --- |"]
        for r in results:
            outcomes = ", ".join(f"{k} {v:,}" for k, v in sorted(r.fire_outcomes.items()))
            lines.append(f"| {r.version} | {r.timers:,} | {r.rate:,} | {r.fire_workers} | {r.fire_s:.1f} "
                         f"| {r.fire_cpu:.1f} | {r.fire_driver_s:.1f} "
                         f"| {r.timers / r.fire_driver_s if r.fire_driver_s else math.inf:,.0f} "
                         f"| {r.lag(0.5):.3f} | {r.lag(0.99):.3f} | {max(r.lags, default=float('nan')):.3f} | {outcomes} |")
        lines += [f"{r.version}, firing: {r.fire_vacuums[0]} tables vacuumed or analyzed meanwhile as autovacuum "
                  f"would ({r.fire_vacuums[1]:.1f} s)." for r in results if r.fire_vacuums[0]]
    print("\n".join(lines))


@bench_app.command("journeys")
def journeys(
    customers: Annotated[int, typer.Option(min=1, help="Customers entering the 5-step journey at once")] = 1_000_000,
    rate: Annotated[int, typer.Option(min=1, help="Customers entering per second in the lag part")] = 1_000,
    lag_seconds: Annotated[int, typer.Option(
        min=0, help="How long customers keep entering in the lag part (0: skip it; over 120 the entries and both "
                    "waits' ends overlap)")] = 180,
    workers: Annotated[str, typer.Option(
        help="Comma-separated numbers of worker processes on PostgreSQL, each on a copy of the same data "
             "(SQLite: 1, its one writer)")] = "1,2",
    backends: Annotated[str, typer.Option(help="Comma-separated: sqlite, postgres")] = "sqlite,postgres",
    pg_dsn: Annotated[str, typer.Option(envvar="RETENTO_TEST_PG_DSN",
                                        help="PostgreSQL server for the throwaway databases")] = DEFAULT_PG_DSN,
    keep: Annotated[bool, typer.Option(help="PostgreSQL: only build the data (outside the bench lock) and keep "
                                            "the databases; measure them with --reuse and the same options")] = False,
    reuse: Annotated[str | None, typer.Option(help="PostgreSQL: a database --keep built: measured, then dropped")
                     ] = None,
) -> None:
    """Journey step transitions per second against a driver insert of the same step log rows; lag of due runs
    while customers enter at a fixed rate."""
    from benchmarks import journeys as journeys_bench

    chosen = [b.strip() for b in backends.split(",") if b.strip()]
    if not chosen or set(chosen) - {"sqlite", "postgres"}:
        console.print("[red]error:[/red] --backends: use sqlite, postgres or both")
        raise typer.Exit(2)
    try:
        counts = tuple(int(x) for x in workers.split(",") if x.strip())
    except ValueError:
        counts = ()
    if not counts or min(counts) < 1:
        console.print("[red]error:[/red] --workers: positive numbers separated by commas, e.g. 1,2")
        raise typer.Exit(2)
    if (keep or reuse) and chosen != ["postgres"]:
        console.print("[red]error:[/red] --keep and --reuse: with --backends postgres")
        raise typer.Exit(2)
    results, load, started = [], os.getloadavg(), datetime.now(timezone.utc)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        for backend in chosen:
            with fresh(backend, pg_dsn, keep=keep, reuse=reuse) as target:
                options = {"n": customers, "rate": rate, "lag_seconds": lag_seconds, "progress": progress,
                           "workers": counts if backend == "postgres" else (1,)}
                if keep:
                    journeys_bench.build(target, **options)
                    console.print(f"databases kept: {target.url.rsplit('/', 1)[-1]} (measure with --reuse it)")
                    return
                results.append((journeys_bench.measure if reuse else journeys_bench.run)(target, **options))
    end_load = os.getloadavg()
    lines = [f"Run {started:%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, Python {platform.python_version()}, "
             f"load average {load[0]:.1f} at the start, {end_load[0]:.1f} at the end "
             f"(5 min: {end_load[1]:.1f}): `retento {' '.join(sys.argv[1:])}`", "",
             "| backend | customers | worker processes | transitions | s (3 phases) | transitions/s | worker CPU s "
             "| transitions/CPU s | driver insert of the step rows s | rows/s | ratio to the insert | rows written |",
             "| --- |" + " ---: |" * 10 + " --- |"]
    for r in results:
        for d in r.drains:
            written = ", ".join(f"{t} {k:,}" for t, k in d.written.items() if k)
            lines.append(f"| {r.version} | {r.customers:,} | {d.workers} | {d.transitions:,} | {d.seconds:.1f} "
                         f"({' + '.join(f'{p:.1f}' for p in d.phases)}) | {d.per_s:,.0f} | {d.cpu:.1f} "
                         f"| {d.transitions / d.cpu if d.cpu else math.inf:,.0f} "
                         f"| {r.insert_s:.1f} | {d.transitions / r.insert_s if r.insert_s else math.inf:,.0f} "
                         f"| {d.seconds / r.insert_s if r.insert_s else math.inf:.1f}x | {written} |")
    if any(r.lags for r in results):
        lines += ["", "| backend | worker processes | entering per s | customers | run s | transitions/s in the "
                  "steady stretch | claim lag p50 s | p99 s | max s | runs not finished |",
                  "| --- |" + " ---: |" * 9]
        for r in results:
            for g in r.lags:
                lines.append(f"| {r.version} | {g.workers} | {g.rate:,} | {g.runs:,} | {g.seconds:.1f} "
                             f"| {g.steady:,.0f} | {g.p(0.5):.3f} | {g.p(0.99):.3f} "
                             f"| {max(g.lags, default=math.nan):.3f} | {g.unfinished:,} |")
    print("\n".join(lines))


@bench_app.command("segments")
def segments(
    customers: Annotated[int, typer.Option("--customers", min=100)] = 1_000_000,
    orders: Annotated[int, typer.Option("--orders", min=100)] = 10_000_000,
    events: Annotated[int, typer.Option("--events", min=0, help="Order events for the incremental path")] = 5000,
    pg_dsn: Annotated[str, typer.Option(envvar="RETENTO_TEST_PG_DSN", help="PostgreSQL server")] = DEFAULT_PG_DSN,
    seed: Annotated[int, typer.Option()] = 7,
    keep: Annotated[bool, typer.Option(help="Keep the benchmark database")] = False,
    count_runs: Annotated[int, typer.Option("--count-runs", min=1, help="Live counts per segment (p50, p95)")] = 10,
    reuse: Annotated[str | None, typer.Option(help="A database kept by --keep: its data again, no loading")] = None,
) -> None:
    """Live count p95, full recompute of 10 segments and RFM on PostgreSQL (DuckDB beside it); incremental rate."""
    from benchmarks import segments as bench

    bench.main(customers=customers, orders=orders, events=events, pg_dsn=pg_dsn, seed=seed, keep=keep,
               console=console, count_runs=count_runs, reuse=reuse)


@bench_app.command("console")
def console_pages(
    customers: Annotated[int, typer.Option("--customers", min=10, help="Customers (demo shop, or generated with --full)")
                         ] = 2000,
    orders: Annotated[int, typer.Option("--orders", min=10, help="Orders (demo shop, or generated with --full)")] = 10000,
    requests: Annotated[int, typer.Option("--requests", min=5, help="Requests per page")] = 100,
    backends: Annotated[str, typer.Option(help="Comma-separated: sqlite, postgres")] = "sqlite,postgres",
    full: Annotated[bool, typer.Option(help="PostgreSQL only: the generated shop of `bench segments` (COPY), "
                                            "1,000,000 customers / 10,000,000 orders unless given")] = False,
    runs: Annotated[int | None, typer.Option(min=0, help="Trigger run-log rows over the last 30 days (the Triggers "
                                                         "list counts the last 24 hours); default 3,000,000 with "
                                                         "--full, 10,000 otherwise")] = None,
    keep: Annotated[bool, typer.Option(help="Keep the --full database (use it again with --reuse)")] = False,
    reuse: Annotated[str | None, typer.Option(help="A database kept by --full --keep: measured again, not loaded")
                     ] = None,
    rebuild: Annotated[bool, typer.Option(help="With --reuse: rebuild the customer and category rollups and the RFM "
                                                "scores from the orders first")] = False,
    only: Annotated[str, typer.Option(help="Only the pages whose URL contains this")] = "",
    skip: Annotated[str, typer.Option(help="Comma-separated: leave out the pages whose URL contains one")] = "",
    pg_dsn: Annotated[str, typer.Option(envvar="RETENTO_TEST_PG_DSN", help="PostgreSQL server")] = DEFAULT_PG_DSN,
) -> None:
    """Each console page's HTML (every GET route of the registered pages): p50 and p95, against the sign-in page
    in the same run; on the demo shop, or with --full on 1,000,000 customers / 10,000,000 orders in PostgreSQL."""
    from sqlalchemy import make_url

    from benchmarks import console as console_bench
    from benchmarks.targets import Target

    chosen = [b.strip() for b in backends.split(",") if b.strip()]
    if not chosen or set(chosen) - {"sqlite", "postgres"}:
        console.print("[red]error:[/red] --backends: use sqlite, postgres or both")
        raise typer.Exit(2)
    if full or reuse:
        chosen = ["postgres"]
        if customers == 2000 and orders == 10000:
            customers, orders = 1_000_000, 10_000_000
    runs = runs if runs is not None else 3_000_000 if full or reuse else 10_000
    results, load, started = [], os.getloadavg(), datetime.now(timezone.utc)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    options = dict(customers=customers, orders=orders, requests=requests, runs=runs, full=full or bool(reuse),
                   only=only, skip=tuple(x.strip() for x in skip.split(",") if x.strip()))
    with Progress(*columns, console=console) as progress:
        if reuse:
            url = make_url(pg_dsn).set(database=reuse).render_as_string(hide_password=False)
            results.append(console_bench.run(Target("postgres", url), reuse=True, rebuild=rebuild, progress=progress,
                                             **options))
        for backend in [] if reuse else chosen:
            with fresh(backend, pg_dsn) as target:
                results.append(console_bench.run(target, progress=progress, **options))
                if keep and backend == "postgres":
                    console.print(f"database kept: {make_url(target.url).database} (--reuse it)")
                    target.made.clear()
    end = os.getloadavg()
    lines = [f"Run {started:%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, Python {platform.python_version()}, "
             f"load average {load[0]:.1f} at the start, {end[0]:.1f} at the end (5 min: {end[1]:.1f}): "
             f"`retento {' '.join(sys.argv[1:])}`", ""]
    for r in results:
        lines.append(f"{r.version}: {r.customers:,} customers, {r.orders:,} orders, {r.runs:,} trigger run-log rows "
                     "in the last 24 hours" + (f"; not measured: {'; '.join(r.not_measured)}" if r.not_measured
                                                else ""))
    lines += ["", "| backend | page | first request ms | p50 ms | p95 ms | p95 / baseline p95 |",
              "| --- | --- | ---: | ---: | ---: | ---: |"]
    for r in results:
        b = r.baseline
        lines.append(f"| {r.version} | baseline `{b.path}` | {b.first:.1f} | {b.p50:.1f} | {b.p95:.1f} | 1.0x |")
        for p in r.pages:
            flag = ("" if p.status == 200 else f" (HTTP {p.status})") + ("" if p.n == requests else f" ({p.n} timed)")
            lines.append(f"| {r.version} | `{p.path}`{flag} | {p.first:.1f} | {p.p50:.1f} | {p.p95:.1f} "
                         f"| {p.p95 / b.p95:.1f}x |")
    print("\n".join(lines))


@bench_app.command("loyalty")
def loyalty(
    orders: Annotated[int, typer.Option("--orders", min=1000, help="Members, each with one completed order")] = 1_000_000,
    charges: Annotated[int, typer.Option("--charges", min=10, help="Single charges through the API")] = 1000,
    backends: Annotated[str, typer.Option(help="Comma-separated: sqlite, postgres")] = "sqlite,postgres",
    pg_dsn: Annotated[
        str, typer.Option(envvar="RETENTO_TEST_PG_DSN", help="PostgreSQL server for the throwaway databases")
    ] = DEFAULT_PG_DSN,
    keep: Annotated[bool, typer.Option(help="Only build the members and orders, and keep them (measure them with "
                                             "--reuse; the build needs no bench lock)")] = False,
    reuse: Annotated[str | None, typer.Option(help="Data kept by --keep (comma-separated: an SQLite file's path, a "
                                                   "PostgreSQL database's name): measured on a copy, not built")] = None,
) -> None:
    """Loyalty accrual, expiry and a single charge, each against plain SQL writes of the same ledger rows."""
    from benchmarks import loyalty as loyalty_bench
    from benchmarks.targets import keep_new, reused

    chosen = [b.strip() for b in backends.split(",") if b.strip()]
    if not chosen or set(chosen) - {"sqlite", "postgres"}:
        console.print("[red]error:[/red] --backends: use sqlite, postgres or both")
        raise typer.Exit(2)
    results, started = [], datetime.now(timezone.utc)
    loads = [os.getloadavg()[0]]
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        if keep:
            for backend in chosen:
                target, name = keep_new(backend, pg_dsn)
                loyalty_bench.setup(target, orders, progress)
                console.print(f"{backend}: {orders:,} members kept: {name} (--reuse it)")
            return
        sets = [(k.strip(), reused(k.strip(), pg_dsn)) for k in reuse.split(",")] if reuse else [
            (b, fresh(b, pg_dsn)) for b in chosen]
        for _, made in sets:
            with made as target:
                results.append(loyalty_bench.run(target, n=orders, charge_count=charges, progress=progress,
                                                 build=reuse is None))
            loads.append(os.getloadavg()[0])
    lines = [f"Run {started:%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, Python {platform.python_version()}, "
             f"load average {' / '.join(f'{v:.1f}' for v in loads)} (start / after each backend): "
             f"`retento {' '.join(sys.argv[1:])}`", "",
             "| backend | members = orders | accrual s | plain SQL s | ratio | orders/s | expiry s (accounts) "
             "| plain SQL s | ratio | charge p50 / p99 ms | plain SQL p50 / p99 ms |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in results:
        lines.append(
            f"| {r.version} | {r.n:,} | {r.accrual_s:.1f} | {r.accrual_base_s:.1f} "
            f"| {r.accrual_s / r.accrual_base_s:.2f}x | {r.n / r.accrual_s:,.0f} | {r.expiry_s:.1f} ({r.expired:,}) "
            f"| {r.expiry_base_s:.1f} | {r.expiry_s / r.expiry_base_s:.2f}x "
            f"| {r.p(r.charge_ms, 0.5):.1f} / {r.p(r.charge_ms, 0.99):.1f} "
            f"| {r.p(r.charge_base_ms, 0.5):.2f} / {r.p(r.charge_base_ms, 0.99):.2f} |")
    lines += ["", *(f"{r.version}: the accrual's time includes {r.analyzes} ANALYZEs of the growing ledger "
                f"({r.analyze_s:.1f} s; the server runs autovacuum=off)" for r in results if r.analyzes)]
    print("\n".join(lines))


@bench_app.command("assist")
def assist(
    tickets: Annotated[int, typer.Option("--tickets", min=100, help="Past tickets in the index")] = 100_000,
    embedded: Annotated[int, typer.Option("--embedded", min=10, help="Tickets embedded with the model (the "
                                          "others' vectors are perturbed copies)")] = 2000,
    queries: Annotated[int, typer.Option("--queries", min=1, help="New tickets asked")] = 200,
    backend: Annotated[str, typer.Option(help="sqlite or postgres")] = "sqlite",
    pg_dsn: Annotated[
        str, typer.Option(envvar="RETENTO_TEST_PG_DSN", help="PostgreSQL server for the throwaway databases")
    ] = DEFAULT_PG_DSN,
    seed: Annotated[int, typer.Option(help="Seed of the generated tickets")] = 11,
) -> None:
    """The assist's served index: build time, query p50 / p95 split into embed and search, recall@5 vs exact."""
    if backend not in ("sqlite", "postgres") or embedded > tickets:
        console.print("[red]error:[/red] --backend: sqlite or postgres; --embedded at most --tickets")
        raise typer.Exit(2)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress, fresh(backend, pg_dsn) as target:
        result = assist_bench.run(target, tickets=tickets, embedded=embedded, queries=queries, seed=seed,
                                  progress=progress)
    print("\nMarkdown for docs/benchmarks.md (printed, not written to the file):\n")
    print(assist_bench.markdown(result, " ".join(sys.argv[1:])))
