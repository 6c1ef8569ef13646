"""Authenticating an API request: key lookup, scope check, per-key rate limit (shared by /api/v1 and /api/v5),
and `require(scope)`, the dependency of every /api/v1 route."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader

from retento.apikeys import service
from retento.apikeys.ratelimit import RateLimiter, retry_after_header
from retento.apikeys.schemas import Principal
from retento.core import scoping
from retento.core.db.engine import read_sessions
from retento.core.db.transactions import transaction
from retento.core.rest.problems import Refused


@dataclass
class AuthFailed(Refused):
    """kind: missing | wrong | scope | site | rate."""

    kind: str
    message: str
    scope: str | None = None
    retry_after: float = 0.0

    @property
    def status(self) -> int:
        return {"missing": 401, "wrong": 401, "scope": 403, "site": 403, "rate": 429}[self.kind]

    @property
    def headers(self) -> dict[str, str] | None:
        if self.kind == "rate":
            return {"Retry-After": retry_after_header(self.retry_after)}
        return {"WWW-Authenticate": 'ApiKey header="X-API-Key"'} if self.kind in ("missing", "wrong") else None


def limiter(request: Request) -> RateLimiter:
    state = request.app.state
    lim = getattr(state, "rate_limiter", None)
    if lim is None:
        settings = state.app.settings
        lim = state.rate_limiter = RateLimiter(settings.api_rate_per_second, settings.api_rate_burst)
    return lim


def _cache(request: Request) -> dict[str, tuple[Principal | None, datetime]]:
    state = request.app.state
    cache = getattr(state, "api_key_cache", None)
    if cache is None:
        cache = state.api_key_cache = {}
    return cache


def cached(request: Request, raw: str) -> tuple[bool, Principal | None]:
    """(True, the key's principal or None for an unknown key) from this process's cache while it is younger
    than `api_key_cache_seconds`; (False, None) when the database must be asked."""
    app = request.app.state.app
    hit = _cache(request).get(raw)
    if hit is not None and app.clock.now() - hit[1] < timedelta(seconds=app.settings.api_key_cache_seconds):
        return True, hit[0]
    return False, None


def lookup(request: Request, raw: str) -> Principal | None:
    """The key's principal, from this process's cache for `api_key_cache_seconds`, else from the database."""
    found, principal = cached(request, raw)
    if found:
        return principal
    app = request.app.state.app
    now = app.clock.now()
    with transaction(read_sessions(app.engine)) as s:
        principal = service.authenticate(s, raw)
    cache = _cache(request)
    if len(cache) > 10_000:
        cache.clear()
    cache[raw] = (principal, now)
    return principal


def authenticate(request: Request, raw: str | None, scope: str | None) -> Principal:
    """The caller's principal, or AuthFailed (missing / wrong key, missing scope, over the rate limit)."""
    if not raw:
        raise AuthFailed("missing", "API key is missing / не передан ключ API")
    return admit(request, lookup(request, raw), scope)


async def authenticate_async(request: Request, raw: str | None, scope: str | None) -> Principal:
    """`authenticate` for the event loop: a cached key costs no thread hop; the database is asked in a thread."""
    if not raw:
        raise AuthFailed("missing", "API key is missing / не передан ключ API")
    found, principal = cached(request, raw)
    if not found:
        principal = await run_in_threadpool(lookup, request, raw)
    return admit(request, principal, scope)


def admit(request: Request, principal: Principal | None, scope: str | None) -> Principal:
    """Check a looked-up key: known, within its rate limit, holding `scope`."""
    if principal is None:
        raise AuthFailed("wrong", "wrong or revoked API key / неверный или отозванный ключ API")
    wait = limiter(request).hit(principal.key_id, request.app.state.app.clock.now())
    if wait > 0:
        raise AuthFailed("rate", "rate limit exceeded / превышен лимит запросов", retry_after=wait)
    if scope is not None and scope not in principal.scopes:
        raise AuthFailed("scope", f"this API key lacks the scope {scope} / у ключа нет права {scope}", scope=scope)
    request.state.principal = principal
    scoping.enter(principal.site_ids)  # the sessions this request makes see only the key's sites
    return principal


_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key (`retento apikey create`)")


def require(scope: str) -> Callable[..., Principal]:
    """Dependency: the API key from `X-API-Key`, which must hold `scope`."""

    async def dependency(request: Request, key: Annotated[str | None, Depends(_key_header)]) -> Principal:
        return await authenticate_async(request, key, scope)

    dependency.__name__ = f"require_{scope.replace(':', '_')}"
    return dependency
