"""The native API's errors: problem+json naming the bad fields, the route class that turns every failure into
one, JSON responses."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from decimal import Decimal
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException

from retento.core import parsing
from retento.core.errors import DomainError, FieldError
from retento.core.rest.routing import allow_header

PROBLEM = "application/problem+json"


class Refused(Exception):
    """A request turned away before its route ran (a missing or wrong key, a missing scope, a rate limit),
    answered as problem+json: a subclass gives `status`, `message`, the `scope` it lacks and `headers`."""

    status: int = 403
    message: str = ""
    scope: str | None = None

    @property
    def headers(self) -> dict[str, str] | None:
        return None


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
    path, query = request.scope["path"], request.scope.get("query_string", b"")  # no URL object built
    if "\x00" in path or "%00" in path:
        return "path"
    if b"%00" in query or b"\x00" in query:
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
        """A path asked with a method it does not have (see retento.core.rest.routing)."""
        return problem(405, [FieldError("method", f"{request.method} is not allowed here; use "
                                                  f"{' or '.join(allowed)}")], headers=allow_header(allowed))

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            return await answer(JsonRequest(request.scope, request.receive), handler)

        return route

    def direct_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The endpoint (`async def endpoint(request) -> Response`) with this route's error answers and without
        FastAPI's request handling: what `routing.direct` serves."""
        endpoint = self.endpoint

        async def route(request: Request) -> Response:
            return await answer(JsonRequest(request.scope, request.receive), endpoint)

        return route


async def answer(request: Request, handler: Callable[[Request], Coroutine[Any, Any, Response]]) -> Response:
    """The handler's response, or the problem+json of its failure."""
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
    except Refused as exc:
        return problem(exc.status, [], detail=exc.message, missing_scope=exc.scope, headers=exc.headers)
    except (DataError, OverflowError) as exc:  # a value the database cannot hold
        return problem(422, [FieldError("body", f"a value is out of range: {type(exc).__name__}")])


def no_route(request: Request) -> Response:
    """A path no route has (see retento.core.rest.routing)."""
    return problem(404, [FieldError("path", f"no such path: {request.url.path}")])


def router(tag: str) -> APIRouter:
    return APIRouter(prefix="/api/v1", tags=[tag], route_class=ProblemRoute, responses=ERRORS)


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
