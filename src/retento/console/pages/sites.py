"""Admin → Sites: the shops (list, create, edit) through the sites service; which sites a console user sees is
edited on the users page (`admin.user_sites`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from retento.console import web
from retento.console.web import Viewer, app_of, reading, render
from retento.core.db.transactions import transaction
from retento.core.errors import DomainError
from retento.sites import service as sites
from retento.sites.schemas import SiteCreate, SiteEdit

router = web.router()
PAGE = web.Page(router, nav=None, path="/admin/sites")
admin = web.may_change("admin")
admin_reader = web.reader("admin")


def _parse(model: Any, raw: dict[str, Any]) -> Any:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise DomainError.from_pydantic(exc) from None


def _currencies(text: str) -> list[str] | None:
    found = [c.strip().upper() for c in text.replace(";", ",").split(",") if c.strip()]
    return found or None


def _list(request: Request, *, status: int = 200, **context: Any) -> Response:
    with transaction(reading(request)) as s:
        rows = sites.list_sites(s)
    return render(request, "admin/sites.html", status=status, sites=rows, **context)


@router.get("/admin/sites")
def site_list(request: Request, viewer: Annotated[Viewer, Depends(admin_reader)]) -> Response:
    return _list(request)


@router.post("/admin/sites")
def site_create(request: Request, viewer: Annotated[Viewer, Depends(admin)], code: Annotated[str, Form()] = "",
                name: Annotated[str, Form()] = "", currency: Annotated[str, Form()] = "RUB",
                currencies: Annotated[str, Form()] = "", timezone: Annotated[str, Form()] = "Europe/Moscow",
                default_region: Annotated[str, Form()] = "RU", url: Annotated[str, Form()] = "") -> Response:
    app = app_of(request)
    form = {"code": code, "name": name, "currency": currency, "currencies": currencies, "timezone": timezone,
            "default_region": default_region, "url": url}
    try:
        data = _parse(SiteCreate, {"code": code, "name": name, "currency": currency.strip().upper(),
                                   "currencies": _currencies(currencies), "timezone": timezone.strip(),
                                   "default_region": default_region.strip().upper(), "url": url.strip() or None})
        with transaction(app.sessions) as s:
            sites.create_site(s, data=data, now=app.clock.now())
    except DomainError as exc:
        return _list(request, status=400, errors=web.field_errors(exc), form=form)
    return RedirectResponse("/admin/sites?saved=1", status_code=303)


@router.get("/admin/sites/{code}")
def site_edit_form(request: Request, viewer: Annotated[Viewer, Depends(admin_reader)], code: str) -> Response:
    with transaction(reading(request)) as s:
        site = sites.get_site(s, code, field="code")
        return render(request, "admin/site.html", site=site, form=None)


@router.post("/admin/sites/{code}")
def site_edit(request: Request, viewer: Annotated[Viewer, Depends(admin)], code: str,
              name: Annotated[str, Form()] = "", currencies: Annotated[str, Form()] = "",
              timezone: Annotated[str, Form()] = "", default_region: Annotated[str, Form()] = "",
              url: Annotated[str, Form()] = "") -> Response:
    app = app_of(request)
    form = {"name": name, "currencies": currencies, "timezone": timezone, "default_region": default_region,
            "url": url}
    try:
        data = _parse(SiteEdit, {"name": name, "currencies": _currencies(currencies), "timezone": timezone.strip(),
                                 "default_region": default_region.strip().upper(), "url": url.strip() or None})
        with transaction(app.sessions) as s:
            sites.edit_site(s, site=sites.get_site(s, code, field="code"), data=data)
    except DomainError as exc:
        if web.field_errors(exc).keys() == {"code"}:
            raise
        with transaction(reading(request)) as s:
            site = sites.get_site(s, code, field="code")
            return render(request, "admin/site.html", status=400, site=site, form=form,
                          errors=web.field_errors(exc))
    return RedirectResponse("/admin/sites?saved=1", status_code=303)
