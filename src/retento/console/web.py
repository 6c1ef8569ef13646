"""What every console page uses: the signed-in user of a request (`signed_in`), the role and CSRF gate of every
change (`may_change(area)`), rendering a template in the user's language (`render`), and `ConsoleRoute`, which
answers a refusal, a missing sign-in or bad input with an HTML page instead of JSON."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute, APIRouter
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from retento.app import App
from retento.console.i18n import LANGUAGES, N_, Formats, negotiate, translations
from retento.core import scoping
from retento.core.db.engine import read_sessions
from retento.core.db.transactions import transaction
from retento.core.errors import DomainError, FieldError, NotFound
from retento.users import service as users
from retento.users.schemas import may

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
SESSION_COOKIE = "retento_session"
CSRF_COOKIE = "retento_csrf"  # the sign-in form's token (double submit), before there is a session
CSRF_FIELD, CSRF_HEADER = "csrf_token", "X-CSRF-Token"
# Every console page: scripts only from our own files (no inline script runs), no framing, no sniffing
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                               "img-src 'self' data:; frame-ancestors 'none'; base-uri 'self'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


@dataclass(frozen=True)
class Page:
    """A console page (or group of pages) as registered in `App.parts.console_pages`: its routes and, when it
    has one, its entry in the navigation (`nav`: the English label, extracted for translation; `path`)."""

    router: APIRouter
    nav: str | None = None
    path: str | None = None
    order: int = 100
    roles: tuple[str, ...] | None = None  # who sees the navigation entry (None: every role); see `reader`


@dataclass(frozen=True)
class Viewer:
    """The signed-in user of a request, with what pages need to show things to them."""

    user_id: int
    email: str
    name: str
    role: str
    site_ids: frozenset[int] | None
    lang: str
    timezone: str
    csrf: str
    fmt: Formats = field(compare=False)

    def may(self, area: str) -> bool:
        return may(self.role, area)

    def gettext(self, message: str) -> str:
        return translations(self.lang).gettext(message)


class SignInNeeded(Exception):
    pass


class Refused(Exception):
    """A change the user may not make (403), or a form without the session's CSRF token."""

    def __init__(self, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.message, self.status = message, status


def app_of(request: Request) -> App:
    return request.app.state.app


def reading(request: Request) -> sessionmaker[Session]:
    """Read-only sessions that know their App like `app.sessions`' do (services reach registries through it)."""
    app = app_of(request)
    maker = read_sessions(app.engine)
    maker.configure(info=dict(app.sessions.kw.get("info") or {}))
    return maker


def router() -> APIRouter:
    """A page module's router: HTML answers for refusals and bad input, left out of the API's OpenAPI."""
    return APIRouter(route_class=ConsoleRoute, include_in_schema=False)


# --- who is signed in ----------------------------------------------------------------------------------------


def _lookup(app: App, token: str) -> Viewer | None:
    with transaction(read_sessions(app.engine)) as s:
        found = users.current(s, token=token, now=app.clock.now())
        if found is None:
            return None
        row, u = found
        return Viewer(user_id=u.id, email=u.email, name=u.name, role=u.role,
                      site_ids=frozenset(u.site_ids) if u.site_ids is not None else None, lang=u.locale,
                      timezone=u.timezone, csrf=row.csrf, fmt=Formats(u.locale, u.timezone))


async def signed_in(request: Request) -> Viewer:
    """Dependency of every page: the user of the session cookie; the sessions this request makes see only the
    user's sites. Without a live session: to the sign-in page."""
    token = request.cookies.get(SESSION_COOKIE)
    viewer = await run_in_threadpool(_lookup, app_of(request), token) if token else None
    if viewer is None:
        raise SignInNeeded()
    scoping.enter(viewer.site_ids)
    request.state.viewer = viewer
    return viewer


def reader(*roles: str) -> Callable[..., Coroutine[Any, Any, Viewer]]:
    """Dependency of a GET route only some roles may open (e.g. the admin pages): others get 403."""

    async def dependency(viewer: Viewer = Depends(signed_in)) -> Viewer:
        if viewer.role not in roles:
            raise Refused(N_("Your role does not allow this page."))
        return viewer

    dependency.__name__ = f"reader_{'_'.join(roles)}"
    return dependency


def may_change(area: str) -> Callable[..., Coroutine[Any, Any, Viewer]]:
    """Dependency of every POST route: a signed-in user whose role may change `area` (users.schemas.AREAS),
    sending the session's CSRF token (form field `csrf_token` or header `X-CSRF-Token`, which htmx sends)."""

    async def dependency(request: Request, viewer: Viewer = Depends(signed_in)) -> Viewer:
        await check_csrf(request, viewer.csrf)
        if not viewer.may(area):
            raise Refused(N_("Your role does not allow this change."))
        return viewer

    dependency.__name__ = f"may_change_{area}"
    return dependency


async def check_csrf(request: Request, expected: str) -> None:
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")):
        sent = (await request.form()).get(CSRF_FIELD)
    if not isinstance(sent, str) or not expected or not secrets.compare_digest(sent, expected):
        raise Refused(N_("The form has expired. Reload the page and try again."))


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def session_cookie(response: Response, request: Request, token: str, lifetime: timedelta) -> None:
    response.set_cookie(SESSION_COOKIE, token, max_age=int(lifetime.total_seconds()), httponly=True,
                        samesite="lax", secure=app_of(request).settings.console_secure_cookies, path="/")


# --- rendering -----------------------------------------------------------------------------------------------


@cache
def environment(lang: str) -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True),
                      extensions=["jinja2.ext.i18n"], auto_reload=False)
    env.install_gettext_translations(translations(lang), newstyle=True)  # type: ignore[attr-defined]
    env.globals.update(static=static_url, languages=LANGUAGES)
    return env


