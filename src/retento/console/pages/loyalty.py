"""Loyalty: a site's program settings (levels, accrual rules, expiry, redemption limits) with a preview of what a
sample order earns and may pay in points, and the program's P&L with its charts. Settings are saved through
loyalty.service.set_program, the preview asks the program's own pure rules (loyalty.rules), the P&L is
loyalty.pnl as the API's GET .../pnl. Members and their accounts: pages/loyalty_members.py."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import Depends, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, QueryParams

from retento.catalog import service as catalog
from retento.console import web
from retento.console.i18n import N_
from retento.console.web import Viewer, app_of, reading, render, signed_in
from retento.core.db.transactions import transaction
from retento.core.errors import DomainError, FieldError, NotFound
from retento.loyalty import ledger, pnl, rules, service
from retento.loyalty.models import Program
from retento.loyalty.schemas import ProgramIn, ProgramSettings
from retento.segments import analytics
from retento.sites import service as sites

router = web.router()
PAGE = web.Page(router, nav="Loyalty", path="/loyalty", order=35)
HUNDRED = Decimal(100)
FIGURES = (("conversion_new_active", N_("New → active conversion")), ("orders_per_active", N_("Orders per active customer")),
           ("reactivated", N_("Reactivated sleeping customers")), ("churn_active", N_("Churn from active")))
SCALARS = ("percent", "level_period_days", "fixed_per_order", "activation_days", "expiry_days", "welcome_bonus",
           "min_order_sum", "birthday_multiplier", "birthday_days")
SHARES = ("max_redeem_share", "holdout_share")  # shown and typed as percents


def _site(s: Any, code: str) -> tuple[list[Any], Any]:
    visible = sites.list_sites(s)
    return visible, next((x for x in visible if x.code == code), visible[0] if visible else None)


def _program(s: Any, site: Any) -> Program | None:
    try:
        return service.get_program(s, site.code) if site else None
    except NotFound:
        return None


# --- the settings form ---------------------------------------------------------------------------------------


def form_of(program: Program | None, settings: ProgramSettings, zone: ZoneInfo) -> dict[str, Any]:
    """The form's values for stored settings (shares as percents, days in the user's zone)."""
    form: dict[str, Any] = {"name": program.name if program else "", "currency": program.currency if program else "",
                            "active": program.active if program else True}
    for name in SCALARS:
        value = getattr(settings, name)
        form[name] = "" if value is None else str(value)
    for name in SHARES:
        form[name] = _trim(getattr(settings, name) * HUNDRED)
    form["warn_days"] = ", ".join(str(d) for d in settings.warn_days)
    form["balance_thresholds"] = ", ".join(str(t) for t in settings.balance_thresholds)
    form["levels"] = [{"code": lv.code, "name": lv.name, "threshold": str(lv.threshold), "percent": str(lv.percent)}
                      for lv in settings.levels]
    form["categories"] = [{"category": c, "percent": "" if r.percent is None else str(r.percent),
                           "fixed_per_unit": "" if r.fixed_per_unit is None else str(r.fixed_per_unit)}
                          for c, r in sorted(settings.categories.items())]
    form["multipliers"] = [{"name": m.name, "starts_at": m.starts_at.astimezone(zone).date().isoformat(),
                            "ends_at": (m.ends_at.astimezone(zone) - timedelta(microseconds=1)).date().isoformat(),
                            "multiplier": str(m.multiplier)} for m in settings.multipliers]
    return form


def _trim(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _rows(fields: FormData | QueryParams, group: str, names: tuple[str, ...]) -> list[dict[str, str]]:
    """Repeated rows `group.N.name` of the form, in order, without the empty ones."""
    rows: dict[int, dict[str, str]] = {}
    for key, value in fields.multi_items():
        parts = key.split(".")
        if len(parts) == 3 and parts[0] == group and parts[1].isdigit() and parts[2] in names:
            rows.setdefault(int(parts[1]), {})[parts[2]] = str(value).strip()
    return [r for _, r in sorted(rows.items()) if any(r.values())]


def _number(text: str, field: str, errors: list[FieldError]) -> Decimal | None:
    try:
        return Decimal(text.replace(",", ".").replace(" ", "")) if text else None
    except InvalidOperation:
        errors.append(FieldError(field, "a number"))
        return None


def _day(text: str, field: str, zone: ZoneInfo, errors: list[FieldError], *, end: bool = False) -> datetime | None:
    try:
        day = date.fromisoformat(text)
    except ValueError:
        errors.append(FieldError(field, "a date YYYY-MM-DD"))
        return None
    return datetime.combine(day + timedelta(days=1 if end else 0), datetime.min.time(), zone)


def parse_form(fields: FormData | QueryParams, zone: ZoneInfo) -> tuple[dict[str, Any], ProgramIn]:
    """The form as typed (to show it again) and the program it describes; DomainError naming the form's
    fields (`levels.0.threshold`, `max_redeem_share`, ...) when it does not make a valid program."""
    errors: list[FieldError] = []
    text = {k: str(fields.get(k) or "").strip() for k in ("name", "currency", *SCALARS, *SHARES, "warn_days",
                                                           "balance_thresholds")}
    form: dict[str, Any] = {**text, "active": fields.get("active") == "on",
                            "levels": _rows(fields, "levels", ("code", "name", "threshold", "percent")),
                            "categories": _rows(fields, "categories", ("category", "percent", "fixed_per_unit")),
                            "multipliers": _rows(fields, "multipliers", ("name", "starts_at", "ends_at", "multiplier"))}
    settings: dict[str, Any] = {}
    for name in SCALARS:
        if text[name] or name == "expiry_days":
            settings[name] = _number(text[name], name, errors)
    for name in SHARES:
        if text[name]:
            value = _number(text[name], name, errors)
            settings[name] = None if value is None else value / HUNDRED
    for name in ("warn_days", "balance_thresholds"):
        values = [_number(v.strip(), name, errors) for v in text[name].split(",") if v.strip()]
        settings[name] = [v for v in values if v is not None]
    settings["levels"] = [{**r, "code": r.get("code", ""), "name": r.get("name", ""),
                           "threshold": _number(r.get("threshold", ""), f"levels.{n}.threshold", errors),
                           "percent": _number(r.get("percent", ""), f"levels.{n}.percent", errors)}
                          for n, r in enumerate(form["levels"])]
    settings["categories"] = {}
    for n, r in enumerate(form["categories"]):
        if not r.get("category"):
            errors.append(FieldError(f"categories.{n}.category", "the category is required"))
            continue
        settings["categories"][r["category"]] = {
            "percent": _number(r.get("percent", ""), f"categories.{n}.percent", errors),
            "fixed_per_unit": _number(r.get("fixed_per_unit", ""), f"categories.{n}.fixed_per_unit", errors)}
    settings["multipliers"] = [{"name": r.get("name", ""),
                                "starts_at": _day(r.get("starts_at", ""), f"multipliers.{n}.starts_at", zone, errors),
                                "ends_at": _day(r.get("ends_at", ""), f"multipliers.{n}.ends_at", zone, errors,
                                                end=True),
                                "multiplier": _number(r.get("multiplier", ""), f"multipliers.{n}.multiplier", errors)}
                               for n, r in enumerate(form["multipliers"])]
    if errors:
        raise DomainError(errors)
    try:
        data = ProgramIn(name=text["name"], currency=text["currency"].upper(), active=form["active"],
                         settings=ProgramSettings.model_validate(settings))
    except ValidationError as exc:
        raise DomainError([_form_field(e, form) for e in DomainError.from_pydantic(exc).errors]) from None
    return form, data


def _form_field(error: FieldError, form: dict[str, Any]) -> FieldError:
    """A pydantic location as the form's field name (`settings.` dropped, a category's name as its row)."""
    field = error.field.removeprefix("settings.")
    parts = field.split(".")
    if parts[0] == "categories" and len(parts) > 1:
        row = next((n for n, r in enumerate(form["categories"]) if r.get("category") == parts[1]), 0)
        field = ".".join(["categories", str(row), *parts[2:]]) if len(parts) > 2 else f"categories.{row}.category"
    return FieldError(field, error.reason)


# --- the preview ---------------------------------------------------------------------------------------------


def preview(settings: ProgramSettings, *, amount: Decimal, category: str, birthday: bool, pay: Decimal,
            now: datetime) -> dict[str, Any]:
    """What a sample order of `amount` (one item of `category`) earns at each level and how many points may pay
    for it (asking for `pay`), with when the points become usable and burn."""
    order = {"items": [{"category": category or None, "quantity": 1, "price": str(amount)}]}
    allowed = ledger.points(amount * settings.max_redeem_share) if amount >= settings.min_order_sum else ledger.ZERO
    paid = min(pay, allowed)
    rows = []
    for level in settings.levels or [None]:
        e = rules.earned(settings, order=order, level=level, birthday=now.date() if birthday else None,
                         redeemed=paid, at=now)
        rows.append({"level": level, "points": e.points, "base": e.base, "multiplier": e.multiplier})
    active_from, expires_at = rules.lot_times(settings, now, activation=True)
    return {"rows": rows, "allowed": allowed, "paid": paid, "below_minimum": amount < settings.min_order_sum,
            "active_from": active_from, "expires_at": expires_at, "amount": amount}


@router.get("/loyalty/preview")
def preview_fragment(request: Request, viewer: Annotated[Viewer, Depends(signed_in)]) -> Response:
    """The preview for the settings as typed (htmx: the whole form is sent), not yet saved."""
    fields = request.query_params
    app = app_of(request)
    errors: list[FieldError] = []
    amount = _number(str(fields.get("sample_amount") or "0"), "sample_amount", errors) or Decimal(0)
    pay = _number(str(fields.get("sample_points") or "0"), "sample_points", errors) or Decimal(0)
    if amount < 0 or pay < 0:
        errors.append(FieldError("sample_amount" if amount < 0 else "sample_points", "must not be negative"))
    try:
        if errors:
            raise DomainError(errors)
        _, data = parse_form(fields, ZoneInfo(viewer.timezone))
    except DomainError as exc:
        return render(request, "loyalty/_preview.html", errors=web.field_errors(exc), result=None)
    result = preview(data.settings, amount=amount, category=str(fields.get("sample_category") or ""),
                     birthday=fields.get("sample_birthday") == "on", pay=pay, now=app.clock.now())
    return render(request, "loyalty/_preview.html", errors={}, result=result, currency=data.currency)


# --- the settings page ---------------------------------------------------------------------------------------


@router.get("/loyalty")
def program_page(request: Request, viewer: Annotated[Viewer, Depends(signed_in)], site: str = "",
                 saved: bool = False) -> Response:
    with transaction(reading(request)) as s:
        visible, chosen = _site(s, site)
        program = _program(s, chosen)
        categories = _categories(s, chosen)
    settings = service.settings_of(program) if program else ProgramSettings()
    form = form_of(program, settings, ZoneInfo(viewer.timezone))
    if program is None and chosen is not None:
        form["currency"] = chosen.currency
    return render(request, "loyalty/program.html", sites=visible, site=chosen, program=program, form=form,
                  errors={}, saved=saved, categories=categories, editable=viewer.may("marketing") and chosen is not None)


def _categories(s: Any, site: Any) -> list[str]:
    if site is None:
        return []
    return sorted({p.category for p in catalog.list_products(s, site_id=site.id) if p.category})


@router.post("/loyalty/programs/{site}")
async def program_save(request: Request, viewer: Annotated[Viewer, Depends(web.may_change("marketing"))],
                       site: str) -> Response:
    fields = await request.form()
    return await run_in_threadpool(_save, request, viewer, site, fields)


def _save(request: Request, viewer: Viewer, site: str, fields: FormData) -> Response:
    app = app_of(request)
    try:
        form, data = parse_form(fields, ZoneInfo(viewer.timezone))
    except DomainError as exc:
        errors = web.field_errors(exc)
        form = {**form_of(None, ProgramSettings(), ZoneInfo(viewer.timezone)), **_raw(fields)}
        return _invalid(request, site, form, errors)
    try:
        with transaction(app.sessions) as s:
            service.set_program(s, site=site, data=data, now=app.clock.now())
    except DomainError as exc:
        if web.field_errors(exc).keys() == {"site"}:
            raise
        return _invalid(request, site, form, web.field_errors(exc))
    return RedirectResponse(f"/loyalty?site={site}&saved=1", status_code=303)


def _raw(fields: FormData) -> dict[str, Any]:
    """The form as typed, for showing it again after an error."""
    out: dict[str, Any] = {k: str(v) for k, v in fields.items() if "." not in k}
    out["active"] = fields.get("active") == "on"
    out["levels"] = _rows(fields, "levels", ("code", "name", "threshold", "percent"))
    out["categories"] = _rows(fields, "categories", ("category", "percent", "fixed_per_unit"))
    out["multipliers"] = _rows(fields, "multipliers", ("name", "starts_at", "ends_at", "multiplier"))
    return out


def _invalid(request: Request, site: str, form: dict[str, Any], errors: dict[str, str]) -> Response:
    with transaction(reading(request)) as s:
        visible, chosen = _site(s, site)
        if chosen is None or chosen.code != site:
            raise NotFound("site", f"site {site!r} not found")
        program = _program(s, chosen)
        categories = _categories(s, chosen)
    return render(request, "loyalty/program.html", status=400, sites=visible, site=chosen, program=program, form=form,
                  errors=errors, saved=False, categories=categories, editable=True)


# --- the P&L -------------------------------------------------------------------------------------------------


def money_chart(viewer: Viewer, months: list[dict[str, Any]]) -> dict[str, Any]:
    """Bars: points redeemed (the discount given) per month; line: that as a share of the month's revenue."""
    labels = [viewer.fmt.month(date.fromisoformat(m["month"] + "-01")) for m in months]
    return {"tooltip": {"trigger": "axis"}, "legend": {"top": 0}, "grid": {"left": 70, "right": 70, "top": 50},
            "xAxis": {"type": "category", "data": labels},
            "yAxis": [{"type": "value", "name": viewer.gettext("Points")},
                      {"type": "value", "name": "%", "min": 0}],
            "series": [{"name": viewer.gettext("Redeemed"), "type": "bar", "data": [float(m["redeemed"]) for m in months]},
                       {"name": viewer.gettext("Issued"), "type": "bar", "data": [float(m["issued"]) for m in months]},
                       {"name": viewer.gettext("Discount share of revenue"), "type": "line", "yAxisIndex": 1,
                        "data": [round(float(m["discount_share"] or 0) * 100, 2) for m in months]}],
            "aria": {"enabled": False}}  # the table below gives the same figures


