"""Input and output shapes of segments, RFM and cohorts (the same through the API, YAML files and the CLI)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from retento.core.dates import AwareDatetime
from retento.core.parsing import Flag


class Kind(StrEnum):
    DYNAMIC = "dynamic"
    STATIC = "static"


class SegmentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    site: str = Field(min_length=1, max_length=64)
    code: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_\-]*$")
    name: str = Field(min_length=1, max_length=255)
    description: str | None = None
    kind: Kind = Kind.DYNAMIC
    rules: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _rules(self) -> SegmentCreate:
        if self.kind == Kind.DYNAMIC and self.rules is None:
            raise ValueError("a dynamic segment needs rules")
        if self.kind == Kind.STATIC and self.rules is not None:
            raise ValueError("a static segment has no rules: add members instead")
        return self


class SegmentEdit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=255)
    description: str | None = None
    rules: dict[str, Any] | None = None
    active: Flag | None = None


class SegmentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    site_id: int
    code: str
    name: str
    description: str | None
    kind: str
    rules: dict[str, Any] | None
    active: bool
    time_dependent: bool
    size: int
    computed_at: datetime | None
    created_at: datetime
    updated_at: datetime


class PreviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    site: str
    rules: dict[str, Any]
    sample: int = Field(10, ge=0, le=100)


class MembersIn(BaseModel):
    """Customers to add to or remove from a static segment: by id, externalId or email."""

    model_config = ConfigDict(extra="forbid")

    customer_ids: list[int] = Field(default_factory=list, max_length=100_000)
    external_ids: list[str] = Field(default_factory=list, max_length=100_000)
    emails: list[str] = Field(default_factory=list, max_length=100_000)


class Cell(BaseModel):
    """A named RFM cell: R and F score ranges (inclusive). The first matching cell wins."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    r: tuple[int, int] = (1, 5)
    f: tuple[int, int] = (1, 5)

    @model_validator(mode="after")
    def _ranges(self) -> Cell:
        for rng in (self.r, self.f):
            if not 1 <= rng[0] <= rng[1] <= 5:
                raise ValueError("score ranges are [low, high] within 1..5")
        return self


# A partition of the 5x5 R/F grid (the widely used RFM segment map); every customer lands in one cell.
DEFAULT_CELLS = [
    Cell(name="champions", r=(5, 5), f=(4, 5)),
    Cell(name="loyal", r=(3, 4), f=(4, 5)),
    Cell(name="potential", r=(4, 5), f=(2, 3)),
    Cell(name="new", r=(5, 5), f=(1, 1)),
    Cell(name="promising", r=(4, 4), f=(1, 1)),
    Cell(name="need_attention", r=(3, 3), f=(3, 3)),
    Cell(name="about_to_sleep", r=(3, 3), f=(1, 2)),
    Cell(name="cant_lose", r=(1, 2), f=(5, 5)),
    Cell(name="at_risk", r=(1, 2), f=(3, 4)),
    Cell(name="hibernating", r=(2, 2), f=(1, 2)),
    Cell(name="lost", r=(1, 1), f=(1, 2)),
]


class RfmConfig(BaseModel):
    """How scores are cut: by quintiles (default) or by fixed windows per dimension; named cells; LTV horizon.

    `recency_days`: four day windows, e.g. [30, 60, 120, 240]: bought within 30 days scores 5, within 60
    scores 4, ... older than 240 scores 1. `frequency` / `monetary`: four thresholds; a value above the
    k-th threshold scores k+1.
    """

    model_config = ConfigDict(extra="forbid")

    recency_days: list[int] | None = Field(None, min_length=4, max_length=4)
    frequency: list[int] | None = Field(None, min_length=4, max_length=4)
    monetary: list[Decimal] | None = Field(None, min_length=4, max_length=4)
    cells: list[Cell] = Field(default_factory=lambda: list(DEFAULT_CELLS), min_length=1)
    prediction_days: int = Field(90, gt=0, le=3650)
    ltv_months: int = Field(12, gt=0, le=120)
    discount_rate: float = Field(0.01, ge=0, lt=1, description="Monthly discount rate for LTV")

    @model_validator(mode="after")
    def _sorted(self) -> RfmConfig:
        for name in ("recency_days", "frequency", "monetary"):
            values = getattr(self, name)
            if values is not None and list(values) != sorted(values):
                raise ValueError(f"{name}: thresholds must be in ascending order")
        return self


class ThresholdIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    threshold_days: int | None = Field(..., gt=0, le=3650, description="null returns to the computed median")


class InitiativeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    site: str = Field(min_length=1, max_length=64)
    kind: str = Field("campaign", pattern=r"^(campaign|trigger|loyalty|chain|other)$")
    name: str = Field(min_length=1, max_length=255)
    started_at: AwareDatetime
    ended_at: AwareDatetime | None = None
    idempotency_key: str | None = Field(None, max_length=200)
