"""Authenticating an API request: key lookup, scope check, per-key rate limit. Shared by /api/v1 and /api/v5."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from fastapi import Request

from retento.apikeys import service
from retento.apikeys.ratelimit import RateLimiter
from retento.apikeys.schemas import Principal
from retento.db import read_sessions, transaction


@dataclass
class AuthFailed(Exception):
    """kind: missing | wrong | scope | site | rate."""

    kind: str
    message: str
    scope: str | None = None
    retry_after: float = 0.0

    @property
    def status(self) -> int:
        return {"missing": 401, "wrong": 401, "scope": 403, "site": 403, "rate": 429}[self.kind]


def limiter(request: Request) -> RateLimiter:
    state = request.app.state
    lim = getattr(state, "rate_limiter", None)
    if lim is None:
        settings = state.app.settings
        lim = state.rate_limiter = RateLimiter(settings.api_rate_per_second, settings.api_rate_burst)
    return lim


def lookup(request: Request, raw: str) -> Principal | None:
    """The key's principal, from this process's cache for `api_key_cache_seconds`, else from the database."""
    app = request.app.state.app
    state = request.app.state
    cache: dict[str, tuple[Principal | None, datetime]] | None = getattr(state, "api_key_cache", None)
    if cache is None:
        cache = state.api_key_cache = {}
    now = app.clock.now()
    hit = cache.get(raw)
    if hit is not None and now - hit[1] < timedelta(seconds=app.settings.api_key_cache_seconds):
        return hit[0]
    with transaction(read_sessions(app.engine)) as s:
        principal = service.authenticate(s, raw)
    if len(cache) > 10_000:
        cache.clear()
    cache[raw] = (principal, now)
    return principal


def authenticate(request: Request, raw: str | None, scope: str | None) -> Principal:
    """The caller's principal, or AuthFailed (missing / wrong key, missing scope, over the rate limit)."""
    app = request.app.state.app
    if not raw:
        raise AuthFailed("missing", "API key is missing / не передан ключ API")
    principal = lookup(request, raw)
    if principal is None:
        raise AuthFailed("wrong", "wrong or revoked API key / неверный или отозванный ключ API")
    wait = limiter(request).hit(principal.key_id, app.clock.now())
    if wait > 0:
        raise AuthFailed("rate", "rate limit exceeded / превышен лимит запросов", retry_after=wait)
    if scope is not None and scope not in principal.scopes:
        raise AuthFailed("scope", f"this API key lacks the scope {scope} / у ключа нет права {scope}", scope=scope)
    request.state.principal = principal
    return principal