def liability_chart(viewer: Viewer, months: list[dict[str, Any]]) -> dict[str, Any]:
    labels = [viewer.fmt.month(date.fromisoformat(m["month"] + "-01")) for m in months]
    return {"tooltip": {"trigger": "axis"}, "grid": {"left": 70, "right": 30, "top": 30},
            "xAxis": {"type": "category", "data": labels},
            "yAxis": {"type": "value", "name": viewer.gettext("Points")},
            "series": [{"name": viewer.gettext("Liability at the month's end"), "type": "line", "areaStyle": {},
                        "data": [float(m["liability_end"]) for m in months]},
                       {"name": viewer.gettext("Expired"), "type": "bar",
                        "data": [float(m["expired"]) for m in months]}],
            "aria": {"enabled": False}}


def cohort_chart(viewer: Viewer, months: list[dict[str, Any]], launch: date) -> dict[str, Any]:
    """The four lifecycle figures per month on one timeline, the launch month marked."""
    labels = [viewer.fmt.month(date.fromisoformat(m["month"] + "-01")) for m in months]
    percent = {"conversion_new_active", "churn_active"}
    series: list[dict[str, Any]] = []
    for key, label in FIGURES:
        scale = 100 if key in percent else 1
        series.append({"name": viewer.gettext(label), "type": "line", "yAxisIndex": 0 if key in percent else 1,
                       "data": [None if m.get(key) is None else round(m[key] * scale, 2) for m in months]})
    launch_label = viewer.fmt.month(launch.replace(day=1))
    if launch_label in labels:
        series[0]["markLine"] = {"symbol": "none", "data": [{"xAxis": launch_label, "name": viewer.gettext("Launch")}],
                                 "lineStyle": {"type": "dashed", "color": "#444"},
                                 "label": {"formatter": "{b}", "position": "insideEndTop"}}
    return {"tooltip": {"trigger": "axis"}, "legend": {"top": 0}, "grid": {"left": 60, "right": 60, "top": 70},
            "xAxis": {"type": "category", "data": labels},
            "yAxis": [{"type": "value", "name": "%", "min": 0}, {"type": "value", "name": viewer.gettext("Count")}],
            "series": series, "aria": {"enabled": False}}


