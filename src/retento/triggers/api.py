"""/api/v1/triggers: define, switch, inspect pending runs and the run log, dry run, templates."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Response
from pydantic import AfterValidator, BaseModel, Field

from retento.apikeys.api import require
from retento.app import App
from retento.core import limits, parsing
from retento.core.db.transactions import transaction
from retento.core.rest.problems import ERRORS, ProblemRoute
from retento.routes import app_of
from retento.triggers import service, templates
from retento.triggers.schemas import (
    DryRunIn,
    DryRunOut,
    ExplainOut,
    FiredOut,
    RunOut,
    TimerOut,
    TriggerIn,
    TriggerOut,
    TriggerPatch,
)
from retento.triggers.wiring import engine_of

router = APIRouter(prefix="/api/v1", tags=["triggers"], route_class=ProblemRoute, responses=ERRORS,
                   dependencies=[Depends(require("triggers:manage"))])
AppDep = Annotated[App, Depends(app_of)]
Limit = Annotated[int, Query(ge=1, le=1000)]
EntityId = Annotated[int | None, Query(ge=1, le=parsing.INT64_MAX)]


class TemplateIn(BaseModel):
    params: Annotated[dict[str, Any], AfterValidator(limits.json_size())] = {}
    name: str | None = Field(None, min_length=1, max_length=128)


class DryRunRequest(BaseModel):
    trigger: TriggerIn
    options: DryRunIn = DryRunIn()


def _raw(data: TriggerIn) -> dict[str, Any]:
    return data.model_dump(mode="json", exclude_none=True)


@router.get("/triggers", response_model=list[TriggerOut], summary="List triggers with their pending run counts")
def list_triggers(app: AppDep) -> list[TriggerOut]:
    with transaction(app.sessions) as s:
        return service.list_triggers(s)


@router.post("/triggers", response_model=TriggerOut, status_code=201, summary="Create a trigger")
def create_trigger(app: AppDep, data: TriggerIn) -> TriggerOut:
    with transaction(app.sessions) as s:
        return service.out(service.create_trigger(s, raw=_raw(data), now=app.clock.now()))


@router.get("/triggers/actions", summary="Registered actions and their parameters (JSON Schema)")
def list_actions(app: AppDep) -> list[dict[str, Any]]:
    return [{"type": a.name, "description": a.description, "params": a.schema.model_json_schema()}
            for a in app.parts.actions.values()]


@router.get("/triggers/templates", summary="Ready-made triggers")
def list_templates() -> list[dict[str, Any]]:
    out = []
    for name in templates.names():
        t = templates.load(name)
        out.append({"name": name, "title": t["title"], "title_ru": t["title_ru"], "description": t["description"],
                    "description_ru": t["description_ru"], "params": t.get("params", {})})
    return out


@router.post("/triggers/templates/{name}", response_model=TriggerOut, summary="Install a ready-made trigger")
def install_template(app: AppDep, name: str, data: TemplateIn) -> TriggerOut:
    with transaction(app.sessions) as s:
        trigger, _ = service.install_template(s, name=name, params=data.params, trigger_name=data.name,
                                              now=app.clock.now())
        return service.out(trigger)


@router.post("/triggers/dry-run", response_model=DryRunOut, summary="Evaluate an unsaved definition")
def dry_run_definition(app: AppDep, data: DryRunRequest) -> DryRunOut:
    with transaction(app.sessions) as s:
        return service.dry_run(s, raw=_raw(data.trigger), options=data.options, now=app.clock.now())


@router.get("/triggers/pending", response_model=list[TimerOut], summary="Delayed runs that will fire, in due order",
            description="`X-Total-Count`: how many pending runs match the filters (all pages).")
def pending(app: AppDep, response: Response, trigger_id: int | None = None, order_id: int | None = None,
            customer_id: int | None = None, after_id: int = 0, limit: Limit = 100) -> list[Any]:
    with transaction(app.sessions) as s:
        filters = {"trigger_id": trigger_id, "order_id": order_id, "customer_id": customer_id}
        response.headers["X-Total-Count"] = str(service.count_pending(s, **filters))
        return service.pending(s, **filters, after_id=after_id, limit=limit)


@router.post("/triggers/pending/{timer_id}/fire", response_model=FiredOut, summary="Fire one pending run now",
             description="As the worker fires it when due: the condition is re-checked, run limits apply, the run "
                         "log gets its entry. For trying a delayed trigger out without waiting.")
def fire_one(app: AppDep, timer_id: int) -> FiredOut:
    return service.fire_timer(app.sessions, engine=engine_of(app), timer_id=timer_id)


@router.delete("/triggers/pending/{timer_id}", response_model=TimerOut, summary="Cancel one pending run")
def cancel_one(app: AppDep, timer_id: int) -> Any:
    with transaction(app.sessions) as s:
        return service.cancel_timer(s, timer_id=timer_id, now=app.clock.now())


@router.get("/triggers/runs", response_model=list[RunOut], summary="Run log: why a trigger did or did not fire")
def runs(app: AppDep, order_id: int | None = None, customer_id: int | None = None, trigger_id: int | None = None,
         after_id: int = 0, limit: Limit = 100) -> list[Any]:
    with transaction(app.sessions) as s:
        return service.runs(s, order_id=order_id, customer_id=customer_id, trigger_id=trigger_id,
                            after_id=after_id, limit=limit)


@router.get("/orders/{order_id}/trigger-runs", response_model=list[RunOut], summary="Run log of one order")
def order_runs(app: AppDep, order_id: int, after_id: int = 0, limit: Limit = 100) -> list[Any]:
    return runs(app, order_id=order_id, after_id=after_id, limit=limit)


@router.get("/customers/{customer_id}/trigger-runs", response_model=list[RunOut], summary="Run log of one customer")
def customer_runs(app: AppDep, customer_id: int, after_id: int = 0, limit: Limit = 100) -> list[Any]:
    return runs(app, customer_id=customer_id, after_id=after_id, limit=limit)


@router.get("/triggers/{trigger_id:int}", response_model=TriggerOut, summary="One trigger")
def get_trigger(app: AppDep, trigger_id: int) -> TriggerOut:
    with transaction(app.sessions) as s:
        return service.out(service.get_trigger(s, trigger_id))


@router.put("/triggers/{trigger_id:int}", response_model=TriggerOut, summary="Replace a trigger's definition")
def update_trigger(app: AppDep, trigger_id: int, data: TriggerIn) -> TriggerOut:
    with transaction(app.sessions) as s:
        t = service.update_trigger(s, trigger=service.get_trigger(s, trigger_id), raw=_raw(data), now=app.clock.now())
        return service.out(t)


@router.patch("/triggers/{trigger_id:int}", response_model=TriggerOut,
              summary="Switch a trigger on or off, or its debug switch (`debug_minutes`)")
def set_active(app: AppDep, trigger_id: int, data: TriggerPatch) -> TriggerOut:
    with transaction(app.sessions) as s:
        t, now = service.get_trigger(s, trigger_id), app.clock.now()
        if data.active is not None:
            t = service.set_active(s, trigger=t, active=data.active, now=now)
        if data.debug_minutes is not None:
            t = service.set_debug(s, trigger=t, minutes=data.debug_minutes, now=now)
        return service.out(t)


@router.delete("/triggers/{trigger_id:int}", summary="Delete a trigger (its pending runs are cancelled)")
def delete_trigger(app: AppDep, trigger_id: int) -> dict[str, int]:
    with transaction(app.sessions) as s:
        n = service.delete_trigger(s, trigger=service.get_trigger(s, trigger_id), now=app.clock.now())
        return {"cancelled": n}


@router.post("/triggers/{trigger_id:int}/cancel-pending", summary="Cancel every pending run of a trigger")
def cancel_all(app: AppDep, trigger_id: int) -> dict[str, int]:
    with transaction(app.sessions) as s:
        n = service.cancel_pending(s, trigger=service.get_trigger(s, trigger_id), now=app.clock.now())
        return {"cancelled": n}


@router.get("/triggers/{trigger_id:int}/explain", response_model=ExplainOut,
            summary="Why a trigger did or did not fire for an order, a customer or one event",
            description="Give exactly one of `order`, `customer` (their last `limit` events) or `event`. Each event is "
                        "evaluated again: listened to (type, name, sites)? loop rules? the condition, and which part "
                        "is false with the values its sub-expressions gave; a run limit; what the run log and the "
                        "delayed runs recorded.")
def explain(app: AppDep, trigger_id: int, order: EntityId = None, customer: EntityId = None, event: EntityId = None,
            limit: Limit = 100) -> ExplainOut:
    with transaction(app.sessions) as s:
        return service.explain(s, trigger=service.get_trigger(s, trigger_id), order_id=order, customer_id=customer,
                               event_id=event, limit=limit, max_depth=app.settings.trigger_max_depth)


@router.post("/triggers/{trigger_id:int}/dry-run", response_model=DryRunOut, summary="Evaluate a saved trigger")
def dry_run(app: AppDep, trigger_id: int, options: Annotated[DryRunIn, Body()] = DryRunIn()) -> DryRunOut:
    with transaction(app.sessions) as s:
        t = service.get_trigger(s, trigger_id)
        return service.dry_run(s, raw=t.definition, options=options, now=app.clock.now())
