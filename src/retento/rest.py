"""The native API's shared parts: problem+json errors, API key dependency, Idempotency-Key, cursors."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from http import HTTPStatus
from typing import Annotated, Any, TypeVar

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, Field
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from starlette.exceptions import HTTPException

from retento import parsing
from retento.apikeys import service as apikeys
from retento.apikeys.api import AuthFailed, authenticate_async
from retento.apikeys.models import IdempotentRequest
from retento.apikeys.ratelimit import retry_after_header
from retento.apikeys.schemas import Principal
from retento.app import App
from retento.dates import AwareDatetime
from retento.db import read_sessions, transaction
from retento.errors import Conflict, DomainError, FieldError
from retento.routing import allow_header
from retento.sites.service import get_site

PROBLEM = "application/problem+json"
T = TypeVar("T")
P = TypeVar("P", bound=BaseModel)


class ProblemField(BaseModel):
    field: str = Field(description="The bad field: a dotted path into the body, or a parameter name")
    reason: str


class Problem(BaseModel):
    """An error, as RFC 9457 problem details, with one entry per bad field."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[ProblemField] = []
    missing_scope: str | None = None


def _problem_response(status: int) -> dict[str, Any]:
    return {"model": Problem, "description": HTTPStatus(status).phrase,
            "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}}}


ERRORS: dict[int | str, dict[str, Any]] = {code: _problem_response(code) for code in (400, 401, 403, 404, 409, 413, 422, 429)}


def problem(status: int, errors: list[FieldError], *, detail: str | None = None, **extra: Any) -> JSONResponse:
    headers = extra.pop("headers", None)
    body = Problem(title=HTTPStatus(status).phrase, status=status,
                   detail=detail or "; ".join(f"{e.field}: {e.reason}" for e in errors) or HTTPStatus(status).phrase,
                   errors=[ProblemField(field=e.field, reason=e.reason) for e in errors], **extra)
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status, media_type=PROBLEM, headers=headers)


def validation_errors(exc: RequestValidationError) -> list[FieldError]:
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        if loc and loc[0] in ("body", "query", "path", "header", "cookie"):
            loc = loc[1:]
        out.append(FieldError(".".join(loc) or "body", str(err.get("msg", "invalid")).removeprefix("Value error, ")))
    return out


NUL_ERROR = "NUL characters are not allowed"


async def nul_in_request(request: Request, *, form: bool = False) -> str | None:
    """Where a NUL character hides in the request (no database stores it), or None."""
    if "\x00" in request.url.path or "%00" in request.url.path:
        return "path"
    if "%00" in request.url.query or "\x00" in request.url.query:
        return "query"
    body = await request.body()
    if b"\\u0000" in body or b"\x00" in body or (form and b"%00" in body):
        return "body"
    return None


