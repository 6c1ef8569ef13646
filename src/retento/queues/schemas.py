"""Shapes of /api/v1/work."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from retento.core import parsing


class QueueOut(BaseModel):
    queue: str
    label: str
    due: int = Field(description="Waiting and due now")
    later: int = Field(description="Waiting, due later")
    leased: int = Field(description="Held by a worker whose lease is current")
    expired: int = Field(description="Held under a lease that ran out: the worker died or stalled")
    dead: int = Field(description="Given up (attempts used up, or a permanent error), and other states an "
                      "operator acts on (an uncertain message)")
    oldest_due: datetime | None
    notes: list[str] = Field(description="Work waiting for something no worker here can do")


class DeadOut(BaseModel):
    id: int
    state: str
    attempts: int | None
    error: str | None


class IdsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ids: list[Annotated[int, Field(ge=1, le=parsing.INT64_MAX)]] = Field(min_length=1, max_length=1000)


class IdsOut(BaseModel):
    ids: list[int] = Field(description="The ids that were dead and were acted on")
