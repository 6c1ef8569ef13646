"""Messaging HTTP API: configuration, cascades, campaigns, reports, tracking links and provider webhooks (one
endpoint per provider: delivery statuses are recorded here, what customers send goes to the registered inbound
receivers, `App.parts.inbound`)."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse
from sqlalchemy import select

from retento.apikeys.api import require
from retento.core import parsing
from retento.core.db.transactions import transaction
from retento.core.errors import FieldError, NotFound
from retento.core.jsonable import jsonable
from retento.core.rest import routing
from retento.core.rest.pagination import CursorParam, Limit, SiteParam, decode_cursor, page
from retento.core.rest.problems import ERRORS, ProblemRoute, problem
from retento.messaging import API_PATH, OLD_API_PATH, bounces, reports, service, statuses, tracking
from retento.messaging.channels import telegram, twilio, vk, whatsapp
from retento.messaging.models import Message
from retento.messaging.schemas import CampaignIn, CascadeIn, DeviceIn, PolicyIn, PriceIn, StartIn, TemplateIn
from retento.sites.service import get_site

# Management routes need an API key (`X-API-Key`) with these scopes; tracking links and provider webhooks
# are public and carry their own signatures.
READ, WRITE = [Depends(require("messaging:read"))], [Depends(require("messaging:write"))]
router = APIRouter(tags=["messaging"], route_class=ProblemRoute, responses=ERRORS)  # paths below `mounted`'s prefix
# what providers and customers' mail clients call, many times a second: tried before the shop's routes (the
# provider webhooks `routing.direct`: answered before FastAPI's routing and request handling)
hooks = APIRouter(tags=["messaging"], route_class=ProblemRoute, responses=ERRORS)


def _app(request: Request) -> Any:
    return request.app.state.app


def _tx(request: Request, fn: Callable[[Any, Any], Any]) -> Any:
    app = _app(request)
    with transaction(app.sessions) as s:
        return jsonable(fn(s, app.clock.now()))


def _row(obj: Any, *fields: str) -> dict[str, Any]:
    return {f: getattr(obj, f) for f in fields}


@router.put("/sites/{site}/prices/{channel}", dependencies=WRITE,
             summary="Set the price per message (per SMS segment) of a channel")
def put_price(site: str, channel: str, data: PriceIn, request: Request) -> Any:
    return _tx(request, lambda s, now: _row(service.set_price(s, site=site, channel=channel, data=data, now=now),
                                           "channel", "price", "currency", "expected_read_rate"))


@router.put("/sites/{site}/policy", dependencies=WRITE,
             summary="Quiet hours, frequency cap and default language of a site")
def put_policy(site: str, data: PolicyIn, request: Request) -> Any:
    return _tx(request, lambda s, now: _row(service.set_policy(s, site=site, data=data, now=now),
                                           "quiet_start", "quiet_end", "cap_count", "cap_period_seconds"))


TEMPLATE_FIELDS = ("id", "name", "channel", "language", "subject", "body", "html", "provider_template")


@router.post("/templates", status_code=201, dependencies=WRITE,
             summary="Create or replace a template (refused if it does not render)")
def post_template(data: TemplateIn, request: Request) -> Any:
    return _tx(request, lambda s, now: _row(service.save_template(s, data=data, now=now), *TEMPLATE_FIELDS))


@router.get("/templates", summary="Templates of a site", dependencies=READ)
def get_templates(site: str, request: Request) -> Any:
    return _tx(request, lambda s, now: [_row(t, *TEMPLATE_FIELDS) for t in service.list_templates(s, site=site)])


@router.post("/templates/{template_id}/preview", dependencies=READ,
             summary="Render a template for a customer (or a sample one)")
def post_preview(template_id: int, request: Request, customer_id: int | None = None) -> Any:
    return _tx(request, lambda s, now: service.preview(s, template_id=template_id, customer_id=customer_id).__dict__)


@router.post("/cascades", status_code=201, dependencies=WRITE, summary="Create a cascade of steps")
def post_cascade(data: CascadeIn, request: Request) -> Any:
    return _tx(request, lambda s, now: _row(service.create_cascade(s, data=data, now=now),
                                           "id", "name", "mode", "steps"))


@router.get("/cascades/{cascade_id}", dependencies=READ)
def get_cascade(cascade_id: int, request: Request) -> Any:
    return _tx(request, lambda s, now: _row(service.get_cascade(s, cascade_id), "id", "name", "mode", "steps"))


@router.post("/cascades/{cascade_id}/start", dependencies=WRITE, status_code=201,
             summary="Start the cascade for one customer")
def post_start(cascade_id: int, data: StartIn, request: Request) -> Any:
    return _tx(request, lambda s, now: _row(service.start_cascade(
        s, cascade_id=cascade_id, customer_id=data.customer_id, now=now, message_class=data.message_class.value,
        context=data.context, idempotency_key=data.idempotency_key), "id", "state", "due_at"))


CampaignId = Annotated[int, Path(gt=0, le=2**31 - 1)]
CAMPAIGN_OUT = ("id", "name", "status", "start_at", "members", "audience", "segment_id")


@router.post("/campaigns", status_code=201, dependencies=WRITE,
             summary="Send a cascade to a list of customers, a segment, everyone or a rule tree, now or later")
def post_campaign(data: CampaignIn, request: Request) -> Any:
    return _tx(request, lambda s, now: _row(service.create_campaign(s, data=data, now=now), *CAMPAIGN_OUT))


@router.get("/campaigns", dependencies=READ, summary="Campaigns, oldest first, with their status",
            description="Each with status (scheduled, running, finished), members, how many are still in the "
                        "cascade and the cost so far. Page on with `cursor`.")
def get_campaigns(request: Request, site: SiteParam = None, cursor: CursorParam = None, limit: Limit = 50) -> Any:
    def run(s: Any, _now: Any) -> Any:
        site_ids = [get_site(s, site).id] if site else None
        rows, nxt = page(service.list_campaigns(s, site_ids=site_ids, after_id=decode_cursor(cursor),
                                                limit=limit + 1), limit)
        return {"items": reports.summaries(s, rows), "next_cursor": nxt}
    return _tx(request, run)


@router.get("/campaigns/{campaign_id}", dependencies=READ, summary="A campaign: status, progress, cost",
            description="Status (scheduled, running, finished), audience, members, how many are still in the "
                        "cascade, outcomes, and per step and channel: planned (not yet sent), sent, delivered, "
                        "read, clicked, failed, uncertain and cost.")
def get_campaign(campaign_id: CampaignId, request: Request) -> Any:
    return _tx(request, lambda s, now: reports.campaign(s, campaign_id=campaign_id))


@router.get("/campaigns/{campaign_id}/report", dependencies=READ, summary="Report of one campaign")
def get_campaign_report(campaign_id: int, request: Request) -> Any:
    def run(s: Any, _now: Any) -> Any:
        camp = service.get_campaign(s, campaign_id)
        return reports.report(s, cascade_id=camp.cascade_id, campaign_id=camp.id)
    return _tx(request, run)


@router.get("/cascades/{cascade_id}/report", dependencies=READ,
             summary="Report of a cascade over all its runs")
def get_cascade_report(cascade_id: int, request: Request) -> Any:
    return _tx(request, lambda s, now: reports.report(s, cascade_id=cascade_id))


@router.get("/messages/{message_id}", dependencies=READ, summary="One message with its status timeline")
def get_message(message_id: int, request: Request) -> Any:
    def run(s: Any, _now: Any) -> Any:
        msg = s.get(Message, message_id)
        if msg is None:
            raise NotFound("message_id", f"message {message_id} not found")
        return {**_row(msg, "id", "customer_id", "channel", "status", "reason", "provider_id", "cost", "currency",
                       "units", "campaign_id", "cascade_id", "step", "message_class"),
                "timeline": statuses.timeline(msg)}
    return _tx(request, run)


@router.post("/devices", dependencies=WRITE, status_code=201,
             summary="Register a customer's mobile push token (FCM)")
def post_device(data: DeviceIn, request: Request) -> Any:
    return _tx(request, lambda s, now: _row(service.register_device(s, data=data, now=now), "token", "customer_id"))


# --- tracking links ------------------------------------------------------------------------------------------

def _track(request: Request, tok: str, status: str) -> bool:
    app = _app(request)
    mid = tracking.message_id(app.messaging.settings.messaging_secret, tok)
    if mid is None:
        return False
    with transaction(app.sessions) as s:
        if s.get(Message, mid) is None:
            return False
        now = app.clock.now()
        statuses.record(s, updates=[statuses.Update(mid, status, now)], now=now)
    return True


@hooks.get("/o/{tok}.gif", include_in_schema=False)
def open_pixel(tok: str, request: Request) -> Response:
    _track(request, tok, "read")
    return Response(tracking.GIF, media_type="image/gif", headers={"Cache-Control": "no-store, max-age=0"})


@hooks.get("/c/{tok}", include_in_schema=False)
def click(tok: str, url: str, s: str, request: Request) -> Response:
    secret = _app(request).messaging.settings.messaging_secret
    if not tracking.link_ok(secret, tok, url, s):
        return problem(400, [FieldError("url", "link signature does not match")])
    _track(request, tok, "clicked")
    return RedirectResponse(url, status_code=302)


PAGE = ("<!doctype html><html><meta charset=utf-8><title>{t}</title><body><p>{p}</p>{f}</body></html>")


INVALID_LINK = PAGE.format(t="Error", p="Ссылка недействительна / Invalid link", f="")


@hooks.get("/u/{tok}", include_in_schema=False, response_class=HTMLResponse)
def unsubscribe_page(tok: str, request: Request) -> Response:
    if tracking.message_id(_app(request).messaging.settings.messaging_secret, tok) is None:
        return HTMLResponse(INVALID_LINK, 404)
    form = f'<form method=post action="{html.escape(tok)}"><button>Отписаться / Unsubscribe</button></form>'
    return HTMLResponse(PAGE.format(t="Unsubscribe", f=form,
                                    p="Отписаться от этих сообщений? / Unsubscribe from these messages?"))


@hooks.post("/u/{tok}", include_in_schema=False, response_class=HTMLResponse)
def unsubscribe(tok: str, request: Request) -> Response:
    """RFC 8058 one-click (body `List-Unsubscribe=One-Click`) and the page's button both land here."""
    app = _app(request)
    mid = tracking.message_id(app.messaging.settings.messaging_secret, tok)
    if mid is None:
        return HTMLResponse(INVALID_LINK, 404)
    with transaction(app.sessions) as s:
        service.unsubscribe(s, message_id=mid, now=app.clock.now(), source="unsubscribe_link")
    return HTMLResponse(PAGE.format(t="Unsubscribed", p="Вы отписались / You are unsubscribed", f=""))


