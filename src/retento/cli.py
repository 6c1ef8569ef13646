"""The `retento` command line: thin wrappers over the same services the API calls."""

from __future__ import annotations

import importlib
import json
import logging
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from retento.bootstrap import App, bootstrap
from retento.errors import DomainError

app = typer.Typer(help="Retento: CRM-marketing engine for online retailers.", no_args_is_help=True)
site_app = typer.Typer(help="Sites (shops).", no_args_is_help=True)
app.add_typer(site_app, name="site")
from retento.bench.cli import bench_app  # noqa: E402

app.add_typer(bench_app, name="bench")
from retento.imports.cli import import_app  # noqa: E402

app.add_typer(import_app, name="import")
from retento.demo.cli import demo as _demo  # noqa: E402

app.command("demo")(_demo)
app.add_typer(importlib.import_module("retento.triggers.cli").app, name="triggers")
app.add_typer(importlib.import_module("retento.tasks.cli").app, name="tasks")
from retento.segments.cli import register as register_segments  # noqa: E402

register_segments(app)
from retento.messaging.cli import app as report_app, bounces as _bounces  # noqa: E402

app.add_typer(report_app, name="report")
app.command("bounces")(_bounces)
console = Console()
err = Console(stderr=True)


@app.callback()
def _process_setup() -> None:
    """Process-wide runtime settings, applied before any command."""
    from retento.bootstrap import configure_process
    from retento.config import get_settings

    configure_process(get_settings())


def _app() -> App:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return bootstrap()


def fail(message: str, code: int = 1) -> None:
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


def run_service(fn: Any) -> Any:
    """Call fn; a DomainError becomes a message naming the field and a non-zero exit."""
    try:
        return fn()
    except DomainError as exc:
        fail(exc.message)


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema and built-in reference data."""
    from retento.migrate import migrate as do_migrate

    a = _app()
    do_migrate(a)
    console.print(f"database at {a.engine.url.render_as_string(hide_password=True)} is up to date")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Listen address")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port")] = None,
    with_worker: Annotated[bool, typer.Option(help="Also run the worker in this process")] = False,
) -> None:
    """Serve the API (production: several of these behind a load balancer, plus `retento worker`)."""
    import uvicorn

    from retento.api import create_app
    from retento.bootstrap import settle_process

    a = _app()
    api = create_app(a, with_worker=with_worker)
    settle_process()
    uvicorn.run(api, host=host or a.settings.host, port=port or a.settings.port, log_level="info")


@app.command()
def run(
    host: Annotated[str | None, typer.Option(help="Listen address")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port")] = None,
) -> None:
    """Embedded mode: API and worker in one process."""
    serve(host=host, port=port, with_worker=True)


@app.command()
def worker() -> None:
    """Run a worker: dispatches events and does due work. Run as many as you like on PostgreSQL."""
    from retento.worker import main

    main()


@app.command()
def history(
    since: Annotated[int, typer.Option("--since", help="Only changes with an id greater than this")] = 0,
    entity: Annotated[str | None, typer.Option(help="customer or order")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line")] = False,
) -> None:
    """Print the change history after an id, oldest first."""
    from retento.db import transaction
    from retento.history import service

    if entity not in (None, "customer", "order"):
        fail("--entity: must be customer or order", 2)
    a = bootstrap()
    with transaction(a.sessions) as s:
        rows = service.since(s, since_id=since, entity=entity, limit=limit)
        if as_json:
            for r in rows:
                sys.stdout.write(json.dumps({
                    "id": r.id, "created_at": r.created_at.isoformat(), "entity": r.entity,
                    "entity_id": r.entity_id, "created": r.created, "source": r.source,
                    "actor_type": r.actor_type, "actor_id": r.actor_id, "field": r.field,
                    "old_value": r.old_value, "new_value": r.new_value}, ensure_ascii=False) + "\n")
            return
        table = Table("id", "time", "entity", "source", "actor", "field", "old", "new")
        for r in rows:
            table.add_row(str(r.id), r.created_at.strftime("%Y-%m-%d %H:%M:%S"), f"{r.entity} {r.entity_id}",
                          r.source, f"{r.actor_type}:{r.actor_id or ''}", "(created)" if r.created else r.field,
                          _short(r.old_value), _short(r.new_value))
        console.print(table)


def _short(value: Any) -> str:
    text = "" if value is None else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:39] + "…"


@site_app.command("create")
def site_create(
    code: str,
    name: str,
    currency: Annotated[str, typer.Option()] = "RUB",
    timezone: Annotated[str, typer.Option()] = "Europe/Moscow",
    region: Annotated[str, typer.Option(help="Phone region for numbers without country code")] = "RU",
) -> None:
    """Create a site (shop)."""
    from pydantic import ValidationError

    from retento.db import transaction
    from retento.sites import service
    from retento.sites.schemas import SiteCreate

    a = bootstrap()
    try:
        data = SiteCreate(code=code, name=name, currency=currency, timezone=timezone, default_region=region)
    except ValidationError as exc:
        fail(DomainError.from_pydantic(exc).message, 2)
    with transaction(a.sessions) as s:
        site = run_service(lambda: service.create_site(s, data=data, now=a.clock.now()))
        console.print(f"site {site.code} created (id {site.id})")


@site_app.command("list")
def site_list() -> None:
    """List sites."""
    from retento.db import transaction
    from retento.sites import service

    a = bootstrap()
    table = Table("id", "code", "name", "currency", "timezone")
    with transaction(a.sessions) as s:
        for site in service.list_sites(s):
            table.add_row(str(site.id), site.code, site.name, site.currency, site.timezone)
    console.print(table)


app.add_typer(importlib.import_module("retento.apikeys.cli").app, name="apikey")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
