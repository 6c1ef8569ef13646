"""/api/v1/journeys: save definitions (the YAML schema; a changed definition is a new version), read them, switch
them, migrate runs to the current version, list runs with their steps."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query
from pydantic import BaseModel, Field

from retento.apikeys.api import require
from retento.app import App
from retento.core import parsing
from retento.core.db.transactions import transaction
from retento.core.rest.problems import ERRORS, ProblemRoute
from retento.journeys import reports, service
from retento.journeys.schemas import JourneyOut, MigrateIn, RunOut
from retento.routes import app_of

router = APIRouter(prefix="/api/v1", tags=["journeys"], route_class=ProblemRoute, responses=ERRORS,
                   dependencies=[Depends(require("journeys:manage"))])
AppDep = Annotated[App, Depends(app_of)]
Limit = Annotated[int, Query(ge=1, le=1000)]
JourneyId = Annotated[int, Path(ge=1, le=2**31 - 1)]
Definition = Annotated[dict[str, Any], Body(description="A journey definition (docs/journeys.md), as in YAML files")]


class SavedOut(BaseModel):
    journey: JourneyOut
    outcome: str  # created | new version | updated | unchanged


class SwitchIn(BaseModel):
    active: bool


class InstallIn(BaseModel):
    site: str = Field(min_length=1, max_length=64)
    name: str | None = Field(None, min_length=1, max_length=128)  # the journey's name (default: the mechanic's)


class CheckOut(BaseModel):
    ok: bool


@router.get("/journeys", response_model=list[JourneyOut], summary="List journeys with their runs per state")
def list_journeys(app: AppDep, site: str | None = None) -> list[JourneyOut]:
    with transaction(app.sessions) as s:
        journeys = service.list_journeys(s, site=site)
        counts = service.run_counts(s, [j.id for j in journeys])
        return [service.out(s, j, counts[j.id]) for j in journeys]


@router.get("/journeys/mechanics", summary="Ready-made journeys, each installed with one call")
def mechanic_list() -> list[dict[str, Any]]:
    return service.mechanic_list()


@router.post("/journeys/mechanics/{name}", response_model=SavedOut, status_code=201,
             summary="Install a ready-made journey on a site: its templates (RU and EN), cascades and the journey")
def install(app: AppDep, name: Annotated[str, Path(max_length=64)], data: InstallIn) -> SavedOut:
    with transaction(app.sessions) as s:
        journey, outcome = service.install_mechanic(s, name=name, site=data.site, journey_name=data.name,
                                                    now=app.clock.now())
        return SavedOut(journey=service.out(s, journey), outcome=outcome)


@router.post("/journeys", response_model=SavedOut, status_code=201,
             summary="Create a journey, or save a new version of the one with the same site and name",
             description="Checked as a whole; errors name each wrong part (`steps.3.else`). Saving the same "
                         "definition again changes nothing (`unchanged`), so a retried request is harmless.")
def save(app: AppDep, data: Definition) -> SavedOut:
    with transaction(app.sessions) as s:
        journey, outcome = service.apply(s, raw=data, now=app.clock.now())
        return SavedOut(journey=service.out(s, journey), outcome=outcome)


@router.post("/journeys/check", response_model=CheckOut, summary="Check a definition without saving it")
def check(app: AppDep, data: Definition) -> CheckOut:
    with transaction(app.sessions) as s:
        service.parse(s, data)
        return CheckOut(ok=True)


@router.get("/journeys/{journey_id}", response_model=JourneyOut, summary="A journey and its current definition")
def get(app: AppDep, journey_id: JourneyId) -> JourneyOut:
    with transaction(app.sessions) as s:
        return service.out(s, service.get(s, journey_id))


@router.put("/journeys/{journey_id}", response_model=SavedOut, summary="Replace a journey's definition",
            description="A changed definition is a new version: customers inside finish on theirs unless migrated.")
def replace(app: AppDep, journey_id: JourneyId, data: Definition) -> SavedOut:
    with transaction(app.sessions) as s:
        journey, outcome = service.update_journey(s, journey=service.get(s, journey_id), raw=data,
                                                  now=app.clock.now())
        return SavedOut(journey=service.out(s, journey), outcome=outcome)


@router.patch("/journeys/{journey_id}", response_model=JourneyOut, summary="Switch a journey on or off")
def switch(app: AppDep, journey_id: JourneyId, data: SwitchIn) -> JourneyOut:
    with transaction(app.sessions) as s:
        journey = service.switch(s, journey=service.get(s, journey_id), active=data.active, now=app.clock.now())
        return service.out(s, journey)


@router.post("/journeys/{journey_id}/migrate", summary="Move runs of older versions onto the current version")
def migrate(app: AppDep, journey_id: JourneyId, data: MigrateIn) -> dict[str, int]:
    with transaction(app.sessions) as s:
        return service.migrate(s, journey=service.get(s, journey_id), from_version=data.from_version)


@router.get("/journeys/{journey_id}/runs", response_model=list[RunOut], summary="Runs with the steps they took")
def runs(app: AppDep, journey_id: JourneyId, state: str | None = None,
         customer_id: Annotated[int | None, Query(ge=1, le=parsing.INT64_MAX)] = None, after_id: int = 0,
         limit: Limit = 100) -> list[RunOut]:
    with transaction(app.sessions) as s:
        service.get(s, journey_id)
        return service.list_runs(s, journey_id=journey_id, customer_id=customer_id, state=state, after_id=after_id,
                                 limit=limit)


@router.get("/journeys/{journey_id}/report", summary="Funnel and money: per step reached, sent, opened, clicked, "
            "converted; exits; revenue by last touch; cost per conversion; A/B uplift against the holdout")
def report(app: AppDep, journey_id: JourneyId, version: Annotated[int | None, Query(ge=1, le=100000)] = None,
           window_days: Annotated[int, Query(ge=1, le=365)] = 7) -> dict[str, Any]:
    with transaction(app.sessions) as s:
        return reports.report(s, journey=service.get(s, journey_id), version=version, window_days=window_days)
