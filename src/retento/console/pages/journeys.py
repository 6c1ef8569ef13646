"""Journeys: the list (state, version, entered / active / finished), a journey as a flow diagram with each step's
counts on it (server-rendered SVG, each step a link to its form), its versions with the explicit migration of the
customers inside, switching it on or off, and the ready-made mechanics installed in one click. Everything goes
through journeys.service and journeys.reports, as the API and CLI do. The step forms are pages/journeys_edit.py,
the funnel and money report pages/journeys_report.py."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from retento.console import web
from retento.console.i18n import N_
from retento.console.pages.journeys_diagram import EVENTS, TYPES, layout
from retento.console.web import Viewer, app_of, reading, render, signed_in
from retento.core.db.transactions import transaction
from retento.core.errors import NotFound
from retento.journeys import reports, service as journeys
from retento.messaging import service as messaging
from retento.sites import service as sites

router = web.router()
PAGE = web.Page(router, nav="Journeys", path="/journeys", order=32)
marketing = web.may_change("marketing")
STATES = {"active": N_("active"), "finished": N_("finished"), "exited": N_("exited"), "failed": N_("failed")}
OUTCOMES = {"created": N_("Installed."), "new version": N_("Installed: a new version of the journey."),
            "updated": N_("Installed."), "unchanged": N_("Already installed: nothing changed.")}


# --- the list ------------------------------------------------------------------------------------------------------


@router.get("/journeys")
def journey_list(request: Request, viewer: Annotated[Viewer, Depends(signed_in)]) -> Response:
    with transaction(reading(request)) as s:
        rows = journeys.list_journeys(s)
        counts = journeys.run_counts(s, [j.id for j in rows])
        codes = sites.site_codes(s)
    items = [{"journey": j, "site": codes.get(j.site_id, ""), "entered": sum(counts[j.id].values()),
              **{state: counts[j.id].get(state, 0) for state in STATES}} for j in rows]
    return render(request, "journeys/list.html", items=items)


# --- ready-made mechanics ------------------------------------------------------------------------------------------


@router.get("/journeys/mechanics")
def mechanic_list(request: Request, viewer: Annotated[Viewer, Depends(signed_in)]) -> Response:
    with transaction(reading(request)) as s:
        visible = sites.list_sites(s)
        codes = {x.id: x.code for x in visible}
        installed: dict[str, list[tuple[str, int]]] = {}
        for j in journeys.list_journeys(s):
            installed.setdefault(j.name, []).append((codes.get(j.site_id, ""), j.id))
    return render(request, "journeys/mechanics.html", mechanics=journeys.mechanic_list(), sites=visible,
                  installed=installed)


@router.post("/journeys/mechanics/{name}")
def mechanic_install(request: Request, viewer: Annotated[Viewer, Depends(marketing)], name: str,
                     site: Annotated[str, Form(max_length=64)] = "") -> Response:
    app = app_of(request)
    with transaction(app.sessions) as s:
        journey, outcome = journeys.install_mechanic(s, name=name, site=site, now=app.clock.now())
        journey_id = journey.id
    return RedirectResponse(f"/journeys/{journey_id}?installed={outcome.replace(' ', '-')}", status_code=303)


# --- one journey ---------------------------------------------------------------------------------------------------


def _duration(viewer: Viewer, d: dict[str, Any]) -> str:
    parts = [viewer.gettext(unit) % {"n": d[key]} for key, unit in
             (("days", N_("%(n)s d")), ("hours", N_("%(n)s h")), ("minutes", N_("%(n)s min"))) if d.get(key)]
    return " ".join(parts)


def summary(viewer: Viewer, step: dict[str, Any], cascades: dict[int, str]) -> list[tuple[str, bool]]:
    """A step's parameters in a few words: (text, whether it is user data, shown as it is)."""
    kind = step["type"]
    if kind == "send":
        return [(cascades.get(step["cascade_id"], f"#{step['cascade_id']}"), True)]
    if kind == "wait":
        out = [(_duration(viewer, step), False)] if _duration(viewer, step) else []
        if step.get("at"):
            out.append((viewer.gettext("at %(time)s") % {"time": step["at"]}, False))
        return out
    if kind == "wait_event":
        what = step.get("name") if step["event"] == "custom" else None
        return [(viewer.gettext(EVENTS[step["event"]]), False), *([(what, True)] if what else []),
                (viewer.gettext("at most %(time)s") % {"time": _duration(viewer, step.get("timeout") or {})}, False)]
    if kind == "branch":
        return [(viewer.gettext("branches: %(n)s, and else") % {"n": len(step.get("branches", []))}, False)]
    if kind == "split" and step.get("holdout"):
        return [(viewer.gettext("holdout %(n)s%%") % {"n": step["holdout"]}, False)]
    if kind in ("add_tag", "remove_tag"):
        return [(step["tag"], True)]
    if kind == "credit_points":
        return [(viewer.fmt.number(float(step["amount"]), 2), False)]
    if kind == "create_task":
        return [(step["title"], True)]
    if kind == "webhook":
        return [(urlsplit(step["url"]).hostname or step["url"], True)]
    return []


