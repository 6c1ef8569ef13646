"""Console users: roles and what each may do, and the validated input of a new user."""

from __future__ import annotations

from zoneinfo import available_timezones

from pydantic import BaseModel, Field, field_validator

ROLES = ("admin", "marketer", "operator", "viewer")
LOCALES = ("en", "ru")
MIN_PASSWORD = 10

# What each role may change (POST), by area; every role reads every page of its sites. A viewer changes no data:
# "self" is only the user's own session and preferences (sign out, language, time zone).
AREAS = {
    "admin": {"admin", "marketing", "operations", "self"},
    "marketer": {"marketing", "self"},
    "operator": {"operations", "self"},
    "viewer": {"self"},
}


def may(role: str, area: str) -> bool:
    """Whether a user of `role` may change things in `area` (admin, marketing, operations, self)."""
    return area in AREAS.get(role, set())


class UserCreate(BaseModel):
    email: str = Field(min_length=3, max_length=255)
    name: str = Field("", max_length=255)
    role: str
    password: str = Field(min_length=MIN_PASSWORD, max_length=1000)
    site_ids: list[int] | None = None
    locale: str = "en"
    timezone: str = "UTC"

    @field_validator("email")
    @classmethod
    def _email(cls, v: str) -> str:
        v = v.strip().lower()
        if "@" not in v or v.startswith("@") or v.endswith("@"):
            raise ValueError("give an email address / укажите адрес электронной почты")
        return v

    @field_validator("role")
    @classmethod
    def _role(cls, v: str) -> str:
        if v not in ROLES:
            raise ValueError(f"must be one of {', '.join(ROLES)}")
        return v

    @field_validator("locale")
    @classmethod
    def _locale(cls, v: str) -> str:
        if v not in LOCALES:
            raise ValueError(f"must be one of {', '.join(LOCALES)}")
        return v

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, v: str) -> str:
        if v not in available_timezones():
            raise ValueError("unknown time zone (IANA name, e.g. Europe/Moscow)")
        return v
