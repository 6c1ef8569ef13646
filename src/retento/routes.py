"""The shared shape of the native API's create, edit and list routes, and the App of a request."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from fastapi import Request, Response
from pydantic import BaseModel
from sqlalchemy.orm import Session, sessionmaker

from retento.apikeys.idempotency import Idempotency
from retento.apikeys.schemas import Principal
from retento.app import App
from retento.core.db.engine import read_sessions
from retento.core.db.transactions import transaction
from retento.core.rest.pagination import decode_cursor, page
from retento.core.rest.problems import respond
from retento.sites.service import get_site

T = TypeVar("T")


P = TypeVar("P", bound=BaseModel)


def create_in_site(request: Request, principal: Principal, idem: Idempotency, site: str,
                   make: Callable[[Session, datetime], BaseModel]) -> Response:
    """POST that creates an entity on a site the key may use, once per Idempotency-Key; 201 with the entity."""
    app = app_of(request)
    with transaction(app.sessions) as s:
        def produce() -> BaseModel:
            get_site(s, site)  # another site than the key's: a 403 naming `site`
            return make(s, app.clock.now())

        result = idem.run(s, principal, produce, now=app.clock.now())
    return respond(result, 201)


def edit_and_return(request: Request, load: Callable[[Session], T], change: Callable[[Session, T, datetime], Any],
                    out: Callable[[Session, T], BaseModel]) -> BaseModel:
    """PATCH: load the (visible) entity, change it and answer with it as it now is, in one transaction."""
    app = app_of(request)
    with transaction(app.sessions) as s:
        entity = load(s)
        change(s, entity, app.clock.now())
        return out(s, entity)


def list_page(request: Request, site: str | None, cursor: str | None, limit: int,
              fetch: Callable[[Session, list[int] | None, int, int], list[Any]],
              out: Callable[[Session, list[Any]], list[BaseModel]], page_model: type[P]) -> P:
    """GET a cursor page: rows of `site` if given (else of every site; the session sees only the key's),
    `fetch(session, site_ids, after_id, limit + 1)` oldest first, then `out` for the page's items."""
    with transaction(reading(request)) as s:
        site_ids = [get_site(s, site).id] if site else None
        rows, nxt = page(fetch(s, site_ids, decode_cursor(cursor), limit + 1), limit)
        return page_model(items=out(s, rows), next_cursor=nxt)


def app_of(request: Request) -> App:
    return request.app.state.app


def reading(request: Request) -> sessionmaker[Session]:
    """Sessions for a read-only route (no write lock on SQLite)."""
    return read_sessions(app_of(request).engine)