@router.post("/bounces", dependencies=WRITE, summary="Apply a delivery status report (bounce) of an email",
             description="The raw report (RFC 3464 `multipart/report`) as the body, e.g. piped from the MTA that "
                         "receives mail for the VERP bounce address. A permanent failure (5.x.x) marks the "
                         "message failed and withdraws the customer's email consent (source `hard_bounce`).")
async def bounce(request: Request) -> Any:
    app, raw = _app(request), await request.body()
    with transaction(app.sessions) as s:
        b = bounces.record(s, raw=raw, secret=app.messaging.settings.messaging_secret, now=app.clock.now())
    return {"message_id": b.message_id, "action": b.action, "status": b.status, "diagnostic": b.diagnostic}


# --- provider webhooks ---------------------------------------------------------------------------------------

def _read_inbound(app: Any, provider: str, payload: Any) -> list[tuple[Any, Any]]:
    """Each registered receiver's reading of the body (a DomainError: the 400, before anything is stored)."""
    return [(r, r.parse(payload)) for r in app.parts.inbound.values() if r.provider == provider]


async def _store_inbound(app: Any, read: list[tuple[Any, Any]]) -> None:
    """Store what the receivers read, with concurrent webhooks' (group commit): back once it has committed, so a
    provider never gets its 200 for a message that is not stored."""
    for receiver, parsed in read:
        await app.group_commit.submit(receiver.store, (parsed, app.clock.now()))


