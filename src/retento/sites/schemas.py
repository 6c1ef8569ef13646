from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from retento.contacts import check_timezone
from retento.core.money import check_currency


class SiteCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    code: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    name: str = Field(min_length=1, max_length=255)
    currency: str = "RUB"
    currencies: list[str] | None = None
    timezone: str = "Europe/Moscow"
    default_region: str = Field("RU", pattern=r"^[A-Z]{2}$")
    url: str | None = Field(None, max_length=255)

    _currency = field_validator("currency")(classmethod(lambda cls, v: check_currency(v)))
    _tz = field_validator("timezone")(classmethod(lambda cls, v: check_timezone(v)))

    @field_validator("currencies")
    @classmethod
    def _currencies(cls, v: list[str] | None) -> list[str] | None:
        return [check_currency(c) for c in v] if v is not None else None

    @model_validator(mode="after")
    def _default_currencies(self) -> SiteCreate:
        accepted = self.currencies or [self.currency]
        if self.currency not in accepted:
            accepted = [self.currency, *accepted]
        self.currencies = accepted
        return self


class SiteEdit(BaseModel):
    """What may change on a site (not its code nor its main currency)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str | None = Field(None, min_length=1, max_length=255)
    currencies: list[str] | None = Field(None, min_length=1, max_length=20)
    timezone: str | None = None
    default_region: str | None = Field(None, pattern=r"^[A-Z]{2}$")
    url: str | None = Field(None, max_length=255)

    _tz = field_validator("timezone")(classmethod(lambda cls, v: check_timezone(v) if v is not None else v))

    @field_validator("currencies")
    @classmethod
    def _currencies(cls, v: list[str] | None) -> list[str] | None:
        return [check_currency(c) for c in v] if v is not None else None


class ManagerCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=255)
    email: str | None = Field(None, max_length=255)
