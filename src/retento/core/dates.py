"""The dates and times Retento accepts: one parser and one range for every input that becomes a stored date.

Every date and date-time a client, an import file or the command line gives is read here, so each one is
stored only if it can also be read back and shown everywhere (UTC, any time zone, RetailCRM's `Y-m-d H:i:s`):

- a date-time is an ISO 8601 / RFC 3339 string *with* an offset (`2026-01-31T10:00:00+03:00`, `...Z`);
  numbers (Unix times) and naive times are refused rather than guessed;
- a date is `YYYY-MM-DD`;
- both lie within 1900-01-01 .. 2200-12-31 (date-times in UTC).

`AwareDatetime` and `Day` are the pydantic types every schema and query parameter uses; a bad value fails
with a ValueError whose message reads well after the field name.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated, Any

from pydantic import BeforeValidator, WithJsonSchema

MIN_DAY = date(1900, 1, 1)
MAX_DAY = date(2200, 12, 31)
MIN_TIME = datetime(1900, 1, 1, tzinfo=UTC)
MAX_TIME = datetime(2200, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
RANGE = "1900-01-01 .. 2200-12-31"
TIME_RANGE_ERROR = "must be between 1900-01-01T00:00:00Z and 2200-12-31T23:59:59Z"
DAY_RANGE_ERROR = "must be between 1900-01-01 and 2200-12-31"
TIME_EXAMPLE = "2026-01-31T10:00:00+03:00"

_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}([.,][0-9]{1,9})?)?"
                   r"([Zz]|[+-][0-9]{2}(:?[0-9]{2}(:?[0-9]{2})?)?)?")
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def in_range(value: datetime) -> datetime:
    """An aware date-time inside the accepted range, as UTC; ValueError if naive or outside."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"must include a time zone offset, e.g. {TIME_EXAMPLE}")
    try:
        utc = value.astimezone(UTC)
    except OverflowError:  # year 1 east of UTC or year 9999 west of it: outside by far
        raise ValueError(TIME_RANGE_ERROR) from None
    if not MIN_TIME <= utc <= MAX_TIME:
        raise ValueError(TIME_RANGE_ERROR)
    return utc


def day_in_range(value: date) -> date:
    if not MIN_DAY <= value <= MAX_DAY:
        raise ValueError(DAY_RANGE_ERROR)
    return value


def parse_time(value: Any) -> datetime:
    """An ISO 8601 date-time with an offset (string, or an aware datetime) -> UTC datetime inside the range."""
    if isinstance(value, datetime):
        return in_range(value)
    if not isinstance(value, str):
        raise ValueError(f"must be a date-time string with an offset, e.g. {TIME_EXAMPLE}")
    text = value.strip()
    if not _TIME.fullmatch(text):
        raise ValueError(f"not a valid datetime: use ISO 8601 with an offset, e.g. {TIME_EXAMPLE}")
    try:
        parsed = datetime.fromisoformat(text.replace(",", ".").upper())
    except ValueError as exc:
        raise ValueError(f"not a valid datetime: {exc}") from None
    return in_range(parsed)


def parse_day(value: Any) -> date:
    """A date `YYYY-MM-DD` (string, or a date) inside the range."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return day_in_range(value)
    if not isinstance(value, str) or not _DAY.fullmatch(value.strip()):
        raise ValueError("not a valid date: use YYYY-MM-DD, e.g. 2026-01-31")
    try:
        return day_in_range(date.fromisoformat(value.strip()))
    except ValueError as exc:
        if str(exc) == DAY_RANGE_ERROR:
            raise
        raise ValueError(f"not a valid date: {exc}") from None


AwareDatetime = Annotated[datetime, BeforeValidator(parse_time), WithJsonSchema(
    {"type": "string", "format": "date-time", "description": f"ISO 8601 with an offset, {RANGE} (UTC)",
     "examples": [TIME_EXAMPLE]})]
Day = Annotated[date, BeforeValidator(parse_day), WithJsonSchema(
    {"type": "string", "format": "date", "description": f"YYYY-MM-DD, {RANGE}", "examples": ["2026-01-31"]})]
