"""Input shapes of messaging; validation of a single record lives here."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from retento.core import limits
from retento.core.dates import AwareDatetime
from retento.core.money import check_currency
from retento.core.parsing import Flag
from retento.customers.schemas import Channel


class MessageClass(StrEnum):
    MARKETING = "marketing"
    TRANSACTIONAL = "transactional"


class GoOn(StrEnum):
    NOT_READ = "not_read"
    NOT_DELIVERED = "not_delivered"
    FAILED = "failed"


class Mode(StrEnum):
    ORDERED = "ordered"
    CHEAPEST_READ = "cheapest_read"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class PriceIn(_In):
    price: Decimal = Field(ge=0, max_digits=14, decimal_places=4, description="Per message; per segment for SMS")
    currency: Annotated[str, AfterValidator(check_currency)]
    expected_read_rate: Decimal | None = Field(None, ge=0, le=1, decimal_places=4,
                                               description="Read rate to assume before there is history")


class PolicyIn(_In):
    quiet_start: str | None = Field("21:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="Local HH:MM")
    quiet_end: str | None = Field("09:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    cap_count: int | None = Field(3, ge=1, description="Marketing messages per customer per period; null: none")
    cap_period_hours: int = Field(24, ge=1, le=24 * 90)
    default_language: str = Field("ru", pattern=r"^[a-z]{2}$")

    @model_validator(mode="after")
    def _both(self) -> PolicyIn:
        if (self.quiet_start is None) != (self.quiet_end is None):
            raise ValueError("quiet_start and quiet_end go together")
        return self


class TemplateIn(_In):
    site: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=64, pattern=r"^[\w.-]+$")
    channel: Channel
    language: str = Field("ru", pattern=r"^[a-z]{2}$")
    subject: str | None = Field(None, max_length=1000)
    body: str = Field(min_length=1, max_length=limits.TEXT_CHARS)
    html: str | None = Field(None, max_length=limits.HTML_CHARS)
    provider_template: str | None = Field(None, max_length=128, description="WhatsApp approved template name")

    @model_validator(mode="after")
    def _by_channel(self) -> TemplateIn:
        if self.channel == Channel.EMAIL and not self.subject:
            raise ValueError("subject: required for email")
        if self.html is not None and self.channel not in (Channel.EMAIL, Channel.TELEGRAM):
            raise ValueError("html: only email and telegram templates have HTML")
        if self.provider_template and self.channel != Channel.WHATSAPP:
            raise ValueError("provider_template: only for whatsapp")
        return self


class StepIn(_In):
    channel: Channel
    template: str = Field(min_length=1, max_length=64)
    wait_hours: float = Field(24, ge=0, le=24 * 30, description="Window before the next step")
    go_on: GoOn = GoOn.NOT_READ


class CascadeIn(_In):
    site: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=128)
    mode: Mode = Mode.ORDERED
    steps: list[StepIn] = Field(min_length=1, max_length=10)


class CampaignIn(_In):
    """The audience is exactly one of: `customer_ids`, `segment`, `everyone: true` (every customer of the
    cascade's site) or `rules` (a segment rule tree: who matches it when the campaign starts)."""

    cascade_id: int = Field(gt=0)
    name: str = Field(min_length=1, max_length=128)
    customer_ids: list[int] | None = Field(None, min_length=1, max_length=5_000_000)
    segment: int | Annotated[str, Field(max_length=64)] | None = Field(
        None, description="Segment id or code: its members at start time")
    everyone: Flag | None = Field(None, description="true: every customer of the site at start time")
    rules: Annotated[dict[str, Any], AfterValidator(limits.json_size())] | None = Field(
        None, description="A segment rule tree (docs/segments.md): the customers matching it at start time")
    start_at: AwareDatetime | None = None  # default: now
    message_class: MessageClass = MessageClass.MARKETING

    @field_validator("customer_ids")
    @classmethod
    def _unique(cls, v: list[int] | None) -> list[int] | None:
        return None if v is None else list(dict.fromkeys(v))

    @field_validator("everyone")
    @classmethod
    def _true(cls, v: bool | None) -> bool | None:
        if v is False:
            raise ValueError("give true, or leave it out")
        return v

    @model_validator(mode="after")
    def _audience(self) -> CampaignIn:
        if sum(v is not None for v in (self.customer_ids, self.segment, self.everyone, self.rules)) != 1:
            raise ValueError("give exactly one of customer_ids, segment, everyone and rules")
        return self

    @property
    def audience(self) -> str:
        return ("ids" if self.customer_ids is not None else "segment" if self.segment is not None else
                "everyone" if self.everyone else "rules")


class StartIn(_In):
    customer_id: int = Field(gt=0)
    message_class: MessageClass = MessageClass.MARKETING
    context: Annotated[dict[str, Any], AfterValidator(limits.json_size())] | None = None
    idempotency_key: str | None = Field(None, min_length=1, max_length=160)


class DeviceIn(_In):
    customer_id: int = Field(gt=0)
    token: str = Field(min_length=10, max_length=512)
    platform: str = Field("android", pattern=r"^(android|ios|web)$")
