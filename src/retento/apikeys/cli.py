"""`retento apikey ...`: create (prints the key once), list, revoke."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from retento.apikeys import service
from retento.apikeys.schemas import SCOPES
from retento.cmdline import console, open_app, run_service
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
def list_keys() -> None:
    """List keys (prefix, scopes, sites, revoked)."""
    a = open_app()
    table = Table("id", "name", "prefix", "scopes", "sites", "created", "revoked")
    with transaction(a.sessions) as s:
        codes = {site.id: site.code for site in list_sites(s)}
        for k in service.list_keys(s):
            sites = "all" if k.site_ids is None else ",".join(codes.get(i, str(i)) for i in k.site_ids)
            table.add_row(str(k.id), k.name, k.prefix + "…", ",".join(k.scopes), sites,
                          k.created_at.strftime("%Y-%m-%d %H:%M"),
                          k.revoked_at.strftime("%Y-%m-%d %H:%M") if k.revoked_at else "")
    console.print(table)


@app.command("revoke")
def revoke(key_id: Annotated[int, typer.Argument(help="Key id (see `retento apikey list`)")]) -> None:
    """Revoke a key: it stops working at once."""
    a = open_app()
    with transaction(a.sessions) as s:
        key = run_service(lambda: service.revoke(s, key_id=key_id, now=a.clock.now()))
    console.print(f"API key {key.id} ({key.name}) revoked")
