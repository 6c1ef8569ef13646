"""`retento apikey ...`: create (prints the key once), list, revoke."""

from __future__ import annotations

from typing import Annotated

import typer

from retento.apikeys import service
from retento.apikeys.schemas import SCOPES
from retento.cmdline import Col, Format, FormatOption, Rows, console, emit, open_app, run_service
from retento.core.db.transactions import transaction
from retento.sites.service import list_sites

app = typer.Typer(help="API keys / ключи API.", no_args_is_help=True)


@app.command("create")
def create(
    name: Annotated[str, typer.Option(help="What the key is for")],
    scopes: Annotated[str, typer.Option(help=f"Comma-separated: {', '.join(SCOPES)}; or all")],
    site: Annotated[list[str] | None, typer.Option(help="Restrict the key to this site (repeatable)")] = None,
) -> None:
    """Create a key. The key is printed once; only its hash is stored."""
    a = open_app()
    with transaction(a.sessions) as s:
        key, raw = run_service(lambda: service.create(s, name=name, scopes=scopes, sites=site, now=a.clock.now()))
    console.print(f"API key {key.id} ({key.name}) created. Store it now, it is not shown again / "
                  "сохраните ключ, он больше не будет показан:")
    console.print(raw, soft_wrap=True, highlight=False)


@app.command("list")
def list_keys(fmt: FormatOption = Format.table) -> None:
    """List keys (prefix, scopes, sites, revoked)."""
    a = open_app()
    with transaction(a.sessions) as s:
        codes = {site.id: site.code for site in list_sites(s)}
        rows = [{"id": k.id, "name": k.name, "prefix": k.prefix, "scopes": list(k.scopes),
                 "sites": None if k.site_ids is None else [codes.get(i, str(i)) for i in k.site_ids],
                 "created_at": k.created_at, "revoked_at": k.revoked_at} for k in service.list_keys(s)]
    emit(fmt, Rows("apikeys", [Col("id", kind="int"), Col("name"), Col("prefix", show=lambda p: p + "…"),
                               Col("scopes"), Col("sites", empty="all"), Col("created_at", "created", kind="time"),
                               Col("revoked_at", "revoked", kind="time")], rows))


@app.command("revoke")
def revoke(key_id: Annotated[int, typer.Argument(help="Key id (see `retento apikey list`)")]) -> None:
    """Revoke a key: it stops working at once."""
    a = open_app()
    with transaction(a.sessions) as s:
        key = run_service(lambda: service.revoke(s, key_id=key_id, now=a.clock.now()))
    console.print(f"API key {key.id} ({key.name}) revoked")
