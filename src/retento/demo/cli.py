"""`retento demo`: load the demo shop (thin wrapper over `retento.demo.service`)."""

from __future__ import annotations

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
from retento.core.db.transactions import transaction
from retento.core.errors import DomainError
from retento.demo.generator import generate
from retento.demo.service import has_customers, load
from retento.users import service as users

console = Console()
err = Console(stderr=True)


def demo(
    if_empty: Annotated[bool, typer.Option("--if-empty", help="Do nothing if the database has customers")] = False,
    seed: Annotated[int, typer.Option(help="Same seed, same shop")] = 1,
    customers: Annotated[int, typer.Option("--customers", min=0, help="How many customers")] = 2000,
    orders: Annotated[int, typer.Option("--orders", min=0, help="How many orders (over the last two years)")] = 10000,
) -> None:
    """Load a realistic demo shop: three sites, goods and services, customers, orders with their histories."""
    app = open_app(log=False)
    try:
        with transaction(app.sessions) as s:
            admin = users.demo_admin(s, now=app.clock.now())
        if admin is not None:
            console.print(f"console admin created, shown once / администратор консоли (пароль показан один раз): "
                          f"email {admin[0].email} password {admin[1]}", highlight=False, soft_wrap=True)
        with transaction(app.sessions) as s:
            if if_empty and has_customers(s):
                console.print("the database already has customers: demo shop not loaded")
                return
        now = app.clock.now()
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TimeRemainingColumn())
        with Progress(*columns, console=err) as progress:
            task = progress.add_task(f"demo shop (seed {seed})", total=None)
            shop = generate(seed=seed, customers=customers, orders=orders, now=now)
            result = load(app.sessions, shop=shop, now=now,
                          on_progress=lambda done, total: progress.update(task, completed=done, total=total))
    except DomainError as exc:
        err.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from None
    finally:
        app.close()
    console.print(f"demo shop loaded: {len(shop.sites)} sites, {len(shop.products)} products and services, "
                  f"{result.customers} customers, {result.orders} orders, {result.changes} status changes, "
                  f"{result.members} loyalty members ({result.seconds:.1f} s)", highlight=False, soft_wrap=True)
