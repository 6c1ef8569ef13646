"""Stored JSON: datetimes as `isoformat()` writes them, Decimal as its string, serialised values embedded."""

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import orjson
from pydantic import TypeAdapter

from retento.core.jsonable import jsonable, serialised

PARSED = TypeAdapter(datetime).validate_python  # how API and import input arrives


def test_times_as_isoformat():
    values = [
        datetime(2026, 3, 2, 9, tzinfo=timezone.utc),
        datetime(2026, 3, 2, 0, 30, 0, 5, tzinfo=timezone(timedelta(hours=3))),
        datetime(999, 1, 1, 23, 59, 59, 999999, tzinfo=timezone.utc),
        datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
        datetime(2026, 7, 1, 12, tzinfo=ZoneInfo("Europe/Moscow")),
        datetime(2026, 1, 2, 3, 4, 5),
        PARSED("2025-01-02T03:04:05.5+03:00"),
        PARSED("2025-01-02T03:04:05Z"),
        date(2026, 1, 2),
        date(5, 1, 1),
    ]
    assert jsonable(values) == [v.isoformat() for v in values]
    assert orjson.loads(orjson.dumps(serialised(values))) == [v.isoformat() for v in values]


def test_values_and_fragments():
    value = {"total": Decimal("10.50"), "tags": {"a"}, "none": None, "n": 2**70}
    assert jsonable(value) == {"total": "10.50", "tags": ["a"], "none": None, "n": 2**70}
    inner = serialised({"x": Decimal("1.0")})
    assert serialised(inner) is inner
    assert orjson.loads(orjson.dumps({"order": inner})) == {"order": {"x": "1.0"}}
    assert orjson.dumps(serialised(None)) == b"null"
