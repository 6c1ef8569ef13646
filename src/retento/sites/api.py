"""/api/v1 sites (reference book)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import Depends, Request
from pydantic import BaseModel, ConfigDict

from retento.apikeys.api import require
from retento.apikeys.schemas import Principal
from retento.core.db.transactions import transaction
from retento.core.rest.problems import router as v1_router
from retento.routes import reading
from retento.sites.service import list_sites

router = v1_router("reference")


class SiteOut(BaseModel):
    id: int
    code: str
    name: str
    currency: str
    currencies: list[str]
    timezone: str
    default_region: str
    url: str | None
    created_at: dt.datetime

    model_config = ConfigDict(from_attributes=True, json_schema_extra={"examples": [{
        "id": 1, "code": "shop", "name": "Shop", "currency": "RUB", "currencies": ["RUB"],
        "timezone": "Europe/Moscow", "default_region": "RU", "url": "https://shop.example",
        "created_at": "2026-03-02T09:00:00Z"}]})


@router.get("/sites", response_model=list[SiteOut], summary="Sites (shops) this key may use")
def sites(request: Request, principal: Annotated[Principal, Depends(require("reference:read"))]) -> list[SiteOut]:
    with transaction(reading(request)) as s:
        return [SiteOut.model_validate(x) for x in list_sites(s)]
