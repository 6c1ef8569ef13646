"""Segments: the list (pages by key), a segment's page (size over time, members), the rule builder with the live
member count and a sample (segments.service.preview, as the API's preview), create / edit / recompute, and the
RFM grid as a heat map with the members of each cell."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from retento.console import rule_builder as builder, web
from retento.console.web import Viewer, app_of, reading, render, signed_in
from retento.core.db.transactions import transaction
from retento.core.errors import DomainError, FieldError
from retento.customers import queries as customer_queries
from retento.segments import analytics, service as segments
from retento.segments.schemas import SegmentCreate, SegmentEdit
from retento.sites import service as sites

router = web.router()
PAGE = web.Page(router, nav="Segments", path="/segments", order=20)
PAGE_SIZE = 50
SAMPLE = 10
SIZE_DAYS = 90


@router.get("/segments")
def segment_list(request: Request, viewer: Annotated[Viewer, Depends(signed_in)], site: str = "",
                 after: Annotated[int, Query(ge=0)] = 0) -> Response:
    with transaction(reading(request)) as s:
        visible = sites.list_sites(s)
        rows = segments.list_segments(s, site=site or None, after_id=after, limit=PAGE_SIZE + 1)
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    return render(request, "segments/list.html", segments=rows, sites={x.id: x for x in visible}, site=site,
                  after=after, next_after=rows[-1].id if more else None)


# --- the builder ---------------------------------------------------------------------------------------------


def _builder(s: Any, *, match: str = "all", rows: list[builder.Row] | None = None, rules_json: str = "",
             add: bool = False, remove: int | None = None) -> dict[str, Any]:
    rows = list(rows or [])
    if remove is not None and 0 <= remove < len(rows):
        rows.pop(remove)
    if add or not rows or rows[-1].kind:
        rows.append(builder.Row())
    return {"match": match, "rows": rows, "rules_json": rules_json, "kinds": builder.KINDS, "ops": builder.OPS,
            "yes_no": builder.YES_NO}


def _builder_of(s: Any, raw: dict[str, Any] | None) -> dict[str, Any]:
    """The builder showing a stored tree: as rows when they express it, otherwise as JSON."""
    found = builder.rows_of(raw, segments.rule_types(s)) if raw else None
    if found is None and raw:
        return _builder(s, rules_json=json.dumps(raw, ensure_ascii=False, indent=2), rows=[])
    match, rows = found or ("all", [])
    return _builder(s, match=match, rows=rows)


def _form_builder(s: Any, form: Any, **changes: Any) -> dict[str, Any]:
    match, rows, _ = _read(form)
    return _builder(s, match=match, rows=rows, rules_json=form.get("rules_json", ""), **changes)


def _read(form: Any) -> tuple[str, list[builder.Row], dict[str, Any] | None]:
    try:
        return builder.from_form(form)
    except DomainError:
        columns = [form.getlist(n) for n in ("kind", "key", "op", "value", "days")]
        rows = [builder.Row(*(c[i] if i < len(c) else "" for c in columns)) for i in range(len(columns[0]))]
        return form.get("match", "all"), rows, None


def _errors_by_row(form: Any, errors: list[FieldError]) -> tuple[dict[int, list[str]], list[FieldError]]:
    """Errors under a row of the form (by its place among the filled-in rows), and the others."""
    used = [i for i, kind in enumerate(form.getlist("kind")) if kind]
    by_row: dict[int, list[str]] = {}
    rest = []
    for e in errors:
        n = builder.row_of_error(e.field)
        if n is not None and n < len(used):
            by_row.setdefault(used[n], []).append(f"{e.field.split('.', 3)[-1]}: {e.reason}")
        else:
            rest.append(e)
    return by_row, rest


@router.get("/segments/builder")
def builder_fragment(request: Request, viewer: Annotated[Viewer, Depends(signed_in)], add: bool = False,
                     remove: int | None = None) -> Response:
    """The builder's rows again (a row added or removed, or a row's kind changed: its keys and operators)."""
    with transaction(reading(request)) as s:
        context = _form_builder(s, request.query_params, add=add, remove=remove)
    return render(request, "segments/_builder.html", headers={"HX-Trigger-After-Settle": "builder-changed"},
                  **context)


@router.get("/segments/preview")
def preview(request: Request, viewer: Annotated[Viewer, Depends(signed_in)], site: str = "") -> Response:
    """The live member count and a sample for the builder's rules as they are now (nothing stored)."""
    app = app_of(request)
    form = request.query_params
    try:
        _, _, raw = builder.from_form(form)
        with transaction(app.sessions) as s:  # the rule types are the application's (reached through it)
            found = segments.preview(s, site=site, raw_rules=raw, now=app.clock.now(), sample=SAMPLE)
    except DomainError as exc:
        by_row, rest = _errors_by_row(form, exc.errors)
        return render(request, "segments/_preview.html", errors=rest, row_errors=by_row, found=None, rules=None,
                      row_count=len(form.getlist("kind")))
    return render(request, "segments/_preview.html", errors=[], row_errors={}, found=found, rules=raw,
                  row_count=len(form.getlist("kind")))