class JsonRequest(Request):
    """A request whose JSON body FastAPI reads through the one JSON parser (`parsing.json_value`)."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = parsing.json_value(await self.body())
        return self._json


class ProblemRoute(APIRoute):
    """Every failure of a /api/v1 route becomes problem+json naming the bad fields; bad input never a 500."""

    @staticmethod
    def method_not_allowed(request: Request, allowed: list[str]) -> Response:
        """A path asked with a method it does not have (see retento.routing)."""
        return problem(405, [FieldError("method", f"{request.method} is not allowed here; use "
                                                  f"{' or '.join(allowed)}")], headers=allow_header(allowed))

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            request = JsonRequest(request.scope, request.receive)
            try:
                where = await nul_in_request(request)  # reads the body first: BodyTooLarge is answered here
                if where:
                    return problem(422, [FieldError(where, NUL_ERROR)])
                return await handler(request)
            except RequestValidationError as exc:
                return problem(422, validation_errors(exc))
            except HTTPException as exc:  # e.g. a body that is not even parseable
                if isinstance(exc.__cause__, DomainError):  # FastAPI wraps what JsonRequest.json raised
                    return problem(422, exc.__cause__.errors)
                return problem(exc.status_code, [FieldError("body", str(exc.detail))])
            except DomainError as exc:
                return problem(exc.status, exc.errors)
            except AuthFailed as exc:
                headers = {"Retry-After": retry_after_header(exc.retry_after)} if exc.kind == "rate" else None
                if exc.kind in ("missing", "wrong"):
                    headers = {"WWW-Authenticate": 'ApiKey header="X-API-Key"'}
                return problem(exc.status, [], detail=exc.message, missing_scope=exc.scope, headers=headers)
            except (DataError, OverflowError) as exc:  # a value the database cannot hold
                return problem(422, [FieldError("body", f"a value is out of range: {type(exc).__name__}")])

        return route


def no_route(request: Request) -> Response:
    """A path no route has (see retento.routing)."""
    return problem(404, [FieldError("path", f"no such path: {request.url.path}")])


def router(tag: str) -> APIRouter:
    return APIRouter(prefix="/api/v1", tags=[tag], route_class=ProblemRoute, responses=ERRORS)


_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key (`retento apikey create`)")


def require(scope: str) -> Callable[..., Principal]:
    """Dependency: the API key from `X-API-Key`, which must hold `scope`."""

    async def dependency(request: Request, key: Annotated[str | None, Depends(_key_header)]) -> Principal:
        return await authenticate_async(request, key, scope)

    dependency.__name__ = f"require_{scope.replace(':', '_')}"
    return dependency


def json_response(data: Any, status: int = 200) -> Response:
    """Plain data already in the shape of the route's declared response model, serialised the way FastAPI would
    serialise the model (UTC datetimes end in Z, Decimal as a string), without building and re-validating the
    model first. The route keeps `response_model` for the OpenAPI document."""
    return Response(orjson.dumps(data, default=_decimal, option=orjson.OPT_UTC_Z), status_code=status,
                    media_type="application/json")


def respond(result: BaseModel | Response, status: int = 200) -> Response:
    """What `Idempotency.run` gave (a model, or the stored first response) as a response, without FastAPI
    validating the model a second time."""
    return result if isinstance(result, Response) else json_response(result.model_dump(mode="json"), status)


def _decimal(value: Any) -> str:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# --- the shared shape of create, edit and list routes -----------------------------------------------------


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


# --- Idempotency-Key --------------------------------------------------------------------------------------


@dataclass
class Idempotency:
    key: str | None
    request_hash: str

    def run(self, session: Session, principal: Principal, produce: Callable[[], BaseModel], *,
            now: Any, status: int = 201) -> BaseModel | JSONResponse:
        """The stored first response for a repeat; else `produce()` and remember its response in this transaction."""
        if not self.key:
            return produce()
        row = apikeys.find_idempotent(session, key_id=principal.key_id, key=self.key)
        if row is None:
            row = IdempotentRequest(api_key_id=principal.key_id, key=self.key, request_hash=self.request_hash,
                                    status_code=0, response=None, created_at=now)
            try:
                with session.begin_nested():
                    session.add(row)
                    session.flush()
            except IntegrityError:  # the same key arrived concurrently and committed first
                row = apikeys.find_idempotent(session, key_id=principal.key_id, key=self.key)
                if row is None or row.status_code == 0:
                    raise Conflict("Idempotency-Key", "a request with this key is in progress") from None
            else:
                result = produce()
                row.status_code, row.response = status, result.model_dump(mode="json")
                return result
        if row.request_hash != self.request_hash:
            raise Conflict("Idempotency-Key", "this key was already used with a different request")
        return JSONResponse(row.response, status_code=row.status_code, headers={"Idempotent-Replayed": "true"})


async def idempotency(
    request: Request,
    key: Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=200,
                                      description="Repeat a POST safely: the same key and body return the "
                                                  "first response; the same key with another body is a 409")] = None,
) -> Idempotency:
    body = await request.body()
    digest = hashlib.sha256(request.method.encode() + b" " + request.url.path.encode() + b"\n" + body).hexdigest()
    return Idempotency(key, digest)


# --- cursor pagination --------------------------------------------------------------------------------------


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
