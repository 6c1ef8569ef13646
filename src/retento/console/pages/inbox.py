"""The operators' inbox: dialogs by state and channel with unread counts, a conversation with media, quotes and the
delivery status of replies, the customer's card and orders beside it; replies (free text or a quick reply: a
messaging template of the channel), notes, assignment, state and tags through inbox.service (the same as
/api/v1/inbox); new messages arrive without reload (an EventSource on `/inbox/stream`, inbox.live, makes htmx
refresh the list and the open conversation). The channel-share chart over months is inbox.queries.channel_report
(`GET /api/v1/inbox/report`)."""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime, time
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, Form, Header, Query, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from retento.console import web
from retento.console.i18n import N_
from retento.console.web import Viewer, app_of, reading, render, signed_in
from retento.core import parsing
from retento.core.db.transactions import transaction
from retento.core.errors import DomainError, NotFound
from retento.inbox import live, queries, service
from retento.inbox.inbound import CHANNELS
from retento.inbox.ingest import settings_of_app
from retento.inbox.schemas import DialogEdit, NoteIn, ReplyIn
from retento.messaging import service as messaging
from retento.orders import queries as order_queries
from retento.sites import service as sites
from retento.users import service as users

router = web.router()
PAGE = web.Page(router, nav="Inbox", path="/inbox", order=12)
operations = web.may_change("operations")
STATES = ("open", "waiting", "closed")
VIEWS = (*STATES, "all")  # the list's tabs: a state, or every state
WHO = ("", "me", "unassigned")
LIST_SIZE = 100
SHOWN = 200  # the newest messages of a conversation
ORDERS = 10  # the customer's newest orders beside the conversation
CHANNEL_NAMES = {"telegram": "Telegram", "whatsapp": "WhatsApp", "vk": "VK", "instagram": "Instagram"}
COLORS = {"telegram": "#1f77b4", "whatsapp": "#2ca02c", "vk": "#6f42c1", "instagram": "#d62770"}
STATE_LABELS = (N_("Open"), N_("Waiting"), N_("Closed"))


def _filters(state: str, channel: str, who: str) -> tuple[str, str, str]:
    return (state if state in VIEWS else "open", channel if channel in CHANNELS else "",
            who if who in WHO else "")


def _query(state: str, channel: str, who: str, **extra: Any) -> str:
    return urlencode({"state": state, **({"channel": channel} if channel else {}), **({"who": who} if who else {}),
                      **{k: v for k, v in extra.items() if v}})


def _list(s: Any, viewer: Viewer, state: str, channel: str, who: str) -> dict[str, Any]:
    """The list's tabs (dialogs and unread per state and channel) and its dialogs, newest activity first."""
    mine = {"assignee_id": viewer.user_id} if who == "me" else {}
    counts = queries.counts(s, site_ids=None, unassigned=who == "unassigned", **mine)
    rows = queries.list_dialogs(s, site_ids=None, state=None if state == "all" else state, channel=channel or None, unassigned=who == "unassigned",
                                customer_id=None, after=None, limit=LIST_SIZE + 1,
                                assignee_id=viewer.user_id if who == "me" else None)
    tabs = {st: [sum(v[i] for (x, c), v in counts.items() if st in (x, "all") and (not channel or c == channel))
                 for i in (0, 1)] for st in VIEWS}
    by_channel = {ch: [sum(v[i] for (x, c), v in counts.items() if state in (x, "all") and c == ch) for i in (0, 1)]
                  for ch in CHANNELS}
    return {"dialogs": rows[:LIST_SIZE], "more": len(rows) > LIST_SIZE, "tabs": tabs, "by_channel": by_channel,
            "state": state, "channel": channel, "who": who, "query": _query(state, channel, who),
            "state_links": {st: _query(st, channel, who) for st in VIEWS},
            "channel_links": {ch: _query(state, ch, who) for ch in ("", *CHANNELS)}, "names": _names(s)}


def _names(s: Any) -> dict[int, str]:
    return {u.id: u.name or u.email for u in users.list_users(s)}


def _operators(s: Any, site_id: int) -> list[Any]:
    """Who may take a dialog of this site: active admins and operators with the site."""
    return [u for u in users.list_users(s) if not u.disabled and u.role in service.OPERATOR_ROLES
            and (u.site_ids is None or site_id in u.site_ids)]


