"""Messages: templates (edit, preview in each language and channel against a real customer), cascades and
campaigns (build, send to a segment, everyone or a rule tree, then the report per channel with the saving against
the most expensive channel alone), and each site's channel prices, frequency cap and quiet hours. Everything goes
through the messaging service and reports, as the API does."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session

from retento.console import web
from retento.console.i18n import N_
from retento.console.web import Viewer, app_of, reading, render, signed_in
from retento.core import parsing
from retento.core.db.transactions import transaction
from retento.core.errors import DomainError
from retento.messaging import policies, reports, service
from retento.messaging.schemas import CampaignIn, CascadeIn, PolicyIn, PriceIn, TemplateIn
from retento.segments import service as segments
from retento.sites import service as sites
from retento.sites.models import Site

router = web.router()
PAGE = web.Page(router, nav="Messages", path="/messages", order=40)
PAGE_SIZE = 50
STEP_ROWS = 3  # step rows of the cascade form

CHANNELS = {"email": N_("Email"), "sms": "SMS", "whatsapp": "WhatsApp", "telegram": "Telegram", "vk": N_("VK"),
            "push": N_("Push")}
STATUSES = {"scheduled": N_("Scheduled"), "running": N_("Running"), "finished": N_("Finished")}
AUDIENCES = {"segment": N_("Segment"), "everyone": N_("Everyone on the site"), "rules": N_("Customers matching a rule"),
             "ids": N_("A list of customers")}
MODES = {"ordered": N_("In order"), "cheapest_read": N_("Cheapest read first")}
GO_ON = {"not_read": N_("not read"), "not_delivered": N_("not delivered"), "failed": N_("failed")}
OUTCOMES = {"read": N_("Read"), "exhausted": N_("All steps sent"), "frequency_cap": N_("Frequency cap"),
            "unreachable": N_("Unreachable"), "customer_gone": N_("Customer deleted"), "in_progress": N_("In progress")}
LABELS = {"channels": CHANNELS, "statuses": STATUSES, "audiences": AUDIENCES, "modes": MODES, "go_on": GO_ON,
          "outcomes": OUTCOMES}


def _parse(model: type[BaseModel], data: dict[str, Any]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise DomainError.from_pydantic(exc) from None


def _site(s: Session, code: str) -> tuple[list[Site], Site | None]:
    """The sites the user sees and the chosen one (the first when none or an unknown one is asked for)."""
    visible = sites.list_sites(s)
    return visible, next((x for x in visible if x.code == code), visible[0] if visible else None)


def _blank(value: str) -> str | None:
    return value.strip() or None


def _page(request: Request, page: str, status: int, errors: dict[str, str] | None, **context: Any) -> Response:
    return render(request, page, status=status, errors=errors or {}, labels=LABELS, **context)


# --- templates ------------------------------------------------------------------------------------------------


@router.get("/messages")
def template_list(request: Request, viewer: Annotated[Viewer, Depends(signed_in)], site: str = "",
                  saved: bool = False) -> Response:
    with transaction(reading(request)) as s:
        visible, chosen = _site(s, site)
        rows = service.list_templates(s, site=chosen.code) if chosen else []
    return _page(request, "messages/templates.html", 200, None, sites=visible, site=chosen, templates=rows,
                 saved=saved)


def _editor(s: Session, template_id: int | None, site: str) -> dict[str, Any]:
    visible, chosen = _site(s, site)
    tpl = service.get_template(s, template_id) if template_id else None
    if tpl is not None:
        chosen = next(x for x in visible if x.id == tpl.site_id)
    return {"sites": visible, "site": chosen, "current": tpl, "channels": policies.CHANNELS}


def _preview(s: Session, template_id: int, customer_id: int | None) -> list[dict[str, Any]]:
    """The template and its siblings (same site and name: each channel and language) rendered for the customer."""
    tpl = service.get_template(s, template_id)
    family = [t for t in service.list_templates(s, site=s.get(Site, tpl.site_id).code) if t.name == tpl.name]
    return [{"template": t, "rendered": service.preview(s, template_id=t.id, customer_id=customer_id)}
            for t in sorted(family, key=lambda t: (t.channel, t.language))]


@router.get("/messages/templates/new")
def template_new(request: Request, viewer: Annotated[Viewer, Depends(signed_in)], site: str = "",
                 name: str = "", channel: str = "email", language: str = "ru") -> Response:
    with transaction(reading(request)) as s:
        context = _editor(s, None, site)
    form = {"name": name, "channel": channel, "language": language}
    return _page(request, "messages/template.html", 200, None, form=form, **context)


@router.get("/messages/templates/{template_id}")
def template_edit(request: Request, viewer: Annotated[Viewer, Depends(signed_in)], template_id: int,
                  customer_id: Annotated[str, Query(max_length=20)] = "", saved: bool = False) -> Response:
    """The editor with the preview of every channel and language of the template's name: for the customer asked
    for, else for the sample customer. The preview alone for htmx (`HX-Target: preview`)."""
    errors: dict[str, str] = {}
    previews = None
    with transaction(reading(request)) as s:
        context = _editor(s, template_id, "")
        cid = parsing.integer(customer_id.strip(), lo=1) if customer_id.strip() else None
        if customer_id.strip() and cid is None:
            errors = {"customer_id": "not a customer id"}
        else:
            try:
                previews = _preview(s, template_id, cid)
            except DomainError as exc:
                if web.field_errors(exc).keys() == {"id"}:  # the template itself is not there
                    raise
                errors = web.field_errors(exc)
    tpl = context["current"]
    form = {k: getattr(tpl, k) for k in ("name", "channel", "language", "subject", "body", "html",
                                         "provider_template")}
    extra = {"previews": previews, "preview_errors": errors, "customer_id": customer_id, "saved": saved}
    if request.headers.get("HX-Request") and request.headers.get("HX-Target") == "preview":
        return _page(request, "messages/_preview.html", 200, None, **context, **extra)
    return _page(request, "messages/template.html", 200, None, form=form, **context, **extra)


@router.post("/messages/templates")
def template_save(request: Request, viewer: Annotated[Viewer, Depends(web.may_change("marketing"))],
                  site: Annotated[str, Form()] = "", name: Annotated[str, Form()] = "",
                  channel: Annotated[str, Form()] = "", language: Annotated[str, Form()] = "",
                  subject: Annotated[str, Form()] = "", body: Annotated[str, Form()] = "",
                  html: Annotated[str, Form()] = "", provider_template: Annotated[str, Form()] = "") -> Response:
    """Create or replace the template (site, name, channel, language); one that does not render is refused."""
    form = {"site": site, "name": name, "channel": channel, "language": language, "subject": _blank(subject),
            "body": body, "html": _blank(html), "provider_template": _blank(provider_template)}
    app = app_of(request)
    try:
        with transaction(app.sessions) as s:
            saved = service.save_template(s, data=_parse(TemplateIn, form), now=app.clock.now()).id
    except DomainError as exc:
        with transaction(reading(request)) as s:
            context = _editor(s, None, site)
        return _page(request, "messages/template.html", 400, web.field_errors(exc), form=form, **context)
    return RedirectResponse(f"/messages/templates/{saved}?saved=1", status_code=303)


# --- cascades and campaigns -----------------------------------------------------------------------------------


def _campaigns(s: Session, site: str, after: int) -> dict[str, Any]:
    visible, chosen = _site(s, site)
    rows = service.list_campaigns(s, site_ids=[chosen.id] if chosen else [], after_id=after, limit=PAGE_SIZE + 1)
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    return {"sites": visible, "site": chosen, "campaigns": reports.summaries(s, rows), "after": after,
            "next_after": rows[-1].id if more else None,
            "cascades": service.list_cascades(s, site_id=chosen.id) if chosen else [],
            "segments": segments.list_segments(s, site=chosen.code) if chosen else [],
            "template_names": sorted({t.name for t in service.list_templates(s, site=chosen.code)})
            if chosen else [], "channels": policies.CHANNELS, "step_rows": range(STEP_ROWS)}


@router.get("/messages/campaigns")
def campaign_list(request: Request, viewer: Annotated[Viewer, Depends(signed_in)], site: str = "",
                  after: Annotated[int, Query(ge=0)] = 0, saved: bool = False) -> Response:
    with transaction(reading(request)) as s:
        context = _campaigns(s, site, after)
    return _page(request, "messages/campaigns.html", 200, None, saved=saved, form={}, **context)


@router.post("/messages/cascades")
async def cascade_create(request: Request, viewer: Annotated[Viewer, Depends(web.may_change("marketing"))]
                         ) -> Response:
    """A cascade from the form's step rows (a row without a template is left out)."""
    fields = await request.form()
    value = lambda key: str(fields.get(key) or "").strip()  # noqa: E731
    steps = [{"channel": value(f"step{i}_channel"), "template": value(f"step{i}_template"),
              "wait_hours": value(f"step{i}_wait_hours") or "24", "go_on": value(f"step{i}_go_on") or "not_read"}
             for i in range(STEP_ROWS) if value(f"step{i}_template")]
    data = {"site": value("site"), "name": value("name"), "mode": value("mode") or "ordered", "steps": steps}
    app = app_of(request)
    try:
        with transaction(app.sessions) as s:
            service.create_cascade(s, data=_parse(CascadeIn, data), now=app.clock.now())
    except DomainError as exc:
        with transaction(reading(request)) as s:
            context = _campaigns(s, data["site"], 0)
        return _page(request, "messages/campaigns.html", 400, web.field_errors(exc),
                     form={k: value(k) for k in fields}, **context)
    return RedirectResponse(f"/messages/campaigns?site={data['site']}&saved=1#new-campaign", status_code=303)