def _moment(text: str, field: str, zone: str, *, end: bool) -> datetime | None:
    if not text:
        return None
    errors: list[FieldError] = []
    at = _day(text, field, ZoneInfo(zone), errors, end=end)
    if errors:
        raise DomainError(errors)
    return at


def _cohort_months(s: Any, site: str, *, end: datetime | None, now: datetime,
                   inline_buyers: int) -> list[dict[str, Any]] | None:
    """The lifecycle months of the P&L: the site's stored cohort report (what the worker keeps, one row to read)
    for a period up to now (None while the worker computes a large site's first one); observed at the period's
    end, computed from the purchases, for an earlier one."""
    if end is None or end >= now:
        stored = analytics.stored_cohort_report(s, site=site, now=now, inline_buyers=inline_buyers)
        return stored["months"] if stored is not None else None
    return analytics.cohort_report(s, site=site, now=now, as_of=(end - timedelta(microseconds=1)).date())["months"]


PNL_FRESH = timedelta(minutes=5)  # how long computed P&L figures are shown again (the page says when computed)
PNL_KEPT = 64  # periods kept per process


def _pnl_figures(request: Request, s: Any, site: Any, *, start: datetime | None, end: datetime | None,
                 now: datetime, again: bool) -> tuple[datetime, Any, list[dict[str, Any]], list[dict[str, Any]]]:
    """The P&L report, its monthly lines and its lifecycle months for the site and period, as computed at most
    `PNL_FRESH` ago (kept in this process; `again` recomputes): (computed at, report, months, cohort months).
    The report reads every member's orders around their joining, too much work to repeat on every view."""
    kept: dict[tuple[Any, ...], tuple[datetime, Any, Any, Any]] = request.app.state.__dict__.setdefault(
        "loyalty_pnl", {})
    key = (site.id, start, end)
    found = kept.get(key)
    if found is not None and not again and now - PNL_FRESH <= found[0] <= now:
        return found
    cohort_months = _cohort_months(s, site.code, end=end, now=now,
                                   inline_buyers=app_of(request).settings.cohort_inline_buyers)
    report = pnl.report(s, site=site.code, start=start, end=end, now=now, cohort_months=cohort_months or [])
    months = pnl.monthly(s, site=site.code, start=start, end=end, now=now)
    if cohort_months is None:  # not kept: the next view shows the lifecycle once the worker has computed it
        return now, report, months, None
    kept.pop(key, None)
    kept[key] = (now, report, months, cohort_months)
    while len(kept) > PNL_KEPT:
        kept.pop(next(iter(kept)))
    return kept[key]


