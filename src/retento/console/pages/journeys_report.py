"""Journeys: the funnel and money report of a journey (per version or all versions together) as charts and tables:
entered, per step reached / sent / opened / clicked / converted, exits by reason, orders and revenue attributed by
last touch within the window, cost and cost per conversion, each A/B split's uplift against its holdout, and the
source's benchmarks beside the journey's own rates. The figures are journeys.reports.report, as the API's."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from fastapi.responses import Response

from retento.console import web
from retento.console.i18n import N_
from retento.console.web import Viewer, reading, render, signed_in
from retento.core.db.transactions import transaction
from retento.journeys import reports, service as journeys

router = web.router()
PAGE = web.Page(router)
FUNNEL = (("reached", N_("Reached")), ("sent", N_("Sent")), ("opened", N_("Opened")), ("clicked", N_("Clicked")),
          ("converted", N_("Converted")))
BENCHMARKS = (("welcome", N_("Welcome chains")), ("post_purchase", N_("Post-purchase")),
              ("abandoned_cart", N_("Abandoned cart")))
EXITS = {"ordered": N_("ordered"), "unsubscribed": N_("unsubscribed"), "holdout": N_("holdout"),
         "customer_gone": N_("customer deleted"), "condition": N_("exit condition"), "step": N_("exit step"),
         "segment_left": N_("left the segment"), "email_confirmed": N_("confirmed the email"),
         "custom": N_("custom event")}
STATES = {"active": N_("inside"), "finished": N_("finished"), "exited": N_("exited"), "failed": N_("failed")}


def funnel_chart(viewer: Viewer, report: dict[str, Any], labels: dict[str, str]) -> dict[str, Any]:
    steps = report["steps"]
    return {"tooltip": {"trigger": "axis"}, "legend": {"top": 0}, "grid": {"left": 60, "right": 20, "top": 50,
                                                                           "bottom": 80},
            "xAxis": {"type": "category", "data": [labels.get(s["step"], s["step"]) for s in steps],
                      "axisLabel": {"interval": 0, "rotate": 30}},
            "yAxis": {"type": "value", "name": viewer.gettext("Customers"), "minInterval": 1},
            "series": [{"name": viewer.gettext(label), "type": "bar", "data": [s.get(key, 0) for s in steps]}
                       for key, label in FUNNEL],
            "aria": {"enabled": False}}


def exits_chart(viewer: Viewer, report: dict[str, Any]) -> dict[str, Any]:
    data = [{"name": viewer.gettext(STATES.get(k, k)), "value": v} for k, v in report["states"].items() if k != "exited"]
    data += [{"name": reason(viewer, k), "value": v} for k, v in report["exits"].items()]
    return {"tooltip": {"trigger": "item"}, "legend": {"top": 0, "type": "scroll"},
            "series": [{"type": "pie", "radius": ["35%", "65%"], "top": 30, "data": data,
                        "label": {"formatter": "{b}: {c}"}}],
            "aria": {"enabled": False}}


def reason(viewer: Viewer, code: str) -> str:
    """An exit reason in words: `segment_left:sleeping` -> "left the segment sleeping"."""
    kind, _, detail = code.partition(":")
    return " ".join(x for x in (viewer.gettext(EXITS[kind]) if kind in EXITS else kind, detail) if x)


def rates(report: dict[str, Any]) -> dict[str, float | None]:
    """The journey's own open and click rate (over its send steps) and conversion, to set beside the benchmarks."""
    sent = sum(s.get("sent", 0) for s in report["steps"])
    return {"open_rate": sum(s.get("opened", 0) for s in report["steps"]) / sent if sent else None,
            "click_rate": sum(s.get("clicked", 0) for s in report["steps"]) / sent if sent else None,
            "conversion": report["conversion_rate"]}


@router.get("/journeys/{journey_id:int}/report")
def report_page(request: Request, viewer: Annotated[Viewer, Depends(signed_in)], journey_id: int,
                version: Annotated[int | None, Query(ge=1, le=100000)] = None,
                window_days: Annotated[int, Query(ge=1, le=365)] = 7) -> Response:
    with transaction(reading(request)) as s:
        journey = journeys.get(s, journey_id)
        out = journeys.out(s, journey)
        versions = [v["version"] for v in journeys.versions(s, journey=journey)]
        report = reports.report(s, journey=journey, version=version, window_days=window_days)
    labels = {st["id"]: st.get("label") or st["id"] for st in out.definition["steps"]}
    money = {"revenue": {c: Decimal(v) for c, v in report["revenue"].items()},
             "cost": {c: Decimal(v) for c, v in report["cost"].items()},
             "per_conversion": {c: Decimal(v) for c, v in report["cost_per_conversion"].items()}}
    return render(request, "journeys/report.html", j=out, report=report, version=version, versions=versions,
                  window_days=window_days, funnel=funnel_chart(viewer, report, labels), exits=exits_chart(viewer, report),
                  money=money, own=rates(report), benchmarks=BENCHMARKS, funnel_rows=FUNNEL, labels=labels,
                  states=STATES, reason=lambda code: reason(viewer, code))