def _conversation(s: Any, dialog_id: int, now: datetime) -> dict[str, Any]:
    dialog = service.get_dialog(s, dialog_id)
    view = queries.dialog_view(s, dialog, now)
    shown, older = queries.recent_messages(s, dialog_id=dialog.id, limit=SHOWN)
    by_provider = {m["provider_id"]: m for m in shown if m["provider_id"]}
    return {"dialog": view, "messages": shown, "older": older, "quoted": by_provider}


def _dialog(s: Any, dialog_id: int, now: datetime) -> dict[str, Any]:
    """A dialog with its conversation, the customer's orders, quick replies and who may take it."""
    context = _conversation(s, dialog_id, now)
    view = context["dialog"]
    site = next(x for x in sites.list_sites(s) if x.id == view["site_id"])
    orders = order_queries.list_orders(s, customer_id=view["customer_id"], limit=1000)[-ORDERS:][::-1]
    linked = set(view["order_ids"])
    templates = [t for t in messaging.list_templates(s, site=site.code) if t.channel == view["channel"]]
    return {**context, "site": site, "orders": orders, "linked": linked, "templates": templates,
            "operators": _operators(s, view["site_id"]),
            "statuses": {x.code: x for x in order_queries.statuses(s)}}


def _page(request: Request, viewer: Viewer, *, state: str, channel: str, who: str, dialog_id: int | None,
          status: int = 200, **context: Any) -> Response:
    now = app_of(request).clock.now()
    with transaction(reading(request)) as s:
        listing = _list(s, viewer, state, channel, who)
        opened = _dialog(s, dialog_id, now) if dialog_id is not None else {}
    return render(request, "inbox/page.html", status=status, **listing, **opened, open_id=dialog_id,
                  channel_names=CHANNEL_NAMES, key=secrets.token_urlsafe(16), **context)


@router.get("/inbox")
def inbox(request: Request, viewer: Annotated[Viewer, Depends(signed_in)], state: str = "open", channel: str = "",
          who: str = "", dialog: Annotated[int | None, Query(ge=1, le=parsing.INT64_MAX)] = None) -> Response:
    state, channel, who = _filters(state, channel, who)
    return _page(request, viewer, state=state, channel=channel, who=who, dialog_id=dialog)


@router.get("/inbox/list")
def dialog_list(request: Request, viewer: Annotated[Viewer, Depends(signed_in)], state: str = "open",
                channel: str = "", who: str = "",
                dialog: Annotated[int | None, Query(ge=1, le=parsing.INT64_MAX)] = None) -> Response:
    """The list alone (htmx: refreshed when the live stream says something changed)."""
    state, channel, who = _filters(state, channel, who)
    with transaction(reading(request)) as s:
        listing = _list(s, viewer, state, channel, who)
    return render(request, "inbox/_list.html", **listing, open_id=dialog, channel_names=CHANNEL_NAMES)


@router.get("/inbox/dialogs/{dialog_id}/messages")
def conversation(request: Request, viewer: Annotated[Viewer, Depends(signed_in)], dialog_id: int) -> Response:
    """The conversation alone (htmx: refreshed when the live stream names this dialog)."""
    with transaction(reading(request)) as s:
        context = _conversation(s, dialog_id, app_of(request).clock.now())
        names = _names(s)
    return render(request, "inbox/_conversation.html", **context, names=names)


@router.get("/inbox/stream")
async def stream(request: Request, viewer: Annotated[Viewer, Depends(signed_in)],
                 last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=32)] = None) -> Response:
    """Inbox events of the user's sites as Server-Sent Events (inbox.live), from now or from the id a
    reconnecting EventSource sends."""
    resume = parsing.integer(last_event_id) if last_event_id else None

    def start() -> int:
        with transaction(reading(request)) as s:
            return live.resume_point(s, resume)

    cursor = await run_in_threadpool(start)
    return StreamingResponse(live.events(request, sessions=lambda: reading(request),
                                         cfg=settings_of_app(app_of(request)), site_ids=viewer.site_ids,
                                         cursor=cursor), media_type="text/event-stream", headers=live.HEADERS)


# --- changes -------------------------------------------------------------------------------------------------


