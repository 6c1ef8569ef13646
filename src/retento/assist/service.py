"""Assist operations (keyword-only, take a session; the caller owns the transaction): importing tickets,
documentation and tasks (re-import updates in place, re-embedding only what changed), the scenarios over the
served index (similar tickets, suggested answer, documentation links, task matching, near-duplicates), operators'
marks and the usage report."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from retento.assist import (
    compose as composer,
    evaluate as evaluation,
    guard as guarding,
    sections as parsing,
    text as words,
)
from retento.assist.embed import Embedder
from retento.assist.models import Item, Mark
from retento.assist.runtime import Assist, SiteIndex, searched_text
from retento.assist.schemas import DocsIn, IdentifiersIn, MarkIn, TaskIn, TicketIn
from retento.core.db.locks import advisory_key, lock_keys
from retento.core.errors import DomainError, NotFound
from retento.sites.service import get_site

CHUNK = 500
FIELDS = ("title", "body", "answer", "resolution", "tags", "language", "status", "page", "anchor", "url")


def next_rev(session: Session, site_id: int) -> int:
    """The site's next import round (imports of a site take turns on PostgreSQL, so rounds commit in order)."""
    lock_keys(session, [advisory_key("assist", site_id)])
    return (session.scalar(select(func.max(Item.rev)).where(Item.site_id == site_id)) or 0) + 1


def _upsert(session: Session, *, site_id: int, kind: str, records: list[dict[str, Any]], embedder: Embedder | None,
            now: datetime) -> dict[str, int]:
    """Store records keyed by external_id: new ones created, changed ones updated in place (re-embedded when
    their searched text changed), the same ones left alone."""
    keys = [r["external_id"] for r in records]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise DomainError.one("items.external_id", f"{dup!r} given twice")
    rev = next_rev(session, site_id)
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    for start in range(0, len(records), CHUNK):
        chunk = records[start:start + CHUNK]
        have = {i.external_id: i for i in session.scalars(select(Item).where(
            Item.site_id == site_id, Item.kind == kind, Item.external_id.in_([r["external_id"] for r in chunk])))}
        embed: list[tuple[Item, str]] = []
        for r in chunk:
            item = have.get(r["external_id"])
            searched = searched_text(kind, r.get("title") or "", r.get("body") or "")
            if item is None:
                item = Item(site_id=site_id, kind=kind, external_id=r["external_id"], meta={}, created_at=now)
                session.add(item)
                counts["created"] += 1
            elif all(getattr(item, f) == r.get(f, getattr(item, f)) for f in FIELDS) and (
                    embedder is None or item.embedder == embedder.name):
                counts["unchanged"] += 1
                continue
            else:
                counts["updated"] += 1
            old = None if item.id is None else searched_text(kind, item.title, item.body)
            for f in FIELDS:
                if f in r:
                    setattr(item, f, r[f])
            item.rev, item.updated_at = rev, now
            if embedder is None:
                item.vector, item.embedder = b"", "-"
            elif old != searched or item.embedder != embedder.name:
                embed.append((item, searched))
        if embed and embedder is not None:
            vectors = embedder.passage([t for _, t in embed])
            for (item, _), vec in zip(embed, vectors, strict=True):
                item.vector, item.embedder = np.asarray(vec, dtype=np.float32).tobytes(), embedder.name
        session.flush()
    return counts


def _site_id(session: Session, site: str) -> int:
    return get_site(session, site).id


def import_tickets(session: Session, *, site: str, items: list[TicketIn], embedder: Embedder,
                   now: datetime) -> dict[str, int]:
    records = [{"external_id": t.external_id, "title": t.subject, "body": t.body, "answer": t.answer,
                "resolution": t.resolution, "tags": list(t.tags),
                "language": t.language.value if t.language else words.language(f"{t.subject} {t.body}")}
               for t in items]
    return _upsert(session, site_id=_site_id(session, site), kind="ticket", records=records, embedder=embedder,
                   now=now)


def import_tasks(session: Session, *, site: str, items: list[TaskIn], embedder: Embedder,
                 now: datetime) -> dict[str, int]:
    records = [{"external_id": t.external_id, "title": t.title, "body": t.description, "status": t.status,
                "url": t.url, "language": words.language(f"{t.title} {t.description}")} for t in items]
    return _upsert(session, site_id=_site_id(session, site), kind="task", records=records, embedder=embedder,
                   now=now)


