"""/api/v1/inbox: dialogs, their messages, replies, notes, state, assignment, tags, linked orders; assignment
settings, Telegram business connections, the exclusion list, response times. (Provider webhooks are the
messaging ones: `/api/v1/messaging/webhooks/{telegram,whatsapp,vk,instagram}`.)"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Header, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from retento.apikeys.api import require
from retento.apikeys.schemas import Principal
from retento.core import parsing, scoping
from retento.core.dates import AwareDatetime
from retento.core.db.transactions import transaction
from retento.core.errors import DomainError
from retento.core.jsonable import jsonable
from retento.core.rest.pagination import CursorParam, Limit, SiteParam
from retento.core.rest.problems import router as v1_router
from retento.customers import service as customers
from retento.inbox import live, queries, service
from retento.inbox.ingest import settings_of_app as ingest_settings
from retento.inbox.schemas import (
    Channel,
    ConnectionEdit,
    CustomerLink,
    DialogEdit,
    ExclusionIn,
    NoteIn,
    OrderLink,
    ReplyIn,
    SettingsIn,
    State,
)
from retento.routes import app_of, reading
from retento.sites.service import get_site

router = v1_router("inbox")
Read = Annotated[Principal, Depends(require("inbox:read"))]
Write = Annotated[Principal, Depends(require("inbox:write"))]
DialogId = Annotated[int, Path(gt=0, le=2**63 - 1)]


def _write(request: Request, fn: Callable[[Any, datetime], Any]) -> Any:
    app = app_of(request)
    with transaction(app.sessions) as s:
        return jsonable(fn(s, app.clock.now()))


def _read(request: Request, fn: Callable[[Any, datetime], Any]) -> Any:
    with transaction(reading(request)) as s:
        return jsonable(fn(s, app_of(request).clock.now()))


def _cursor(raw: str | None) -> tuple[datetime, int] | None:
    if not raw:
        return None
    try:
        at, _, did = base64.urlsafe_b64decode(raw.encode()).decode().partition("|")
        return datetime.fromisoformat(at), int(did)
    except (ValueError, UnicodeDecodeError):
        raise DomainError.one("cursor", "not a cursor this API gave") from None


def _next(rows: list[Any], limit: int) -> tuple[list[Any], str | None]:
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    return rows[:limit], base64.urlsafe_b64encode(f"{last.last_message_at.isoformat()}|{last.id}".encode()).decode()


@router.get("/inbox/dialogs", summary="Dialogs, newest activity first",
            description="Filter by site, state (open: the customer waits; waiting: we wait for the customer; "
                        "closed), channel, assignee or unassigned, customer. Each with its unread count.")
def list_dialogs(request: Request, _: Read, site: SiteParam = None, state: State | None = None,
                 channel: Channel | None = None, assignee_id: Annotated[int | None, Query(gt=0)] = None,
                 unassigned: bool = False, customer_id: Annotated[int | None, Query(gt=0)] = None,
                 cursor: CursorParam = None, limit: Limit = 50) -> Any:
    def run(s: Any, _now: datetime) -> Any:
        site_ids = [get_site(s, site).id] if site else None
        if customer_id is not None:
            customers.get(s, customer_id)  # another shop's customer: not found
        rows = queries.list_dialogs(s, site_ids=site_ids, state=state and state.value,
                                    channel=channel and channel.value, assignee_id=assignee_id,
                                    unassigned=unassigned, customer_id=customer_id, after=_cursor(cursor),
                                    limit=limit + 1)
        items, nxt = _next(rows, limit)
        return {"items": [queries.dialog_row(d) for d in items], "next_cursor": nxt}
    return _read(request, run)


@router.get("/inbox/dialogs/{dialog_id}", summary="A dialog with its customer, orders and response cycles")
def get_dialog(request: Request, _: Read, dialog_id: DialogId) -> Any:
    return _read(request, lambda s, now: queries.dialog_view(s, service.get_dialog(s, dialog_id), now))


@router.get("/inbox/dialogs/{dialog_id}/messages", summary="Messages and notes of a dialog, oldest first",
            description="Page on with `after_id` (the last id seen). Replies carry their delivery status and "
                        "timeline; edited messages their earlier texts; deleted ones `deleted_at` and no content.")
def get_messages(request: Request, _: Read, dialog_id: DialogId,
                 after_id: Annotated[int, Query(ge=0)] = 0, limit: Annotated[int, Query(ge=1, le=500)] = 100) -> Any:
    def run(s: Any, _now: datetime) -> Any:
        service.get_dialog(s, dialog_id)
        return {"items": queries.messages(s, dialog_id=dialog_id, after_id=after_id, limit=limit)}
    return _read(request, run)


@router.post("/inbox/dialogs/{dialog_id}/replies", status_code=201, summary="Answer the customer",
             description="Queued and sent by the worker through the channel (its status comes back from the "
                         "provider). WhatsApp: free text only within 24 hours of the customer's last message, "
                         "else `template_id` (an approved template). A repeated `idempotency_key` returns the "
                         "first reply.")
def post_reply(request: Request, _: Write, dialog_id: DialogId, data: ReplyIn) -> Any:
    def run(s: Any, now: datetime) -> Any:
        msg = service.reply(s, dialog=service.get_dialog(s, dialog_id), data=data, now=now)
        return queries.messages(s, dialog_id=dialog_id, after_id=msg.id - 1, limit=1)[0]
    return _write(request, run)


@router.post("/inbox/dialogs/{dialog_id}/notes", status_code=201, summary="An internal note (never sent)")
def post_note(request: Request, _: Write, dialog_id: DialogId, data: NoteIn) -> Any:
    def run(s: Any, now: datetime) -> Any:
        msg = service.note(s, dialog=service.get_dialog(s, dialog_id), data=data, now=now)
        return queries.messages(s, dialog_id=dialog_id, after_id=msg.id - 1, limit=1)[0]
    return _write(request, run)


@router.patch("/inbox/dialogs/{dialog_id}", summary="Change state, assignee or tags",
              description="Closing ends the response cycle (its resolution time, by `operator_id`).")
def patch_dialog(request: Request, _: Write, dialog_id: DialogId, data: DialogEdit) -> Any:
    return _write(request, lambda s, now: queries.dialog_row(
        service.edit(s, dialog=service.get_dialog(s, dialog_id), data=data, now=now)))


@router.post("/inbox/dialogs/{dialog_id}/read", summary="Mark the dialog read (no unread messages)")
def post_read(request: Request, _: Write, dialog_id: DialogId) -> Any:
    return _write(request, lambda s, now: queries.dialog_row(
        service.mark_read(s, dialog=service.get_dialog(s, dialog_id), now=now)))


@router.post("/inbox/dialogs/{dialog_id}/orders", status_code=201, summary="Link an order to the dialog")
def post_order(request: Request, _: Write, dialog_id: DialogId, data: OrderLink) -> Any:
    def run(s: Any, now: datetime) -> Any:
        d = service.get_dialog(s, dialog_id)
        service.link_order(s, dialog=d, order_id=data.order_id, now=now)
        return {"dialog_id": d.id, "order_ids": service.order_ids(s, d.id)}
    return _write(request, run)


@router.delete("/inbox/dialogs/{dialog_id}/orders/{order_id}", status_code=204, summary="Unlink an order")
def delete_order(request: Request, _: Write, dialog_id: DialogId,
                 order_id: Annotated[int, Path(gt=0, le=2**63 - 1)]) -> Response:
    _write(request, lambda s, now: service.unlink_order(s, dialog=service.get_dialog(s, dialog_id),
                                                        order_id=order_id))
    return Response(status_code=204)


@router.put("/inbox/dialogs/{dialog_id}/customer", summary="Give the dialog to another customer of its site")
def put_customer(request: Request, _: Write, dialog_id: DialogId, data: CustomerLink) -> Any:
    return _write(request, lambda s, now: queries.dialog_row(service.relink_customer(
        s, dialog=service.get_dialog(s, dialog_id), customer_id=data.customer_id, now=now)))


@router.get("/inbox/sites/{site}/settings", summary="How a site's new dialogs are assigned")
def get_settings(request: Request, _: Read, site: str) -> Any:
    return _read(request, lambda s, now: _settings(service.get_settings(s, site=site)))


@router.put("/inbox/sites/{site}/settings", summary="Assign new dialogs manually, round robin or by load")
def put_settings(request: Request, _: Write, site: str, data: SettingsIn) -> Any:
    return _write(request, lambda s, now: _settings(service.set_settings(s, site=site, data=data, now=now)))


def _settings(row: Any) -> dict[str, Any]:
    return {"assignment": row.assignment, "operators": row.operators}


CONNECTION = ("id", "site_id", "user_id", "user_name", "operator_id", "can_reply", "enabled", "created_at",
              "updated_at")


@router.get("/inbox/connections", summary="Telegram business connections")
def get_connections(request: Request, _: Read) -> Any:
    return _read(request, lambda s, now: [{f: getattr(c, f) for f in CONNECTION}
                                          for c in service.list_connections(s)])


@router.patch("/inbox/connections/{connection_id}",
              summary="Name the console user whose business account it is (their app messages are theirs)")
def patch_connection(request: Request, _: Write, connection_id: Annotated[str, Path(max_length=128)],
                     data: ConnectionEdit) -> Any:
    return _write(request, lambda s, now: {f: getattr(c, f) for f in CONNECTION} if (
        c := service.set_connection_operator(s, connection_id=connection_id, operator_id=data.operator_id,
                                             now=now)) else None)


@router.get("/inbox/sites/{site}/exclusions", summary="Contacts never imported into the inbox")
def get_exclusions(request: Request, _: Read, site: str) -> Any:
    return _read(request, lambda s, now: [{"channel": e.channel, "peer": e.peer, "note": e.note,
                                           "created_at": e.created_at} for e in service.list_exclusions(s, site=site)])


@router.post("/inbox/sites/{site}/exclusions", status_code=201,
             summary="Exclude a contact (and with purge, delete what is stored of them)")
def post_exclusion(request: Request, _: Write, site: str, data: ExclusionIn) -> Any:
    def run(s: Any, now: datetime) -> Any:
        row, purged = service.add_exclusion(s, site=site, data=data, now=now)
        return {"channel": row.channel, "peer": row.peer, "note": row.note, "purged_dialogs": purged}
    return _write(request, run)


@router.delete("/inbox/sites/{site}/exclusions/{channel}/{peer}", status_code=204,
               summary="Import the contact again from now on")
def delete_exclusion(request: Request, _: Write, site: str, channel: Annotated[str, Path(max_length=16)],
                     peer: Annotated[str, Path(max_length=128)]) -> Response:
    _write(request, lambda s, now: service.remove_exclusion(s, site=site, channel=channel, peer=peer))
    return Response(status_code=204)


@router.get("/inbox/response-times", summary="First-response and resolution times, overall and per operator",
            description="Over the response cycles opened in [from, to): a cycle starts with a customer's message "
                        "to a dialog that is not open and ends when the dialog is closed.")
def get_response_times(request: Request, _: Read, site: SiteParam = None,
                       from_: Annotated[AwareDatetime | None, Query(alias="from")] = None,
                       to: AwareDatetime | None = None) -> Any:
    def run(s: Any, _now: datetime) -> Any:
        site_ids = [get_site(s, site).id] if site else None
        return queries.response_times(s, site_ids=site_ids, since=from_, until=to)
    return _read(request, run)


@router.get("/inbox/stream", summary="Live inbox events for operators' screens (Server-Sent Events)",
            response_class=StreamingResponse,
            description="`text/event-stream`: each event is `id` (the event id), `event` (inbox_message, "
                        "inbox_message_changed, inbox_dialog_changed) and `data` (JSON: id, type, occurred_at, "
                        "site_id, customer_id, payload). Starts after `after`, or the `Last-Event-ID` header a "
                        "reconnecting browser sends, or from now. A comment line keeps an idle stream open. "
                        "A key limited to sites gets only their events (docs/inbox.md, Live updates).")
async def stream(request: Request, principal: Read, site: SiteParam = None,
                 after: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,
                 last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=32)] = None,
                 max_seconds: Annotated[float | None, Query(gt=0, le=86_400, description=(
                     "End the stream after this long (a client that polls); open until the client leaves "
                     "by default"))] = None) -> Any:
    app = app_of(request)
    cfg = ingest_settings(app)
    resume = after if after is not None else parsing.integer(last_event_id) if last_event_id else None

    def start() -> tuple[list[int] | frozenset[int] | None, int]:
        with transaction(reading(request)) as s:
            ids: list[int] | frozenset[int] | None = principal.site_ids
            if site:
                chosen = get_site(s, site)
                if principal.site_ids is not None and chosen.id not in principal.site_ids:
                    raise scoping.forbidden("site", f"site {site!r}")
                ids = [chosen.id]
            return ids, live.resume_point(s, resume)

    site_ids, cursor = await run_in_threadpool(start)

    return StreamingResponse(live.events(request, sessions=lambda: reading(request), cfg=cfg, site_ids=site_ids,
                                         cursor=cursor, max_seconds=max_seconds),
                             media_type="text/event-stream", headers=live.HEADERS)


@router.get("/inbox/report", summary="Messages and dialogs per channel per month, channel shares, growth",
            description="Customers' messages and new dialogs per channel per UTC month in [from, to), each "
                        "channel's share of the month's messages, and the monthly total's growth from the first "
                        "month to the last.")
def get_report(request: Request, _: Read, site: SiteParam = None,
               from_: Annotated[AwareDatetime | None, Query(alias="from")] = None,
               to: AwareDatetime | None = None) -> Any:
    def run(s: Any, _now: datetime) -> Any:
        site_ids = [get_site(s, site).id] if site else None
        return queries.channel_report(s, site_ids=site_ids, since=from_, until=to)
    return _read(request, run)