def _back(dialog_id: int, state: str, channel: str, who: str, **extra: Any) -> RedirectResponse:
    state, channel, who = _filters(state, channel, who)
    return RedirectResponse(f"/inbox?{_query(state, channel, who, dialog=dialog_id, **extra)}", status_code=303)


def _parse(model: Any, raw: dict[str, Any]) -> Any:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise DomainError.from_pydantic(exc) from None


def _change(request: Request, viewer: Viewer, dialog_id: int, filters: tuple[str, str, str], fn: Any,
            form: dict[str, str]) -> Response:
    """Run a change of the dialog; bad input shows the page again with the fields named (400)."""
    app = app_of(request)
    try:
        with transaction(app.sessions) as s:
            fn(s, service.get_dialog(s, dialog_id), app.clock.now())
    except NotFound as exc:
        if web.field_errors(exc).keys() <= {"dialog_id"}:
            raise
        return _failed(request, viewer, dialog_id, filters, exc, form)
    except DomainError as exc:
        return _failed(request, viewer, dialog_id, filters, exc, form)
    return _back(dialog_id, *filters, saved=1)


def _failed(request: Request, viewer: Viewer, dialog_id: int, filters: tuple[str, str, str], exc: DomainError,
            form: dict[str, str]) -> Response:
    state, channel, who = _filters(*filters)
    return _page(request, viewer, state=state, channel=channel, who=who, dialog_id=dialog_id, status=exc.status,
                 errors=web.field_errors(exc), form=form)


Text = Annotated[str, Form()]


@router.post("/inbox/dialogs/{dialog_id}/reply")
def reply(request: Request, viewer: Annotated[Viewer, Depends(operations)], dialog_id: int,
          text: Text = "", template_id: Text = "", key: Text = "", state: Text = "open",
          channel: Text = "", who: Text = "") -> Response:
    """Answer the customer: free text, or a quick reply (a template of the channel). The form's key makes a
    second submit return the first reply."""
    form = {"text": text, "template_id": template_id}

    def run(s: Any, dialog: Any, now: datetime) -> None:
        data = _parse(ReplyIn, {"operator_id": viewer.user_id, "text": text.strip() or None,
                                "template_id": template_id.strip() or None, "idempotency_key": key or None})
        service.reply(s, dialog=dialog, data=data, now=now)

    return _change(request, viewer, dialog_id, (state, channel, who), run, form)


@router.post("/inbox/dialogs/{dialog_id}/note")
def note(request: Request, viewer: Annotated[Viewer, Depends(operations)], dialog_id: int, text: Text = "",
         key: Text = "", state: Text = "open", channel: Text = "", who: Text = "") -> Response:
    """An internal note, seen by operators only."""

    def run(s: Any, dialog: Any, now: datetime) -> None:
        data = _parse(NoteIn, {"operator_id": viewer.user_id, "text": text, "idempotency_key": key or None})
        service.note(s, dialog=dialog, data=data, now=now)

    return _change(request, viewer, dialog_id, (state, channel, who), run, {"note": text})


@router.post("/inbox/dialogs/{dialog_id}/assign")
def assign(request: Request, viewer: Annotated[Viewer, Depends(operations)], dialog_id: int,
           assignee_id: Text = "", state: Text = "open", channel: Text = "", who: Text = "") -> Response:
    """Give the dialog to an operator (empty: to no one)."""

    def run(s: Any, dialog: Any, now: datetime) -> None:
        data = _parse(DialogEdit, {"assignee_id": assignee_id.strip() or None, "operator_id": viewer.user_id})
        service.edit(s, dialog=dialog, data=data, now=now)

    return _change(request, viewer, dialog_id, (state, channel, who), run, {})


@router.post("/inbox/dialogs/{dialog_id}/state")
def change_state(request: Request, viewer: Annotated[Viewer, Depends(operations)], dialog_id: int,
                 to: Text = "", state: Text = "open", channel: Text = "", who: Text = "") -> Response:
    """Open, wait for the customer, or close (the response cycle's resolution, as this user)."""

    def run(s: Any, dialog: Any, now: datetime) -> None:
        data = _parse(DialogEdit, {"state": to or None, "operator_id": viewer.user_id})
        if data.state is None:
            raise DomainError.one("state", "choose open, waiting or closed")
        service.edit(s, dialog=dialog, data=data, now=now)

    return _change(request, viewer, dialog_id, (state, channel, who), run, {})