def doc_sections(data: DocsIn) -> list[parsing.Section]:
    out: list[parsing.Section] = []
    for n, f in enumerate(data.files):
        found = parsing.parse(f.path, f.content, base_url=data.base_url, url=f.url)
        if not found:
            raise DomainError.one(f"files.{n}.content", "no text or sections found")
        out.extend(found)
    return out


def import_docs(session: Session, *, site: str, data: DocsIn, embedder: Embedder, now: datetime) -> dict[str, int]:
    """Every section of every file is an item keyed `path#anchor`."""
    found = [s for s in doc_sections(data) if s.text.strip()]  # a heading with no text of its own: not a section
    by_key: dict[str, parsing.Section] = {}
    for s in found:
        by_key[s.external_id] = s  # the same anchor twice on a page: the later section
    records = [{"external_id": s.external_id, "title": s.heading, "body": s.text, "page": s.page,
                "anchor": s.anchor, "url": s.url, "language": words.language(f"{s.heading} {s.text}")}
               for s in by_key.values()]
    return {**_upsert(session, site_id=_site_id(session, site), kind="doc", records=records, embedder=embedder,
                      now=now), "sections": len(records)}


def import_identifiers(session: Session, *, site: str, data: IdentifiersIn, now: datetime) -> dict[str, int]:
    names = list(dict.fromkeys(n.strip() for n in data.names if n.strip()))
    for n, name in enumerate(names):
        if len(name) > 255:
            raise DomainError.one(f"names.{n}", "at most 255 characters")
    records = [{"external_id": n, "title": "", "body": "", "language": "en"} for n in names]
    return _upsert(session, site_id=_site_id(session, site), kind="ident", records=records, embedder=None, now=now)


def counts(session: Session, *, site_ids: list[int] | None) -> dict[str, int]:
    q = select(Item.kind, func.count()).group_by(Item.kind)
    if site_ids is not None:
        q = q.where(Item.site_id.in_(site_ids))
    found = dict(session.execute(q).tuples().all())
    return {k: int(found.get(k, 0)) for k in ("ticket", "doc", "task", "ident")}


def imported(session: Session, *, site_id: int) -> set[str]:
    """The searched kinds the site has any item of (cheap: one indexed row each), so a page asks nothing of the
    embedder when there is nothing to search."""
    return {k for k in ("ticket", "doc", "task") if session.scalar(
        select(Item.id).where(Item.site_id == site_id, Item.kind == k).limit(1)) is not None}


def list_tickets(session: Session, *, site_id: int | None, search: str, answered: bool | None,
                 limit: int) -> list[Item]:
    """Imported tickets of the visible sites, newest import first; `search`: words in the subject or request."""
    q = select(Item).where(Item.kind == "ticket")
    if site_id is not None:
        q = q.where(Item.site_id == site_id)
    if search.strip():
        like = f"%{search.strip().lower()}%"
        q = q.where(func.lower(Item.title).like(like) | func.lower(Item.body).like(like))
    if answered is not None:
        q = q.where(Item.answer.is_not(None) if answered else Item.answer.is_(None))
    return list(session.scalars(q.order_by(Item.updated_at.desc(), Item.id.desc()).limit(limit)))


def get_ticket(session: Session, *, site: str, external_id: str) -> Item:
    found = session.scalar(select(Item).where(Item.site_id == _site_id(session, site), Item.kind == "ticket",
                                              Item.external_id == external_id))
    if found is None:
        raise NotFound("ticket", f"ticket {external_id!r} not found")
    return found


# -- the scenarios ----------------------------------------------------------------------------------------------
def _query(assist: Assist, text: str) -> tuple[np.ndarray, list[str]]:
    return assist.embedder.query([text])[0], words.words(text)


def _hits(idx: SiteIndex, kind: str, vec: np.ndarray, terms: list[str], k: int,
          exclude: str | None = None) -> list[dict[str, Any]]:
    """The k best items of a kind; `exclude`: an item's external id left out (the ticket being answered)."""
    coll = idx.collections.get(kind)
    if coll is None or not len(coll):
        return []
    out = []
    for h in coll.search(vec, terms, k + (exclude is not None)):
        row = idx.rows[h.item_id]
        if row.external_id == exclude or len(out) == k:
            continue
        out.append({"id": h.item_id, "external_id": row.external_id, "title": row.title, "score": round(h.cosine, 4),
                    "rank_score": round(h.score, 5), "language": row.language, "body": row.body,
                    "answer": row.answer, "url": row.url, "status": row.status})
    return out


