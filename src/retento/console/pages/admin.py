"""Administration: console users (create, change role, disable) and API keys (create: the secret is shown once;
revoke), through the users and apikeys services. Only admins change anything here."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from retento.apikeys import service as apikeys
from retento.apikeys.schemas import SCOPES
from retento.console import web
from retento.console.web import Viewer, app_of, reading, render
from retento.core.db.transactions import transaction
from retento.core.errors import DomainError
from retento.sites import service as sites
from retento.users import service as users
from retento.users.schemas import ROLES

router = web.router()
PAGE = web.Page(router, nav="Admin", path="/admin/users", order=90, roles=("admin",))
admin = web.may_change("admin")
admin_reader = web.reader("admin")  # user emails and API keys are for admins only


def _users_page(request: Request, *, status: int = 200, **context: object) -> Response:
    with transaction(reading(request)) as s:
        rows = users.list_users(s)
        visible = sites.list_sites(s)
    return render(request, "admin/users.html", status=status, users=rows, roles=ROLES, sites=visible,
                  codes={x.id: x.code for x in visible}, **context)


@router.get("/admin/users")
def user_list(request: Request, viewer: Annotated[Viewer, Depends(admin_reader)]) -> Response:
    return _users_page(request)


@router.post("/admin/users")
def user_create(request: Request, viewer: Annotated[Viewer, Depends(admin)],
                email: Annotated[str, Form()] = "", name: Annotated[str, Form()] = "",
                role: Annotated[str, Form()] = "", password: Annotated[str, Form()] = "",
                site: Annotated[list[str] | None, Form()] = None, locale: Annotated[str, Form()] = "en") -> Response:
    app = app_of(request)
    try:
        with transaction(app.sessions) as s:
            site_ids = [sites.get_site(s, code).id for code in site] if site else None
            data = users.parse_create(email=email, name=name, role=role, password=password, site_ids=site_ids,
                                      locale=locale, timezone=viewer.timezone)
            users.create(s, data=data, now=app.clock.now())
    except DomainError as exc:
        return _users_page(request, status=400, errors=web.field_errors(exc),
                           form={"email": email, "name": name, "role": role})
    return RedirectResponse("/admin/users?saved=1", status_code=303)


@router.post("/admin/users/{user_id}/role")
def user_role(request: Request, viewer: Annotated[Viewer, Depends(admin)], user_id: int,
              role: Annotated[str, Form()] = "") -> Response:
    with transaction(app_of(request).sessions) as s:
        users.set_role(s, user=users.get(s, user_id), role=role)
    return RedirectResponse("/admin/users?saved=1", status_code=303)


@router.post("/admin/users/{user_id}/sites")
def user_sites(request: Request, viewer: Annotated[Viewer, Depends(admin)], user_id: int,
               site: Annotated[list[str] | None, Form()] = None) -> Response:
    """The sites a user sees (none checked: every site); from their next request on."""
    with transaction(app_of(request).sessions) as s:
        site_ids = [sites.get_site(s, code).id for code in site] if site else None
        users.set_sites(s, user=users.get(s, user_id), site_ids=site_ids)
    return RedirectResponse("/admin/users?saved=1", status_code=303)


@router.post("/admin/users/{user_id}/disable")
def user_disable(request: Request, viewer: Annotated[Viewer, Depends(admin)], user_id: int,
                 disabled: Annotated[bool, Form()] = True) -> Response:
    if user_id == viewer.user_id:
        raise DomainError.one("id", "you cannot disable yourself / нельзя отключить самого себя")
    with transaction(app_of(request).sessions) as s:
        users.set_disabled(s, user=users.get(s, user_id), disabled=disabled)
    return RedirectResponse("/admin/users?saved=1", status_code=303)


def _keys_page(request: Request, *, status: int = 200, **context: object) -> Response:
    with transaction(reading(request)) as s:
        keys = apikeys.list_keys(s)
        visible = sites.list_sites(s)
    return render(request, "admin/apikeys.html", status=status, keys=keys, scopes=SCOPES,
                  sites={x.id: x for x in visible}, **context)


@router.get("/admin/apikeys")
def key_list(request: Request, viewer: Annotated[Viewer, Depends(admin_reader)]) -> Response:
    return _keys_page(request)


@router.post("/admin/apikeys")
def key_create(request: Request, viewer: Annotated[Viewer, Depends(admin)], name: Annotated[str, Form()] = "",
               scope: Annotated[list[str] | None, Form()] = None,
               site: Annotated[list[str] | None, Form()] = None) -> Response:
    """The new key's secret is in this answer only (not a redirect: it is never stored)."""
    app = app_of(request)
    try:
        with transaction(app.sessions) as s:
            key, secret = apikeys.create(s, name=name, scopes=scope or [], sites=site or None, now=app.clock.now())
    except DomainError as exc:
        return _keys_page(request, status=400, errors=web.field_errors(exc), form={"name": name})
    return _keys_page(request, created=key, secret=secret, headers={"Cache-Control": "no-store"})


@router.post("/admin/apikeys/{key_id}/revoke")
def key_revoke(request: Request, viewer: Annotated[Viewer, Depends(admin)], key_id: int) -> Response:
    app = app_of(request)
    with transaction(app.sessions) as s:
        apikeys.revoke(s, key_id=key_id, now=app.clock.now())
    return RedirectResponse("/admin/apikeys?saved=1", status_code=303)
