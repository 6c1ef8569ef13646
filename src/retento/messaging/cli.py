"""`retento report cascade ID` / `retento report campaign ID`: the cost report in the terminal."""

from __future__ import annotations

import json
import mailbox
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import track
from rich.table import Table

from retento.cmdline import open_app
from retento.core.db.transactions import transaction
from retento.core.errors import DomainError
from retento.messaging import bounces as dsn, reports, service

app = typer.Typer(help="Reports / Отчёты.", no_args_is_help=True)
console = Console()
NOT_REPORTED = "not reported / нет данных"


def _show(rep: dict[str, Any], as_json: bool) -> None:
    if as_json:
        console.print_json(json.dumps(rep, default=str, ensure_ascii=False))
        return
    cur = rep["currency"]
    title = f"{rep['name']} (cascade {rep['cascade_id']}" + (f", campaign {rep['campaign_id']}" if
                                                             rep["campaign_id"] else "") + ")"
    for heading, rows in (("step", rep["steps"]), ("channel", rep["channels"])):
        table = Table(title=f"{title}: by {heading}")
        for col in ("step", "channel", "sent", "delivered", "read", "clicked", "failed", "uncertain", f"cost, {cur}",
                    f"cost per read, {cur}"):
            table.add_column(col, justify="left" if col in ("step", "channel") else "right")
        for r in rows:
            table.add_row("" if r["step"] is None else str(r["step"] + 1), r["channel"], f"{r['sent']:,}",
                          _n(r["delivered"]), _n(r["read"]), f"{r['clicked']:,}", f"{r['failed']:,}", f"{r['uncertain']:,}",
                          _money(r["cost"]), _money(r["cost_per_read"]) if r["read"] is not None else NOT_REPORTED)
        console.print(table)
    console.print(f"members: {rep['members']:,}; total cost: {_money(rep['total_cost'])} {cur}; "
                  f"cost per read: {_money(rep['cost_per_read'])} {cur}")
    console.print(f"everyone through {rep['most_expensive_channel']}: {_money(rep['baseline_cost'])} {cur}; "
                  f"gross saving: {_money(rep['gross_saving'])} {cur}; net saving: {_money(rep['net_saving'])} {cur}")


def _n(value: int | None) -> str:
    return NOT_REPORTED if value is None else f"{value:,}"


def _money(value: Decimal | None) -> str:
    return "—" if value is None else f"{Decimal(value):,.2f}"


@app.command("cascade")
def cascade(cascade_id: int, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Sent, delivered, read, clicked, failed, cost and cost per read of a cascade, and its saving."""
    _run(lambda s: reports.report(s, cascade_id=cascade_id), as_json)


@app.command("campaign")
def campaign(campaign_id: int, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The same report for one campaign."""
    def build(s: Any) -> dict[str, Any]:
        camp = service.get_campaign(s, campaign_id)
        return reports.report(s, cascade_id=camp.cascade_id, campaign_id=camp.id)

    _run(build, as_json)


def _run(build: Any, as_json: bool) -> None:
    a = open_app(log=False)
    try:
        with transaction(a.sessions) as s:
            rep = build(s)
    except DomainError as exc:
        Console(stderr=True).print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from None
    finally:
        a.close()
    _show(rep, as_json)


def bounces(maildir: Annotated[str, typer.Option("--maildir", help="Maildir the bounce address delivers to")]
            ) -> None:
    """Read new delivery status reports (bounces) from a Maildir and apply them; each is then marked seen.
    / Прочитать новые отчёты о недоставке (bounce) из Maildir и применить их."""
    if not (Path(maildir) / "new").is_dir():
        Console(stderr=True).print(f"[red]error:[/red] --maildir: {maildir!r} is not a Maildir (no new/ folder)")
        raise typer.Exit(2)
    box = mailbox.Maildir(maildir, factory=None, create=False)
    keys = [k for k in box.iterkeys() if box.get_message(k).get_subdir() == "new"]
    a = open_app(log=False)
    counts = {"failed": 0, "delivered": 0, "other": 0, "not ours": 0}
    try:
        for key in track(keys, description="bounces / отчёты", console=console):
            try:
                with transaction(a.sessions) as s:
                    b = dsn.record(s, raw=box.get_bytes(key), secret=a.messaging.settings.messaging_secret,
                                   now=a.clock.now())
                counts[b.action if b.action in counts else "other"] += 1
            except DomainError:
                counts["not ours"] += 1
            msg = box.get_message(key)
            msg.set_subdir("cur")
            msg.add_flag("S")
            box[key] = msg
    finally:
        a.close()
    console.print(", ".join(f"{k}: {v}" for k, v in counts.items()))
