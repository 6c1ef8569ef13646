"""`retento inbox ...`: dialogs, response times, assignment settings, business connections, the exclusion list."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from retento.cmdline import Col, Format, FormatOption, Rows, emit, fail, open_app, run_service
from retento.core.db.transactions import transaction
from retento.inbox import queries, service
from retento.inbox.inbound import CHANNELS
from retento.inbox.schemas import Assignment, Channel, ExclusionIn, SettingsIn, State
from retento.sites.service import get_site

app = typer.Typer(help="Inbox: dialogs with customers in messengers. / Входящие: диалоги с покупателями.",
                  no_args_is_help=True)
console = Console()
SiteOpt = Annotated[str | None, typer.Option("--site", help="Site code / код магазина")]


@app.command("dialogs")
def dialogs(site: SiteOpt = None, state: Annotated[State | None, typer.Option(help="open, waiting or closed")] = None,
            channel: Annotated[Channel | None, typer.Option()] = None,
            assignee: Annotated[int | None, typer.Option(help="Operator (console user id)")] = None,
            unassigned: Annotated[bool, typer.Option("--unassigned", help="Only dialogs nobody has")] = False,
            limit: Annotated[int, typer.Option(min=1, max=1000)] = 50, fmt: FormatOption = Format.table) -> None:
    """Dialogs, newest activity first. / Диалоги, свежие сверху."""
    a = open_app()
    with transaction(a.sessions) as s:
        site_ids = [run_service(lambda: get_site(s, site)).id] if site else None
        rows = [queries.dialog_row(d) for d in queries.list_dialogs(
            s, site_ids=site_ids, state=state and state.value, channel=channel and channel.value,
            assignee_id=assignee, unassigned=unassigned, customer_id=None, after=None, limit=limit)]
    emit(fmt, Rows("dialogs", [Col("id", kind="int"), Col("channel"), Col("title", empty="-"),
                               Col("customer_id", "customer", kind="int"), Col("state"),
                               Col("assignee_id", "operator", empty="-"), Col("unread", kind="int"),
                               Col("last_message_at", "last message (UTC)", kind="time")], rows), data=rows)


@app.command("response-times")
def response_times(site: SiteOpt = None, fmt: FormatOption = Format.table) -> None:
    """First-response and resolution times per operator. / Время первого ответа и решения по операторам."""
    a = open_app()
    with transaction(a.sessions) as s:
        site_ids = [run_service(lambda: get_site(s, site)).id] if site else None
        data = queries.response_times(s, site_ids=site_ids, since=None, until=None)
    rows = [{"operator_id": "all", "first": data["first_response"], "resolution": data["resolution"]}] + [
        {"operator_id": o["operator_id"], "first": o["first_response"], "resolution": o["resolution"]}
        for o in data["operators"]]
    flat = [{"operator": r["operator_id"], "answered": r["first"]["count"],
             "first_response_median_s": r["first"]["median_seconds"],
             "first_response_mean_s": r["first"]["mean_seconds"], "resolved": r["resolution"]["count"],
             "resolution_median_s": r["resolution"]["median_seconds"]} for r in rows]
    emit(fmt, Rows("response_times", [
        Col("operator"), Col("answered", kind="int"), Col("first_response_median_s", "first response, median s",
                                                          kind="number", empty="-"),
        Col("first_response_mean_s", "first response, mean s", kind="number", empty="-"),
        Col("resolved", kind="int"), Col("resolution_median_s", "resolution, median s", kind="number", empty="-")],
        flat), data=data)


@app.command("assign")
def assign(site: Annotated[str, typer.Option("--site")],
           mode: Annotated[Assignment, typer.Option("--mode", help="manual, round_robin or by_load")],
           operators: Annotated[list[int] | None, typer.Option("--operator", help="Console user id (repeat)")] = None,
           ) -> None:
    """How new dialogs are assigned. / Как распределять новые диалоги."""
    a = open_app()
    with transaction(a.sessions) as s:
        row = run_service(lambda: service.set_settings(s, site=site, data=SettingsIn(
            assignment=mode, operators=operators or []), now=a.clock.now()))
        console.print(f"{site}: {row.assignment}, operators {', '.join(map(str, row.operators)) or '-'}")


@app.command("exclude")
def exclude(site: Annotated[str, typer.Option("--site")], peer: Annotated[str, typer.Argument(help="Contact id")],
            channel: Annotated[Channel, typer.Option()] = Channel.TELEGRAM,
            purge: Annotated[bool, typer.Option("--purge", help="Delete what is stored of the contact")] = False,
            note: Annotated[str | None, typer.Option()] = None) -> None:
    """Never import a contact (a person's private chat on a business account). / Не загружать контакт."""
    try:
        data = ExclusionIn(channel=channel, peer=peer, note=note, purge=purge)
    except ValueError as exc:
        fail(f"peer: {exc}")
    a = open_app()
    with transaction(a.sessions) as s:
        _, purged = run_service(lambda: service.add_exclusion(s, site=site, data=data, now=a.clock.now()))
    console.print(f"{channel.value} {peer} excluded" + (f"; {purged} dialogs purged" if purge else ""))


@app.command("connections")
def connections(fmt: FormatOption = Format.table) -> None:
    """Telegram business connections. / Подключения Telegram Business."""
    a = open_app()
    with transaction(a.sessions) as s:
        rows = [{"id": c.id, "user": c.user_name, "user_id": c.user_id, "operator_id": c.operator_id,
                 "enabled": c.enabled, "can_reply": c.can_reply} for c in service.list_connections(s)]
    emit(fmt, Rows("connections", [Col("id"), Col("user", empty="-"), Col("user_id"),
                                   Col("operator_id", "operator", empty="-"),
                                   Col("enabled", show=lambda v: "yes" if v else "no"),
                                   Col("can_reply", "may reply", show=lambda v: "yes" if v else "no")], rows))


@app.command("report")
def report(site: SiteOpt = None, fmt: FormatOption = Format.table) -> None:
    """Customers' messages per channel per month, channel shares and growth. / Сообщения по каналам и месяцам."""
    a = open_app()
    with transaction(a.sessions) as s:
        site_ids = [run_service(lambda: get_site(s, site)).id] if site else None
        data = queries.channel_report(s, site_ids=site_ids, since=None, until=None)
    rows = [{"month": m["month"], "messages": m["messages"], "dialogs": m["dialogs"],
             **{f"{ch}_share": v["share"] for ch, v in m["channels"].items()}} for m in data["months"]]
    notes = [f"growth of monthly messages, first to last month: x{data['growth']:.2f}"] if data["growth"] else []
    emit(fmt, Rows("channels", [Col("month"), Col("messages", kind="int"), Col("dialogs", "new dialogs", kind="int"),
                                *(Col(f"{ch}_share", ch, kind="percent") for ch in CHANNELS)], rows),
         notes=notes, data=data)
