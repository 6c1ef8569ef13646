"""405 Method Not Allowed for every route: the `Allow` header names every method the path has.

Starlette answers a path asked with an undeclared method from the first route whose path matches, so `Allow`
named only that route's methods (`DELETE /customers/1` said `GET`, though `PATCH` is there too). Here the
answer lists the methods of every route that matches the path, in the error body of the API the path belongs
to: a route class may define `method_not_allowed(request, allowed) -> Response` (problem+json for /api/v1,
RetailCRM's envelope for /api/v5).

Routes marked `direct` (provider webhooks, called many times a second) are answered before FastAPI's routing and
request handling, by their route class's `direct_handler` (the same endpoint and error answers).

A path no route has is a 404 in the native API's problem+json. Paths that name a literal route (`/triggers/actions`) are not captured by a sibling's path parameter when the
parameter is declared with a convertor (`/triggers/{trigger_id:int}`), so they get their own 405 too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from starlette._utils import get_route_path
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

_FALLBACK = "__retento_fallback__"
_DIRECT = "__retento_direct__"
Handler = Callable[[Request], Awaitable[Response]]


def fallback(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a catch-all endpoint (any path, any method): it does not count as a method a path has."""
    setattr(endpoint, _FALLBACK, True)
    return endpoint


def direct(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    """Mark an endpoint `async def endpoint(request) -> Response` (no other parameters, no dependencies) to be
    served without FastAPI's routing and request handling, which cost more CPU than a small webhook's own work:
    the route stays declared (405s, the OpenAPI document), its path and method are answered first."""
    setattr(endpoint, _DIRECT, True)
    return endpoint


def path_routes(request: Request) -> list[Any]:
    """The routes (original route objects) whose path matches the request, whatever their methods."""
    found = []
    for context in iter_route_contexts(request.app.router.routes):
        if getattr(context.endpoint, _FALLBACK, False) or not context.methods:
            continue
        if context.matches(request.scope)[0] is not Match.NONE:
            found.append(context)
    return found


def allowed_methods(request: Request) -> list[str]:
    return sorted({m for context in path_routes(request) for m in context.methods})


def allow_header(allowed: list[str]) -> dict[str, str]:
    return {"Allow": ", ".join(allowed)}


def install(api: FastAPI, *, no_route: Callable[[Request], Response]) -> None:
    """Every 405 of the application names all the path's methods; a path no route has answers `no_route`
    (call after the routers are included)."""

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            return no_route(request)
        if exc.status_code != 405:
            return await http_exception_handler(request, exc)
        routes = path_routes(request)
        allowed = sorted({m for context in routes for m in context.methods})
        answer = getattr(routes[0].original_route, "method_not_allowed", None) if routes else None
        if answer is not None:
            return answer(request, allowed)
        return JSONResponse({"detail": "Method Not Allowed"}, status_code=405, headers=allow_header(allowed))

    api.add_exception_handler(HTTPException, http_error)
    index(api)
    handlers = direct_handlers(api)
    if handlers:  # innermost of the middleware: a body limit and the 500 answer apply as to any route
        api.user_middleware.append(Middleware(Direct, handlers=handlers))


def literal_prefix(path_format: str) -> str:
    """What every path a route matches starts with: its path up to the first parameter."""
    return path_format.split("{", 1)[0]


def index(api: FastAPI) -> None:
    """Each of the application's top-level routes (a domain's router, mostly) answers "no match" from its
    paths' literal prefixes before trying its routes one by one.

    FastAPI matches a request against every route in order; an included router tries each of its routes with
    its own bookkeeping (about 2 µs each), and ~350 routes cost ~0.5 ms of CPU per request that matches late,
    more than the rest of a small request. A path that starts with none of a router's literal prefixes cannot
    match any of its routes (their patterns are anchored at the start), so the answer is the same."""
    for route in api.router.routes:
        formats = [getattr(c, "path_format", None) for c in iter_route_contexts([route])]
        if not formats or None in formats:
            continue  # a route without a path (a host) is tried as it is
        prefixes = tuple(sorted({literal_prefix(f) for f in formats}))
        if "" not in prefixes:
            route.matches = _guarded(route, prefixes)  # type: ignore[method-assign]


def _guarded(route: BaseRoute, prefixes: tuple[str, ...]) -> Callable[[Scope], tuple[Match, Scope]]:
    matches = route.matches

    def guarded(scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "lifespan" and not get_route_path(scope).startswith(prefixes):
            return Match.NONE, {}
        return matches(scope)

    return guarded


def direct_handlers(api: FastAPI) -> dict[tuple[str, str], Handler]:
    """(method, path) -> handler of the application's `direct` routes."""
    out: dict[tuple[str, str], Handler] = {}
    for context in iter_route_contexts(api.router.routes):
        if not getattr(context.endpoint, _DIRECT, False):
            continue
        dependant, make = context.dependant, getattr(context.original_route, "direct_handler", None)
        if (make is None or "{" in context.path_format or dependant.dependencies or dependant.path_params
                or dependant.query_params or dependant.header_params or dependant.cookie_params
                or dependant.body_params or dependant.request_param_name is None):
            raise TypeError(f"{context.path_format}: a direct route takes only the request, in a route class "
                            "with `direct_handler`")
        handler = make()
        for method in context.methods:
            if _first_match(api, method, context.path_format) is not context.endpoint:
                raise TypeError(f"{method} {context.path_format}: an earlier route takes it; it cannot be direct")
            out[(method, context.path_format)] = handler
    return out


def _first_match(api: FastAPI, method: str, path: str) -> Callable[..., Any] | None:
    """The endpoint FastAPI's routing gives a request (method, path)."""
    scope = {"type": "http", "method": method, "path": path, "root_path": ""}
    for context in iter_route_contexts(api.router.routes):
        if context.matches(scope)[0] is Match.FULL:
            return context.endpoint
    return None


class Direct:
    """ASGI middleware: a request for a `direct` route's method and path goes to its handler."""

    def __init__(self, app: ASGIApp, handlers: dict[tuple[str, str], Handler]) -> None:
        self.app, self.handlers = app, handlers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            handler = self.handlers.get((scope["method"], get_route_path(scope)))
            if handler is not None:
                response = await handler(Request(scope, receive))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
