"""The dashboard: revenue and orders by month, the lifecycle figures of a site (segments' cohort report), what
the worker has queued or failing (core.work through the queues service)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import Depends, Request
from fastapi.responses import Response

from retento.console import web
from retento.console.web import Viewer, app_of, reading, render, signed_in
from retento.core.db.transactions import transaction
from retento.messaging import reports as messaging_reports
from retento.orders import revenue
from retento.queues import service as queues
from retento.segments import analytics
from retento.sites import service as sites

router = web.router()
PAGE = web.Page(router, nav="Dashboard", path="/", order=0)
MONTHS = 12


def month_bounds(now: datetime, timezone: str, months: int = MONTHS) -> list[datetime]:
    """The starts of the last `months` months in `timezone` (the current one last) and the next month's start:
    months + 1 aware datetimes."""
    local = now.astimezone(ZoneInfo(timezone))
    y, m = local.year, local.month
    starts = []
    for back in range(months - 1, -2, -1):
        yy, mm = divmod((y * 12 + m - 1) - back, 12)
        starts.append(datetime(yy, mm + 1, 1, tzinfo=ZoneInfo(timezone)))
    return starts


def revenue_chart(viewer: Viewer, bounds: list[datetime], rows: list[tuple[int, str, int, Any]]) -> dict[str, Any]:
    """The ECharts option of orders (bars) and revenue per currency (lines) by month."""
    labels = [viewer.fmt.month(b.date()) for b in bounds[:-1]]
    counts = [0] * len(labels)
    revenue: dict[str, list[float]] = {}
    for period, currency, n, total in rows:
        counts[period] += n
        revenue.setdefault(currency, [0.0] * len(labels))[period] = float(total)
    orders_label = viewer.gettext("Orders")
    series = [{"name": orders_label, "type": "bar", "yAxisIndex": 1, "data": counts}]
    series += [{"name": f"{viewer.gettext('Revenue')}, {cur}", "type": "line", "data": values}
               for cur, values in sorted(revenue.items())]
    return {"tooltip": {"trigger": "axis"}, "legend": {"top": 0}, "grid": {"left": 70, "right": 50, "top": 40},
            "xAxis": {"type": "category", "data": labels},
            "yAxis": [{"type": "value", "name": viewer.gettext("Revenue")},
                      {"type": "value", "name": orders_label}],
            "series": series, "aria": {"enabled": True}}


@router.get("/")
def dashboard(request: Request, viewer: Annotated[Viewer, Depends(signed_in)], site: str | None = None) -> Response:
    app = app_of(request)
    now = app.clock.now()
    bounds = month_bounds(now, viewer.timezone)
    with transaction(reading(request)) as s:
        visible = sites.list_sites(s)
        chosen = next((x for x in visible if x.code == site), visible[0] if visible else None)
        rows = revenue.totals_by_period(s, bounds=bounds, site_ids=[chosen.id] if chosen else [])
    this_month = [(cur, n, total) for period, cur, n, total in rows if period == len(bounds) - 2]
    return render(request, "dashboard.html", chart=revenue_chart(viewer, bounds, rows), this_month=this_month,
                  sites=visible, site=chosen)


@router.get("/dashboard/work")
def work(request: Request, viewer: Annotated[Viewer, Depends(signed_in)]) -> Response:
    """What is queued or failing in the worker (loaded after the page: it counts every queue)."""
    app = app_of(request)
    with transaction(reading(request)) as s:
        overview = queues.overview(s, app.work, now=app.clock.now())
    return render(request, "dashboard_work.html", queues=overview)


@router.get("/dashboard/lifecycle")
def lifecycle(request: Request, viewer: Annotated[Viewer, Depends(signed_in)], site: str) -> Response:
    """The four lifecycle figures of the last complete month, from the stored cohort report (loaded after the
    page). None stored yet: a small site's is computed now, a large site's by the worker (the page says so)."""
    app = app_of(request)
    with transaction(app.sessions) as s:  # a small site's first report is stored (with its sleeping threshold)
        report = analytics.stored_cohort_report(s, site=site, now=app.clock.now(),
                                                inline_buyers=app.settings.cohort_inline_buyers)
    if report is None:
        return render(request, "dashboard_lifecycle.html", computing=True, month=None, report=None)
    months = [m for m in report["months"] if not m["provisional"]]
    month = months[-1] if months else None
    return render(request, "dashboard_lifecycle.html", month=month, report=report, computing=False,
                  month_label=viewer.fmt.month(date.fromisoformat(month["month"] + "-01")) if month else None)


def savings_by_currency(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Cascade reports summed per currency: members, cost, the cost of the most expensive channel alone, saving."""
    out: dict[str, dict[str, Any]] = {}
    for r in reports:
        row = out.setdefault(r["currency"], {"currency": r["currency"], "cascades": 0, "members": 0,
                                             "cost": Decimal(0), "baseline": Decimal(0), "saving": Decimal(0)})
        row["cascades"] += 1
        row["members"] += r["members"]
        row["cost"] += r["total_cost"]
        row["baseline"] += r["baseline_cost"]
        row["saving"] += r["net_saving"]
    return [out[c] for c in sorted(out)]


@router.get("/dashboard/savings")
def savings(request: Request, viewer: Annotated[Viewer, Depends(signed_in)]) -> Response:
    """What the cascades started this month (the user's time zone) saved against their most expensive channel."""
    bounds = month_bounds(app_of(request).clock.now(), viewer.timezone, months=1)
    with transaction(reading(request)) as s:
        reports = messaging_reports.savings(s, start=bounds[0], end=bounds[1])
    return render(request, "dashboard_savings.html", rows=savings_by_currency(reports))
