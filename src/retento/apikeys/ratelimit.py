"""Per-key token bucket. The decision is pure (takes `now`); the limiter only keeps the buckets in memory."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Bucket:
    tokens: float
    at: datetime


def take(bucket: Bucket | None, *, now: datetime, rate: float, burst: int) -> tuple[Bucket, float]:
    """Spend one token. Returns the new bucket and 0, or the unchanged bucket and the seconds to wait."""
    if bucket is None:
        bucket = Bucket(float(burst), now)
    elapsed = max((now - bucket.at).total_seconds(), 0.0)
    tokens = min(float(burst), bucket.tokens + elapsed * rate)
    if tokens >= 1.0:
        return Bucket(tokens - 1.0, now), 0.0
    return Bucket(tokens, now), (1.0 - tokens) / rate


def retry_after_header(wait: float) -> str:
    return str(max(1, math.ceil(wait)))


class RateLimiter:
    """Buckets of this process (each API process limits on its own; see docs/api.md)."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self._buckets: dict[int, Bucket] = {}
        self._lock = threading.Lock()

    def hit(self, key_id: int, now: datetime) -> float:
        """0 if the request may go ahead, else the seconds until it may."""
        with self._lock:
            bucket, wait = take(self._buckets.get(key_id), now=now, rate=self.rate, burst=self.burst)
            self._buckets[key_id] = bucket
            return wait
