"""Plain JSON values from domain values (dates as ISO strings, Decimal as string)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

import orjson

# orjson writes datetimes, dates and times itself, as `isoformat()` does (UTC offsets to the minute, the only
# ones Retento's times carry); Decimal, sets and models go through `_default`.
_OPTIONS = orjson.OPT_PASSTHROUGH_DATACLASS
NULL = orjson.Fragment(b"null")


def jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str | float):
        return value
    try:  # the same result as `_walk`, computed in C; anything unusual (int keys, huge ints) takes the slow path
        return orjson.loads(orjson.dumps(value, default=_default, option=_OPTIONS))
    except TypeError:
        return _walk(value)


def serialised(value: Any) -> orjson.Fragment:
    """`jsonable(value)` already serialised: JSON columns store it as it is, and a serialised value inside
    another one (an order snapshot in an event payload) is embedded without being serialised again."""
    if value is None:
        return NULL
    if type(value) is orjson.Fragment:
        return value
    try:
        return orjson.Fragment(orjson.dumps(value, default=_default, option=_OPTIONS))
    except TypeError:
        return orjson.Fragment(orjson.dumps(_walk(value)))


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, set | frozenset):
        return list(value)
    if hasattr(value, "model_dump"):
        return value.model_dump()
    raise TypeError


def _walk(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str | float | orjson.Fragment):
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _walk(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_walk(v) for v in value]
    if hasattr(value, "model_dump"):
        return _walk(value.model_dump())
    raise TypeError(f"cannot store {type(value).__name__} as JSON")
