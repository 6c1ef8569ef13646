"""/api/v1/webhooks: subscriptions, their delivery log, manual redelivery."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request, Response
from sqlalchemy.orm import Session

from retento.apikeys.api import require
from retento.apikeys.idempotency import Idempotency, idempotency
from retento.apikeys.schemas import Principal
from retento.core import scoping
from retento.core.db.transactions import transaction
from retento.core.rest.pagination import CursorParam, Limit, decode_cursor, page
from retento.core.rest.problems import router as v1_router
from retento.routes import app_of, reading
from retento.triggers.models import Trigger
from retento.webhooks import service
from retento.webhooks.schemas import DeliveryOut, DeliveryPage, WebhookIn, WebhookOut, WebhookPatch

router = v1_router("webhooks")
Manage = Annotated[Principal, Depends(require("webhooks:manage"))]
SubId = Annotated[int, Path(gt=0, le=2**31 - 1)]
DeliveryId = Annotated[int, Path(gt=0, le=2**53)]
TriggerId = Annotated[int, Query(gt=0, le=2**31 - 1, description="The trigger whose webhook calls to list")]


def _out(sub: Any, *, with_secret: bool = False) -> WebhookOut:
    out = WebhookOut.model_validate(sub)
    out.secret = sub.secret if with_secret else None
    return out


def _deliveries(s: Session, rows: list[Any]) -> list[DeliveryOut]:
    log = service.attempts_of(s, [d.id for d in rows])
    return [DeliveryOut.model_validate(d).model_copy(update={"log": log[d.id]}) for d in rows]


@router.post("/webhooks", status_code=201, response_model=WebhookOut, summary="Subscribe a URL to event types",
             description="The response carries the signing `secret`, shown only here.")
def create_webhook(body: WebhookIn, request: Request, principal: Manage,
                   idem: Annotated[Idempotency, Depends(idempotency)]) -> Any:
    app = app_of(request)
    with transaction(app.sessions) as s:
        return idem.run(s, principal, lambda: _out(service.create(
            s, data=body, site_ids=principal.visible(), now=app.clock.now()), with_secret=True), now=app.clock.now())


@router.get("/webhooks", response_model=list[WebhookOut], summary="List webhook subscriptions")
def list_webhooks(request: Request, principal: Manage) -> list[WebhookOut]:
    with transaction(reading(request)) as s:
        return [_out(x) for x in service.list_subscriptions(s)]


@router.get("/webhooks/deliveries", response_model=DeliveryPage, summary="Delivery log of a trigger's webhook calls",
            description="The calls of a trigger's `webhook` actions, oldest first, with every attempt.")
def list_trigger_deliveries(request: Request, principal: Manage, trigger_id: TriggerId,
                            cursor: CursorParam = None, limit: Limit = 50) -> DeliveryPage:
    with transaction(reading(request)) as s:
        scoping.require(s, Trigger, trigger_id, "trigger_id")  # a trigger the key sees, else 404
        rows, nxt = page(service.deliveries(s, trigger_id=trigger_id, after_id=decode_cursor(cursor),
                                            limit=limit + 1), limit)
        return DeliveryPage(items=_deliveries(s, rows), next_cursor=nxt)


@router.get("/webhooks/{sub_id}", response_model=WebhookOut, summary="Get a webhook subscription")
def get_webhook(sub_id: SubId, request: Request, principal: Manage) -> WebhookOut:
    with transaction(reading(request)) as s:
        return _out(service.get(s, sub_id))


@router.patch("/webhooks/{sub_id}", response_model=WebhookOut, summary="Change or re-enable a subscription")
def edit_webhook(sub_id: SubId, body: WebhookPatch, request: Request, principal: Manage) -> WebhookOut:
    app = app_of(request)
    with transaction(app.sessions) as s:
        sub = service.get(s, sub_id)
        return _out(service.update_subscription(s, sub=sub, data=body, now=app.clock.now()))


@router.delete("/webhooks/{sub_id}", status_code=204, response_class=Response,
               summary="Delete a subscription and its delivery log")
def delete_webhook(sub_id: SubId, request: Request, principal: Manage) -> Response:
    with transaction(app_of(request).sessions) as s:
        service.delete_subscription(s, sub=service.get(s, sub_id))
    return Response(status_code=204)


@router.get("/webhooks/{sub_id}/deliveries", response_model=DeliveryPage, summary="Delivery log of a subscription")
def list_deliveries(sub_id: SubId, request: Request, principal: Manage,
                    cursor: CursorParam = None,
                    limit: Limit = 50) -> DeliveryPage:
    with transaction(reading(request)) as s:
        service.get(s, sub_id)
        rows, nxt = page(service.deliveries(s, subscription_id=sub_id, after_id=decode_cursor(cursor),
                                            limit=limit + 1), limit)
        return DeliveryPage(items=_deliveries(s, rows), next_cursor=nxt)


@router.get("/webhooks/deliveries/{delivery_id}", response_model=DeliveryOut,
            summary="One delivery with every attempt")
def get_delivery(delivery_id: DeliveryId, request: Request, principal: Manage) -> DeliveryOut:
    with transaction(reading(request)) as s:
        return _deliveries(s, [service.get_delivery(s, delivery_id)])[0]


@router.post("/webhooks/deliveries/{delivery_id}/redeliver", status_code=201, response_model=DeliveryOut,
             summary="Send a delivery's event again, now")
def redeliver(delivery_id: DeliveryId, request: Request, principal: Manage,
              idem: Annotated[Idempotency, Depends(idempotency)]) -> Any:
    app = app_of(request)
    with transaction(app.sessions) as s:
        def produce() -> DeliveryOut:
            d = service.get_delivery(s, delivery_id)
            return _deliveries(s, [service.redeliver(s, delivery=d, now=app.clock.now())])[0]

        return idem.run(s, principal, produce, now=app.clock.now())
