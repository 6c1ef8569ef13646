"""The `retento` command line: thin wrappers over the same services the API calls."""

from __future__ import annotations

import importlib
import importlib.util
import json
from typing import Annotated

import typer
import uvicorn
from pydantic import ValidationError

from retento import worker as worker_process
from retento.api import create_app
from retento.bootstrap import Parts, assemble, bootstrap, configure_process, settle_process
from retento.cmdline import (
    Col,
    Format,
    FormatOption,
    Rows,
    console,
    emit,
    fail,
    open_app,
    run_service,
    use as use_app_factory,
)
from retento.core.config import get_settings
from retento.core.db.transactions import transaction
from retento.core.errors import DomainError
from retento.history import service as history_service
from retento.migrate import migrate as migrate_schema
from retento.sites import service as sites_service
from retento.sites.schemas import SiteCreate

app = typer.Typer(help="Retento: CRM-marketing engine for online retailers.", no_args_is_help=True)
site_app = typer.Typer(help="Sites (shops).", no_args_is_help=True)
app.add_typer(site_app, name="site")


def add_bench(root: typer.Typer) -> None:
    """`retento bench`: the top-level `benchmarks` package (a tool around the application that builds apps of its
    own) when it and its `bench` extra are installed; otherwise a command that says what to install."""
    missing = ["benchmarks"] if importlib.util.find_spec("benchmarks") is None else [
        name for name in importlib.import_module("benchmarks").EXTRA if importlib.util.find_spec(name) is None]
    if not missing:  # imported here, only with the extra: benchmarks are not part of the application
        root.add_typer(importlib.import_module("benchmarks.cli").bench_app, name="bench")
        return

    @root.command("bench", context_settings={"allow_extra_args": True, "ignore_unknown_options": True,
                                              "help_option_names": []})
    def bench(ctx: typer.Context) -> None:
        """Benchmarks (need the bench extra: pip install -e '.[bench]')."""
        fail(f"retento bench needs the bench extra, which is not installed (missing: {', '.join(missing)}); "
             "install it with: pip install -e '.\\[bench]' (or make install)", 1)


add_bench(app)


@app.callback()
def _process_setup() -> None:
    """Process-wide runtime settings, applied before any command; how the commands build their App."""
    configure_process(get_settings())
    use_app_factory(bootstrap)


def add_commands(root: typer.Typer, parts: Parts) -> None:
    """The application's commands (`Parts.commands`): a group under its name, a function as a command."""
    for name, command in parts.commands.items():
        if isinstance(command, typer.Typer):
            root.add_typer(command, name=name)
        else:
            root.command(name)(command)


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema and built-in reference data."""
    a = open_app()
    migrate_schema(a)
    console.print(f"database at {a.engine.url.render_as_string(hide_password=True)} is up to date")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Listen address")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port")] = None,
    with_worker: Annotated[bool, typer.Option(help="Also run the worker in this process")] = False,
) -> None:
    """Serve the API (production: several of these behind a load balancer, plus `retento worker`)."""
    a = open_app()
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
    worker_process.main()


HISTORY = (Col("id", kind="int"), Col("created_at", "time (UTC)", kind="timestamp"), Col("entity"),
           Col("entity_id", "entity id", kind="int"), Col("source"), Col("actor_type", "actor"),
           Col("actor_id", "actor id"), Col("field", empty="(created)"),
           Col("old_value", "old", show=lambda v: json.dumps(v, ensure_ascii=False)),
           Col("new_value", "new", show=lambda v: json.dumps(v, ensure_ascii=False)))


@app.command()
def history(
    since: Annotated[int, typer.Option("--since", help="Only changes with an id greater than this")] = 0,
    entity: Annotated[str | None, typer.Option(help="customer or order")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    fmt: FormatOption = Format.table,
) -> None:
    """Print the change history after an id, oldest first."""
    if entity not in (None, "customer", "order"):
        fail("--entity: must be customer or order", 2)
    a = open_app(log=False)
    with transaction(a.sessions) as s:
        rows = [{"id": r.id, "created_at": r.created_at, "entity": r.entity, "entity_id": r.entity_id,
                 "created": r.created, "source": r.source, "actor_type": r.actor_type, "actor_id": r.actor_id,
                 "field": None if r.created else r.field, "old_value": r.old_value, "new_value": r.new_value}
                for r in history_service.since(s, since_id=since, entity=entity, limit=limit)]
    emit(fmt, Rows("history", HISTORY, rows))


@site_app.command("create")
def site_create(
    code: str,
    name: str,
    currency: Annotated[str, typer.Option()] = "RUB",
    timezone: Annotated[str, typer.Option()] = "Europe/Moscow",
    region: Annotated[str, typer.Option(help="Phone region for numbers without country code")] = "RU",
) -> None:
    """Create a site (shop)."""
    a = open_app(log=False)
    try:
        data = SiteCreate(code=code, name=name, currency=currency, timezone=timezone, default_region=region)
    except ValidationError as exc:
        fail(DomainError.from_pydantic(exc).message, 2)
    with transaction(a.sessions) as s:
        site = run_service(lambda: sites_service.create_site(s, data=data, now=a.clock.now()))
        console.print(f"site {site.code} created (id {site.id})")


@site_app.command("list")
def site_list(fmt: FormatOption = Format.table) -> None:
    """List sites."""
    a = open_app(log=False)
    with transaction(a.sessions) as s:
        rows = [{"id": x.id, "code": x.code, "name": x.name, "currency": x.currency, "timezone": x.timezone}
                for x in sites_service.list_sites(s)]
    emit(fmt, Rows("sites", (Col("id", kind="int"), Col("code"), Col("name"), Col("currency"), Col("timezone")),
                   rows))


add_commands(app, assemble())


def main() -> None:
    app()


if __name__ == "__main__":
    main()
