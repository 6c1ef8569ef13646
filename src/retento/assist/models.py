"""Assist tables: the imported material (past tickets, documentation sections, development tasks) with each
item's vector, names the grounding guard accepts, and operators' marks of suggestions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from retento.core.db.types import Base, JSONType, UTCDateTime
from retento.core.scoping import BySite

BigId = BigInteger().with_variant(Integer, "sqlite")
KINDS = ("ticket", "doc", "task", "ident")


class Item(Base):
    """One item of the material: a past ticket (`title` its subject, `body` the request, `answer` the answer given),
    a documentation section (`title` its heading, `page`, `anchor`, `url`) or a development task (`status`,
    `url`), or a known identifier (`ident`: a name the grounding guard accepts, not searched, no vector). `vector`: float32 bytes from `embedder`; `rev`: the site's import round that last changed it (the
    in-process index reads the rows of later rounds)."""

    __tablename__ = "assist_items"
    __site_scope__ = BySite()

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    kind: Mapped[str] = mapped_column(String(8))  # ticket doc task
    external_id: Mapped[str] = mapped_column(String(500))
    title: Mapped[str] = mapped_column(String(500), default="")
    body: Mapped[str] = mapped_column(Text, default="")
    answer: Mapped[str | None] = mapped_column(Text)
    resolution: Mapped[str | None] = mapped_column(String(255))
    tags: Mapped[list[str]] = mapped_column(JSONType, default=list)
    language: Mapped[str] = mapped_column(String(8))
    status: Mapped[str | None] = mapped_column(String(32))
    page: Mapped[str | None] = mapped_column(String(500))
    anchor: Mapped[str | None] = mapped_column(String(255))
    url: Mapped[str | None] = mapped_column(String(1000))
    meta: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    embedder: Mapped[str] = mapped_column(String(32))
    rev: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("site_id", "kind", "external_id", name="uq_assist_items_key"),
        Index("ix_assist_items_rev", "site_id", "rev"),
    )


class Mark(Base):
    """An operator's mark of a suggestion for a ticket or dialog (`ticket`: its reference): used, edited,
    dismissed, or none shown; with the ticket's first-response time for the usage report."""

    __tablename__ = "assist_marks"
    __site_scope__ = BySite()

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    ticket: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(12))  # used edited dismissed none
    sources: Mapped[list[str]] = mapped_column(JSONType, default=list)
    first_response_seconds: Mapped[float | None] = mapped_column(Float)
    operator_id: Mapped[int | None] = mapped_column(Integer)
    idempotency_key: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("site_id", "idempotency_key", name="uq_assist_marks_key"),
        Index("ix_assist_marks_site", "site_id", "created_at"),
    )


class ImportJob(Base):
    """An upload of material imported batch by batch (`assist.imports`, a queue of the durable-work primitive):
    `batches` the validated records not yet imported (emptied when done), `done` of `total` records (files for
    documentation) and the `counts` so far; any process shows its progress, the worker does the work."""

    __tablename__ = "assist_imports"
    __site_scope__ = BySite()

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    kind: Mapped[str] = mapped_column(String(8))  # tickets docs tasks
    batches: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    position: Mapped[int] = mapped_column(Integer, default=0)  # the next batch
    total: Mapped[int] = mapped_column(Integer)
    done: Mapped[int] = mapped_column(Integer, default=0)
    counts: Mapped[dict[str, int]] = mapped_column(JSONType, default=dict)
    state: Mapped[str] = mapped_column(String(8))  # pending done dead
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_assist_imports_due", "state", "due_at"),
                      Index("ix_assist_imports_site", "site_id", "id"))


class Evaluation(Base):
    """An evaluation of the site's material on a labelled set (`retento assist eval`, the console's report):
    `figures` as `service.evaluate` gives them."""

    __tablename__ = "assist_evaluations"
    __site_scope__ = BySite()

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    file: Mapped[str] = mapped_column(String(255))
    figures: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_assist_evaluations_site", "site_id", "id"),)