@router.post("/inbox/dialogs/{dialog_id}/tags")
def tags(request: Request, viewer: Annotated[Viewer, Depends(operations)], dialog_id: int, value: Text = "",
         state: Text = "open", channel: Text = "", who: Text = "") -> Response:
    """Replace the dialog's tags (comma-separated)."""

    def run(s: Any, dialog: Any, now: datetime) -> None:
        wanted = [t.strip() for t in value.split(",") if t.strip()]
        service.edit(s, dialog=dialog, data=_parse(DialogEdit, {"tags": wanted, "operator_id": viewer.user_id}),
                     now=now)

    return _change(request, viewer, dialog_id, (state, channel, who), run, {"tags": value})


@router.post("/inbox/dialogs/{dialog_id}/read")
def mark_read(request: Request, viewer: Annotated[Viewer, Depends(operations)], dialog_id: int) -> Response:
    """No unread messages left (htmx posts it when an operator opens a dialog with unread ones)."""
    app = app_of(request)
    with transaction(app.sessions) as s:
        service.mark_read(s, dialog=service.get_dialog(s, dialog_id), now=app.clock.now())
    return Response(status_code=204)


# --- the channel report --------------------------------------------------------------------------------------


def share_chart(viewer: Viewer, months: list[dict[str, Any]]) -> dict[str, Any]:
    """Stacked bars: each channel's share of the month's customer messages; line: the month's messages."""
    labels = [viewer.fmt.month(date.fromisoformat(m["month"] + "-01")) for m in months]
    series: list[dict[str, Any]] = [
        {"name": CHANNEL_NAMES[ch], "type": "bar", "stack": "share", "itemStyle": {"color": COLORS[ch]},
         "data": [round(m["channels"][ch]["share"] * 100, 1) for m in months]} for ch in CHANNELS]
    series.append({"name": viewer.gettext("Messages"), "type": "line", "yAxisIndex": 1, "itemStyle": {"color": "#444"},
                   "data": [m["messages"] for m in months]})
    return {"tooltip": {"trigger": "axis"}, "legend": {"top": 0}, "grid": {"left": 60, "right": 70, "top": 50},
            "xAxis": {"type": "category", "data": labels},
            "yAxis": [{"type": "value", "name": "%", "min": 0, "max": 100},
                      {"type": "value", "name": viewer.gettext("Messages"), "min": 0}],
            "series": series, "aria": {"enabled": False}}  # the table below gives the same figures


def _month(text: str, field: str, *, end: bool) -> datetime | None:
    """The first moment of a month typed as YYYY-MM (with `end`, of the month after it), UTC like the report's
    months."""
    if not text:
        return None
    try:
        first = date.fromisoformat(text + "-01")
    except ValueError:
        raise DomainError.one(field, "a month YYYY-MM") from None
    if end:
        first = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return datetime.combine(first, time.min, UTC)


@router.get("/inbox/report")
def report(request: Request, viewer: Annotated[Viewer, Depends(signed_in)], site: str = "",
           first: Annotated[str, Query(alias="from", max_length=7)] = "",
           last: Annotated[str, Query(alias="to", max_length=7)] = "") -> Response:
    """Customers' messages and new dialogs per channel per month, channel shares over time, volume growth."""
    errors: dict[str, str] = {}
    try:
        start = _month(first, "from", end=False)
        end = _month(last, "to", end=True)
    except DomainError as exc:
        start = end = None
        errors = web.field_errors(exc)
    with transaction(reading(request)) as s:
        visible = sites.list_sites(s)
        chosen = next((x for x in visible if x.code == site), None)
        if site and chosen is None:
            raise NotFound("site", f"site {site!r} not found")
        data = None if errors else queries.channel_report(s, site_ids=[chosen.id] if chosen else None, since=start,
                                                           until=end)
    months = data["months"] if data else []
    return render(request, "inbox/report.html", status=400 if errors else 200, sites=visible, site=chosen,
                  first=first, last=last, errors=errors, report=data, months=months, channels=CHANNELS,
                  channel_names=CHANNEL_NAMES, chart=share_chart(viewer, months) if months else None,
                  month_label=lambda m: viewer.fmt.month(date.fromisoformat(m + "-01")))