def _meta_verify(request: Request, expected: str | None) -> Response:
    """Meta's subscription check: echo `hub.challenge` when `hub.verify_token` is ours."""
    q = request.query_params
    if q.get("hub.mode") == "subscribe" and expected and parsing.secret_equal(expected, q.get("hub.verify_token")):
        return PlainTextResponse(q.get("hub.challenge", ""))
    return PlainTextResponse("forbidden", 403)


@hooks.get("/webhooks/whatsapp", include_in_schema=False)
def whatsapp_verify(request: Request) -> Response:
    return _meta_verify(request, _app(request).messaging.settings.whatsapp_verify_token)


@hooks.post("/webhooks/whatsapp", include_in_schema=False)
@routing.direct
async def whatsapp_webhook(request: Request) -> Response:
    app = _app(request)
    body = await request.body()
    secret = app.messaging.settings.whatsapp_app_secret
    if not secret or not whatsapp.signature_ok(secret, body, request.headers.get("x-hub-signature-256")):
        return problem(401, [FieldError("X-Hub-Signature-256", "signature does not match")])
    payload = parsing.json_value(body)
    ups = whatsapp.statuses(payload)  # a body of another shape: 400 naming the field
    read = _read_inbound(app, "whatsapp", payload)
    await _store_inbound(app, read)
    if not ups:
        return PlainTextResponse("ok")
    with transaction(app.sessions) as s:
        ids = statuses.by_provider_ids(s, channel="whatsapp", provider_ids=[u.provider_id for u in ups])
        missing = [u for u in ups if u.provider_id not in ids and u.callback_data]
        if missing:
            ids.update(statuses.adopt(s, channel="whatsapp",
                                      pairs={u.callback_data: u.provider_id for u in missing}))
        statuses.record(s, updates=[statuses.Update(ids[u.provider_id], u.status, u.at, u.error)
                                    for u in ups if u.provider_id in ids and u.status in statuses.COLUMN],
                        now=app.clock.now())
    return PlainTextResponse("ok")


