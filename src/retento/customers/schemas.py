"""Input and output shapes of customers; all validation of a single record lives here."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from retento.contacts import check_locale, check_timezone, normalize_email, normalize_phone
from retento.core import limits
from retento.core.dates import AwareDatetime, Day
from retento.core.parsing import Flag


class Channel(StrEnum):
    EMAIL = "email"
    SMS = "sms"
    WHATSAPP = "whatsapp"
    TELEGRAM = "telegram"
    VK = "vk"
    PUSH = "push"


class EntryPoint(StrEnum):
    REGISTRATION = "registration"
    CALLBACK = "callback"
    PURCHASE = "purchase"
    SUBSCRIPTION = "subscription"
    LEAD_MAGNET = "lead_magnet"
    CHAT = "chat"


Label = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\s,][^,]*$")]
Labels = Annotated[list[Label], Field(max_length=limits.LABELS)]
CustomValue = str | int | float | bool | None
Key = Annotated[str, Field(min_length=1, max_length=64)]
CustomFields = Annotated[dict[Key, CustomValue], AfterValidator(limits.check_custom_fields)]


class ConsentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    granted: Flag
    at: AwareDatetime | None = None  # defaults to now
    source: str = Field("api", min_length=1, max_length=64)


class CustomerFields(BaseModel):
    """Every field a customer has; all optional so the same model serves create and edit."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    first_name: str | None = Field(None, max_length=255)
    last_name: str | None = Field(None, max_length=255)
    patronymic: str | None = Field(None, max_length=255)
    email: str | None = Field(None, max_length=320)
    phone: str | None = Field(None, max_length=32)
    telegram_id: str | None = Field(None, max_length=64)
    whatsapp_id: str | None = Field(None, max_length=32)
    vk_id: str | None = Field(None, max_length=64)
    birthday: Day | None = None
    personal_dates: Annotated[dict[Key, Day], Field(max_length=limits.CUSTOM_FIELDS)] | None = None
    timezone: str | None = None
    locale: str | None = None
    custom_fields: CustomFields | None = None
    tags: Labels | None = None
    interests: Labels | None = None
    entry_point: EntryPoint | None = None
    email_confirmed: Flag | None = None
    consents: dict[Channel, ConsentIn] | None = None
    manager_id: int | None = Field(None, gt=0)

    @field_validator("email")
    @classmethod
    def _email(cls, v: str | None) -> str | None:
        return normalize_email(v) if v else None

    @field_validator("phone", "whatsapp_id")
    @classmethod
    def _phone(cls, v: str | None, info: ValidationInfo) -> str | None:
        region = (info.context or {}).get("region", "RU")
        return normalize_phone(v, region) if v else None

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str | None) -> str | None:
        return check_timezone(v) if v else None

    @field_validator("locale")
    @classmethod
    def _locale(cls, v: str | None) -> str | None:
        return check_locale(v) if v else None

    @field_validator("birthday")
    @classmethod
    def _birthday(cls, v: date | None) -> date | None:
        if v is not None and not (date(1900, 1, 1) <= v <= date(2100, 1, 1)):
            raise ValueError("birthday out of range")
        return v

    @field_validator("tags", "interests")
    @classmethod
    def _dedupe(cls, v: list[str] | None) -> list[str] | None:
        return sorted(set(v)) if v is not None else None


class CustomerCreate(CustomerFields):
    site: str = Field(min_length=1, max_length=64, description="Site (shop) code")
    external_id: str | None = Field(None, min_length=1, max_length=64)
    created_at: AwareDatetime | None = None  # for imports of existing customers; default now


class CustomerEdit(CustomerFields):
    """Only the fields present in the request change."""


def changed_fields(model: BaseModel) -> dict[str, Any]:
    return {name: getattr(model, name) for name in model.model_fields_set}
