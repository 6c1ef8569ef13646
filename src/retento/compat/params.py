"""RetailCRM API v5 request parameters: the query string and form fields as PHP reads them
(`filter[ids][]=1`, `filter[ids][0]=1`, `filter[email]=x`), and one parser per kind of value a route reads.

Any parameter may arrive as a string, a list or an object (`page[]=1`, `page[a]=1`); a parser accepts only
the shape its parameter has and otherwise raises `BadParameter` naming it (`filter[ids]`), which answers
400 "Errors in the input parameters".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from retento.core import parsing
from retento.core.errors import DomainError, FieldError

LIMITS = ("20", "50", "100")
MAX_PAGE = 1_000_000
MAX_LIST = 1000  # values in one list parameter (ids[], externalIds[], ...)
_KEY_PART = re.compile(r"\[([^\[\]]*)\]")


class BadParameter(DomainError):
    """A request parameter that is missing its shape or value; nothing was read or written."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__([FieldError(name, reason)])


def nested(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """`filter[ids][]=1&filter[ids][]=2&filter[email]=x` -> {"filter": {"ids": ["1", "2"], "email": "x"}}.
    A later pair that disagrees with the shape of an earlier one replaces it."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        path = [key.split("[", 1)[0], *_KEY_PART.findall(key)]
        node = out
        for i, part in enumerate(path):
            if i == len(path) - 2 and path[-1] == "":
                existing = node.get(part)
                node[part] = [*existing, value] if isinstance(existing, list) else [value]
                break
            if i == len(path) - 1:
                if not isinstance(node.get(part), dict):
                    node[part] = value
                break
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
    return out


def _blank(value: Any) -> bool:
    return value is None or value in ("", "None")


def text(params: Mapping[str, Any], name: str, *, field: str | None = None, max_length: int = 255) -> str | None:
    """A single string (`site=shop`); None when absent or empty."""
    value = params.get(name)
    if _blank(value):
        return None
    if not isinstance(value, str):
        raise BadParameter(field or name, "must be a single value, not a list or an object")
    if len(value) > max_length:
        raise BadParameter(field or name, f"at most {max_length} characters")
    return value


def integer(params: Mapping[str, Any], name: str, *, field: str | None = None, lo: int = 0,
            hi: int = parsing.INT64_MAX) -> int | None:
    """A single whole number written in ASCII digits, in [lo, hi]; None when absent or empty."""
    value = text(params, name, field=field, max_length=32)
    if value is None:
        return None
    number = parsing.integer(value, lo=lo, hi=hi)
    if number is None:
        raise BadParameter(field or name, f"must be a whole number {_bounds(lo, hi)}")
    return number


def _bounds(lo: int, hi: int) -> str:
    return f"from {lo} to {hi}" if hi < parsing.INT64_MAX else f"from {lo} (ASCII digits)"


def _values(params: Mapping[str, Any], name: str, field: str) -> list[str] | None:
    value = params.get(name)
    if _blank(value):
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):  # PHP's http_build_query writes lists as `name[0]=a&name[1]=b`
        value = list(value.values())
    if not all(isinstance(v, str) for v in value):
        raise BadParameter(field, "must be a list of values (`name[]=a&name[]=b`), not nested deeper")
    if len(value) > MAX_LIST:
        raise BadParameter(field, f"at most {MAX_LIST} values")
    return value


def texts(params: Mapping[str, Any], name: str, *, field: str | None = None,
          max_length: int = 255) -> list[str] | None:
    """A list of strings (`externalIds[]=a&externalIds[]=b`; one plain value is a list of one)."""
    values = _values(params, name, field or name)
    if values is not None and any(len(v) > max_length for v in values):
        raise BadParameter(field or name, f"each value at most {max_length} characters")
    return values


def integers(params: Mapping[str, Any], name: str, *, field: str | None = None,
             hi: int = parsing.INT64_MAX) -> list[int] | None:
    """A list of non-negative whole numbers (`ids[]=1&ids[]=2`)."""
    values = _values(params, name, field or name)
    if values is None:
        return None
    numbers = [parsing.integer(v, hi=hi) for v in values]
    if any(n is None for n in numbers):
        raise BadParameter(field or name, f"must be a list of whole numbers {_bounds(0, hi)}")
    return numbers  # type: ignore[return-value]


def choice(params: Mapping[str, Any], name: str, options: tuple[str, ...], default: str) -> str:
    value = text(params, name)
    if value is None:
        return default
    if value not in options:
        raise BadParameter(name, f"must be one of {', '.join(options)}")
    return value


def section(params: Mapping[str, Any], name: str) -> dict[str, Any]:
    """A group of parameters (`filter[...]`); absent is empty."""
    value = params.get(name)
    if _blank(value):
        return {}
    if not isinstance(value, dict):
        raise BadParameter(name, f"give its fields as {name}[field]=value")
    return value


def paging(query: Mapping[str, Any]) -> tuple[int, int]:
    """(limit, page): RetailCRM accepts a limit of 20, 50 or 100 and pages from 1."""
    limit = text(query, "limit") or "20"
    if limit not in LIMITS:
        raise BadParameter("limit", "The value you selected is not a valid choice (20, 50 or 100).")
    page = integer(query, "page", lo=1, hi=MAX_PAGE)
    return int(limit), page or 1


class Filter:
    """The `filter[...]` group of a list route: each reader names its field `filter[name]` in errors."""

    def __init__(self, query: Mapping[str, Any]) -> None:
        self.values = section(query, "filter")

    def text(self, name: str, **kw: Any) -> str | None:
        return text(self.values, name, field=f"filter[{name}]", **kw)

    def texts(self, name: str, **kw: Any) -> list[str] | None:
        return texts(self.values, name, field=f"filter[{name}]", **kw)

    def integer(self, name: str, **kw: Any) -> int | None:
        return integer(self.values, name, field=f"filter[{name}]", **kw)

    def integers(self, name: str, **kw: Any) -> list[int] | None:
        return integers(self.values, name, field=f"filter[{name}]", **kw)