@hooks.post("/webhooks/twilio", include_in_schema=False)
@routing.direct
async def twilio_webhook(request: Request) -> Response:
    app = _app(request)
    cfg = app.messaging.settings
    params = parsing.form_fields(await request.body())
    url = cfg.public_url.rstrip("/") + request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if not cfg.twilio_auth_token or not twilio.signature_ok(cfg.twilio_auth_token, url, params,
                                                            request.headers.get("x-twilio-signature")):
        return problem(401, [FieldError("X-Twilio-Signature", "signature does not match")])
    status = twilio.STATUS.get(params.get("MessageStatus", ""))
    sid = params.get("MessageSid") or params.get("SmsSid")
    if status and sid:
        now = app.clock.now()
        error = f"twilio {params['ErrorCode']}" if params.get("ErrorCode") else None
        with transaction(app.sessions) as s:
            ids = statuses.by_provider_ids(s, channel="sms", provider_ids=[sid])
            if sid in ids:
                statuses.record(s, updates=[statuses.Update(ids[sid], status, now, error)], now=now)
    return Response(status_code=204)


@hooks.post("/webhooks/vk", include_in_schema=False)
@routing.direct
async def vk_webhook(request: Request) -> Response:
    app = _app(request)
    cfg = app.messaging.settings
    payload = parsing.json_value(await request.body())
    call = vk.callback(payload)  # not a Callback API body: 400
    if not vk.secret_ok(cfg.vk_secret, call.secret):
        return problem(401, [FieldError("secret", "secret key does not match")])
    if call.type == "confirmation":
        return PlainTextResponse(cfg.vk_confirmation or "")
    now = app.clock.now()
    await _store_inbound(app, _read_inbound(app, "vk", payload))
    if call.type not in ("message_read", "message_deny"):
        return PlainTextResponse("ok")
    with transaction(app.sessions) as s:
        if call.type == "message_read":
            read = vk.event_object(vk.MessageRead, call)
            statuses.record(s, updates=[statuses.Update(mid, "read", now) for mid in statuses.vk_read_up_to(
                s, peer=read.peer, read_id=read.read_message_id)], now=now)
        elif call.type == "message_deny":
            deny = vk.event_object(vk.MessageDeny, call)
            mid = s.scalar(select(Message.id).where(Message.channel == "vk", Message.address == str(deny.user_id))
                           .order_by(Message.id.desc()).limit(1))
            if mid is not None:
                service.unsubscribe(s, message_id=mid, now=now, source="vk_message_deny")
    return PlainTextResponse("ok")


@hooks.post("/webhooks/telegram", include_in_schema=False)
@routing.direct
async def telegram_webhook(request: Request) -> Response:
    """Bot API updates (`setWebhook` with `secret_token`): the bot's private chats and business accounts."""
    app = _app(request)
    secret = app.messaging.settings.telegram_webhook_secret
    if not secret or not parsing.secret_equal(secret, request.headers.get("x-telegram-bot-api-secret-token")):
        return problem(401, [FieldError("X-Telegram-Bot-Api-Secret-Token", "secret token does not match")])
    payload = parsing.json_value(await request.body())
    read = _read_inbound(app, "telegram", payload)
    if not read:
        telegram.update_id(payload)  # nothing reads updates here: still only a Bot API update is accepted
    await _store_inbound(app, read)
    answer = telegram.webhook_answer(payload)  # a button press: stop the spinner in the customer's app
    return JSONResponse(answer) if answer else PlainTextResponse("ok")


@hooks.get("/webhooks/instagram", include_in_schema=False)
def instagram_verify(request: Request) -> Response:
    return _meta_verify(request, _app(request).messaging.settings.instagram_verify_token)


@hooks.post("/webhooks/instagram", include_in_schema=False)
@routing.direct
async def instagram_webhook(request: Request) -> Response:
    """Meta's Instagram messaging webhooks, signed with the app secret like WhatsApp's."""
    app = _app(request)
    body = await request.body()
    secret = app.messaging.settings.instagram_app_secret
    if not secret or not whatsapp.signature_ok(secret, body, request.headers.get("x-hub-signature-256")):
        return problem(401, [FieldError("X-Hub-Signature-256", "signature does not match")])
    await _store_inbound(app, _read_inbound(app, "instagram", parsing.json_value(body)))
    return PlainTextResponse("ok")


def mounted() -> APIRouter:
    """The routes at /api/v1/messaging, and at their old place /api/messaging for one more release (the same
    routes, left out of the OpenAPI document): what `bootstrap.assemble` registers."""
    out = APIRouter()
    for routes in (hooks, router):
        out.include_router(routes, prefix=API_PATH)
    for routes in (hooks, router):
        out.include_router(routes, prefix=OLD_API_PATH, include_in_schema=False, deprecated=True)
    return out
