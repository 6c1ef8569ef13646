"""Pure decisions of webhook delivery: signatures, when to disable a subscription. When to retry and when to
give up is the one backoff policy of retento.core.work (`webhooks.delivery.queue`)."""

from __future__ import annotations

import hashlib
import hmac

from retento.core import parsing


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """`v1=` + hex HMAC-SHA256 of `"{timestamp}." + body` with the subscription's secret."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, header: str, *, now: int, tolerance: int = 300) -> bool:
    """What a receiver does: recompute, compare in constant time, reject stale timestamps (replays)."""
    at = parsing.integer(timestamp)
    if at is None or abs(now - at) > tolerance:
        return False
    expected = signature(secret, at, body)
    return any(parsing.secret_equal(expected, part.strip()) for part in header.split(","))


def should_disable(consecutive_failures: int, threshold: int) -> bool:
    return consecutive_failures >= threshold
