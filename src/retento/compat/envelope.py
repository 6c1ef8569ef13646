"""RetailCRM's envelope: how /api/v5 reads requests (query `filter[...]`, form fields holding JSON, `apiKey`)
and answers (`{"success": ...}`, its error messages and HTTP codes)."""

from __future__ import annotations

import math
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy.exc import DataError
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException

from retento.apikeys.api import AuthFailed, authenticate
from retento.apikeys.schemas import Principal
from retento.compat import params
from retento.compat.mapping import error_field
from retento.core import parsing
from retento.core.db.engine import read_sessions
from retento.core.db.transactions import transaction
from retento.core.errors import DomainError
from retento.core.limits import BodyTooLarge
from retento.core.rest.problems import nul_in_request, validation_errors
from retento.core.rest.routing import allow_header
from retento.routes import app_of

ENTITY_ERROR = "Errors in the entity format"
INPUT_ERROR = "Errors in the input parameters"
AUTH_MESSAGES = {"missing": '"apiKey" is missing.', "wrong": 'Wrong "apiKey" value.', "scope": "Access denied.",
                 "site": "Access denied.", "rate": "Rate limit exceeded"}


@dataclass
class V5Error(Exception):
    status: int
    message: str
    errors: dict[str, str] | None = None


def fail(message: str = INPUT_ERROR, status: int = 400, **errors: str) -> V5Error:
    return V5Error(status, message, errors or None)


def envelope_error(status: int, message: str, errors: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"success": False, "errorMsg": message}
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status)


class RetailRoute(APIRoute):
    """Every failure of a /api/v5 route answers as RetailCRM does: `{"success": false, "errorMsg", "errors"}`."""

    @staticmethod
    def method_not_allowed(request: Request, allowed: list[str]) -> Response:
        """A path asked with a method it does not have (see retento.core.rest.routing), as RetailCRM answers it."""
        response = envelope_error(405, "Method Not Allowed")
        response.headers.update(allow_header(allowed))
        return response

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                if await nul_in_request(request, form=True):
                    return envelope_error(400, INPUT_ERROR, {"request": "NUL characters are not allowed"})
                return await handler(request)
            except BodyTooLarge as exc:
                return envelope_error(413, "Request Entity Too Large", exc.as_dict())
            except V5Error as exc:
                return envelope_error(exc.status, exc.message, exc.errors)
            except params.BadParameter as exc:
                return envelope_error(400, INPUT_ERROR, exc.as_dict())
            except AuthFailed as exc:
                status = {"rate": 503, "missing": 403, "wrong": 403}.get(exc.kind, 403)
                return envelope_error(status, AUTH_MESSAGES[exc.kind])
            except DomainError as exc:  # a site the key may not use: 403, as RetailCRM; any other a 400
                return envelope_error(403 if exc.status == 403 else 400,
                                      AUTH_MESSAGES["site"] if exc.status == 403 else ENTITY_ERROR,
                                      {error_field(e.field): e.reason for e in exc.errors})
            except RequestValidationError as exc:
                return envelope_error(400, INPUT_ERROR, {e.field: e.reason for e in validation_errors(exc)})
            except HTTPException as exc:
                return envelope_error(exc.status_code if exc.status_code >= 400 else 400, INPUT_ERROR,
                                      {"request": str(exc.detail)})
            except (DataError, OverflowError):
                return envelope_error(400, ENTITY_ERROR, {"request": "a value is out of range"})

        return route


@dataclass
class Call:
    """One /api/v5 request, parsed: who calls, the query and form as nested dicts, the CRM's time zone."""

    session: Session
    principal: Principal
    query: dict[str, Any]
    form: dict[str, Any]
    tz: ZoneInfo
    now: Any
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def plain(self) -> dict[str, Any]:
        """The parameters of the form and the query string together (the form's win), as RetailCRM reads
        `site` or `by` from either."""
        return {**self.query, **self.form}

    def param(self, name: str) -> str | None:
        """A plain parameter from the form or the query string."""
        return params.text(self.plain, name)

    def entity(self, name: str) -> dict[str, Any]:
        """The JSON object in form field `name` (`customer`, `order`)."""
        raw = self.form.get(name)
        if raw in (None, ""):
            raise fail(f"Parameter '{name}' is missing")
        if not isinstance(raw, str):
            raise fail(ENTITY_ERROR, **{name: "must be a JSON object"})
        value = parsing.json_value(raw, root=name)
        if not isinstance(value, dict):
            raise fail(ENTITY_ERROR, **{name: "must be a JSON object"})
        return value

    def filters(self) -> params.Filter:
        return params.Filter(self.query)

    def paging(self) -> tuple[int, int]:
        return params.paging(self.query)


def pagination(limit: int, page: int, total: int) -> dict[str, int]:
    return {"limit": limit, "totalCount": total, "currentPage": page, "totalPageCount": math.ceil(total / limit)}


async def handle(request: Request, scope: str | None, fn: Callable[[Call], Any], *, status: int = 200) -> Response:
    """Parse the request, authenticate (key in `X-API-KEY` or `apiKey`), run `fn` in one transaction."""
    query = params.nested(list(request.query_params.multi_items()))
    form: dict[str, Any] = {}
    if request.method == "POST":
        try:
            form = params.nested(parsing.form_pairs(request.headers.get("content-type"), await request.body()))
        except DomainError as exc:
            raise fail(**exc.as_dict()) from None
    raw_key = request.headers.get("x-api-key") or form.get("apiKey") or query.get("apiKey")
    app = app_of(request)

    def run() -> Any:
        principal = authenticate(request, raw_key if isinstance(raw_key, str) else None, scope)
        with transaction(app.sessions if request.method == "POST" else read_sessions(app.engine)) as s:
            call = Call(s, principal, query, form, ZoneInfo(app.settings.compat_timezone), app.clock.now())
            return fn(call)

    body = await run_in_threadpool(run)
    if isinstance(body, Partial):
        return JSONResponse({"success": False, **body.body}, status_code=body.status)
    return JSONResponse({"success": True, **body}, status_code=status)


@dataclass
class Partial:
    """What a route answers when it stored part of a request (RetailCRM's 460 of the upload methods): the
    transaction commits, and the answer says `"success": false` with this body."""

    status: int
    body: dict[str, Any]
