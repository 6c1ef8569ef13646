from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from retento.core.db.types import Base, JSONType, UTCDateTime
from retento.core.scoping import GLOBAL


class ApiKey(Base):
    """A key for the HTTP API. Only the SHA-256 of the secret is stored; the secret is shown once."""

    __tablename__ = "api_keys"
    __site_scope__ = GLOBAL

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    prefix: Mapped[str] = mapped_column(String(16))  # first characters of the key, to recognise it in lists
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(JSONType)
    site_ids: Mapped[list[int] | None] = mapped_column(JSONType, nullable=True)  # None: every site
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class IdempotentRequest(Base):
    """The first response to a POST with an Idempotency-Key, replayed for repeats of the same request."""

    __tablename__ = "api_idempotency"
    __site_scope__ = GLOBAL

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(200))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[Any] = mapped_column(JSONType, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)

    __table_args__ = (UniqueConstraint("api_key_id", "key"),)
