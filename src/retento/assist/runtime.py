"""The served index of a running application (`app.assist`): per site, a `Collection` per kind and the grounding
of everything imported, brought up to date from the database before each use (only the rows of import rounds it
has not seen: an import in another process reaches this one on its next query; a restart reads them all)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from retento.assist import text as words
from retento.assist.embed import Embedder
from retento.assist.guard import Grounding
from retento.assist.index import Collection
from retento.assist.models import Item

SEARCHED = ("ticket", "doc", "task")
LOAD_BATCH = 5000


class Writer(Protocol):
    """An optional language model that rewrites a suggestion from its sources (off by default); whatever it
    writes goes through the grounding guard."""

    def write(self, question: str, draft: str, sources: list[dict]) -> str: ...


@dataclass
class Row:
    """What a search result shows of an item, kept beside the index so results need no query."""

    kind: str
    external_id: str
    title: str
    body: str
    answer: str | None
    url: str | None
    status: str | None
    language: str


@dataclass
class SiteIndex:
    dim: int
    rev: int = 0
    collections: dict[str, Collection] = field(default_factory=dict)
    rows: dict[int, Row] = field(default_factory=dict)
    grounding: Grounding = field(default_factory=Grounding)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def collection(self, kind: str) -> Collection:
        if kind not in self.collections:
            self.collections[kind] = Collection(self.dim)
        return self.collections[kind]


def searched_text(kind: str, title: str, body: str) -> str:
    """What is embedded and BM25-indexed of an item: a ticket's subject and request, a section's heading and
    text, a task's title and description."""
    return f"{title}\n{body}".strip()


class Assist:
    def __init__(self, embedder: Embedder, writer: Writer | None = None) -> None:
        self.embedder = embedder
        self.writer = writer
        self.sites: dict[int, SiteIndex] = {}
        self._lock = threading.Lock()

    def site(self, session: Session, site_id: int) -> SiteIndex:
        """The site's index, with every import round committed so far."""
        with self._lock:
            idx = self.sites.setdefault(site_id, SiteIndex(self.embedder.dim))
        latest = session.scalar(select(func.max(Item.rev)).where(Item.site_id == site_id)) or 0
        if latest > idx.rev:
            with idx.lock:
                if latest > idx.rev:
                    load(session, idx, site_id, idx.rev, self.embedder.name)
        return idx

    def drop(self, site_id: int) -> None:
        with self._lock:
            self.sites.pop(site_id, None)


def load(session: Session, idx: SiteIndex, site_id: int, after_rev: int, embedder: str,
         on_batch: Callable[[int], None] | None = None) -> None:
    """Add the site's rows of import rounds after `after_rev` to the index."""
    last_id = 0
    top = after_rev
    while True:
        rows = session.execute(
            select(Item.id, Item.kind, Item.external_id, Item.title, Item.body, Item.answer, Item.url, Item.status,
                   Item.language, Item.anchor, Item.vector, Item.embedder, Item.rev)
            .where(Item.site_id == site_id, Item.rev > after_rev, Item.id > last_id)
            .order_by(Item.id).limit(LOAD_BATCH)).all()
        if not rows:
            break
        last_id = rows[-1].id
        batches: dict[str, list[tuple[int, np.ndarray, list[str]]]] = {}
        for r in rows:
            top = max(top, r.rev)
            if r.kind == "ident":
                idx.grounding.add_identifiers([r.external_id])
                continue
            if r.embedder != embedder or len(r.vector) != idx.dim * 4:
                continue  # made by another embedder: re-import to search it
            vec = np.frombuffer(r.vector, dtype=np.float32)
            batches.setdefault(r.kind, []).append((r.id, vec, words.words(searched_text(r.kind, r.title, r.body))))
            idx.rows[r.id] = Row(r.kind, r.external_id, r.title, r.body, r.answer, r.url, r.status, r.language)
            if r.kind == "doc":
                idx.grounding.add_section(heading=r.title, anchor=r.anchor or "", url=r.url or "")
                idx.grounding.add_text(r.body)
            elif r.kind == "ticket" and r.answer:
                idx.grounding.add_text(r.answer)
            else:
                idx.grounding.add_text(f"{r.title}\n{r.body}")
                if r.url:
                    idx.grounding.urls.add(r.url.rstrip("/").lower())
        for kind, items in batches.items():
            idx.collection(kind).upsert_many(items)
        if on_batch:
            on_batch(len(rows))
    idx.rev = top
