"""`retento report cascade ID` / `retento report campaign ID`: the cost report (`--format table|csv|json`)."""

from __future__ import annotations

import mailbox
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import track

from retento.cmdline import Col, Format, FormatOption, Rows, emit, fail, open_app
from retento.core.db.transactions import transaction
from retento.core.errors import DomainError
from retento.messaging import bounces as dsn, reports, service

app = typer.Typer(help="Reports / Отчёты.", no_args_is_help=True)
console = Console()
NOT_REPORTED = "not reported / нет данных"


def _tables(rep: dict[str, Any]) -> list[Rows]:
    cur = rep["currency"]
    title = f"{rep['name']} (cascade {rep['cascade_id']}" + (f", campaign {rep['campaign_id']}" if
                                                             rep["campaign_id"] else "") + ")"
    counts = [Col(k, kind="int") for k in ("messages", "sent")] + [
        Col(k, kind="int", empty=NOT_REPORTED) for k in ("delivered", "read")] + [
        Col(k, kind="int") for k in ("clicked", "failed", "uncertain")] + [
        Col("cost", kind="money", currency=cur), Col("read_rate", "read rate", kind="percent", empty=NOT_REPORTED),
        Col("cost_per_read", "cost per read", kind="money", currency=cur, empty="—")]
    return [
        Rows("steps", [Col("step", show=lambda n: str(n + 1)), Col("channel"), *counts], rep["steps"],
             title=f"{title}: by step"),
        Rows("channels", [Col("channel"), *counts], rep["channels"], title=f"{title}: by channel"),
        Rows("outcomes", [Col("outcome"), Col("runs", kind="int")],
             [{"outcome": k, "runs": v} for k, v in sorted(rep["outcomes"].items())],
             title=f"{title}: outcomes"),
        Rows("summary", [
            Col("members", kind="int"), Col("total_cost", "total cost", kind="money", currency=cur),
            Col("reads", kind="int"), Col("cost_per_read", "cost per read", kind="money", currency=cur, empty="—"),
            Col("most_expensive_channel", "most expensive channel"),
            Col("baseline_cost", "everyone through it", kind="money", currency=cur),
            Col("gross_saving", "gross saving", kind="money", currency=cur),
            Col("net_saving", "net saving", kind="money", currency=cur)], [rep], title="summary / итого",
             stacked=True),
    ]


@app.command("cascade")
def cascade(cascade_id: int, fmt: FormatOption = Format.table) -> None:
    """Sent, delivered, read, clicked, failed, uncertain, cost, read rate and cost per read of a cascade by step
    and by channel, how its members' runs ended, and its saving. / Отчёт по каскаду."""
    _run(lambda s: reports.report(s, cascade_id=cascade_id), fmt)


@app.command("campaign")
def campaign(campaign_id: int, fmt: FormatOption = Format.table) -> None:
    """The same report for one campaign. / Тот же отчёт по одной кампании."""
    def build(s: Any) -> dict[str, Any]:
        camp = service.get_campaign(s, campaign_id)
        return reports.report(s, cascade_id=camp.cascade_id, campaign_id=camp.id)

    _run(build, fmt)


def _run(build: Any, fmt: Format) -> None:
    a = open_app(log=False)
    try:
        with transaction(a.sessions) as s:
            rep = build(s)
    except DomainError as exc:
        fail(exc.message)
    finally:
        a.close()
    emit(fmt, *_tables(rep), data=rep)


def bounces(maildir: Annotated[str, typer.Option("--maildir", help="Maildir the bounce address delivers to")]
            ) -> None:
    """Read new delivery status reports (bounces) from a Maildir and apply them; each is then marked seen.
    / Прочитать новые отчёты о недоставке (bounce) из Maildir и применить их."""
    if not (Path(maildir) / "new").is_dir():
        fail(f"--maildir: {maildir!r} is not a Maildir (no new/ folder)", 2)
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