def diagram(viewer: Viewer, definition: dict[str, Any], report: dict[str, Any], waiting: dict[str, int],
            cascades: dict[int, str]) -> dict[str, Any]:
    """What the template draws: the layout, and for each step its summary and its counts."""
    shape = layout(definition)
    counts = {row["step"]: row for row in report["steps"]}
    steps = []
    for node in shape.nodes:
        c = counts.get(node.id, {})
        figures = {"reached": c.get("reached", 0), "here": waiting.get(node.id, 0)}
        if node.type == "send":
            figures.update({k: c.get(k, 0) for k in ("sent", "opened", "clicked", "converted")})
        steps.append({"node": node, "summary": summary(viewer, node.step, cascades), "figures": figures,
                      "start": node.id == (definition.get("start") or shape.nodes[0].id)})
    return {"shape": shape, "steps": steps}


@router.get("/journeys/{journey_id:int}")
def journey_page(request: Request, viewer: Annotated[Viewer, Depends(signed_in)], journey_id: int,
                 version: Annotated[int | None, Query(ge=1, le=100000)] = None) -> Response:
    with transaction(reading(request)) as s:
        journey = journeys.get(s, journey_id)
        out = journeys.out(s, journey)
        versions = journeys.versions(s, journey=journey)
        shown = next((v for v in versions if v["version"] == (version or journey.version)), None)
        if shown is None:
            raise NotFound("version", f"journey {journey_id} has no version {version}")
        report = reports.report(s, journey=journey, version=version)
        waiting = journeys.active_by_step(s, journey_id=journey_id, version=version)
        cascades = {c.id: c.name for c in messaging.list_cascades(s, site_id=journey.site_id, limit=1000)}
    q = request.query_params
    return render(request, "journeys/show.html", j=out, versions=versions, shown=shown, version=version,
                  report=report, flow=diagram(viewer, shown["definition"], report, waiting, cascades),
                  states=STATES, types=TYPES, installed=OUTCOMES.get(q.get("installed", "").replace("-", " ")),
                  saved=q.get("saved"), moved=q.get("moved"), left=q.get("left"),
                  older_active=sum(v["active_runs"] for v in versions if v["version"] != journey.version))


@router.post("/journeys/{journey_id:int}/active")
def journey_switch(request: Request, viewer: Annotated[Viewer, Depends(marketing)], journey_id: int,
                   active: Annotated[str, Form(max_length=8)] = "") -> Response:
    app = app_of(request)
    with transaction(app.sessions) as s:
        journeys.switch(s, journey=journeys.get(s, journey_id), active=active == "on", now=app.clock.now())
    return RedirectResponse(f"/journeys/{journey_id}?saved=1", status_code=303)


@router.post("/journeys/{journey_id:int}/migrate")
def journey_migrate(request: Request, viewer: Annotated[Viewer, Depends(marketing)], journey_id: int,
                    from_version: Annotated[str, Form(max_length=8)] = "") -> Response:
    app = app_of(request)
    chosen = int(from_version) if from_version.isdigit() else None
    with transaction(app.sessions) as s:
        done = journeys.migrate(s, journey=journeys.get(s, journey_id), from_version=chosen)
    return RedirectResponse(f"/journeys/{journey_id}?moved={done['moved']}&left={done['left']}#versions",
                            status_code=303)
