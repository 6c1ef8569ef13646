"""Input of the assist API and CLI (all validation of a single record)."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

Text = Field(min_length=1, max_length=20_000)
ExternalId = Field(min_length=1, max_length=255)
Url = Field(None, max_length=1000, pattern=r"^(https?://|/)\S*$")
MAX_BATCH = 5000


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Language(StrEnum):
    RU = "ru"
    EN = "en"


class TicketIn(_In):
    external_id: str = ExternalId
    subject: str = Field("", max_length=500)
    body: str = Text
    answer: str | None = Field(None, max_length=20_000, description="The answer the customer was given")
    resolution: str | None = Field(None, max_length=255)
    tags: list[str] = Field(default_factory=list, max_length=50)
    language: Language | None = Field(None, description="ru or en; detected from the text when not given")


class TaskIn(_In):
    external_id: str = ExternalId
    title: str = Field(min_length=1, max_length=500)
    description: str = Field("", max_length=20_000)
    status: str = Field("open", min_length=1, max_length=32)
    url: str | None = Url


class DocFileIn(_In):
    path: str = Field(min_length=1, max_length=400, description="The file's path, e.g. guide/orders.md")
    content: str = Field(min_length=1, max_length=2_000_000, description="Markdown or HTML (.html, .htm)")
    url: str | None = Field(None, max_length=1000, pattern=r"^(https?://|/)\S*$",
                            description="The page's URL (default: base_url + path without .md)")


class TicketsIn(_In):
    items: list[TicketIn] = Field(min_length=1, max_length=MAX_BATCH)


class TasksIn(_In):
    items: list[TaskIn] = Field(min_length=1, max_length=MAX_BATCH)


class DocsIn(_In):
    base_url: str = Field("", max_length=1000, pattern=r"^(https?://\S*|/\S*|)$")
    files: list[DocFileIn] = Field(min_length=1, max_length=MAX_BATCH)


class IdentifiersIn(_In):
    names: list[str] = Field(min_length=1, max_length=MAX_BATCH,
                             description="API methods, events, modules the guard accepts")


class AskIn(_In):
    text: str = Field(min_length=1, max_length=20_000, description="The new ticket's or dialog's text")
    k: int = Field(5, ge=1, le=50)


class Product(_In):
    name: str = Field(min_length=1, max_length=500)
    category: str | None = Field(None, max_length=500)


class CatalogueIn(_In):
    products: list[Product] = Field(min_length=1, max_length=10_000)


class Action(StrEnum):
    USED = "used"
    EDITED = "edited"
    DISMISSED = "dismissed"
    NONE = "none"  # answered without a suggestion


class MarkIn(_In):
    ticket: str = Field(min_length=1, max_length=255, description="The ticket's or dialog's reference")
    action: Action
    sources: list[str] = Field(default_factory=list, max_length=50)
    first_response_seconds: float | None = Field(None, ge=0, le=10**8)
    operator_id: int | None = Field(None, gt=0)
    idempotency_key: str = Field(min_length=1, max_length=128,
                                 description="A repeat returns the first mark")


def records(raw: str) -> list[dict[str, Any]]:
    """The objects of a JSON array or JSON Lines text (ValueError saying what is wrong)."""
    try:
        if raw.lstrip().startswith("["):
            data = json.loads(raw)
        else:
            data = [json.loads(line) for line in raw.splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON or JSON Lines (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise ValueError("every record must be a JSON object")
    return data