def local_start(value: str, timezone: str) -> str | None:
    """A `datetime-local` value in the user's time zone as an aware ISO time (None when empty)."""
    if not value.strip():
        return None
    try:
        return datetime.fromisoformat(value).replace(tzinfo=ZoneInfo(timezone)).isoformat()
    except ValueError:
        raise DomainError.one("start_at", "not a date and time") from None


@router.post("/messages/campaigns")
def campaign_create(request: Request, viewer: Annotated[Viewer, Depends(web.may_change("marketing"))],
                    site: Annotated[str, Form()] = "", cascade_id: Annotated[str, Form()] = "",
                    name: Annotated[str, Form()] = "", audience: Annotated[str, Form()] = "segment",
                    segment: Annotated[str, Form()] = "", rules: Annotated[str, Form()] = "",
                    start_at: Annotated[str, Form()] = "") -> Response:
    """Send a cascade to a segment, everyone on its site or whoever matches a rule tree, now or later."""
    form = {"site": site, "cascade_id": cascade_id, "name": name, "audience": audience, "segment": segment,
            "rules": rules, "start_at": start_at}
    app = app_of(request)
    try:
        data: dict[str, Any] = {"cascade_id": cascade_id or None, "name": name,
                                "start_at": local_start(start_at, viewer.timezone)}
        if audience == "everyone":
            data["everyone"] = True
        elif audience == "rules":
            data["rules"] = parsing.json_value(rules, root="rules")
        else:
            data["segment"] = segment or None
        with transaction(app.sessions) as s:
            campaign = service.create_campaign(s, data=_parse(CampaignIn, data), now=app.clock.now())
    except DomainError as exc:
        errors = web.field_errors(exc)
        if audience == "segment" and "body" in errors:  # no segment chosen: "give exactly one of …"
            errors = {"segment": errors.pop("body"), **errors}
        with transaction(reading(request)) as s:
            context = _campaigns(s, site, 0)
        return _page(request, "messages/campaigns.html", 400, errors, form=form, **context)
    return RedirectResponse(f"/messages/campaigns/{campaign.id}", status_code=303)


