"""Outgoing webhooks: subscriptions, the delivery outbox fed from the event bus and from trigger `webhook`
actions, the delivery log. Sending is `retento.webhooks.delivery`."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from retento.core import http
from retento.core.bus import Event
from retento.core.db.bulk import insert_rows, reserve_ids
from retento.core.errors import NotFound
from retento.core.jsonable import jsonable
from retento.webhooks.delivery import Deliverer
from retento.webhooks.models import PENDING, WebhookAttempt, WebhookDelivery, WebhookSubscription
from retento.webhooks.schemas import WebhookIn, WebhookPatch

TRIGGER = "trigger"  # the event type of a trigger's webhook call


# --- subscriptions ----------------------------------------------------------------------------------------


def create(session: Session, *, data: WebhookIn, site_ids: list[int] | None, now: datetime) -> WebhookSubscription:
    http.check_url(session, str(data.url))
    sub = WebhookSubscription(url=str(data.url), event_types=data.event_types, site_ids=site_ids,
                              secret="whsec_" + secrets.token_urlsafe(32), description=data.description,
                              active=True, consecutive_failures=0, created_at=now, updated_at=now)
    session.add(sub)
    session.flush()
    return sub


def get(session: Session, sub_id: int) -> WebhookSubscription:
    """A subscription (a site-limited key's session sees those made for some of its sites: retento.core.scoping)."""
    sub = session.get(WebhookSubscription, sub_id)
    if sub is None:
        raise NotFound("id", f"webhook subscription {sub_id} not found")
    return sub


def list_subscriptions(session: Session) -> list[WebhookSubscription]:
    return list(session.scalars(select(WebhookSubscription).order_by(WebhookSubscription.id)))


def update_subscription(session: Session, *, sub: WebhookSubscription, data: WebhookPatch,
                        now: datetime) -> WebhookSubscription:
    given = data.model_fields_set
    if "url" in given and data.url is not None:
        http.check_url(session, str(data.url))
        sub.url = str(data.url)
    if "event_types" in given and data.event_types is not None:
        sub.event_types = data.event_types
    if "description" in given:
        sub.description = data.description
    if "active" in given and data.active is not None and data.active != sub.active:
        sub.active = data.active
        if data.active:
            sub.consecutive_failures, sub.disabled_at, sub.disabled_reason = 0, None, None
        else:
            sub.disabled_at, sub.disabled_reason = now, "disabled by request"
    sub.updated_at = now
    session.flush()
    return sub


def delete_subscription(session: Session, *, sub: WebhookSubscription) -> None:
    session.delete(sub)
    session.flush()


# --- the outbox -------------------------------------------------------------------------------------------


def payload_of(event: Event) -> dict[str, Any]:
    return {"id": f"evt_{event.id}", "type": event.type, "name": event.name,
            "occurred_at": event.occurred_at.isoformat(), "site_id": event.site_id,
            "customer_id": event.customer_id, "order_id": event.order_id, "source": event.source,
            "data": event.payload}


def enqueue(session: Session, event: Event, *, now: datetime) -> int:
    """Bus handler: one pending delivery per active subscription that wants this event; returns how many."""
    return enqueue_many(session, [event], now=now)


def _active(session: Session) -> list[tuple[int, frozenset[str], frozenset[int] | None, datetime]]:
    """The active subscriptions: id, event types, sites (None: every site), created at; read once per dispatch
    batch (the bus hands one session a batch of events)."""
    subs = session.info.get("webhook_subscriptions")
    if subs is None:
        subs = session.info["webhook_subscriptions"] = [
            (s.id, frozenset(s.event_types), None if s.site_ids is None else frozenset(s.site_ids), s.created_at)
            for s in session.scalars(select(WebhookSubscription).where(WebhookSubscription.active.is_(True)))]
    return subs


def interest(session: Session) -> frozenset[str] | None:
    """The event types some active subscription wants (None: every type); the bus passes over the others."""
    types = frozenset().union(*(types for _, types, _, _ in _active(session)))
    return None if "*" in types else types


def enqueue_many(session: Session, events: list[Event], *, now: datetime) -> int:
    """Bus batch handler: the deliveries of a whole batch of events in one statement; returns how many."""
    subs = _active(session)
    if not subs:
        return 0
    rows = [{"subscription_id": sid, "event_id": event.id, "event_type": event.type, "payload": payload_of(event),
             "status": PENDING, "attempts": 0, "next_attempt_at": now, "created_at": now}
            for event in events
            for sid, types, sites, created_at in subs
            if ("*" in types or event.type in types) and (sites is None or event.site_id in sites)
            and event.occurred_at >= created_at]  # a subscription gets the events from its creation on
    if rows:
        session.execute(WebhookDelivery.__table__.insert(), rows)
    return len(rows)


def enqueue_calls(session: Session, *, calls: list[dict[str, Any]], now: datetime) -> list[int]:
    """Deliveries of trigger `webhook` actions: `calls` are dicts of `trigger_id`, `key` (idempotency key),
    `url`, `secret` (None: unsigned), `event_id`, `body`. As if enqueued one by one in list order: a key already
    stored, or earlier in the list, gives that delivery's id. One query for the known keys, one insert."""
    for c in calls:
        c["key"] = _short(c["key"])
    keys = sorted({c["key"] for c in calls})
    t = WebhookDelivery.__table__
    known = {k: i for n in range(0, len(keys), 900) for k, i in
             session.execute(select(t.c.idempotency_key, t.c.id).where(t.c.idempotency_key.in_(keys[n:n + 900])))}
    new, fresh = [], set()
    for c in calls:
        if c["key"] not in known and c["key"] not in fresh:
            fresh.add(c["key"])
            new.append(c)
    rows = []
    for i, c in zip(reserve_ids(session, t, len(new)), new, strict=True):
        known[c["key"]] = i
        rows.append({"id": i, "subscription_id": None, "trigger_id": c["trigger_id"], "url": c["url"],
                     "secret": c["secret"], "idempotency_key": c["key"], "event_id": c["event_id"],
                     "event_type": TRIGGER, "payload": jsonable(c["body"]), "status": PENDING, "attempts": 0,
                     "next_attempt_at": now, "last_status_code": None, "last_error": None, "created_at": now,
                     "delivered_at": None})
    insert_rows(session, t, rows)
    return [known[c["key"]] for c in calls]


def _short(key: str) -> str:
    return key[:150] + ":" + hashlib.sha256(key.encode()).hexdigest()[:40] if len(key) > 200 else key


def redeliver(session: Session, *, delivery: WebhookDelivery, now: datetime) -> WebhookDelivery:
    """Send the same event (or trigger call) again, as a new delivery due now; a trigger call's copy gets an
    idempotency key of its own, so that receivers do not take it for the first one."""
    copy = WebhookDelivery(subscription_id=delivery.subscription_id, trigger_id=delivery.trigger_id,
                           url=delivery.url, secret=delivery.secret, event_id=delivery.event_id,
                           event_type=delivery.event_type, payload=delivery.payload, status=PENDING, attempts=0,
                           next_attempt_at=now, created_at=now)
    session.add(copy)
    session.flush()
    if delivery.idempotency_key is not None:
        copy.idempotency_key = _short(f"{delivery.idempotency_key}:redelivery:{copy.id}")
        session.flush()
    return copy


def get_delivery(session: Session, delivery_id: int) -> WebhookDelivery:
    """A delivery: a subscription's or a trigger's, seen as the subscription or trigger is (retento.core.scoping)."""
    d = session.get(WebhookDelivery, delivery_id)
    if d is None:
        raise NotFound("id", f"webhook delivery {delivery_id} not found")
    return d


def deliveries(session: Session, *, subscription_id: int | None = None, trigger_id: int | None = None,
               status: str | None = None, after_id: int = 0, limit: int = 50) -> list[WebhookDelivery]:
    """The delivery log of a subscription or of a trigger's webhook calls, oldest first (optionally only those
    in one `status`)."""
    q = select(WebhookDelivery).where(WebhookDelivery.id > after_id)
    q = q.where(WebhookDelivery.subscription_id == subscription_id) if subscription_id is not None else q.where(
        WebhookDelivery.trigger_id == trigger_id)
    if status is not None:
        q = q.where(WebhookDelivery.status == status)
    return list(session.scalars(q.order_by(WebhookDelivery.id).limit(limit)))


def attempts_of(session: Session, delivery_ids: Sequence[int]) -> dict[int, list[WebhookAttempt]]:
    out: dict[int, list[WebhookAttempt]] = {i: [] for i in delivery_ids}
    if delivery_ids:
        q = select(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(delivery_ids)).order_by(WebhookAttempt.id)
        for a in session.scalars(q):
            out[a.delivery_id].append(a)
    return out


def install(app) -> None:  # noqa: ANN001 - retento.bootstrap.App
    """Feed the outbox from the bus and send due deliveries from the worker."""
    app.bus.subscribe("webhooks", lambda s, ev: enqueue(s, ev, now=app.clock.now()) and None,
                      batch_handler=lambda s, evs: enqueue_many(s, evs, now=app.clock.now()) and None,
                      interest=interest)

    deliverer = Deliverer(app.sessions, app.clock, app.settings, app.http)
    app.work.add(deliverer.queue.name, deliverer.queue)
    app.worker.add_job("webhooks", deliverer)
