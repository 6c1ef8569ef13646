"""Signing in and out, and the user's own preferences (language, time zone)."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Annotated
from zoneinfo import available_timezones

from fastapi import Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from retento.console import web
from retento.console.i18n import N_
from retento.console.web import Viewer, app_of, render, signed_in
from retento.core.db.transactions import transaction
from retento.core.errors import DomainError
from retento.users import service as users

router = web.router()
PAGE = web.Page(router)
TIMEZONES = sorted(available_timezones())


def _local(target: str | None) -> str:
    """Only paths of this site after sign-in (no open redirect)."""
    return target if target and target.startswith("/") and not target.startswith(("//", "/\\")) else "/"


@router.get("/signin")
def signin_form(request: Request, next: str = "/") -> Response:
    token = request.cookies.get(web.CSRF_COOKIE) or secrets.token_urlsafe(32)
    response = render(request, "signin.html", next=_local(next), csrf=token)
    response.set_cookie(web.CSRF_COOKIE, token, httponly=True, samesite="strict", path="/signin",
                        secure=app_of(request).settings.console_secure_cookies)
    return response


@router.post("/signin")
def signin(request: Request, email: Annotated[str, Form()] = "", password: Annotated[str, Form()] = "",
           csrf_token: Annotated[str, Form()] = "", next: Annotated[str, Form()] = "/") -> Response:
    expected = request.cookies.get(web.CSRF_COOKIE, "")
    if not expected or not secrets.compare_digest(csrf_token, expected):
        raise web.Refused(N_("The form has expired. Reload the page and try again."))
    app = app_of(request)
    now = app.clock.now()
    lifetime = timedelta(hours=app.settings.console_session_hours)
    with transaction(app.sessions) as s:
        outcome = users.sign_in(s, email=email, password=password, address=web.client_address(request), now=now)
        if outcome.user is not None:
            _, token = users.start_session(s, user=outcome.user, now=now, lifetime=lifetime)
    if outcome.user is None:
        message = N_("Too many failed attempts. Try again later.") if outcome.until else N_(
            "Wrong email or password.")
        return render(request, "signin.html", status=429 if outcome.until else 401, next=_local(next),
                      error=message, email=email, csrf=expected)
    response = RedirectResponse(_local(next), status_code=303)
    web.session_cookie(response, request, token, lifetime)
    response.delete_cookie(web.CSRF_COOKIE, path="/signin")
    return response


@router.post("/signout")
def signout(request: Request, viewer: Annotated[Viewer, Depends(web.may_change("self"))]) -> Response:
    with transaction(app_of(request).sessions) as s:
        users.end_session(s, token=request.cookies.get(web.SESSION_COOKIE, ""))
    response = RedirectResponse("/signin", status_code=303)
    response.delete_cookie(web.SESSION_COOKIE, path="/")
    return response


@router.post("/signout/everywhere")
def signout_everywhere(request: Request, viewer: Annotated[Viewer, Depends(web.may_change("self"))]) -> Response:
    with transaction(app_of(request).sessions) as s:
        users.end_all_sessions(s, user_id=viewer.user_id)
    response = RedirectResponse("/signin", status_code=303)
    response.delete_cookie(web.SESSION_COOKIE, path="/")
    return response


@router.get("/account")
def account(request: Request, viewer: Annotated[Viewer, Depends(signed_in)]) -> Response:
    return render(request, "account.html", timezones=TIMEZONES)


@router.post("/account")
def save_account(request: Request, viewer: Annotated[Viewer, Depends(web.may_change("self"))],
                 locale: Annotated[str, Form()] = "", timezone: Annotated[str, Form()] = "") -> Response:
    app = app_of(request)
    try:
        with transaction(app.sessions) as s:
            users.set_preferences(s, user=users.get(s, viewer.user_id), locale=locale or None,
                                  timezone=timezone or None)
    except DomainError as exc:
        return render(request, "account.html", status=400, timezones=TIMEZONES, errors=web.field_errors(exc))
    return RedirectResponse("/account?saved=1", status_code=303)