def report_charts(viewer: Viewer, rep: dict[str, Any]) -> dict[str, Any]:
    """ECharts options: messages per channel (sent, delivered, read, failed) and the cascade's cost per channel
    against sending every member through the most expensive channel alone."""
    names = [viewer.gettext(CHANNELS.get(c["channel"], c["channel"])) for c in rep["channels"]]
    series = [{"name": viewer.gettext(label), "type": "bar", "data": [c[key] for c in rep["channels"]]}
              for key, label in (("sent", N_("Sent")), ("delivered", N_("Delivered")), ("read", N_("Read")),
                                 ("failed", N_("Failed")))]
    counts = {"tooltip": {"trigger": "axis"}, "legend": {"top": 0}, "grid": {"left": 60, "right": 20, "top": 40},
              "xAxis": {"type": "category", "data": names}, "yAxis": {"type": "value"}, "series": series,
              "aria": {"enabled": True}}
    top = viewer.gettext(CHANNELS.get(rep["most_expensive_channel"], rep["most_expensive_channel"]))
    every = viewer.gettext(N_("to every member"))
    bars = [viewer.gettext(N_("This cascade")), f"{top}: {every}"]
    stacked = [{"name": viewer.gettext(CHANNELS.get(c["channel"], c["channel"])), "type": "bar", "stack": "cost",
                "data": [float(c["cost"]), 0]} for c in rep["channels"]]
    stacked.append({"name": top, "type": "bar", "stack": "cost", "data": [0, float(rep["baseline_cost"])]})
    cost = {"tooltip": {"trigger": "axis"}, "legend": {"top": 0}, "grid": {"left": 80, "right": 20, "top": 40},
            "xAxis": {"type": "category", "data": bars},
            "yAxis": {"type": "value", "name": rep["currency"]}, "series": stacked, "aria": {"enabled": True}}
    return {"counts": counts, "cost": cost}


