"""Cohorts: the monthly migration between new, active and sleeping customers as a chart with the marketing
initiatives on the same month axis, the four lifecycle figures per month (segments.analytics.cohort_report, as
the API's GET /cohorts), and initiatives added and edited here (analytics.record_initiative / edit_initiative)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from retento.console import web
from retento.console.i18n import N_
from retento.console.web import Viewer, app_of, reading, render, signed_in
from retento.core.db.transactions import transaction
from retento.core.errors import DomainError, FieldError, NotFound
from retento.segments import analytics, cohorts
from retento.segments.models import Initiative
from retento.segments.schemas import InitiativeIn
from retento.sites import service as sites

router = web.router()
PAGE = web.Page(router, nav="Cohorts", path="/cohorts", order=25)
KINDS = {"campaign": N_("Campaign"), "trigger": N_("Trigger"), "loyalty": N_("Loyalty"), "chain": N_("Chain"),
         "other": N_("Other")}
MOVES = (("new_to_active", N_("New → active")), ("new_to_sleeping", N_("New → sleeping")),
         ("sleeping_to_active", N_("Sleeping → active")), ("active_to_sleeping", N_("Active → sleeping")))
STATES = (("new", N_("New")), ("active", N_("Active")), ("sleeping", N_("Sleeping")))


def migration_chart(viewer: Viewer, months: list[dict[str, Any]]) -> dict[str, Any]:
    """Bars: customers moving between states each month; lines: customers in each state at the month's end;
    a marked line at each month with initiatives, named after them."""
    labels = [viewer.fmt.month(date.fromisoformat(m["month"] + "-01")) for m in months]
    series: list[dict[str, Any]] = [
        {"name": viewer.gettext(label), "type": "bar", "stack": "moves", "data": [m[key] for m in months]}
        for key, label in MOVES]
    series += [{"name": viewer.gettext(label), "type": "line", "yAxisIndex": 1, "data": [m[key] for m in months]}
               for key, label in STATES]
    marks = [{"xAxis": labels[i], "name": "; ".join(x["name"] for x in m["initiatives"])}
             for i, m in enumerate(months) if m["initiatives"]]
    if marks:
        series[0]["markLine"] = {"symbol": "none", "data": marks, "lineStyle": {"type": "dashed", "color": "#444"},
                                 "label": {"formatter": "{b}", "position": "insideEndTop"}}
    return {"tooltip": {"trigger": "axis"}, "legend": {"top": 0}, "grid": {"left": 60, "right": 60, "top": 60},
            "xAxis": {"type": "category", "data": labels},
            "yAxis": [{"type": "value", "name": viewer.gettext("Moved"), "minInterval": 1},
                      {"type": "value", "name": viewer.gettext("Customers"), "minInterval": 1}],
            "series": series, "aria": {"enabled": False}}  # the table below the chart gives the same figures


def _month(text: str, field: str) -> date | None:
    try:
        return cohorts.parse_month(text) if text else None
    except ValueError as exc:
        raise DomainError.one(field, str(exc)) from None


@router.get("/cohorts")
def cohort_page(request: Request, viewer: Annotated[Viewer, Depends(signed_in)], site: str = "",
                first: Annotated[str, Query(alias="from", max_length=7)] = "",
                last: Annotated[str, Query(alias="to", max_length=7)] = "", saved: bool = False) -> Response:
    return _page(request, viewer, site=site, first=first, last=last, saved=saved)


def _page(request: Request, viewer: Viewer, *, site: str, first: str = "", last: str = "", saved: bool = False,
          status: int = 200, errors: dict[str, str] | None = None, form: Any = None) -> Response:
    app = app_of(request)
    with transaction(app.sessions) as s:  # a small site's first report is stored (with its sleeping threshold)
        visible = sites.list_sites(s)
        chosen = next((x for x in visible if x.code == site), visible[0] if visible else None)
        report = analytics.stored_cohort_report(
            s, site=chosen.code, now=app.clock.now(), inline_buyers=app.settings.cohort_inline_buyers,
            first=_month(first, "from"), last=_month(last, "to")) if chosen else None
        initiatives = analytics.list_initiatives(s, site_id=chosen.id) if chosen else []
    computing = chosen is not None and report is None  # the worker computes a large site's first report
    months = report["months"] if report else []
    complete = [m for m in months if not m["provisional"]]
    return render(request, "cohorts/page.html", status=status, sites=visible, site=chosen, report=report,
                  months=months, computing=computing, last_month=complete[-1] if complete else None, first=first, last=last,
                  chart=migration_chart(viewer, months) if months else None, initiatives=initiatives,
                  kinds=KINDS, saved=saved, refresh_minutes=app.settings.cohort_refresh_minutes, errors=errors or {}, form=form or {},
                  month_label=lambda m: viewer.fmt.month(date.fromisoformat(m + "-01")))


def _day(text: str, field: str, zone: str, *, required: bool) -> datetime | None:
    """A day in the user's time zone as the aware start of that day."""
    if not text and not required:
        return None
    try:
        return datetime.combine(date.fromisoformat(text), datetime.min.time(), ZoneInfo(zone))
    except ValueError:
        raise DomainError.one(field, "a date YYYY-MM-DD") from None