def similar(session: Session, assist: Assist, *, site: str, text: str, k: int,
            exclude: str | None = None) -> list[dict[str, Any]]:
    """The k closest past tickets with their answers, best first (`score`: cosine); `exclude`: the ticket asked
    about, when it is itself imported."""
    idx = assist.site(session, _site_id(session, site))
    vec, terms = _query(assist, text)
    return [_show(h, "ticket") for h in _hits(idx, "ticket", vec, terms, k, exclude)]


def doc_links(session: Session, assist: Assist, *, site: str, text: str, k: int) -> list[dict[str, Any]]:
    idx = assist.site(session, _site_id(session, site))
    vec, terms = _query(assist, text)
    return [_show(h, "doc") for h in _hits(idx, "doc", vec, terms, k)]


def match_tasks(session: Session, assist: Assist, *, site: str, text: str, k: int) -> list[dict[str, Any]]:
    idx = assist.site(session, _site_id(session, site))
    vec, terms = _query(assist, text)
    return [_show(h, "task") for h in _hits(idx, "task", vec, terms, k)]


def _show(h: dict[str, Any], kind: str) -> dict[str, Any]:
    base = {"external_id": h["external_id"], "score": h["score"]}
    if kind == "ticket":
        return {**base, "subject": h["title"], "body": h["body"], "answer": h["answer"], "language": h["language"]}
    if kind == "doc":
        return {**base, "heading": h["title"], "url": h["url"], "excerpt": h["body"][:300]}
    return {**base, "title": h["title"], "status": h["status"], "url": h["url"]}


def suggest(session: Session, assist: Assist, *, site: str, text: str, k: int,
            exclude: str | None = None) -> dict[str, Any]:
    """A suggested answer with its sources, the similar tickets and sections it came from, and what the guard
    removed (the draft of past answers and sections passes it; a language model's rewrite may not). `exclude`:
    the imported ticket asked about (its own answer is not a suggestion for it)."""
    idx = assist.site(session, _site_id(session, site))
    vec, terms = _query(assist, text)
    tickets = _hits(idx, "ticket", vec, terms, k, exclude)
    docs = _hits(idx, "doc", vec, terms, 3)
    language = words.language(text)
    draft, sources = composer.compose(
        language,
        [composer.Candidate(composer.Source("ticket", h["external_id"], h["title"], None, h["score"]),
                            h["answer"] or "") for h in tickets],
        [composer.Candidate(composer.Source("doc", h["external_id"], h["title"], h["url"], h["score"]), h["body"])
         for h in docs])
    written = draft
    if assist.writer is not None and sources:
        written = assist.writer.write(text, draft, [s.as_dict() for s in sources])
    checked = guarding.guard(written, idx.grounding)
    return {"answer": checked.text, "language": language, "sources": [s.as_dict() for s in sources],
            "invented": len(checked.removed),
            "removed": [{"kind": r.kind, "text": r.text} for r in checked.removed],
            "similar": [_show(h, "ticket") for h in tickets], "docs": [_show(h, "doc") for h in docs]}


def check(session: Session, assist: Assist, *, site: str, text: str) -> dict[str, Any]:
    """The guard over any text (an operator's draft, a model's answer): what it keeps and what it removes."""
    idx = assist.site(session, _site_id(session, site))
    checked = guarding.guard(text, idx.grounding)
    return {"text": checked.text, "invented": len(checked.removed),
            "removed": [{"kind": r.kind, "text": r.text} for r in checked.removed]}


def groups(matrix: np.ndarray, threshold: float, block: int = 1024) -> list[list[int]]:
    """Rows whose vectors are at least `threshold` close, joined transitively (pure)."""
    n = matrix.shape[0]
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for start in range(0, n, block):
        sims = matrix[start:start + block] @ matrix.T
        rows, cols = np.nonzero(sims >= threshold)
        for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
            a, b = start + r, c
            if b > a:
                ra, rb = find(a), find(b)
                if ra != rb:
                    parent[max(ra, rb)] = min(ra, rb)
    out: dict[int, list[int]] = {}
    for i in range(n):
        out.setdefault(find(i), []).append(i)
    return sorted((g for g in out.values() if len(g) > 1), key=lambda g: (-len(g), g[0]))