@router.get("/messages/campaigns/{campaign_id}")
def campaign_report(request: Request, viewer: Annotated[Viewer, Depends(signed_in)], campaign_id: int) -> Response:
    """A campaign's status and progress, and its report per channel: sent, delivered, read, failed, cost, cost
    per read and the saving against the most expensive channel alone."""
    with transaction(reading(request)) as s:
        camp = reports.campaign(s, campaign_id=campaign_id)
        rep = reports.report(s, cascade_id=camp["cascade_id"], campaign_id=campaign_id)
        cascade = service.get_cascade(s, camp["cascade_id"])
        segment = segments.get(s, camp["segment_id"]) if camp["segment_id"] else None
    return _page(request, "messages/report.html", 200, None, campaign=camp, report=rep, cascade=cascade,
                 segment=segment, charts=report_charts(viewer, rep))


# --- channel settings -----------------------------------------------------------------------------------------


def _channels(s: Session, site: str) -> dict[str, Any]:
    visible, chosen = _site(s, site)
    prices = service.prices(s, site_id=chosen.id) if chosen else {}
    pol = service.policy(s, site_id=chosen.id) if chosen else policies.Policy()
    hhmm = lambda m: None if m is None else f"{m // 60:02d}:{m % 60:02d}"  # noqa: E731
    policy = {"quiet_start": hhmm(pol.quiet_start), "quiet_end": hhmm(pol.quiet_end), "cap_count": pol.cap_count,
              "cap_period_hours": int(pol.cap_period.total_seconds() // 3600),
              "default_language": pol.default_language}
    return {"sites": visible, "site": chosen, "prices": prices, "policy": policy, "channels": policies.CHANNELS,
            "read_rates": service.DEFAULT_READ_RATE}


@router.get("/messages/channels")
def channel_settings(request: Request, viewer: Annotated[Viewer, Depends(signed_in)], site: str = "",
                     saved: bool = False) -> Response:
    with transaction(reading(request)) as s:
        context = _channels(s, site)
    return _page(request, "messages/channels.html", 200, None, saved=saved, **context)


@router.post("/messages/channels/prices")
async def prices_save(request: Request, viewer: Annotated[Viewer, Depends(web.may_change("marketing"))]
                      ) -> Response:
    """The price (and expected read rate) of every channel whose price is filled in; one currency for all."""
    fields = await request.form()
    value = lambda key: str(fields.get(key) or "").strip()  # noqa: E731
    site = value("site")
    app = app_of(request)
    wanted, errors = {}, []
    for channel in policies.CHANNELS:
        if value(f"{channel}_price"):
            try:
                wanted[channel] = PriceIn.model_validate({
                    "price": value(f"{channel}_price"), "currency": value("currency"),
                    "expected_read_rate": value(f"{channel}_read_rate") or None})
            except ValidationError as exc:
                errors += DomainError.from_pydantic(exc, prefix=f"{channel}.").errors
    try:
        if errors:
            raise DomainError(errors)
        with transaction(app.sessions) as s:
            for channel, data in wanted.items():
                service.set_price(s, site=site, channel=channel, data=data, now=app.clock.now())
    except DomainError as exc:
        with transaction(reading(request)) as s:
            context = _channels(s, site)
        return _page(request, "messages/channels.html", 400, web.field_errors(exc), **context)
    return RedirectResponse(f"/messages/channels?site={site}&saved=1", status_code=303)


@router.post("/messages/channels/policy")
def policy_save(request: Request, viewer: Annotated[Viewer, Depends(web.may_change("marketing"))],
                site: Annotated[str, Form()] = "", quiet_start: Annotated[str, Form()] = "",
                quiet_end: Annotated[str, Form()] = "", cap_count: Annotated[str, Form()] = "",
                cap_period_hours: Annotated[str, Form()] = "24",
                default_language: Annotated[str, Form()] = "ru") -> Response:
    """Quiet hours (both empty: none), the frequency cap (empty: none) and the site's default language."""
    data = {"quiet_start": _blank(quiet_start), "quiet_end": _blank(quiet_end), "cap_count": _blank(cap_count),
            "cap_period_hours": cap_period_hours.strip(), "default_language": default_language.strip()}
    app = app_of(request)
    try:
        with transaction(app.sessions) as s:
            service.set_policy(s, site=site, data=_parse(PolicyIn, data), now=app.clock.now())
    except DomainError as exc:
        with transaction(reading(request)) as s:
            context = _channels(s, site)
        return _page(request, "messages/channels.html", 400, web.field_errors(exc), **context)
    return RedirectResponse(f"/messages/channels?site={site}&saved=1", status_code=303)
