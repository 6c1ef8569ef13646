"""Admin → Outgoing webhooks: subscriptions (list, create: the signing secret is shown once, disable / enable), a
subscription's delivery log (paged by key, filtered by status, with every attempt) and the retry of a failed
delivery, over the webhooks service and the durable-work queue of deliveries (as /api/v1/webhooks and
/api/v1/work do)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from retento.console import web
from retento.console.web import Viewer, app_of, reading, render
from retento.core import parsing
from retento.core.db.transactions import transaction
from retento.core.errors import DomainError
from retento.queues import service as queues
from retento.sites import service as sites
from retento.webhooks import service as webhooks
from retento.webhooks.models import DELIVERED, FAILED, PENDING, SENDING
from retento.webhooks.schemas import EVENT_TYPES, WebhookIn, WebhookPatch

router = web.router()
PAGE = web.Page(router, nav=None, path="/admin/webhooks")
admin = web.may_change("admin")
admin_reader = web.reader("admin")
PAGE_SIZE = 50
STATUSES = (PENDING, SENDING, DELIVERED, FAILED)
QUEUE = "webhooks"  # the deliveries' queue in app.work (webhooks.delivery.queue)


def _list(request: Request, *, status: int = 200, **context: Any) -> Response:
    with transaction(reading(request)) as s:
        subs = webhooks.list_subscriptions(s)
        visible = sites.list_sites(s)
    return render(request, "admin/webhooks.html", status=status, subs=subs, event_types=EVENT_TYPES,
                  sites={x.id: x for x in visible}, **context)


@router.get("/admin/webhooks")
def webhook_list(request: Request, viewer: Annotated[Viewer, Depends(admin_reader)]) -> Response:
    return _list(request)


@router.post("/admin/webhooks")
def webhook_create(request: Request, viewer: Annotated[Viewer, Depends(admin)], url: Annotated[str, Form()] = "",
                   event_type: Annotated[list[str] | None, Form()] = None,
                   description: Annotated[str, Form()] = "",
                   site: Annotated[list[str] | None, Form()] = None) -> Response:
    """The new subscription's signing secret is in this answer only (not a redirect)."""
    app = app_of(request)
    form = {"url": url, "description": description, "event_types": event_type or [], "sites": site or []}
    try:
        try:
            data = WebhookIn.model_validate({"url": url.strip(), "event_types": event_type or [],
                                             "description": description.strip() or None})
        except ValidationError as exc:
            raise DomainError.from_pydantic(exc) from None
        with transaction(app.sessions) as s:
            site_ids = sorted({sites.get_site(s, code).id for code in site}) if site else None
            sub = webhooks.create(s, data=data, site_ids=site_ids, now=app.clock.now())
            created = {"id": sub.id, "url": sub.url, "secret": sub.secret}
    except DomainError as exc:
        return _list(request, status=400, errors=web.field_errors(exc), form=form)
    return _list(request, created=created, headers={"Cache-Control": "no-store"})


@router.post("/admin/webhooks/{sub_id}/active")
def webhook_active(request: Request, viewer: Annotated[Viewer, Depends(admin)], sub_id: int,
                   active: Annotated[bool, Form()] = False) -> Response:
    """Disable a subscription (its pending deliveries fail as it is off) or enable it again (failures reset)."""
    app = app_of(request)
    with transaction(app.sessions) as s:
        webhooks.update_subscription(s, sub=webhooks.get(s, sub_id), data=WebhookPatch(active=active),
                                     now=app.clock.now())
    return RedirectResponse(f"/admin/webhooks/{sub_id}?saved=1", status_code=303)


@router.get("/admin/webhooks/{sub_id}")
def webhook_log(request: Request, viewer: Annotated[Viewer, Depends(admin_reader)], sub_id: int,
                status: str = "", after: Annotated[int, Query(ge=0, le=parsing.INT64_MAX)] = 0) -> Response:
    """The subscription and its delivery log, oldest first, 50 a page, each delivery with its attempts."""
    chosen = status if status in STATUSES else None
    with transaction(reading(request)) as s:
        sub = webhooks.get(s, sub_id)
        rows = webhooks.deliveries(s, subscription_id=sub_id, status=chosen, after_id=after, limit=PAGE_SIZE + 1)
        more = len(rows) > PAGE_SIZE
        rows = rows[:PAGE_SIZE]
        log = webhooks.attempts_of(s, [d.id for d in rows])
        visible = {x.id: x for x in sites.list_sites(s)}
    return render(request, "admin/webhook.html", sub=sub, deliveries=rows, log=log, statuses=STATUSES,
                  shown=chosen or "", after=after, next_after=rows[-1].id if more else None, sites=visible)


@router.post("/admin/webhooks/deliveries/{delivery_id}/retry")
def delivery_retry(request: Request, viewer: Annotated[Viewer, Depends(admin)], delivery_id: int,
                   status: Annotated[str, Form()] = "", after: Annotated[int, Form(ge=0)] = 0) -> Response:
    """A failed delivery due again now with fresh attempts (the same delivery: sending the form twice retries it
    once); one that is not failed is left alone."""
    app = app_of(request)
    with transaction(app.sessions) as s:
        delivery = webhooks.get_delivery(s, delivery_id)
        done = queues.retry(s, app.work, name=QUEUE, ids=[delivery_id], now=app.clock.now())
        sub_id = delivery.subscription_id
    if sub_id is None:  # a trigger's webhook call: its log is on the trigger's page
        return RedirectResponse("/admin/webhooks?saved=1", status_code=303)
    back = f"/admin/webhooks/{sub_id}?status={status if status in STATUSES else ''}&after={after}"
    return RedirectResponse(f"{back}&retried={delivery_id if done else 0}#delivery-{delivery_id}", status_code=303)
