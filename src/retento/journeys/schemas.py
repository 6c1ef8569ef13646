"""The journey definition: one schema for the API (`/api/v1/journeys`) and YAML files (`retento journeys apply`).
Pydantic checks each part; `engine.check_graph` checks the steps as a whole (references, reachability, branches
with an else, waits with a timeout) and names the wrong part (`steps.3.else`)."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from retento.triggers.actions import template_text

StepId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
Label = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\s,][^,]*$")]
Condition = Annotated[str, Field(min_length=1, max_length=5000)]
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
ENTRY_KINDS = ("customer_created", "email_confirmed", "segment_entered", "event")
# What a wait or an exit can listen for, and the domain event it is.
EVENT_KINDS = {"opened": "message_read", "read": "message_read", "clicked": "message_clicked",
               "ordered": "order_created", "email_confirmed": "email_confirmed", "unsubscribed": "unsubscribed",
               "segment_left": "segment_left", "segment_entered": "segment_entered", "custom": "custom"}
MESSAGE_KINDS = ("opened", "read", "clicked")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Duration(Strict):
    """How long: minutes, hours and days are summed."""

    minutes: int = Field(0, ge=0, le=525600 * 10)
    hours: int = Field(0, ge=0, le=87600 * 10)
    days: int = Field(0, ge=0, le=3650 * 10)

    @property
    def total_minutes(self) -> int:
        return self.minutes + self.hours * 60 + self.days * 1440


class Entry(Strict):
    """Who enters: a new customer (with one of `entry_points`, any if empty), a customer who confirms the email,
    one who enters `segment`, or any event of type `event` (a `custom` one named `event_name`), when `condition`
    (CEL: event, customer, order, now) holds."""

    kind: Literal["customer_created", "email_confirmed", "segment_entered", "event"]
    entry_points: list[Label] = Field(default_factory=list, max_length=50)
    segment: str | None = Field(None, min_length=1, max_length=64)
    event: str | None = Field(None, min_length=1, max_length=64)
    event_name: str | None = Field(None, min_length=1, max_length=128)
    condition: Condition = "true"

    @model_validator(mode="after")
    def _needs(self) -> Entry:
        if self.kind == "segment_entered" and not self.segment:
            raise ValueError("segment_entered needs `segment` (a segment code)")
        if self.kind == "event" and not self.event:
            raise ValueError("an `event` entry needs `event` (an event type, e.g. order_created or custom)")
        if self.entry_points and self.kind != "customer_created":
            raise ValueError("`entry_points` narrows customer_created only")
        return self


class Reentry(Strict):
    """May a customer go through again: never, `after` `days` since the last entry, or always (never two runs at
    once)."""

    policy: Literal["never", "after", "always"] = "never"
    days: int | None = Field(None, ge=1, le=36500)

    @model_validator(mode="after")
    def _days(self) -> Reentry:
        if (self.policy == "after") != (self.days is not None):
            raise ValueError("`days` goes with policy `after` only, and `after` needs it")
        return self


class ExitRule(Strict):
    """Leave the journey when an event happens (`ordered`, `unsubscribed`, `segment_left` of `segment`,
    `email_confirmed`, a `custom` event named `name`) or when `condition` (CEL on the customer, checked before
    every step) holds."""

    event: Literal["ordered", "unsubscribed", "segment_left", "email_confirmed", "custom"] | None = None
    segment: str | None = Field(None, min_length=1, max_length=64)
    name: str | None = Field(None, min_length=1, max_length=128)
    condition: Condition | None = None

    @model_validator(mode="after")
    def _one(self) -> ExitRule:
        if (self.event is None) == (self.condition is None):
            raise ValueError("give an `event` or a `condition`")
        if self.event == "segment_left" and not self.segment:
            raise ValueError("segment_left needs `segment`")
        if self.event == "custom" and not self.name:
            raise ValueError("a custom exit event needs `name`")
        return self

    @property
    def reason(self) -> str:
        if self.condition is not None:
            return "condition"
        return f"{self.event}:{self.segment or self.name}" if (self.segment or self.name) else str(self.event)


class StepBase(Strict):
    id: StepId
    label: str | None = Field(None, max_length=200)  # what the console shows
    next: StepId | None = None  # the step after this one; none: the run finishes here


class Send(StepBase):
    """Send a messaging cascade (one step: one message) to the customer: consent, quiet hours and the frequency cap
    apply as to every message."""

    type: Literal["send"]
    cascade_id: int = Field(gt=0)
    message_class: Literal["marketing", "transactional"] = "marketing"


class Wait(StepBase):
    """Wait `minutes` / `hours` / `days`; with `at` ("HH:MM"), until that local time (the customer's time zone,
    else the site's) after the waiting, the same day if it is still ahead, else the next day."""

    type: Literal["wait"]
    minutes: int = Field(0, ge=0, le=5256000)
    hours: int = Field(0, ge=0, le=876000)
    days: int = Field(0, ge=0, le=36500)
    at: str | None = None

    @field_validator("at")
    @classmethod
    def _at(cls, v: str | None) -> str | None:
        if v is not None and not _HHMM.match(v):
            raise ValueError("must be a time as HH:MM, e.g. 10:00")
        return v

    @property
    def total_minutes(self) -> int:
        return self.minutes + self.hours * 60 + self.days * 1440


class WaitEvent(StepBase):
    """Wait for the customer to open / read / click a message of an earlier send step (`of_step`, by default the
    last one the run went through), to order, to confirm the email, or for a custom event (`name`), at most
    `timeout`; then go to `on_event` or `on_timeout`."""

    type: Literal["wait_event"]
    event: Literal["opened", "read", "clicked", "ordered", "email_confirmed", "custom"]
    name: str | None = Field(None, min_length=1, max_length=128)
    of_step: StepId | None = None
    timeout: Duration | None = None
    on_event: StepId | None = None
    on_timeout: StepId | None = None


class Engaged(Strict):
    """The customer did this with the message of an earlier send step."""

    step: StepId
    did: Literal["opened", "read", "clicked", "delivered"] = "opened"


class Branch(Strict):
    condition: Condition | None = None  # CEL: customer, now
    interest: Label | None = None  # the customer has this interest
    engaged: Engaged | None = None
    next: StepId

    @model_validator(mode="after")
    def _one(self) -> Branch:
        if sum(x is not None for x in (self.condition, self.interest, self.engaged)) != 1:
            raise ValueError("give one of `condition`, `interest`, `engaged`")
        return self


class BranchStep(StepBase):
    """The first branch whose test holds, else `else`."""

    type: Literal["branch"]
    branches: list[Branch] = Field(min_length=1, max_length=50)
    else_: StepId | None = Field(None, alias="else")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Arm(Strict):
    name: Label
    share: int = Field(gt=0, le=100, description="percent of the customers")
    next: StepId


class Split(StepBase):
    """Random split for A/B tests: each customer goes down one arm by its share; `holdout` percent leave the
    journey here (the control group the arms are compared with). Shares and holdout sum to 100."""

    type: Literal["split"]
    arms: list[Arm] = Field(min_length=1, max_length=10)
    holdout: int = Field(0, ge=0, lt=100)

    @model_validator(mode="after")
    def _sum(self) -> Split:
        if sum(a.share for a in self.arms) + self.holdout != 100:
            raise ValueError("the arms' shares and the holdout must sum to 100")
        if len({a.name for a in self.arms}) != len(self.arms):
            raise ValueError("arm names must differ")
        return self


class Tag(StepBase):
    """Add or remove a tag of the customer."""

    type: Literal["add_tag", "remove_tag"]
    tag: Label


class Points(StepBase):
    """Credit loyalty points to the customer's account (once per run)."""

    type: Literal["credit_points"]
    amount: Decimal = Field(gt=0, le=Decimal("1000000000"), decimal_places=2)
    reason: str = Field(min_length=1, max_length=500)
    expires_in_days: int | None = Field(None, ge=1, le=3650)


class Task(StepBase):
    """Create a task for a manager about the customer."""

    type: Literal["create_task"]
    title: str = Field(min_length=1, max_length=500, description="a template: {{ customer.first_name }}")
    text: str | None = Field(None, max_length=10000)
    due_in_minutes: int = Field(0, ge=0, le=525600)
    assignee: int | Literal["customer_manager"] | None = "customer_manager"

    _templates = field_validator("title", "text")(template_text)


class Webhook(StepBase):
    """POST the journey, step and customer as JSON (signed with HMAC-SHA256 when a secret is given)."""

    type: Literal["webhook"]
    url: str = Field(min_length=8, max_length=2000, pattern=r"^https?://\S+$")
    secret: str | None = Field(None, min_length=8, max_length=200)


class ExitStep(StepBase):
    """Leave the journey here."""

    type: Literal["exit"]


Step = Annotated[Send | Wait | WaitEvent | BranchStep | Split | Tag | Points | Task | Webhook | ExitStep,
                 Field(discriminator="type")]


class JourneyIn(Strict):
    name: str = Field(min_length=1, max_length=128)
    site: str = Field(min_length=1, max_length=64)
    description: str | None = Field(None, max_length=2000)
    active: bool = True
    entry: Entry
    reentry: Reentry = Reentry()
    exits: list[ExitRule] = Field(default_factory=list, max_length=50)
    start: StepId | None = None  # the first step; by default the first listed
    steps: list[Step] = Field(min_length=1, max_length=200)


class JourneyOut(BaseModel):
    id: int
    name: str
    site: str
    active: bool
    version: int
    versions: int
    definition: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    runs: dict[str, int]  # per state


class RunOut(BaseModel):
    id: int
    journey_id: int
    version: int
    customer_id: int
    state: str
    step: str
    phase: str
    due_at: datetime | None
    entered_at: datetime
    finished_at: datetime | None
    exit_reason: str | None
    reason: str | None
    steps: list[dict[str, Any]]


class MigrateIn(Strict):
    """Move the active runs of older versions to the current one (each stays at the step of the same id; runs
    whose step the current version lacks stay where they are)."""

    from_version: int | None = Field(None, ge=1)
