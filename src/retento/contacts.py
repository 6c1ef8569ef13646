"""Normalisation of contacts and other personal data, shared by every domain that accepts them."""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import phonenumbers
from email_validator import EmailNotValidError, validate_email

_LOCALE = re.compile(r"^[a-z]{2,3}([-_][A-Za-z]{2,4})?$")
_ZONES = frozenset(available_timezones())


def normalize_email(value: str) -> str:
    try:
        result = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(f"invalid email: {exc}") from None
    return result.normalized.lower()


def normalize_phone(value: str, region: str = "RU") -> str:
    """E.164 (+79161234567). Numbers without a country code are read in the site's region."""
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"invalid phone number: {exc}") from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError(f"invalid phone number: {value!r} is not a valid number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def check_timezone(value: str) -> str:
    if value not in _ZONES:
        raise ValueError(f"unknown time zone {value!r} (expected an IANA name such as Europe/Moscow)")
    try:
        ZoneInfo(value)
    except ZoneInfoNotFoundError:
        raise ValueError(f"unknown time zone {value!r}") from None
    return value


def check_locale(value: str) -> str:
    if not _LOCALE.match(value):
        raise ValueError(f"invalid locale {value!r} (expected e.g. ru, en, ru-RU)")
    return value.replace("_", "-")