@router.get("/segments/new")
def new_segment(request: Request, viewer: Annotated[Viewer, Depends(signed_in)], site: str = "") -> Response:
    with transaction(reading(request)) as s:
        visible = sites.list_sites(s)
        context = _builder(s)
    return render(request, "segments/edit.html", segment=None, sites=visible, site=site or
                  (visible[0].code if visible else ""), form={}, errors={}, **context)


@router.post("/segments/new")
async def create_segment(request: Request, viewer: Annotated[Viewer, Depends(web.may_change("marketing"))]
                         ) -> Response:
    form = await request.form()
    app = app_of(request)
    try:
        _, _, raw = builder.from_form(form)
        data = SegmentCreate(site=form.get("site", ""), code=form.get("code", ""), name=form.get("name", ""),
                             description=form.get("description") or None, rules=raw)
        with transaction(app.sessions) as s:
            segment = segments.create(s, data=data, now=app.clock.now())
            segment_id = segment.id
    except (DomainError, ValidationError) as exc:
        errors = DomainError.from_pydantic(exc).errors if isinstance(exc, ValidationError) else exc.errors
        with transaction(reading(request)) as s:
            context = _form_builder(s, form)
            visible = sites.list_sites(s)
        return render(request, "segments/edit.html", status=400, segment=None, sites=visible,
                      site=form.get("site", ""), form=form, errors={e.field: e.reason for e in errors}, **context)
    return RedirectResponse(f"/segments/{segment_id}?saved=1", status_code=303)


@router.get("/segments/{segment_id:int}")
def segment_page(request: Request, viewer: Annotated[Viewer, Depends(signed_in)], segment_id: int,
                 saved: bool = False) -> Response:
    app = app_of(request)
    today = app.clock.now().date()
    with transaction(app.sessions) as s:  # the rule types are the application's (reached through it)
        segment = segments.get(s, segment_id)
        site = next(x for x in sites.list_sites(s) if x.id == segment.site_id)
        points = segments.sizes(s, segment=segment, today=today, start=today - timedelta(days=SIZE_DAYS - 1))
        ids = segments.member_ids(s, segment=segment, limit=SAMPLE)
        members = customer_queries.list_customers(s, ids=ids, limit=SAMPLE) if ids else []
        context = _builder_of(s, segment.rules) if segment.kind == "dynamic" else _builder(s)
    return render(request, "segments/edit.html", segment=segment, site=site.code, sites=[site], saved=saved,
                  members=members, chart=size_chart(viewer, points) if points else None,
                  form={"name": segment.name, "description": segment.description or ""}, errors={}, **context)


def size_chart(viewer: Viewer, points: list[dict[str, Any]]) -> dict[str, Any]:
    return {"tooltip": {"trigger": "axis"}, "grid": {"left": 60, "right": 30, "top": 30},
            "xAxis": {"type": "category", "data": [viewer.fmt.date(date.fromisoformat(p["date"])) for p in points]},
            "yAxis": {"type": "value", "name": viewer.gettext("Customers"), "minInterval": 1},
            "series": [{"name": viewer.gettext("Segment size"), "type": "line", "step": "end",
                        "data": [p["size"] for p in points]}], "aria": {"enabled": True}}


