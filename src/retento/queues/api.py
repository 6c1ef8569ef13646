"""/api/v1/work: queues of deferred work, their dead letters, retry and drop (key scope `work:manage`, for
every site: a key restricted to some sites is refused)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Path, Query

from retento.apikeys.api import require
from retento.apikeys.schemas import Principal
from retento.app import App
from retento.core import parsing
from retento.core.db.engine import read_sessions
from retento.core.db.transactions import transaction
from retento.core.errors import DomainError, FieldError
from retento.core.rest.problems import router as v1_router
from retento.queues import service
from retento.queues.schemas import DeadOut, IdsIn, IdsOut, QueueOut
from retento.routes import app_of

router = v1_router("work")
AppDep = Annotated[App, Depends(app_of)]


def _operator(principal: Annotated[Principal, Depends(require("work:manage"))]) -> Principal:
    if principal.site_ids is not None:
        raise DomainError([FieldError("X-API-Key", "queues hold every site's work: a key for all sites is needed")],
                          status=403)
    return principal


Operator = Annotated[Principal, Depends(_operator)]


@router.get("/work", response_model=list[QueueOut], summary="Queues of deferred work with counts and oldest due")
def list_queues(app: AppDep, _: Operator) -> Any:
    with transaction(read_sessions(app.engine)) as s:
        return service.overview(s, app.work, now=app.clock.now())


@router.get("/work/{queue}/dead", response_model=list[DeadOut], summary="Dead letters of a queue, oldest first")
def list_dead(app: AppDep, _: Operator, queue: Annotated[str, Path(max_length=64)],
              after_id: Annotated[int, Query(ge=0, le=parsing.INT64_MAX)] = 0,
              limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> Any:
    with transaction(read_sessions(app.engine)) as s:
        return service.dead(s, app.work, name=queue, after_id=after_id, limit=limit)


@router.post("/work/{queue}/retry", response_model=IdsOut, summary="Make dead work due again now")
def retry(app: AppDep, _: Operator, queue: Annotated[str, Path(max_length=64)], data: IdsIn) -> Any:
    with transaction(app.sessions) as s:
        return {"ids": service.retry(s, app.work, name=queue, ids=data.ids, now=app.clock.now())}


@router.post("/work/{queue}/drop", response_model=IdsOut, summary="Give dead work up for good")
def drop(app: AppDep, _: Operator, queue: Annotated[str, Path(max_length=64)], data: IdsIn) -> Any:
    with transaction(app.sessions) as s:
        return {"ids": service.drop(s, app.work, name=queue, ids=data.ids, now=app.clock.now())}
