"""Outgoing webhooks: subscriptions, the delivery outbox fed from the event bus, signed delivery with retries."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from retento import __version__
from retento.bus import Event
from retento.clock import Clock
from retento.config import Settings
from retento.core import http
from retento.db import transaction
from retento.errors import NotFound
from retento.webhooks import policy
from retento.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookSubscription
from retento.webhooks.schemas import WebhookIn, WebhookPatch

log = logging.getLogger(__name__)
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


# --- subscriptions ----------------------------------------------------------------------------------------


def create(session: Session, *, data: WebhookIn, site_ids: list[int] | None, now: datetime) -> WebhookSubscription:
    http.check_url(session, str(data.url))
    sub = WebhookSubscription(url=str(data.url), event_types=data.event_types, site_ids=site_ids,
                              secret="whsec_" + secrets.token_urlsafe(32), description=data.description,
                              active=True, consecutive_failures=0, created_at=now, updated_at=now)
    session.add(sub)
    session.flush()
    return sub


def get(session: Session, sub_id: int, *, site_ids: list[int] | None = None) -> WebhookSubscription:
    """A subscription; with `site_ids` (a restricted key), only one made for a subset of those sites."""
    sub = session.get(WebhookSubscription, sub_id)
    if sub is None or not _owned(sub, site_ids):
        raise NotFound("id", f"webhook subscription {sub_id} not found")
    return sub


def _owned(sub: WebhookSubscription, site_ids: list[int] | None) -> bool:
    return site_ids is None or (sub.site_ids is not None and set(sub.site_ids) <= set(site_ids))


def list_subscriptions(session: Session, *, site_ids: list[int] | None = None) -> list[WebhookSubscription]:
    subs = session.scalars(select(WebhookSubscription).order_by(WebhookSubscription.id))
    return [s for s in subs if _owned(s, site_ids)]


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


def enqueue_many(session: Session, events: list[Event], *, now: datetime) -> int:
    """Bus batch handler: the deliveries of a whole batch of events in one statement; returns how many."""
    subs = session.info.get("webhook_subscriptions")
    if subs is None:  # once per dispatch batch: the bus hands one session a batch of events
        subs = session.info["webhook_subscriptions"] = [
            (s.id, frozenset(s.event_types), None if s.site_ids is None else frozenset(s.site_ids), s.created_at)
            for s in session.scalars(select(WebhookSubscription).where(WebhookSubscription.active.is_(True)))]
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


def redeliver(session: Session, *, delivery: WebhookDelivery, now: datetime) -> WebhookDelivery:
    """Send the same event again, as a new delivery due now."""
    copy = WebhookDelivery(subscription_id=delivery.subscription_id, event_id=delivery.event_id,
                           event_type=delivery.event_type, payload=delivery.payload, status=PENDING, attempts=0,
                           next_attempt_at=now, created_at=now)
    session.add(copy)
    session.flush()
    return copy


def get_delivery(session: Session, delivery_id: int, *, site_ids: list[int] | None = None) -> WebhookDelivery:
    d = session.get(WebhookDelivery, delivery_id)
    if d is None or not _owned(session.get(WebhookSubscription, d.subscription_id), site_ids):
        raise NotFound("id", f"webhook delivery {delivery_id} not found")
    return d


def deliveries(session: Session, *, subscription_id: int, after_id: int = 0, limit: int = 50) -> list[WebhookDelivery]:
    q = select(WebhookDelivery).where(WebhookDelivery.subscription_id == subscription_id,
                                      WebhookDelivery.id > after_id)
    return list(session.scalars(q.order_by(WebhookDelivery.id).limit(limit)))


def attempts_of(session: Session, delivery_ids: Sequence[int]) -> dict[int, list[WebhookAttempt]]:
    out: dict[int, list[WebhookAttempt]] = {i: [] for i in delivery_ids}
    if delivery_ids:
        q = select(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(delivery_ids)).order_by(WebhookAttempt.id)
        for a in session.scalars(q):
            out[a.delivery_id].append(a)
    return out


# --- sending ----------------------------------------------------------------------------------------------


@dataclass
class Deliverer:
    sessions: sessionmaker[Session]
    clock: Clock
    settings: Settings
    http: http.Client
    batch: int = 50

    def __call__(self) -> int:
        """Worker job: send every due delivery once; returns how many were attempted."""
        done = 0
        while True:
            claimed = self._claim()
            for item in claimed:
                self._attempt(*item)
            done += len(claimed)
            if len(claimed) < self.batch:
                return done

    def _claim(self) -> list[tuple[int, str, str, bytes, str, int]]:
        """Lease due deliveries (so other workers skip them) and return what sending needs."""
        now = self.clock.now()
        lease = now + timedelta(seconds=self.settings.webhook_timeout_seconds * 2 + 60)
        with transaction(self.sessions) as s:
            q = (select(WebhookDelivery.id).where(WebhookDelivery.status == PENDING,
                                                  WebhookDelivery.next_attempt_at <= now)
                 .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id).limit(self.batch))
            if s.get_bind().dialect.name == "postgresql":
                q = q.with_for_update(skip_locked=True)
            ids = list(s.scalars(q))
            if not ids:
                return []
            s.execute(update(WebhookDelivery).where(WebhookDelivery.id.in_(ids)).values(next_attempt_at=lease))
            rows = s.execute(select(WebhookDelivery, WebhookSubscription)
                             .join(WebhookSubscription, WebhookSubscription.id == WebhookDelivery.subscription_id)
                             .where(WebhookDelivery.id.in_(ids)).order_by(WebhookDelivery.id)).all()
            out = []
            for d, sub in rows:
                if not sub.active:
                    d.status, d.next_attempt_at, d.last_error = FAILED, None, "subscription is disabled"
                    continue
                out.append((d.id, sub.url, sub.secret, orjson.dumps(d.payload), d.event_type, sub.id))
            return out

    def _attempt(self, delivery_id: int, url: str, secret: str, body: bytes, event_type: str, sub_id: int) -> None:
        now = self.clock.now()
        ts = int(now.timestamp())
        headers = {"Content-Type": "application/json", "User-Agent": f"Retento-Webhooks/{__version__}",
                   "Retento-Event": event_type, "Retento-Delivery": str(delivery_id),
                   "Retento-Timestamp": str(ts), "Retento-Signature": policy.signature(secret, ts, body)}
        started = time.perf_counter()
        reply = self.http.post(url, content=body, headers=headers, timeout=self.settings.webhook_timeout_seconds)
        duration = int((time.perf_counter() - started) * 1000)
        with transaction(self.sessions) as s:
            d = s.get(WebhookDelivery, delivery_id, with_for_update=True)
            sub = s.get(WebhookSubscription, sub_id, with_for_update=True)
            if d is None or sub is None:
                return  # deleted meanwhile
            s.add(WebhookAttempt(delivery_id=d.id, at=now, status_code=reply.status, error=reply.error,
                                 duration_ms=duration))
            d.attempts += 1
            d.last_status_code, d.last_error = reply.status, reply.error
            if reply.ok:
                d.status, d.delivered_at, d.next_attempt_at = DELIVERED, now, None
                sub.consecutive_failures = 0
                return
            st = self.settings
            retry_at = None if reply.refused else policy.next_attempt(
                d.attempts, now=now, base=st.webhook_backoff_seconds, cap=st.webhook_backoff_max_seconds,
                max_attempts=st.webhook_max_attempts)
            d.status, d.next_attempt_at = (PENDING, retry_at) if retry_at else (FAILED, None)
            sub.consecutive_failures += 1
            if sub.active and (reply.refused or policy.should_disable(sub.consecutive_failures,
                                                                      st.webhook_disable_after)):
                # a refused URL stays refused: its other deliveries would only be refused too
                sub.active, sub.disabled_at = False, now
                sub.disabled_reason = (reply.error if reply.refused and reply.error else
                                       f"{sub.consecutive_failures} failed attempts in a row")[:255]
                log.warning("webhook subscription %s disabled: %s", sub.id, sub.disabled_reason)


def install(app) -> None:  # noqa: ANN001 - retento.bootstrap.App
    """Feed the outbox from the bus and send due deliveries from the worker."""
    app.bus.subscribe("webhooks", lambda s, ev: enqueue(s, ev, now=app.clock.now()) and None,
                      batch_handler=lambda s, evs: enqueue_many(s, evs, now=app.clock.now()) and None)
    app.worker.add_job("webhooks", Deliverer(app.sessions, app.clock, app.settings, app.http))
