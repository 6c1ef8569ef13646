"""Outgoing calls of the `webhook` action: an outbox row written with the trigger's change, then POSTed by the
worker with retries and exponential backoff. Delivery is at least once; receivers deduplicate on the
`Idempotency-Key` header. With a secret, `X-Retento-Signature: sha256=<hex>` is HMAC-SHA256 over
`<X-Retento-Timestamp>.<body>`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from retento.clock import Clock
from retento.core import http
from retento.db import _json_default, insert_rows, reserve_ids, transaction
from retento.jsonable import jsonable
from retento.triggers.models import WebhookCall

log = logging.getLogger(__name__)
BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_MAX = timedelta(hours=6)


def enqueue(session: Session, *, trigger_id: int, key: str, url: str, secret: str | None, body: dict,
            now: datetime) -> int:
    key = _short(key)
    existing = session.scalar(select(WebhookCall.id).where(WebhookCall.idempotency_key == key))
    if existing is not None:
        return existing
    call = WebhookCall(trigger_id=trigger_id, idempotency_key=key, url=url, secret=secret, body=jsonable(body),
                       state="pending", attempts=0, next_at=now, created_at=now)
    session.add(call)
    session.flush()
    return call.id


def enqueue_many(session: Session, *, calls: list[dict], now: datetime) -> list[int]:
    """`enqueue` for many calls (dicts of its keyword arguments but `now`), as if one by one in list order: a key
    already stored, or earlier in the list, gives that call's id. One query for the known keys, one insert."""
    for c in calls:
        c["key"] = _short(c["key"])
    keys = sorted({c["key"] for c in calls})
    t = WebhookCall.__table__
    known = {k: i for n in range(0, len(keys), 900) for k, i in
             session.execute(select(t.c.idempotency_key, t.c.id).where(t.c.idempotency_key.in_(keys[n:n + 900])))}
    new, fresh = [], set()
    for c in calls:
        if c["key"] not in known and c["key"] not in fresh:
            fresh.add(c["key"])
            new.append(c)
    ids = reserve_ids(session, t, len(new))
    rows = []
    for i, c in zip(ids, new, strict=True):
        known[c["key"]] = i
        rows.append({"id": i, "trigger_id": c["trigger_id"], "idempotency_key": c["key"], "url": c["url"],
                     "secret": c["secret"], "body": jsonable(c["body"]), "state": "pending", "attempts": 0,
                     "next_at": now, "last_status": None, "last_error": None, "created_at": now, "sent_at": None})
    insert_rows(session, t, rows)
    return [known[c["key"]] for c in calls]


def _short(key: str) -> str:
    return key[:150] + ":" + hashlib.sha256(key.encode()).hexdigest()[:40] if len(key) > 200 else key


def signature(secret: str, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class _Claimed:
    id: int
    url: str
    key: str
    secret: str | None
    body: bytes
    attempts: int  # this attempt's number: the result is recorded only if no one claimed the call since


class Deliverer:
    """The worker job that posts due webhook calls. A call is claimed with a lease (its `next_at` moves past the
    time a POST may take) in a short transaction, POSTed with no transaction open, and its result recorded in a
    second one. A worker killed mid-POST leaves the call to be claimed again when the lease ends."""

    def __init__(self, sessions: sessionmaker[Session], clock: Clock, client: http.Client, *, timeout: float,
                 max_attempts: int, batch: int = 20) -> None:
        self._sessions, self._clock, self._http = sessions, clock, client
        self._timeout, self._max_attempts, self._batch = timeout, max_attempts, batch
        self._lease = timedelta(seconds=batch * timeout + 30)  # every POST of a batch timing out

    def __call__(self) -> int:
        now = self._clock.now()
        claimed = self._claim(now)
        results = [(call, self._post(call, now)) for call in claimed]
        if results:
            with transaction(self._sessions) as s:
                for call, reply in results:
                    self._record(s, call, reply, now)
        return len(claimed)

    def _claim(self, now: datetime) -> list[_Claimed]:
        with transaction(self._sessions) as s:
            q = (select(WebhookCall).where(WebhookCall.state == "pending", WebhookCall.next_at <= now)
                 .order_by(WebhookCall.next_at).limit(self._batch))
            if s.get_bind().dialect.name == "postgresql":
                q = q.with_for_update(skip_locked=True)
            calls = list(s.scalars(q))
            for call in calls:
                call.attempts += 1
                call.next_at = now + self._lease
            return [_Claimed(c.id, c.url, c.idempotency_key, c.secret, orjson.dumps(c.body, default=_json_default),
                             c.attempts) for c in calls]

    def _post(self, call: _Claimed, now: datetime) -> http.Reply:
        ts = str(int(now.timestamp()))
        headers = {"Content-Type": "application/json", "User-Agent": "Retento-Trigger",
                   "Idempotency-Key": call.key, "X-Retento-Timestamp": ts}
        if call.secret:
            headers["X-Retento-Signature"] = signature(call.secret, ts, call.body)
        return self._http.post(call.url, content=call.body, headers=headers, timeout=self._timeout)

    def _record(self, s: Session, claimed: _Claimed, reply: http.Reply, now: datetime) -> None:
        call = s.get(WebhookCall, claimed.id, with_for_update=True)
        if call is None or call.state != "pending" or call.attempts != claimed.attempts:
            return  # the lease ran out and another worker has the call now: its result counts
        call.last_status, call.last_error = reply.status, reply.error
        if reply.ok:
            call.state, call.sent_at = "sent", now
        elif reply.refused or call.attempts >= self._max_attempts:  # a refused URL stays refused: no retries
            call.state = "failed"
            log.warning("trigger webhook %s to %s given up after %s attempts: %s", call.id, call.url,
                        call.attempts, reply.error)
        else:
            call.next_at = now + min(BACKOFF_BASE * 2 ** (call.attempts - 1), BACKOFF_MAX)
