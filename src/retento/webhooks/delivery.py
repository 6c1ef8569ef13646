"""Sending the outbox: every due delivery (a subscription's event or a trigger's call) POSTed through the one
outgoing HTTP client, signed, logged attempt by attempt, retried with backoff.

A delivery is claimed in a short transaction that counts the attempt and gives it a lease (its next attempt
moves past the time the whole batch may take), POSTed with no transaction or row lock open, and its result
recorded in a second transaction. A worker killed during the POST leaves the delivery to be claimed again when
the lease ends; a result that arrives after another worker claimed the delivery since is dropped.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import timedelta

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from retento import __version__
from retento.clock import Clock
from retento.config import Settings
from retento.core import http
from retento.db import _json_default, transaction
from retento.webhooks import policy
from retento.webhooks.models import (
    DELIVERED,
    FAILED,
    PENDING,
    WebhookAttempt,
    WebhookDelivery,
    WebhookSubscription,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Claimed:
    id: int
    url: str
    secret: str | None
    body: bytes
    event_type: str
    key: str | None  # a trigger call's Idempotency-Key
    attempts: int  # this attempt's number: its result is recorded only if no one claimed the delivery since


class Deliverer:
    """The worker job that sends due deliveries; returns how many were attempted."""

    def __init__(self, sessions: sessionmaker[Session], clock: Clock, settings: Settings, client: http.Client, *,
                 batch: int = 20) -> None:
        self._sessions, self._clock, self._settings, self._http = sessions, clock, settings, client
        self._batch = batch
        self._lease = timedelta(seconds=batch * settings.webhook_timeout_seconds + 30)  # every POST timing out

    def __call__(self) -> int:
        done = 0
        while True:
            claimed = self._claim()
            for item in claimed:
                self._attempt(item)
            done += len(claimed)
            if len(claimed) < self._batch:
                return done

    def _claim(self) -> list[_Claimed]:
        now = self._clock.now()
        with transaction(self._sessions) as s:
            q = (select(WebhookDelivery).where(WebhookDelivery.status == PENDING,
                                               WebhookDelivery.next_attempt_at <= now)
                 .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id).limit(self._batch))
            if s.get_bind().dialect.name == "postgresql":
                q = q.with_for_update(skip_locked=True)
            due = list(s.scalars(q))
            sub_ids = {d.subscription_id for d in due if d.subscription_id is not None}
            subs = {x.id: x for x in s.scalars(select(WebhookSubscription).where(WebhookSubscription.id.in_(sub_ids)))}
            out = []
            for d in due:
                sub = subs.get(d.subscription_id) if d.subscription_id is not None else None
                if d.subscription_id is not None and (sub is None or not sub.active):
                    d.status, d.next_attempt_at, d.last_error = FAILED, None, "subscription is disabled"
                    continue
                d.attempts += 1
                d.next_attempt_at = now + self._lease
                url, secret = (sub.url, sub.secret) if sub is not None else (d.url or "", d.secret)
                out.append(_Claimed(d.id, url, secret, orjson.dumps(d.payload, default=_json_default), d.event_type,
                                    d.idempotency_key, d.attempts))
            return out

    def _attempt(self, c: _Claimed) -> None:
        now = self._clock.now()
        ts = int(now.timestamp())
        headers = {"Content-Type": "application/json", "User-Agent": f"Retento-Webhooks/{__version__}",
                   "Retento-Event": c.event_type, "Retento-Delivery": str(c.id), "Retento-Timestamp": str(ts)}
        if c.secret:
            headers["Retento-Signature"] = policy.signature(c.secret, ts, c.body)
        if c.key:
            headers["Idempotency-Key"] = c.key
        started = time.perf_counter()
        reply = self._http.post(c.url, content=c.body, headers=headers, timeout=self._settings.webhook_timeout_seconds)
        duration = int((time.perf_counter() - started) * 1000)
        with transaction(self._sessions) as s:
            d = s.get(WebhookDelivery, c.id, with_for_update=True)
            if d is None or d.status != PENDING or d.attempts != c.attempts:
                return  # deleted meanwhile, or the lease ran out and another worker has it now: its result counts
            s.add(WebhookAttempt(delivery_id=d.id, at=now, status_code=reply.status, error=reply.error,
                                 duration_ms=duration))
            d.last_status_code, d.last_error = reply.status, reply.error
            sub = (s.get(WebhookSubscription, d.subscription_id, with_for_update=True)
                   if d.subscription_id is not None else None)
            if reply.ok:
                d.status, d.delivered_at, d.next_attempt_at = DELIVERED, now, None
                if sub is not None:
                    sub.consecutive_failures = 0
                return
            st = self._settings
            retry_at = None if reply.refused else policy.next_attempt(  # a refused URL stays refused
                d.attempts, now=now, base=st.webhook_backoff_seconds, cap=st.webhook_backoff_max_seconds,
                max_attempts=st.webhook_max_attempts)
            d.status, d.next_attempt_at = (PENDING, retry_at) if retry_at else (FAILED, None)
            if sub is None:
                if retry_at is None:
                    log.warning("trigger %s webhook call %s to %s given up after %s attempts: %s", d.trigger_id,
                                d.id, c.url, d.attempts, reply.error)
                return
            sub.consecutive_failures += 1
            if sub.active and (reply.refused or policy.should_disable(sub.consecutive_failures,
                                                                      st.webhook_disable_after)):
                # refused: the subscription's other deliveries would only be refused too
                sub.active, sub.disabled_at = False, now
                sub.disabled_reason = (reply.error if reply.refused and reply.error else
                                       f"{sub.consecutive_failures} failed attempts in a row")[:255]
                log.warning("webhook subscription %s disabled: %s", sub.id, sub.disabled_reason)