def _initiative(viewer: Viewer, site: str, kind: str, name: str, started: str, ended: str) -> InitiativeIn:
    errors: list[FieldError] = []
    days: dict[str, datetime | None] = {}
    for field, text, required in (("started_at", started, True), ("ended_at", ended, False)):
        try:
            days[field] = _day(text, field, viewer.timezone, required=required)
        except DomainError as exc:
            errors += exc.errors
    if errors:
        raise DomainError(errors)
    try:
        return InitiativeIn(site=site, kind=kind, name=name, started_at=days["started_at"],
                            ended_at=days["ended_at"])
    except ValidationError as exc:
        raise DomainError.from_pydantic(exc) from None


Text = Annotated[str, Form()]


@router.post("/cohorts/initiatives")
def add_initiative(request: Request, viewer: Annotated[Viewer, Depends(web.may_change("marketing"))],
                   site: Text = "", kind: Text = "campaign", name: Text = "", started_at: Text = "",
                   ended_at: Text = "") -> Response:
    app = app_of(request)
    try:
        data = _initiative(viewer, site, kind, name, started_at, ended_at)
        with transaction(app.sessions) as s:
            analytics.record_initiative(s, data=data, source="user", now=app.clock.now())
    except DomainError as exc:
        form = {"kind": kind, "name": name, "started_at": started_at, "ended_at": ended_at}
        return _page(request, viewer, site=site, status=400, errors=web.field_errors(exc), form=form)
    return RedirectResponse(f"/cohorts?site={site}&saved=1", status_code=303)


@router.get("/cohorts/initiatives/{initiative_id:int}")
def initiative_page(request: Request, viewer: Annotated[Viewer, Depends(signed_in)], initiative_id: int) -> Response:
    with transaction(reading(request)) as s:
        item, site = _find(s, initiative_id)
    zone = ZoneInfo(viewer.timezone)
    form = {"kind": item.kind, "name": item.name, "started_at": item.started_at.astimezone(zone).date().isoformat(),
            "ended_at": item.ended_at.astimezone(zone).date().isoformat() if item.ended_at else ""}
    return render(request, "cohorts/initiative.html", item=item, site=site, form=form, kinds=KINDS, errors={})


def _find(s: Any, initiative_id: int) -> tuple[Initiative, Any]:
    item = s.get(Initiative, initiative_id)
    site = next((x for x in sites.list_sites(s) if item is not None and x.id == item.site_id), None)
    if item is None or site is None:  # another site's initiative is not found either
        raise NotFound("id", f"initiative {initiative_id} not found")
    return item, site


@router.post("/cohorts/initiatives/{initiative_id:int}")
def edit_initiative(request: Request, viewer: Annotated[Viewer, Depends(web.may_change("marketing"))],
                    initiative_id: int, kind: Text = "campaign", name: Text = "", started_at: Text = "",
                    ended_at: Text = "") -> Response:
    app = app_of(request)
    with transaction(reading(request)) as s:
        item, site = _find(s, initiative_id)
    try:
        data = _initiative(viewer, site.code, kind, name, started_at, ended_at)
        with transaction(app.sessions) as s:
            analytics.edit_initiative(s, initiative_id=initiative_id, data=data)
    except DomainError as exc:
        form = {"kind": kind, "name": name, "started_at": started_at, "ended_at": ended_at}
        return render(request, "cohorts/initiative.html", status=400, item=item, site=site, form=form, kinds=KINDS,
                      errors=web.field_errors(exc))
    return RedirectResponse(f"/cohorts?site={site.code}&saved=1", status_code=303)
