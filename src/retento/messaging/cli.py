"""`retento report cascade ID` / `retento report campaign ID`: the cost report (and `retento report journey ID`, the
journeys' funnel report, `retento report inbox`, the inbox's channels by month, and `retento report loyalty SITE`,
the loyalty program's P&L) (`--format table|csv|json`; the loyalty report `--json`)."""

from __future__ import annotations

import json
import mailbox
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import track

from retento.cmdline import Col, Format, FormatOption, Rows, emit, fail, open_app, run_service
from retento.core.db.transactions import transaction
from retento.core.errors import DomainError
from retento.inbox import cli as inbox_cli
from retento.journeys import cli as journeys_cli
from retento.loyalty import cli as loyalty_cli
from retento.messaging import bounces as dsn, reports, service
from retento.messaging.schemas import CampaignIn
from retento.sites.service import get_site

app = typer.Typer(help="Reports / Отчёты.", no_args_is_help=True)
app.command("journey")(journeys_cli.report)  # `retento report journey ID`: the journeys' funnel and money report
app.command("inbox")(inbox_cli.report)  # `retento report inbox`: messages per channel per month, shares, growth
app.command("loyalty")(loyalty_cli.pnl_)  # `retento report loyalty SITE`: the program's P&L (`retento loyalty pnl`)
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


# --- campaigns: `retento campaign create | show | list` ----------------------------------------------------

campaign_app = typer.Typer(help="Campaigns: a cascade sent to many customers / Кампании.", no_args_is_help=True)


def _file_or_text(value: str) -> str:
    """`@path` reads the file (`@-`: standard input), anything else is the value itself."""
    if not value.startswith("@"):
        return value
    if value == "@-":
        return sys.stdin.read()
    try:
        return Path(value[1:]).read_text(encoding="utf-8")
    except OSError as exc:
        fail(f"cannot read {value[1:]}: {exc.strerror}", 2)


@campaign_app.command("create")
def campaign_create(
    cascade_id: Annotated[int, typer.Option("--cascade", help="Cascade id")],
    name: Annotated[str, typer.Option(help="Campaign name")],
    everyone: Annotated[bool, typer.Option("--everyone", help="Every customer of the cascade's site")] = False,
    segment: Annotated[str | None, typer.Option(help="Segment id or code: its members when it starts")] = None,
    rules: Annotated[str | None, typer.Option(
        help="A segment rule tree as JSON, or @file: who matches it when it starts")] = None,
    ids: Annotated[str | None, typer.Option(
        help="Customer ids, comma- or line-separated, or @file (@- for standard input)")] = None,
    start_at: Annotated[str | None, typer.Option(help="ISO time with offset; default now")] = None,
    message_class: Annotated[str, typer.Option("--class", help="marketing or transactional")] = "marketing",
) -> None:
    """Send a cascade to a list of customers, a segment, everyone of the site or a rule tree.
    / Отправить каскад списку клиентов, сегменту, всем клиентам сайта или по правилам."""
    raw: dict[str, Any] = {"cascade_id": cascade_id, "name": name, "message_class": message_class}
    if everyone:
        raw["everyone"] = True
    if segment is not None:
        raw["segment"] = int(segment) if segment.isdigit() else segment
    if rules is not None:
        try:
            raw["rules"] = json.loads(_file_or_text(rules))
        except ValueError as exc:
            fail(f"--rules: not JSON ({exc})", 2)
    if ids is not None:
        words = _file_or_text(ids).replace(",", " ").split()
        if bad := [w for w in words if not w.isdigit()]:
            fail(f"--ids: not a customer id: {bad[0]!r}", 2)
        raw["customer_ids"] = [int(w) for w in words]
    if start_at is not None:
        raw["start_at"] = start_at
    try:
        data = CampaignIn.model_validate(raw)
    except ValidationError as exc:
        fail(DomainError.from_pydantic(exc).message, 2)
    a = open_app(log=False)
    try:
        with transaction(a.sessions) as s:
            camp = run_service(lambda: service.create_campaign(s, data=data, now=a.clock.now()))
            out = {"id": camp.id, "status": camp.status, "start_at": camp.start_at.isoformat()}
    finally:
        a.close()
    console.print(f"campaign {out['id']} {out['status']}, starts at {out['start_at']}")


@campaign_app.command("show")
def campaign_show(campaign_id: int, fmt: FormatOption = Format.table) -> None:
    """Status, audience, members, outcomes and progress per step of a campaign. / Статус и ход кампании."""
    a = open_app(log=False)
    try:
        with transaction(a.sessions) as s:
            view = run_service(lambda: reports.campaign(s, campaign_id=campaign_id))
    finally:
        a.close()
    cur = view["currency"]
    summary = Rows("campaign", [
        Col("id", kind="int"), Col("name"), Col("site"), Col("cascade_id", "cascade"), Col("status"),
        Col("audience"), Col("start_at", "start at", kind="time"), Col("started_at", "started", kind="time", empty="—"),
        Col("members", kind="int"), Col("in_progress", "in the cascade", kind="int"),
        Col("total_cost", "cost", kind="money", currency=cur)], [view], title="campaign / кампания", stacked=True)
    progress = Rows("progress", [
        Col("step", show=lambda n: str(n + 1)), Col("channel"),
        *(Col(k, kind="int") for k in ("planned", "sent")),
        *(Col(k, kind="int", empty=NOT_REPORTED) for k in ("delivered", "read")),
        *(Col(k, kind="int") for k in ("failed", "uncertain")), Col("cost", kind="money", currency=cur)],
        view["progress"], title="progress / ход рассылки")
    outcomes = Rows("outcomes", [Col("outcome"), Col("runs", kind="int")],
                    [{"outcome": k, "runs": v} for k, v in sorted(view["outcomes"].items())],
                    title="outcomes / итоги")
    emit(fmt, summary, progress, outcomes, data=view)


@campaign_app.command("list")
def campaign_list(
    site: Annotated[str | None, typer.Option(help="Site code")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    fmt: FormatOption = Format.table,
) -> None:
    """Campaigns, oldest first, with status, members and cost so far. / Кампании."""
    a = open_app(log=False)
    try:
        with transaction(a.sessions) as s:
            site_ids = [run_service(lambda: get_site(s, site)).id] if site else None
            rows = reports.summaries(s, service.list_campaigns(s, site_ids=site_ids, limit=limit))
    finally:
        a.close()
    table = [{**r, "spent": ", ".join(f"{v:,} {k}" for k, v in r["cost"].items())} for r in rows]
    emit(fmt, Rows("campaigns", [
        Col("id", kind="int"), Col("name"), Col("site"), Col("status"), Col("audience"),
        Col("start_at", "start at", kind="time"), Col("members", kind="int"),
        Col("in_progress", "in the cascade", kind="int"), Col("spent", "cost", empty="—")], table,
        title="campaigns / кампании"), data=rows)
