"""Sizes Retento accepts, in one place (documented in docs/api.md, "Limits"): what is not a column's own length.

Each limit is checked where the input is parsed (the schemas), so the API, imports and triggers answer the same
clear error naming the field. The request body as a whole is limited by `RETENTO_API_MAX_BODY_BYTES` (413).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from retento.core.errors import DomainError, FieldError

CUSTOM_FIELDS = 100  # custom fields of one customer or order
CUSTOM_VALUE_CHARS = 4096  # characters of one custom field's text value
LABELS = 100  # tags of one customer or order; interests of one customer
FREE_FORM_BYTES = 65_536  # a free-form JSON object (custom event payload, message context, delivery address)
TEXT_CHARS = 65_536  # a message template's text
HTML_CHARS = 1_000_000  # a message template's HTML


def custom_fields_count(count: int) -> None:
    if count > CUSTOM_FIELDS:
        raise ValueError(f"at most {CUSTOM_FIELDS} custom fields (got {count})")


def check_custom_fields(values: dict[str, Any] | None) -> dict[str, Any] | None:
    """Custom fields of one record: at most CUSTOM_FIELDS, text values at most CUSTOM_VALUE_CHARS long."""
    if values is None:
        return None
    custom_fields_count(len(values))
    for key, value in values.items():
        if isinstance(value, str) and len(value) > CUSTOM_VALUE_CHARS:
            raise ValueError(f"the value of {key!r} is {len(value)} characters long; "
                             f"at most {CUSTOM_VALUE_CHARS}")
    return values


def json_size(limit: int = FREE_FORM_BYTES) -> Callable[[Any], Any]:
    """A validator: the value, written as JSON, takes at most `limit` bytes."""

    def check(value: Any) -> Any:
        if value is not None:
            try:
                size = len(orjson.dumps(value, default=str))
            except TypeError:  # integers beyond 64 bits, which orjson does not write
                size = len(json.dumps(value, default=str, ensure_ascii=False).encode())
            if size > limit:
                raise ValueError(f"at most {limit} bytes as JSON (got {size})")
        return value

    return check


class BodyTooLarge(DomainError):
    """The request body passed RETENTO_API_MAX_BODY_BYTES (raised while it is read, so it is never read in full)."""

    def __init__(self, limit: int) -> None:
        super().__init__([FieldError("body", f"the request body is larger than {limit} bytes "
                                             "(RETENTO_API_MAX_BODY_BYTES)")], status=413)


class BodyLimit:
    """ASGI middleware: reading more than `limit` bytes of a request body (or a body that declares more in
    Content-Length) raises BodyTooLarge in whoever reads it; the route classes answer it 413 in their API's
    error format."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        limit, seen = self.limit, 0

        async def limited() -> Message:
            nonlocal seen
            if declared.isdigit() and int(declared) > limit:
                raise BodyTooLarge(limit)
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, limited, send)
