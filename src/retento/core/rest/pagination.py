"""Cursor pagination and the query parameters every list route shares."""

from __future__ import annotations

import base64
from typing import Annotated, Any

from fastapi import Query
from pydantic import Field

from retento.core.dates import AwareDatetime
from retento.core.errors import DomainError


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, value = text.partition(":")
        last = int(value)
        if prefix != "id" or last < 0:
            raise ValueError
        return last
    except (ValueError, UnicodeDecodeError):
        raise DomainError.one("cursor", "invalid cursor: pass next_cursor from the previous page") from None


def page(rows: list[Any], limit: int) -> tuple[list[Any], str | None]:
    """Rows fetched with limit + 1 -> (this page, cursor of the next page or None)."""
    if len(rows) > limit:
        rows = rows[:limit]
        return rows, encode_cursor(rows[-1].id)
    return rows, None


Cursor = Annotated[str | None, Field(None, max_length=200, description="next_cursor of the previous page")]


# Query parameters every list route shares (declared once, so they read the same in the OpenAPI document).
SiteParam = Annotated[str | None, Query(max_length=64, description="Site code")]


CreatedFrom = Annotated[AwareDatetime | None, Query(description="created_at >= this")]


CreatedTo = Annotated[AwareDatetime | None, Query(description="created_at < this")]


CursorParam = Annotated[str | None, Query(max_length=200)]


Limit = Annotated[int, Query(ge=1, le=100)]
