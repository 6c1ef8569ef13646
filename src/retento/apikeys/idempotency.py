"""Idempotency-Key: a repeated POST gets the first response; the same key with another body is a 409."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from retento.apikeys import service as apikeys
from retento.apikeys.models import IdempotentRequest
from retento.apikeys.schemas import Principal
from retento.core.errors import Conflict


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
