"""Dates in the RetailCRM API v5 (/api/v5), read and written the way RetailCRM does: `Y-m-d H:i:s` and
`Y-m-d`, local to the CRM's time zone (`RETENTO_COMPAT_TIMEZONE`), the year always four digits.

Reading keeps Retento's date range (retento.core.dates): a time outside it is refused, never stored. A local
time is taken at its offset in the time zone's own history (Moscow before 1919 was UTC+2:30:17, and is
shown so), so what is written is read back to the same second.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from retento.core.dates import in_range

FORMAT = "Y-m-d H:i:s"
_LOCAL = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})(?: ([0-9]{2}):([0-9]{2}):([0-9]{2}))?")


def parse_datetime(value: Any, tz: ZoneInfo) -> datetime | None:
    """`Y-m-d H:i:s` (or `Y-m-d`, its midnight) in `tz` -> aware UTC datetime; None for no value ("" too).
    Anything else, or a time outside Retento's range, raises ValueError with a message for the field."""
    if value is None or value == "":
        return None
    match = _LOCAL.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"expected a date-time in the format {FORMAT} (or a date Y-m-d)")
    try:
        local = datetime(*(int(part) for part in match.groups() if part is not None), tzinfo=tz)
    except ValueError as exc:
        raise ValueError(f"not a valid date: {exc}") from None
    return in_range(local)


def fmt_datetime(value: datetime | str | None, tz: ZoneInfo) -> str | None:
    """A stored time (aware datetime, or its ISO text in a JSON snapshot) as `Y-m-d H:i:s` in `tz`."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    try:
        local = value.astimezone(tz)
    except OverflowError:  # only a time stored before the range was enforced (year 9999 east of UTC)
        local = value.astimezone(UTC)
    return (f"{local.year:04d}-{local.month:02d}-{local.day:02d} "
            f"{local.hour:02d}:{local.minute:02d}:{local.second:02d}")


def stored_time(value: Any, tz: ZoneInfo) -> Any:
    """A time inside stored JSON (a history value) as `Y-m-d H:i:s`; anything that is not a time stays as it is."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, datetime) and value.tzinfo is not None:
        return fmt_datetime(value, tz)
    return value


def fmt_date(value: date | str | None) -> str | None:
    """A stored date as `Y-m-d`."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = date.fromisoformat(value)
    return f"{value.year:04d}-{value.month:02d}-{value.day:02d}"