@router.get("/loyalty/pnl")
def pnl_page(request: Request, viewer: Annotated[Viewer, Depends(signed_in)], site: str = "",
             first: Annotated[str, Query(alias="from", max_length=10)] = "",
             last: Annotated[str, Query(alias="to", max_length=10)] = "", again: bool = False) -> Response:
    app = app_of(request)
    now = app.clock.now()
    context: dict[str, Any] = {"first": first, "last": last, "errors": {}, "computed_at": None,
                               "fresh_minutes": int(PNL_FRESH.total_seconds() // 60)}
    try:
        start = _moment(first, "from", viewer.timezone, end=False)
        end = _moment(last, "to", viewer.timezone, end=True)
    except DomainError as exc:
        start = end = None
        context["errors"] = web.field_errors(exc)
    with transaction(app.sessions) as s:  # a small site's first cohort report is stored (with its threshold)
        visible, chosen = _site(s, site)
        program = _program(s, chosen)
        report = months = cohort_months = None
        just_launched = program is not None and not first and not last and program.created_at >= now
        if program is not None and not context["errors"] and not just_launched:
            try:
                context["computed_at"], report, months, cohort_months = _pnl_figures(
                    request, s, chosen, start=start, end=end, now=now, again=again)
            except DomainError as exc:
                context["errors"] = web.field_errors(exc)
        context["cohorts_computing"] = report is not None and cohort_months is None
        if report is not None:
            launch = report.cohorts.launch
            shown_from = date(launch.year - (launch.month <= 6), (launch.month - 7) % 12 + 1, 1).isoformat()[:7]
            cohort_months = [m for m in cohort_months or [] if m["month"] >= shown_from]
    if report is not None and months is not None:
        context.update(money=money_chart(viewer, months), liability=liability_chart(viewer, months),
                       cohort=cohort_chart(viewer, cohort_months or [], report.cohorts.launch))
    return render(request, "loyalty/pnl.html", status=400 if context["errors"] else 200, sites=visible,
                  just_launched=program is not None and report is None and not context["errors"],
                  site=chosen, program=program, report=report, months=months or [], figures=FIGURES,
                  month_label=lambda m: viewer.fmt.month(date.fromisoformat(m + "-01")), **context)
