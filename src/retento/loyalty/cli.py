"""`retento loyalty ...`: program settings, members, credit and charge, the ledger, the periodic runs."""

from __future__ import annotations

import json
from datetime import datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from retento.cmdline import fail, open_app, run_service
from retento.core.changes import ChangeContext, Source
from retento.core.dates import parse_day
from retento.core.db.transactions import transaction
from retento.core.errors import DomainError
from retento.loyalty import codes, pnl, runs, service
from retento.loyalty.schemas import JoinIn, ProgramIn

app = typer.Typer(help="Loyalty program: settings, members, points. / Программа лояльности: настройки, участники, "
                       "баллы.", no_args_is_help=True)
console = Console()
CLI = ChangeContext.system(Source.USER)


@app.command("program")
def program(site: str, settings: Annotated[Path | None, typer.Option(
        help="JSON file with name, currency, active, settings: create or replace the program")] = None) -> None:
    """Show a site's program, or set it from a JSON file. / Показать или задать программу сайта."""
    a = open_app()
    with transaction(a.sessions) as s:
        if settings is not None:
            try:
                data = ProgramIn.model_validate_json(settings.read_text(encoding="utf-8"))
            except (OSError, ValidationError) as exc:
                err = DomainError.from_pydantic(exc, "settings.") if isinstance(exc, ValidationError) else None
                fail(err.message if err else f"cannot read {settings}: {exc}")
            run_service(lambda: service.set_program(s, site=site, data=data, now=a.clock.now()))
        out = run_service(lambda: service.program_out(s, service.get_program(s, site)))
    console.print_json(out.model_dump_json())


@app.command("join")
def join(site: str, customer: Annotated[int | None, typer.Option(help="Customer id")] = None,
         phone: Annotated[str | None, typer.Option(help="Customer's phone")] = None) -> None:
    """Join a customer to the site's program. / Подключить покупателя к программе."""
    try:
        data = JoinIn(site=site, customer_id=customer, phone=phone)
    except ValidationError as exc:
        fail(DomainError.from_pydantic(exc).message)
    a = open_app()
    with transaction(a.sessions) as s:
        account, created = run_service(lambda: service.join(s, data=data, ctx=CLI, now=a.clock.now()))
        console.print(f"account {account.id} " + ("joined / подключён" if created else "already a member / уже участник"))


@app.command("account")
def account(account_id: int) -> None:
    """Balance, level, lots and upcoming expiries of an account. / Баланс, уровень, партии баллов."""
    a = open_app()
    with transaction(a.sessions) as s:
        out = run_service(lambda: service.account_out(s, service.get_account(s, account_id), now=a.clock.now(),
                                                      with_lots=True))
    console.print(f"account {out.id}: customer {out.customer_id}, {out.status}, level {out.level or '-'}")
    console.print(f"balance / баланс: {out.balance} {out.currency}; pending / ожидают: {out.pending}; "
                  f"purchases / покупки: {out.purchases}")
    table = Table("lot", "amount", "left", "active from (UTC)", "expires (UTC)", "order")
    for lot in out.lots or []:
        table.add_row(str(lot.id), str(lot.amount), str(lot.left), lot.active_from.strftime("%Y-%m-%d %H:%M"),
                      lot.expires_at.strftime("%Y-%m-%d %H:%M") if lot.expires_at else "-", str(lot.order_id or "-"))
    console.print(table)


def _points(operation: str, account_id: int, amount: str, reason: str, key: str) -> None:
    try:
        value = Decimal(amount)
        if not value.is_finite() or value <= 0 or value != value.quantize(Decimal("0.01")):
            raise ValueError
    except (ArithmeticError, ValueError):
        fail("amount: a positive number of points with at most two decimals")
    a = open_app()
    fn = service.credit if operation == "credit" else service.charge
    with transaction(a.sessions) as s:
        op = run_service(lambda: fn(s, account_id=account_id, amount=value, reason=reason,
                                    idempotency_key=f"key:{key}", ctx=CLI, now=a.clock.now()))
        console.print(f"operation {op.id}: {op.kind} {op.amount}")


Key = Annotated[str, typer.Option(help="Idempotency key: running the command again with it changes nothing")]
Reason = Annotated[str, typer.Option(help="Why (shown in the ledger)")]


@app.command("credit")
def credit(account_id: int, amount: str, reason: Reason, key: Key) -> None:
    """Credit points with a reason. / Начислить баллы с причиной."""
    _points("credit", account_id, amount, reason, key)


@app.command("charge")
def charge(account_id: int, amount: str, reason: Reason, key: Key) -> None:
    """Charge points with a reason. / Списать баллы с причиной."""
    _points("charge", account_id, amount, reason, key)


