"""`retento user ...`: create, list, disable, set-password (console users)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from retento.cmdline import console, open_app, run_service
from retento.core.db.transactions import transaction
from retento.sites.service import get_site, list_sites
from retento.users import service
from retento.users.schemas import ROLES

app = typer.Typer(help="Console users / пользователи консоли.", no_args_is_help=True)


@app.command("create")
def create(
    email: Annotated[str, typer.Argument(help="Sign-in name (an email address)")],
    role: Annotated[str, typer.Option(help=f"One of {', '.join(ROLES)}")],
    name: Annotated[str, typer.Option(help="Display name")] = "",
    site: Annotated[list[str] | None, typer.Option(help="Limit the user to this site (repeatable); default all")]
    = None,
    locale: Annotated[str, typer.Option(help="en or ru")] = "en",
    timezone: Annotated[str, typer.Option(help="IANA time zone for dates shown to the user")] = "UTC",
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True,
                                          help="At least 10 characters (asked for when not given)")] = "",
) -> None:
    """Create a console user."""
    a = open_app(log=False)
    with transaction(a.sessions) as s:
        site_ids = [run_service(lambda c=code: get_site(s, c)).id for code in site] if site else None
        data = run_service(lambda: service.parse_create(email=email, name=name, role=role, password=password,
                                                        site_ids=site_ids, locale=locale, timezone=timezone))
        user = run_service(lambda: service.create(s, data=data, now=a.clock.now()))
        console.print(f"user {user.id} {user.email} ({user.role}) created")


@app.command("list")
def list_users() -> None:
    """List console users."""
    a = open_app(log=False)
    table = Table("id", "email", "name", "role", "sites", "locale", "time zone", "disabled")
    with transaction(a.sessions) as s:
        codes = {x.id: x.code for x in list_sites(s)}
        for u in service.list_users(s):
            sites = "all" if u.site_ids is None else ",".join(codes.get(i, str(i)) for i in u.site_ids)
            table.add_row(str(u.id), u.email, u.name, u.role, sites, u.locale, u.timezone, "yes" if u.disabled else "")
    console.print(table)


@app.command("disable")
def disable(email: Annotated[str, typer.Argument(help="The user's sign-in name")]) -> None:
    """Disable a user: they cannot sign in and are signed out everywhere."""
    a = open_app(log=False)
    with transaction(a.sessions) as s:
        user = run_service(lambda: service.set_disabled(s, user=service.by_email(s, email)))
        console.print(f"user {user.email} disabled")


@app.command("set-password")
def set_password(
    email: Annotated[str, typer.Argument(help="The user's sign-in name")],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True,
                                          help="At least 10 characters (asked for when not given)")] = "",
) -> None:
    """Set a user's password (their sessions end)."""
    a = open_app(log=False)
    with transaction(a.sessions) as s:
        user = run_service(lambda: service.set_password(s, user=service.by_email(s, email), password=password))
        console.print(f"password of {user.email} set")
