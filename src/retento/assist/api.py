"""/api/v1/assist: import tickets, documentation and tasks (re-import updates in place); similar tickets, a
suggested answer with sources, live documentation links, task matching, near-duplicates, the guard, a shop's
industry; operators' marks and the usage report. Every route but the industry one names its site."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Query, Request

from retento.apikeys.api import require
from retento.apikeys.schemas import Principal
from retento.assist import industry as industries, service
from retento.assist.runtime import Assist
from retento.assist.schemas import AskIn, CatalogueIn, DocsIn, IdentifiersIn, MarkIn, TasksIn, TicketsIn
from retento.core.db.transactions import transaction
from retento.core.jsonable import jsonable
from retento.core.rest.pagination import SiteParam
from retento.core.rest.problems import router as v1_router
from retento.routes import app_of, reading
from retento.sites.service import get_site

router = v1_router("assist")
Read = Annotated[Principal, Depends(require("assist:read"))]
Write = Annotated[Principal, Depends(require("assist:write"))]
# 2,000 characters: more than the embedder reads (512 tokens), and a URL a server accepts whatever the script
Q = Annotated[str, Query(max_length=2_000, description="What the operator has typed so far (blank: no links)")]
K = Annotated[int, Query(ge=1, le=50)]


def assist_of(request: Request) -> Assist:
    return app_of(request).assist  # type: ignore[attr-defined]


def _write(request: Request, fn: Callable[[Any, datetime], Any]) -> Any:
    app = app_of(request)
    with transaction(app.sessions) as s:
        return jsonable(fn(s, app.clock.now()))


def _read(request: Request, fn: Callable[[Any], Any]) -> Any:
    with transaction(reading(request)) as s:
        return jsonable(fn(s))


@router.post("/assist/sites/{site}/tickets", summary="Import past tickets (re-import updates in place)",
             description="Each ticket: external_id, subject, body, the answer given, resolution, tags, language "
                         "(detected when not given). Only tickets whose text changed are embedded again.")
def post_tickets(request: Request, _: Write, site: str, data: TicketsIn) -> Any:
    emb = assist_of(request).embedder
    return _write(request, lambda s, now: service.import_tickets(s, site=site, items=data.items, embedder=emb,
                                                                 now=now))


@router.post("/assist/sites/{site}/docs", summary="Import documentation files (Markdown or HTML)",
             description="Every heading becomes a section with its anchor and URL (`base_url` + path, or the "
                         "file's `url`), keyed `path#anchor`.")
def post_docs(request: Request, _: Write, site: str, data: DocsIn) -> Any:
    emb = assist_of(request).embedder
    return _write(request, lambda s, now: service.import_docs(s, site=site, data=data, embedder=emb, now=now))


@router.post("/assist/sites/{site}/tasks", summary="Import development tasks (re-import updates in place)")
def post_tasks(request: Request, _: Write, site: str, data: TasksIn) -> Any:
    emb = assist_of(request).embedder
    return _write(request, lambda s, now: service.import_tasks(s, site=site, items=data.items, embedder=emb,
                                                               now=now))


@router.post("/assist/sites/{site}/identifiers", summary="Names the grounding guard accepts",
             description="API methods, events and modules that may appear in suggestions though no imported text "
                         "names them.")
def post_identifiers(request: Request, _: Write, site: str, data: IdentifiersIn) -> Any:
    return _write(request, lambda s, now: service.import_identifiers(s, site=site, data=data, now=now))


@router.get("/assist/counts", summary="Imported tickets, sections, tasks and identifiers")
def get_counts(request: Request, _: Read, site: SiteParam = None) -> Any:
    return _read(request, lambda s: service.counts(s, site_ids=[get_site(s, site).id] if site else None))


@router.post("/assist/sites/{site}/similar", summary="The closest past tickets with their answers")
def post_similar(request: Request, _: Read, site: str, data: AskIn) -> Any:
    return _read(request, lambda s: {"items": service.similar(s, assist_of(request), site=site, text=data.text,
                                                              k=data.k)})


@router.post("/assist/sites/{site}/suggest", summary="A suggested answer with its sources",
             description="Composed from the closest past answers and documentation sections; every link, section "
                         "and identifier in it exists in the imported material (`invented`: what the guard removed).")
def post_suggest(request: Request, _: Read, site: str, data: AskIn) -> Any:
    return _read(request, lambda s: service.suggest(s, assist_of(request), site=site, text=data.text, k=data.k))


@router.get("/assist/sites/{site}/doc-links", summary="Documentation sections for what is being typed",
            description="Fast enough to call on each pause in typing.")
def get_doc_links(request: Request, _: Read, site: str, q: Q = "", k: K = 5) -> Any:
    def run(s: Any) -> Any:
        if not q.strip():
            get_site(s, site)
            return {"items": []}
        return {"items": service.doc_links(s, assist_of(request), site=site, text=q, k=k)}
    return _read(request, run)


@router.post("/assist/sites/{site}/tasks/match", summary="Development tasks matching a request")
def post_match_tasks(request: Request, _: Read, site: str, data: AskIn) -> Any:
    return _read(request, lambda s: {"items": service.match_tasks(s, assist_of(request), site=site, text=data.text,
                                                                  k=data.k)})


@router.get("/assist/sites/{site}/duplicates", summary="Groups of near-duplicate past tickets")
def get_duplicates(request: Request, _: Read, site: str,
                   threshold: Annotated[float, Query(ge=0.5, le=1.0)] = 0.95,
                   limit: Annotated[int, Query(ge=1, le=500)] = 50) -> Any:
    return _read(request, lambda s: {"groups": service.duplicates(s, assist_of(request), site=site,
                                                                  threshold=threshold, limit=limit)})


@router.post("/assist/sites/{site}/check", summary="The grounding guard over a text",
             description="What the guard keeps of a draft and which links, sections and names it removes.")
def post_check(request: Request, _: Read, site: str, data: AskIn) -> Any:
    return _read(request, lambda s: service.check(s, assist_of(request), site=site, text=data.text))


@router.post("/assist/industry", summary="A shop's industry from its catalogue",
             description="One of the twelve industries with a confidence, or `unknown` when unsure.")
def post_industry(_: Read, data: CatalogueIn) -> Any:
    found = industries.classify([(p.name, p.category) for p in data.products])
    return {"industry": found.industry, "confidence": found.confidence, "votes": found.votes,
            "products": found.products}


@router.post("/assist/sites/{site}/marks", status_code=201, summary="Mark a suggestion used, edited or dismissed",
             description="With the ticket's first-response time; a repeated `idempotency_key` returns the first "
                         "mark.")
def post_mark(request: Request, _: Write, site: str, data: MarkIn) -> Any:
    return _write(request, lambda s, now: service.mark_row(service.mark(s, site=site, data=data, now=now)))


@router.get("/assist/usage", summary="Usage share of suggestions and first response with and without them")
def get_usage(request: Request, _: Read, site: SiteParam = None) -> Any:
    return _read(request, lambda s: service.usage(s, site_ids=[get_site(s, site).id] if site else None))
