"""Shared pieces of domain routers: the App, who is calling, and DomainError -> 4xx JSON naming the field.

`caller` is the single place authentication plugs in: until API keys exist it identifies every request as
the API; the API-keys work swaps this dependency for one that checks the key and its scopes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from fastapi import HTTPException, Request

from retento.bootstrap import App
from retento.errors import DomainError
from retento.history.schemas import ActorType, ChangeContext, Source

T = TypeVar("T")


def get_app(request: Request) -> App:
    return request.app.state.app


def caller(request: Request) -> ChangeContext:
    return ChangeContext(Source.API, ActorType.API_KEY, request.headers.get("X-API-KEY-ID"))


def call(fn: Callable[[], T]) -> T:
    """Run a service call; bad input becomes 4xx with {"message", "errors": {field: reason}}."""
    try:
        return fn()
    except DomainError as exc:
        raise HTTPException(exc.status, detail={"message": exc.message, "errors": exc.as_dict()}) from None
