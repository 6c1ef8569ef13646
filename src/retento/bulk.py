"""/api/v1 batch upserts (`POST /customers/batch`, `POST /orders/batch`): the request and answer every one has.

Items are checked one by one, so a bad item is reported (`items.N.field`) and the others are stored; all of it
in one transaction, once per Idempotency-Key. The work is `batch.upsert_items` over the domain's `upsert_many`,
the write path imports use too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeVar

from fastapi import Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from sqlalchemy.orm import Session

from retento import batch
from retento.apikeys.idempotency import Idempotency
from retento.apikeys.schemas import Principal
from retento.batch import Outcome
from retento.core.db.transactions import transaction
from retento.core.errors import DomainError
from retento.core.rest.problems import ProblemField, respond
from retento.routes import app_of

MAX_ITEMS = 1000
M = TypeVar("M", bound=BaseModel)


def batch_in(noun: str, example: dict[str, Any]) -> type[BaseModel]:
    """The request model (`CustomerBatchIn`, ...): `items`, each an object as the single create route takes it."""
    return create_model(
        f"{noun.title()}BatchIn",
        __config__=ConfigDict(extra="forbid", json_schema_extra={"examples": [{"items": [example]}]}),
        items=(list[dict[str, Any]], Field(
            min_length=1, max_length=MAX_ITEMS,
            description=f"Up to {MAX_ITEMS:,} {noun}s, each as `POST /{noun}s` takes one. One with the `external_id` "
                        f"of a {noun} of its site updates that {noun} (the fields it gives); others are created.")))


class BatchItemResult(BaseModel):
    index: int = Field(description="Position in `items`")
    outcome: Literal["created", "updated", "unchanged", "error"]
    id: int | None = Field(None, description="Retento's id of the stored item")
    external_id: str | None = None
    status: int | None = Field(None, description="For an error: the status this item alone would have had")
    errors: list[ProblemField] = Field(default_factory=list, description="For an error: fields as `items.N.field`")


class BatchOut(BaseModel):
    """How many items were created, updated, left unchanged (they already held those values) and refused; a
    result per item, in order."""

    created: int
    updated: int
    unchanged: int
    failed: int
    results: list[BatchItemResult]

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "created": 1, "updated": 1, "unchanged": 0, "failed": 1, "results": [
            {"index": 0, "outcome": "created", "id": 17, "external_id": "c-1001", "errors": []},
            {"index": 1, "outcome": "updated", "id": 9, "external_id": "c-1002", "errors": []},
            {"index": 2, "outcome": "error", "external_id": "c-1003", "status": 422,
             "errors": [{"field": "items.2.email", "reason": "invalid email"}]}]}]})


def field(n: int, name: str) -> str:
    return f"items.{n}" if name in ("body", "") else f"items.{n}.{name}"


def upsert(request: Request, principal: Principal, idem: Idempotency, items: list[dict[str, Any]], *,
           parse: Callable[[Session, Any], Any], store: Callable[..., list[Outcome]]) -> Response:
    """The route: one transaction, once per Idempotency-Key; 200 with a result per item."""
    app = app_of(request)
    with transaction(app.sessions) as s:
        def produce() -> BatchOut:
            outcomes = batch.upsert_items(s, items, parse=parse, store=store, field=field, ctx=principal.ctx,
                                          now=app.clock.now())
            return _out(items, outcomes)

        result = idem.run(s, principal, produce, now=app.clock.now(), status=200)
    return respond(result, 200)


def _out(items: list[dict[str, Any]], outcomes: list[Outcome]) -> BatchOut:
    results = []
    for n, (raw, o) in enumerate(zip(items, outcomes, strict=True)):
        ext = raw.get("external_id", raw.get("externalId"))
        ext = ext if isinstance(ext, str) else None
        if isinstance(o, DomainError):
            results.append(BatchItemResult(index=n, outcome="error", external_id=ext, status=o.status, errors=[
                ProblemField(field=field(n, e.field), reason=e.reason) for e in o.errors]))
        else:
            results.append(BatchItemResult(index=n, outcome=o.done.value, id=o.id, external_id=ext))
    count = {k: sum(r.outcome == k for r in results) for k in ("created", "updated", "unchanged", "error")}
    return BatchOut(created=count["created"], updated=count["updated"], unchanged=count["unchanged"],
                    failed=count["error"], results=results)


def validated(model: type[M], raw: Any) -> M:
    """One item as the single route's body model reads it; a mismatch is the item's 422, as it is the route's."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        error = DomainError.from_pydantic(exc)
        error.status = 422
        raise error from None
