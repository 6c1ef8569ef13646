"""Input and output shapes of manager tasks."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from retento.core.dates import AwareDatetime
from retento.core.parsing import Flag


class TaskCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    title: str = Field(min_length=1, max_length=500)
    text: str | None = Field(None, max_length=10000)
    due_at: AwareDatetime | None = None
    manager_id: int | None = Field(None, gt=0, description="Assignee")
    customer_id: int | None = Field(None, gt=0)
    order_id: int | None = Field(None, gt=0)


class TaskEdit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    done: Flag | None = None
    manager_id: int | None = Field(None, gt=0)
    due_at: AwareDatetime | None = None


class TaskOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    title: str
    text: str | None
    due_at: datetime | None
    manager_id: int | None
    customer_id: int | None
    order_id: int | None
    done: bool
    done_at: datetime | None
    source: str
    actor_type: str
    actor_id: str | None
    created_at: datetime
