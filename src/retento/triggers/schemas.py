"""The trigger definition: the same schema for the API and for YAML files."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from retento.core.parsing import Flag
from retento.customers.events import CUSTOM

MIN_DELAY_MINUTES = 10
MAX_DELAY_MINUTES = int(68 * 365.25 * 24 * 60)  # 68 years
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


Name = Annotated[str, Field(max_length=128)]  # an event type or name, a site code, a field name


class Delay(BaseModel):
    """Wait this long after the event. With `at`, fire at that local time (the customer's time zone, else the
    site's) `days` days later."""

    model_config = ConfigDict(extra="forbid")

    minutes: int = Field(0, ge=0)
    hours: int = Field(0, ge=0)
    days: int = Field(0, ge=0)
    at: str | None = Field(None, description="HH:MM local time; needs `days`")

    @field_validator("at")
    @classmethod
    def _at(cls, v: str | None) -> str | None:
        if v is not None and not _HHMM.match(v):
            raise ValueError("must be a time as HH:MM, e.g. 10:00")
        return v

    @model_validator(mode="after")
    def _range(self) -> Delay:
        total = self.total_minutes
        if self.at is not None:
            if self.minutes or self.hours:
                raise ValueError("with `at`, give only `days` (fires at that local time N days later)")
            if self.days < 1:
                raise ValueError("with `at`, `days` must be at least 1")
        elif total < MIN_DELAY_MINUTES:
            raise ValueError(f"a delay must be at least {MIN_DELAY_MINUTES} minutes (got {total}); "
                             "leave `delay` out to act at once")
        if total > MAX_DELAY_MINUTES:
            raise ValueError("a delay must be at most 68 years")
        return self

    @property
    def total_minutes(self) -> int:
        return self.minutes + self.hours * 60 + self.days * 1440


class LimitPer(StrEnum):
    CUSTOMER = "customer"
    ORDER = "order"
    TRIGGER = "trigger"


class Limit(BaseModel):
    """At most `max` runs per customer / per order / for the whole trigger, within `period_days` if given."""

    model_config = ConfigDict(extra="forbid")

    per: LimitPer
    max: int = Field(1, ge=1)
    period_days: int | None = Field(None, ge=1, le=36500)


class OnChange(StrEnum):
    KEEP = "keep"
    CANCEL = "cancel"


class CancelOnChange(BaseModel):
    """Pending delayed runs of an entity are cancelled when it changes (only these fields, if listed)."""

    model_config = ConfigDict(extra="forbid")

    policy: OnChange = OnChange.KEEP
    fields: list[Name] = Field(default_factory=list, max_length=100)


class ActionIn(BaseModel):
    """`type` names a registered action; the other keys are its parameters (checked by the action's schema)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(min_length=1, max_length=64)

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class TriggerIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=128)
    description: str | None = Field(None, max_length=2000)
    events: list[Name] = Field(min_length=1, max_length=50, description="Event types the trigger listens to")
    event_names: list[Name] = Field(default_factory=list, max_length=100,
                                    description="For `custom` events: only these names")
    condition: str = Field("true", max_length=10000, description="CEL expression; see docs/triggers.md")
    actions: list[ActionIn] = Field(min_length=1, max_length=20)
    delay: Delay | None = None
    sites: list[Name] = Field(default_factory=list, max_length=100,
                              description="Only events of these sites (codes); all if empty")
    active: Flag = True
    limits: list[Limit] = Field(default_factory=list, max_length=5)
    on_change: CancelOnChange = Field(default_factory=CancelOnChange)
    react_to_own_changes: Flag = Field(False, description="React to changes this trigger made itself")
    max_depth: int | None = Field(None, ge=1, le=100, description="Override of the chain depth limit")

    def listens_to(self, event_type: str, name: str | None) -> bool:
        """The trigger listens to events of this type (and name): `event_names` narrows `custom` events only."""
        if event_type not in self.events:
            return False
        return event_type != CUSTOM or not self.event_names or name in self.event_names


class TriggerOut(BaseModel):
    id: int
    name: str
    active: bool
    version: int
    definition: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    pending: int = 0
    debug_until: datetime | None = Field(None, description="Every evaluation is logged until then (debug switch)")


MAX_DEBUG_MINUTES = 1440


class TriggerPatch(BaseModel):
    """Switch a trigger on or off, and / or its debug switch."""

    model_config = ConfigDict(extra="forbid")

    active: Flag | None = None
    debug_minutes: int | None = Field(None, ge=0, le=MAX_DEBUG_MINUTES,
                                      description="Log every evaluation (matched or not, with the false part) for "
                                                  "this many minutes from now; 0 switches it off")

    @model_validator(mode="after")
    def _something(self) -> TriggerPatch:
        if self.active is None and self.debug_minutes is None:
            raise ValueError("give `active`, `debug_minutes` or both")
        return self


class TimerOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    trigger_id: int
    entity: str
    entity_id: int
    customer_id: int | None
    order_id: int | None
    event_id: int
    due_at: datetime
    state: str
    reason: str | None
    created_at: datetime
    finished_at: datetime | None


class RunOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    trigger_id: int
    at: datetime
    phase: str
    event_id: int | None
    timer_id: int | None
    customer_id: int | None
    order_id: int | None
    outcome: str
    reason: str | None
    actions: list[dict[str, Any]]


class FiredOut(BaseModel):
    """A pending run fired now: the run as it ended (`state`: done, skipped, failed, cancelled) and its run-log
    entry (outcome, reason, each action's result)."""

    timer: TimerOut
    run: RunOut | None


class DryRunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    over: str = Field("events", pattern="^(events|orders|customers)$")
    limit: int = Field(1000, ge=1, le=100000)
    sample: int = Field(10, ge=0, le=100)


class DryRunOut(BaseModel):
    evaluated: int
    matched: int
    sample: list[dict[str, Any]]
    reasons: dict[str, int] = Field(description="How often each reason for not matching occurred")


class ExplainedEvent(BaseModel):
    """One event of the entity and what the trigger made of it."""

    event_id: int
    type: str
    name: str | None
    occurred_at: datetime
    order_id: int | None
    customer_id: int | None
    outcome: str = Field(description="not_listening, skipped, not_matched, error, limited, matched, acted, "
                                     "scheduled, fired, cancelled, failed")
    reason: str
    part: int | None = Field(None, description="The 1-based `&&` part of the condition that is false")
    part_text: str | None = None
    values: dict[str, Any] = Field(default_factory=dict,
                                   description="What the false part's sub-expressions gave on the event")
    limit: str | None = Field(None, description="The run limit that stops a run on this event")
    runs: list[RunOut] = Field(default_factory=list, description="Run-log entries of the trigger on this event")
    timer: TimerOut | None = Field(None, description="The delayed run it scheduled")


class ExplainOut(BaseModel):
    """Why a trigger did or did not fire for an order or customer: each event evaluated again."""

    trigger_id: int
    name: str
    version: int
    active: bool
    entity: str
    entity_id: int
    note: str
    events: list[ExplainedEvent]