@cache
def static_url(path: str) -> str:
    """The URL of a static file, with its content hash so browsers may cache it for good."""
    digest = hashlib.sha256((STATIC / path).read_bytes()).hexdigest()[:12]
    return f"/static/{path}?v={digest}"


def render(request: Request, template: str, *, status: int = 200, headers: dict[str, str] | None = None,
           **context: Any) -> HTMLResponse:
    """The template in the language of the signed-in user (or the browser's before sign-in)."""
    viewer: Viewer | None = getattr(request.state, "viewer", None)
    lang = viewer.lang if viewer else negotiate(request.headers.get("accept-language"))
    pages = app_of(request).parts.console_pages.values()
    nav = sorted((p for p in pages if p.nav and viewer and (p.roles is None or viewer.role in p.roles)),
                 key=lambda p: p.order)
    base = {"request": request, "viewer": viewer, "lang": lang, "fmt": viewer.fmt if viewer else Formats(lang),
            "nav": nav, "csrf": viewer.csrf if viewer else request.cookies.get(CSRF_COOKIE, "")}
    html = environment(lang).get_template(template).render({**base, **context})
    return HTMLResponse(html, status_code=status, headers={**SECURITY_HEADERS, **(headers or {})})


def field_errors(exc: DomainError) -> dict[str, str]:
    return {e.field: e.reason for e in exc.errors}


class ConsoleRoute(APIRoute):
    """Failures of a console route as pages: no session -> the sign-in page (htmx: `HX-Redirect`); a refusal ->
    403; not found -> 404; bad input the page did not handle itself -> 400 naming the fields."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInNeeded:
                target = "/signin?next=" + quote(request.url.path + ("?" + request.url.query
                                                                     if request.url.query else ""), safe="")
                if request.headers.get("HX-Request"):
                    return Response(status_code=401, headers={"HX-Redirect": target})
                if request.method != "GET":
                    return render(request, "error.html", status=401, message=N_("Please sign in again."))
                return RedirectResponse(target, status_code=303)
            except Refused as exc:
                return render(request, "error.html", status=exc.status, message=exc.message)
            except NotFound as exc:
                return render(request, "error.html", status=404, message=N_("Not found."), errors=exc.errors)
            except DomainError as exc:
                return render(request, "error.html", status=exc.status, message=N_("Please correct the input."),
                              errors=exc.errors)
            except RequestValidationError as exc:
                errors = [FieldError(".".join(str(p) for p in e["loc"][1:]) or "body", e["msg"])
                          for e in exc.errors()]
                return render(request, "error.html", status=400, message=N_("Please correct the input."),
                              errors=errors)

        return route
