"""HTTP routes for segments, RFM / LTV and lifecycle cohorts (thin: every route calls one service function)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any, TypeVar

from fastapi import Body, Depends, File, Query, Request, UploadFile
from pydantic import ValidationError

from retento.apikeys.api import require
from retento.core.db.transactions import transaction
from retento.core.errors import DomainError, NotFound
from retento.core.jsonable import jsonable
from retento.core.rest.problems import router as make_router
from retento.segments import analytics, cohorts, service
from retento.segments.schemas import (
    InitiativeIn,
    MembersIn,
    PreviewIn,
    SegmentCreate,
    SegmentEdit,
    SegmentOut,
    ThresholdIn,
)
from retento.sites.service import get_site

router = make_router("segments")  # /api/v1, problem+json errors naming the field
T = TypeVar("T")
READ = Depends(require("segments:read"))
WRITE = Depends(require("segments:write"))


def _run(request: Request, fn: Callable[[Any, Any], T]) -> T:
    """Run fn(session, now) in one transaction (a DomainError rolls it back and becomes a 4xx)."""
    app = request.app.state.app
    with transaction(app.sessions) as s:
        return fn(s, app.clock.now())


# An API key restricted to some sites sees only their segments, scores and cohorts (its sessions are scoped:
# retento.core.scoping): another site's segment is "not found", and naming another site is a 403.
def _site_id(request: Request, s: Any, code: str) -> int:
    return get_site(s, code).id


def _run_on_site(request: Request, code: str, fn: Callable[[Any, Any], T]) -> T:
    """`_run` for a request naming a site, which the API key must be allowed to use."""
    def go(s: Any, now: Any) -> T:
        _site_id(request, s, code)
        return fn(s, now)
    return _run(request, go)


def _segment(request: Request, s: Any, segment_id: int) -> Any:
    return service.get(s, segment_id)


def _parse(model: type[T], raw: Any) -> T:
    try:
        return model.model_validate(raw)  # type: ignore[attr-defined]
    except ValidationError as exc:
        raise DomainError(DomainError.from_pydantic(exc).errors, status=422) from None


def _out(segment: Any) -> dict[str, Any]:
    return SegmentOut.model_validate(segment).model_dump(mode="json")


@router.get("/segments", summary="List segments", dependencies=[READ])
def list_segments(request: Request, site: str | None = None) -> list[dict[str, Any]]:
    def go(s: Any, _now: Any) -> list[dict[str, Any]]:
        if site is not None:
            _site_id(request, s, site)
        return [_out(x) for x in service.list_segments(s, site=site)]
    return _run(request, go)


@router.post("/segments", status_code=201, summary="Create a dynamic (rules) or static (list) segment",
             dependencies=[WRITE])
def create_segment(request: Request, body: dict[str, Any] = Body(...)) -> dict[str, Any]:
    data = _parse(SegmentCreate, body)
    return _run_on_site(request, data.site, lambda s, now: _out(service.create(s, data=data, now=now)))


@router.post("/segments/preview", summary="Live preview: how many customers match rules, and a sample",
             dependencies=[READ])
def preview(request: Request, body: dict[str, Any] = Body(...)) -> dict[str, Any]:
    data = _parse(PreviewIn, body)
    return _run_on_site(request, data.site, lambda s, now: service.preview(s, site=data.site, raw_rules=data.rules,
                                                                          now=now, sample=data.sample))


@router.get("/segments/{segment_id:int}", summary="One segment", dependencies=[READ])
def get_segment(request: Request, segment_id: int) -> dict[str, Any]:
    return _run(request, lambda s, _now: _out(_segment(request, s, segment_id)))


@router.patch("/segments/{segment_id:int}", summary="Rename, change rules, switch on or off",
             dependencies=[WRITE])
def edit_segment(request: Request, segment_id: int, body: dict[str, Any] = Body(...)) -> dict[str, Any]:
    data = _parse(SegmentEdit, body)
    return _run(request, lambda s, now: _out(service.edit(s, segment=_segment(request, s, segment_id), data=data,
                                                          now=now)))


@router.post("/segments/{segment_id:int}/recompute", summary="Full recompute now", dependencies=[WRITE])
def recompute(request: Request, segment_id: int) -> dict[str, int]:
    def go(s: Any, now: Any) -> dict[str, int]:
        seg = _segment(request, s, segment_id)
        if seg.kind != "dynamic":
            raise DomainError.one("kind", "a static segment is not computed")
        entered, left = service.recompute(s, segment=seg, now=now)
        return {"entered": entered, "left": left, "size": seg.size}
    return _run(request, go)


@router.get("/segments/{segment_id:int}/members", summary="Member customer ids", dependencies=[READ])
def members(request: Request, segment_id: int, limit: int = Query(100, ge=1, le=10_000),
            offset: int = Query(0, ge=0)) -> dict[str, Any]:
    return _run(request, lambda s, _now: {"customer_ids": service.member_ids(
        s, segment=_segment(request, s, segment_id), limit=limit, offset=offset)})


@router.post("/segments/{segment_id:int}/members", summary="Add customers to a static segment",
                  dependencies=[WRITE])
def add_members(request: Request, segment_id: int, body: dict[str, Any] = Body(...)) -> dict[str, int]:
    return _members(request, segment_id, _parse(MembersIn, body), add=True)


@router.post("/segments/{segment_id:int}/members/remove", summary="Remove customers from a static segment",
                  dependencies=[WRITE])
def remove_members(request: Request, segment_id: int, body: dict[str, Any] = Body(...)) -> dict[str, int]:
    return _members(request, segment_id, _parse(MembersIn, body), add=False)


@router.post("/segments/{segment_id:int}/members/csv",
             summary="Add customers from a CSV (header: customer_id, external_id or email)", dependencies=[WRITE])
async def add_members_csv(request: Request, segment_id: int, file: UploadFile = File(...)) -> dict[str, int]:
    try:
        text = (await file.read()).decode("utf-8")
    except UnicodeDecodeError:
        raise DomainError.one("file", "the CSV must be UTF-8") from None
    return _members(request, segment_id, service.parse_members_csv(text), add=True)


def _members(request: Request, segment_id: int, data: MembersIn, *, add: bool) -> dict[str, int]:
    entered, left = _run(request, lambda s, now: service.change_members(
        s, segment=_segment(request, s, segment_id), data=data, add=add, now=now))
    return {"entered": entered, "left": left}


@router.get("/segments/{segment_id:int}/history", summary="Membership history: entries and exits",
             dependencies=[READ])
def history(request: Request, segment_id: int, since_id: int = Query(0, ge=0),
            limit: int = Query(100, ge=1, le=1000)) -> list[dict[str, Any]]:
    return _run(request, lambda s, _now: [
        {**c, "at": c["at"].isoformat()}
        for c in service.changes(s, segment=_segment(request, s, segment_id), since_id=since_id, limit=limit)])


@router.get("/segments/{segment_id:int}/sizes", summary="Segment size at the end of each day (for a chart)",
             dependencies=[READ])
def sizes(request: Request, segment_id: int,
          start: str | None = Query(None, alias="from", description="YYYY-MM-DD; default: the first day"),
          end: str | None = Query(None, alias="to", description="YYYY-MM-DD; default: today (UTC)")
          ) -> list[dict[str, Any]]:
    def go(s: Any, now: Any) -> list[dict[str, Any]]:
        first, last = service.day_range(start, end)
        return service.sizes(s, segment=_segment(request, s, segment_id), today=now.date(), start=first, end=last)
    return _run(request, go)


# --- RFM / LTV --------------------------------------------------------------------------------------------

@router.get("/rfm", tags=["rfm"], summary="RFM cell table of a site (stored, or computed as of a date)",
            dependencies=[READ])
def rfm_cells(request: Request, site: str,
              as_of: date | None = Query(None, description="Observation end (UTC day): computed from the orders "
                                                           "up to that day, not stored"),
              ltv: bool = Query(False, description="With as_of: also fit BG/NBD + Gamma-Gamma")) -> dict[str, Any]:
    def go(s: Any, now: Any) -> dict[str, Any]:
        site_id = _site_id(request, s, site)
        if as_of is None:
            if ltv:
                raise DomainError.one("ltv", "only with as_of: the stored table has the LTV of the last recompute "
                                             "with ltv=true")
            return {"site": site, "cells": analytics.cell_table(s, site_id=site_id)}
        return {"site": site, **analytics.rfm_report(s, site_id=site_id, now=now, as_of=as_of, ltv=ltv)}
    return jsonable(_run(request, go))


@router.post("/rfm/recompute", tags=["rfm"], summary="Recompute and store RFM scores (and LTV with ltv=true)",
             dependencies=[WRITE])
def rfm_recompute(request: Request, site: str, ltv: bool = False) -> dict[str, Any]:
    return jsonable(_run(request, lambda s, now: analytics.rfm_report(s, site_id=_site_id(request, s, site), now=now,
                                                                      ltv=ltv)))


@router.get("/rfm/config", tags=["rfm"], summary="RFM windows, cells and LTV horizon of a site",
             dependencies=[READ])
def rfm_config_get(request: Request, site: str) -> dict[str, Any]:
    return _run(request, lambda s, now: analytics.rfm_config(s, _site_id(request, s, site), now=now).model_dump(
        mode="json"))


@router.put("/rfm/config", tags=["rfm"], summary="Set RFM windows, cells and LTV horizon",
             dependencies=[WRITE])
def rfm_config_put(request: Request, site: str, body: dict[str, Any] = Body(...)) -> dict[str, Any]:
    return _run_on_site(request, site, lambda s, now: analytics.set_rfm_config(s, site=site, raw=body, now=now).model_dump(
        mode="json"))


@router.get("/rfm/customers/{customer_id}", tags=["rfm"], summary="RFM values, scores, cell and LTV of a customer",
             dependencies=[READ])
def rfm_customer(request: Request, customer_id: int) -> dict[str, Any]:
    def go(s: Any, _now: Any) -> dict[str, Any]:
        row = analytics.customer_scores(s, customer_id=customer_id)
        if row is None:
            raise NotFound("customer_id", f"no RFM scores for customer {customer_id} (no purchases, or not "
                                          "computed yet)")
        return {**row, "monetary": str(row["monetary"]), "ltv": None if row["ltv"] is None else str(row["ltv"]),
                "computed_at": row["computed_at"].isoformat()}
    return _run(request, go)


# --- lifecycle cohorts ------------------------------------------------------------------------------------

@router.get("/cohorts", tags=["cohorts"], summary="Monthly lifecycle table, migrations, the four figures",
            dependencies=[READ])
def cohort_report(request: Request, site: str,
                  as_of: date | None = Query(None, description="Observation end (UTC day)"),
                  first: str | None = Query(None, alias="from", description="First month shown, YYYY-MM"),
                  last: str | None = Query(None, alias="to", description="Last month shown, YYYY-MM")
                  ) -> dict[str, Any]:
    months = {"from": _month(first, "from"), "to": _month(last, "to")}
    return _run_on_site(request, site, lambda s, now: jsonable(analytics.cohort_report(
        s, site=site, now=now, as_of=as_of, first=months["from"], last=months["to"])))


def _month(text: str | None, field: str) -> date | None:
    try:
        return None if text is None else cohorts.parse_month(text)
    except ValueError as exc:
        raise DomainError.one(field, str(exc)) from None


@router.put("/cohorts/threshold", tags=["cohorts"], summary="Override the new/active/sleeping threshold (days)",
             dependencies=[WRITE])
def set_threshold(request: Request, site: str, body: dict[str, Any] = Body(...)) -> dict[str, Any]:
    data = _parse(ThresholdIn, body)
    return _run_on_site(request, site, lambda s, now: analytics.set_threshold(s, site=site, days=data.threshold_days,
                                                                              now=now))


@router.get("/initiatives", tags=["cohorts"], summary="Marketing initiatives on the cohort timeline",
             dependencies=[READ])
def initiatives(request: Request, site: str) -> list[dict[str, Any]]:
    return _run(request, lambda s, _now: jsonable(analytics.list_initiatives(s, site_id=_site_id(request, s, site))))


@router.post("/initiatives", tags=["cohorts"], status_code=201, summary="Record a marketing initiative",
             dependencies=[WRITE])
def add_initiative(request: Request, body: dict[str, Any] = Body(...)) -> dict[str, Any]:
    data = _parse(InitiativeIn, body)
    return _run_on_site(request, data.site, lambda s, now: {"id": analytics.record_initiative(
        s, data=data, source="api", now=now).id})
