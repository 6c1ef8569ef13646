"""/api/v1 history: every change of customers and orders, paged by id."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from retento.apikeys.api import require
from retento.apikeys.schemas import Principal
from retento.core.db.transactions import transaction
from retento.core.rest.problems import router as v1_router
from retento.history import service
from retento.routes import reading
from retento.sites.service import site_codes

router = v1_router("history")


class HistoryOut(BaseModel):
    id: int
    created_at: dt.datetime
    entity: str
    entity_id: int
    site: str | None
    created: bool
    deleted: bool
    source: str
    actor_type: str
    actor_id: str | None
    field: str | None
    old_value: Any = None
    new_value: Any = None


class HistoryPage(BaseModel):
    items: list[HistoryOut]
    next_since_id: int = Field(description="Pass as `since_id` to read on; equals `since_id` when nothing is new")

    model_config = ConfigDict(json_schema_extra={"examples": [{"items": [{
        "id": 311, "created_at": "2026-03-02T09:05:00Z", "entity": "order", "entity_id": 42, "site": "shop",
        "created": False, "deleted": False, "source": "api", "actor_type": "api_key", "actor_id": "1",
        "field": "status", "old_value": "new", "new_value": "complete"}], "next_since_id": 311}]})


@router.get("/history", response_model=HistoryPage, summary="Changes after an id, oldest first")
def read_history(
    request: Request,
    principal: Annotated[Principal, Depends(require("history:read"))],
    since_id: Annotated[int, Query(ge=0, le=2**53)] = 0,
    entity: Annotated[Literal["customer", "order"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> HistoryPage:
    with transaction(reading(request)) as s:
        rows = service.since(s, since_id=since_id, entity=entity, limit=limit)
        codes = site_codes(s)
        items = [HistoryOut(
            id=r.id, created_at=r.created_at, entity=r.entity, entity_id=r.entity_id, site=codes.get(r.site_id),
            created=r.created, deleted=r.deleted, source=r.source, actor_type=r.actor_type, actor_id=r.actor_id,
            field=r.field, old_value=r.old_value, new_value=r.new_value) for r in rows]
        return HistoryPage(items=items, next_since_id=rows[-1].id if rows else since_id)