@app.command("operations")
def operations(account_id: int, limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
               as_json: Annotated[bool, typer.Option("--json", help="JSON lines")] = False) -> None:
    """An account's ledger, oldest first. / Операции по счёту."""
    a = open_app()
    with transaction(a.sessions) as s:
        ops = run_service(lambda: service.list_operations(s, account_id=account_id, limit=limit))
        if as_json:
            for o in ops:
                typer.echo(json.dumps({"id": o.id, "kind": o.kind, "amount": str(o.amount), "order_id": o.order_id,
                                       "reason": o.reason, "created_at": o.created_at.isoformat()}))
            return
        table = Table("id", "time (UTC)", "kind", "amount", "order", "reason")
        for o in ops:
            table.add_row(str(o.id), o.created_at.strftime("%Y-%m-%d %H:%M"), o.kind, str(o.amount),
                          str(o.order_id or "-"), o.reason or "")
    console.print(table)


@app.command("run")
def run() -> None:
    """Expiry, burn warnings and the level review now (the worker runs them on its own). / Сгорание,
    предупреждения и пересмотр уровней сейчас."""
    a = open_app()
    done = runs.run_all(a.sessions, now=a.clock.now(), part=a.settings.loyalty_expiry_part,
                        connections=a.settings.loyalty_expiry_connections)
    console.print(f"done / готово: {done}")


@app.command("pnl")
def pnl_(site: str, from_: Annotated[str, typer.Option("--from", help="First day (YYYY-MM-DD, UTC)")],
         to: Annotated[str, typer.Option(help="Last day, included (YYYY-MM-DD, UTC)")],
         window_days: Annotated[int, typer.Option(min=1, max=730, help="Days compared before and after joining")] = 90,
         as_json: Annotated[bool, typer.Option("--json", help="JSON")] = False) -> None:
    """The program's P&L over the days. / P&L программы за период."""
    try:
        first, last = parse_day(from_), parse_day(to)
    except ValueError as exc:
        fail(f"from/to: {exc}")
    if last < first:
        fail("to: before --from")
    start = datetime.combine(first, time(), timezone.utc)
    end = datetime.combine(last + timedelta(days=1), time(), timezone.utc)
    a = open_app()
    with transaction(a.sessions) as s:
        out = run_service(lambda: pnl.report(s, site=site, start=start, end=end, now=a.clock.now(),
                                             window_days=window_days))
    if as_json:
        typer.echo(out.model_dump_json(by_alias=True))
        return
    table = Table("line / статья", "value / значение")
    for label, value in (("issued / начислено", out.issued), ("reversed / отменено", out.reversed),
                         ("redeemed (discount) / списано (скидка)", out.redeemed),
                         ("expired / сгорело", out.expired), ("liability at start / обязательства на начало",
                                                             out.liability_start),
                         ("liability at end / обязательства на конец", out.liability_end),
                         ("revenue / выручка", out.revenue),
                         ("discount share / доля скидки", out.discount_share if out.discount_share is not None
                          else "-"), ("members / участники", out.members)):
        table.add_row(label, str(value))
    pm = out.per_member
    if pm.before and pm.after:
        table.add_row("orders per member-month before → after / заказов в месяц до → после",
                      f"{pm.before.orders} → {pm.after.orders}")
        table.add_row("revenue per member-month before → after / выручка в месяц до → после",
                      f"{pm.before.revenue} → {pm.after.revenue}")
    c = out.cohorts
    for name in ("conversion_new_active", "orders_per_active", "reactivated", "churn_active"):
        table.add_row(f"{name} before → after launch / до → после запуска",
                      f"{getattr(c.before, name)} → {getattr(c.after, name)}")
    console.print(f"{out.site}, {out.currency}")
    console.print(table)


@app.command("import-codes")
def import_codes(site: str, path: Annotated[Path, typer.Argument(help="CSV: code, kind, customer_id | "
                                                                     "customer_external_id | phone, points, "
                                                                     "expires_in_days")],
                 dry_run: Annotated[bool, typer.Option("--dry-run", help="Check every row, convert nothing")] = False,
                 as_json: Annotated[bool, typer.Option("--json", help="The report as JSON")] = False) -> None:
    """Convert promo codes and personal discounts into points, each code once. / Перевести промокоды и
    персональные скидки в баллы, каждый код один раз."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read {path}: {exc}")
    a = open_app()
    err = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("rows"),
               TimeElapsedColumn())
    with Progress(*columns, console=err, transient=False) as progress, transaction(a.sessions) as s:
        task = progress.add_task(f"codes from {path.name}", total=None)
        report = run_service(lambda: codes.convert(
            s, site=site, text=text, ctx=CLI, now=a.clock.now(), dry_run=dry_run,
            on_progress=lambda done, total: progress.update(task, completed=done, total=total)))
    if as_json:
        typer.echo(json.dumps(report.as_dict()))
    else:
        for line in codes.lines(report.rows):
            err.print(line, markup=False, highlight=False, soft_wrap=True)
        console.print(f"{'checked (dry run) / проверено' if dry_run else 'converted / переведено'}: "
                      f"{report.converted} ({report.points} points / баллов), joined / подключено: {report.joined}, "
                      f"skipped / пропущено: {report.skipped}, invalid / с ошибками: {report.invalid}",
                      highlight=False)
    if report.invalid:
        raise typer.Exit(1)
