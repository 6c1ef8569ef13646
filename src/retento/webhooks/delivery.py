"""Sending the outbox: every due delivery (a subscription's event or a trigger's call) POSTed through the one
outgoing HTTP client, signed, logged attempt by attempt, retried with backoff.

Deliveries are a queue of the durable-work primitive (`retento.core.work`): a batch is leased in a short
transaction that counts the attempt (state `sending`, a fencing token, a lease renewed between the POSTs),
POSTed with no transaction or row lock open, and each result recorded in a second transaction only while the
lease still holds the delivery. A worker killed during the POST leaves the delivery to be claimed again when the
lease ends; a result that arrives after another worker took the delivery over is dropped. Failures wait the one
backoff (`RETENTO_WEBHOOK_BACKOFF_SECONDS`, doubling, at most `..._MAX_SECONDS`); after
`RETENTO_WEBHOOK_MAX_ATTEMPTS`, or at once for a refused address, the delivery is `failed` (a dead letter).
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
from retento.core import http, work
from retento.core.clock import Clock
from retento.core.config import Settings
from retento.core.db.transactions import transaction
from retento.core.db.types import json_default
from retento.webhooks import policy
from retento.webhooks.models import (
    DELIVERED,
    FAILED,
    PENDING,
    SENDING,
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


def queue(settings: Settings) -> work.Queue:
    """The outbox as a queue of the durable-work primitive; `failed` is its dead state."""
    return work.Queue(
        name="webhooks", table=WebhookDelivery.__table__,
        label="webhook deliveries and trigger webhook calls / вебхуки", state="status", due="next_attempt_at",
        ready=PENDING, held=SENDING, done=DELIVERED, dead=FAILED, max_attempts=settings.webhook_max_attempts,
        backoff=work.Backoff(base=settings.webhook_backoff_seconds, cap=settings.webhook_backoff_max_seconds),
        lease=timedelta(seconds=settings.webhook_timeout_seconds * 2 + 30),  # renewed between the POSTs of a batch
        dead_values=lambda now: {"next_attempt_at": None})


class Deliverer:
    """The worker job that sends due deliveries; returns how many were attempted."""

    def __init__(self, sessions: sessionmaker[Session], clock: Clock, settings: Settings, client: http.Client, *,
                 batch: int = 20) -> None:
        self._sessions, self._clock, self._settings, self._http = sessions, clock, settings, client
        self._batch = batch
        self.queue = queue(settings)
        self._owner = work.worker_id()

    def __call__(self) -> int:
        return work.drain(self.deliver_batch, batch=self._batch)

    def deliver_batch(self) -> int:
        """Lease a batch of due deliveries (`retento.core.work.claim`, which counts the attempt) and POST each,
        renewing the lease as the batch goes on; each result is recorded only while the lease still holds its
        delivery."""
        now = self._clock.now()
        with transaction(self._sessions) as s:
            lease = work.claim(s, self.queue, now=now, limit=self._batch, owner=self._owner,
                               columns=["subscription_id", "url", "secret", "payload", "event_type", "idempotency_key"])
            sub_ids = {r.subscription_id for r in lease.rows if r.subscription_id is not None}
            subs = {x.id: x for x in s.scalars(select(WebhookSubscription).where(WebhookSubscription.id.in_(sub_ids)))}
            out, off = [], {}
            for d in lease.rows:
                sub = subs.get(d.subscription_id) if d.subscription_id is not None else None
                if d.subscription_id is not None and (sub is None or not sub.active):
                    off[d.id] = work.Failure("subscription is disabled", permanent=True)
                    continue
                url, secret = (sub.url, sub.secret) if sub is not None else (d.url or "", d.secret)
                out.append(_Claimed(d.id, url, secret, orjson.dumps(d.payload, default=json_default), d.event_type,
                                    d.idempotency_key))
            work.fail(s, lease, off, now=now)
        for item in out:
            self._attempt(lease, item)
        return len(lease.rows)

    def _attempt(self, lease: work.Lease, c: _Claimed) -> None:
        now = self._clock.now()
        if lease.due_for_renewal(now):
            with transaction(self._sessions) as s:
                if c.id not in work.renew(s, lease, now=now):
                    return  # the lease ran out and another worker has the delivery now
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
        done = self._clock.now()
        with transaction(self._sessions) as s:
            d = s.get(WebhookDelivery, c.id)
            sub = (s.get(WebhookSubscription, d.subscription_id, with_for_update=True)
                   if d is not None and d.subscription_id is not None else None)
            result = {"last_status_code": reply.status, "last_error": reply.error}
            if reply.ok:
                mine = work.complete(s, lease, [c.id], values={**result, "delivered_at": done, "next_attempt_at": None})
                dead = False
            else:  # a refused URL stays refused: no retry
                failed = work.fail(s, lease, {c.id: work.Failure(reply.error or f"HTTP {reply.status}",
                                                                permanent=reply.refused, values=result)}, now=done)
                mine, dead = failed.retried | failed.dead, bool(failed.dead)
            if not mine or d is None:
                return  # deleted meanwhile, or the lease ran out and another worker has it now: its result counts
            s.add(WebhookAttempt(delivery_id=c.id, at=now, status_code=reply.status, error=reply.error,
                                 duration_ms=duration))
            if d.subscription_id is None:
                if dead:
                    log.warning("trigger %s webhook call %s to %s given up after %s attempts: %s", d.trigger_id,
                                d.id, c.url, d.attempts, reply.error)
                return
            if sub is None:
                return
            if reply.ok:
                sub.consecutive_failures = 0
                return
            sub.consecutive_failures += 1
            if sub.active and (reply.refused or policy.should_disable(sub.consecutive_failures,
                                                                      self._settings.webhook_disable_after)):
                # refused: the subscription's other deliveries would only be refused too
                sub.active, sub.disabled_at = False, done
                sub.disabled_reason = (reply.error if reply.refused and reply.error else
                                       f"{sub.consecutive_failures} failed attempts in a row")[:255]
                log.warning("webhook subscription %s disabled: %s", sub.id, sub.disabled_reason)