@router.post("/segments/{segment_id:int}")
async def edit_segment(request: Request, viewer: Annotated[Viewer, Depends(web.may_change("marketing"))],
                       segment_id: int) -> Response:
    form = await request.form()
    app = app_of(request)
    try:
        with transaction(app.sessions) as s:
            segment = segments.get(s, segment_id)
            fields: dict[str, Any] = {"name": form.get("name", ""), "description": form.get("description") or None,
                                      "active": form.get("active") == "1"}
            if segment.kind == "dynamic":
                fields["rules"] = builder.from_form(form)[2]
            segments.edit(s, segment=segment, data=SegmentEdit(**fields), now=app.clock.now())
    except (DomainError, ValidationError) as exc:
        errors = DomainError.from_pydantic(exc).errors if isinstance(exc, ValidationError) else exc.errors
        if {e.field for e in errors} == {"id"}:
            raise DomainError(errors) from None
        with transaction(reading(request)) as s:
            segment = segments.get(s, segment_id)
            site = next(x for x in sites.list_sites(s) if x.id == segment.site_id)
            context = _form_builder(s, form)
        return render(request, "segments/edit.html", status=400, segment=segment, site=site.code, sites=[site],
                      members=[], chart=None, form=form, errors={e.field: e.reason for e in errors}, **context)
    return RedirectResponse(f"/segments/{segment_id}?saved=1", status_code=303)


@router.post("/segments/{segment_id:int}/recompute")
def recompute(request: Request, viewer: Annotated[Viewer, Depends(web.may_change("marketing"))],
              segment_id: int) -> Response:
    app = app_of(request)
    with transaction(app.sessions) as s:
        segment = segments.get(s, segment_id)
        if segment.kind != "dynamic":
            raise DomainError.one("kind", "a static segment is not computed")
        segments.recompute(s, segment=segment, now=app.clock.now())
    return RedirectResponse(f"/segments/{segment_id}?saved=1", status_code=303)


# --- RFM grid ------------------------------------------------------------------------------------------------


@router.get("/segments/rfm")
def rfm_grid(request: Request, viewer: Annotated[Viewer, Depends(signed_in)], site: str = "") -> Response:
    with transaction(reading(request)) as s:
        visible = sites.list_sites(s)
        chosen = next((x for x in visible if x.code == site), visible[0] if visible else None)
        cells = analytics.score_grid(s, site_id=chosen.id) if chosen else []
        named = analytics.cell_table(s, site_id=chosen.id) if chosen else []
    return render(request, "segments/rfm.html", sites=visible, site=chosen, grid=heat_grid(cells), named=named)


def heat_grid(cells: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Rows R = 5..1, columns F = 1..5; each cell with its customers, revenue and a shade 0..4 by customers."""
    found = {(c["r"], c["f"]): c for c in cells}
    top = max((c["customers"] for c in cells), default=0)
    out = []
    for r in range(5, 0, -1):
        row = []
        for f in range(1, 6):
            c = found.get((r, f), {"r": r, "f": f, "customers": 0, "revenue": 0})
            row.append({**c, "shade": 0 if not top or not c["customers"] else 1 + (3 * c["customers"]) // top})
        out.append(row)
    return out


@router.get("/segments/rfm/members")
def rfm_members(request: Request, viewer: Annotated[Viewer, Depends(signed_in)], site: str,
                r: Annotated[int, Query(ge=1, le=5)], f: Annotated[int, Query(ge=1, le=5)],
                after: Annotated[int, Query(ge=0)] = 0) -> Response:
    with transaction(reading(request)) as s:
        chosen = sites.get_site(s, site)
        ids = analytics.grid_member_ids(s, site_id=chosen.id, r=r, f=f, after_id=after, limit=PAGE_SIZE + 1)
        rows = customer_queries.list_customers(s, ids=ids[:PAGE_SIZE], limit=PAGE_SIZE) if ids else []
    return render(request, "segments/rfm_members.html", site=chosen, r=r, f=f, customers=rows, after=after,
                  next_after=ids[PAGE_SIZE - 1] if len(ids) > PAGE_SIZE else None)