MAX_GROUPED = 50_000


def duplicates(session: Session, assist: Assist, *, site: str, threshold: float, limit: int) -> list[dict[str, Any]]:
    """Groups of near-duplicate past tickets (cosine at least `threshold`), largest first."""
    idx = assist.site(session, _site_id(session, site))
    coll = idx.collections.get("ticket")
    if coll is None or not len(coll):
        return []
    live = np.flatnonzero(coll.alive[:len(coll.ids)])[:MAX_GROUPED]
    found = groups(coll.matrix[live], threshold)[:limit]
    out = []
    for g in found:
        members = [idx.rows[coll.ids[int(live[i])]] for i in g]
        out.append({"size": len(g), "tickets": [{"external_id": m.external_id, "subject": m.title}
                                                for m in members]})
    return out


# -- marks and usage --------------------------------------------------------------------------------------------
def mark(session: Session, *, site: str, data: MarkIn, now: datetime) -> Mark:
    site_id = _site_id(session, site)
    found = session.scalar(select(Mark).where(Mark.site_id == site_id, Mark.idempotency_key == data.idempotency_key))
    if found is not None:
        return found
    m = Mark(site_id=site_id, ticket=data.ticket, action=data.action.value, sources=list(data.sources),
             first_response_seconds=data.first_response_seconds, operator_id=data.operator_id,
             idempotency_key=data.idempotency_key, created_at=now)
    session.add(m)
    session.flush()
    return m


def mark_row(m: Mark) -> dict[str, Any]:
    return {"id": m.id, "ticket": m.ticket, "action": m.action, "sources": m.sources,
            "first_response_seconds": m.first_response_seconds, "operator_id": m.operator_id,
            "created_at": m.created_at}


def _times(values: Iterable[float | None]) -> dict[str, Any]:
    vs = [v for v in values if v is not None]
    return {"count": len(vs), "median_seconds": statistics.median(vs) if vs else None,
            "mean_seconds": round(statistics.fmean(vs), 1) if vs else None}


def usage(session: Session, *, site_ids: list[int] | None, since: datetime | None = None) -> dict[str, Any]:
    """How often shown suggestions were used (as they were or edited) and the first-response time of tickets
    answered with a suggestion against those answered without (dismissed or none shown)."""
    q = select(Mark.action, Mark.first_response_seconds)
    if site_ids is not None:
        q = q.where(Mark.site_id.in_(site_ids))
    if since is not None:
        q = q.where(Mark.created_at >= since)
    rows = session.execute(q).all()
    by: dict[str, int] = {a: 0 for a in ("used", "edited", "dismissed", "none")}
    for a, _ in rows:
        by[a] = by.get(a, 0) + 1
    shown = by["used"] + by["edited"] + by["dismissed"]
    with_s = _times(t for a, t in rows if a in ("used", "edited"))
    without = _times(t for a, t in rows if a in ("dismissed", "none"))
    change = None
    if with_s["mean_seconds"] and without["mean_seconds"]:
        change = round(with_s["mean_seconds"] / without["mean_seconds"] - 1, 4)
    return {"marks": len(rows), "actions": by, "shown": shown,
            "usage_share": round((by["used"] + by["edited"]) / shown, 4) if shown else None,
            "first_response_with": with_s, "first_response_without": without, "first_response_change": change}


# -- evaluation -------------------------------------------------------------------------------------------------
def evaluate(session: Session, assist: Assist, *, site: str, queries: list[dict[str, Any]]) -> dict[str, Any]:
    """The metrics of `evaluate.run` for labelled queries over the site's imported material."""
    idx = assist.site(session, _site_id(session, site))

    def ask(text: str) -> dict[str, Any]:
        out = suggest(session, assist, site=site, text=text, k=5)
        tasks = match_tasks(session, assist, site=site, text=text, k=1)
        return {"similar": [h["external_id"] for h in out["similar"]], "docs": [h["external_id"] for h in out["docs"]],
                "tasks": [t["external_id"] for t in tasks], "answer": out["answer"], "removed": out["invented"]}

    return evaluation.run(queries, ask, idx.grounding)
