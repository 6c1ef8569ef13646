"""Uploads of material imported batch by batch as durable work (`assist_imports`, queue `assist.imports`): the
console validates an upload whole and stores it with its batches; each batch is then imported in its own
transaction together with the job's progress (so a batch is imported once, and a worker killed between batches
leaves the rest due), by the worker, or at once for a one-batch upload. Every API process reads the same
progress. Evaluations on a labelled set are kept the same way (`assist_evaluations`)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from retento.assist import service
from retento.assist.embed import Embedder
from retento.assist.models import Evaluation, ImportJob
from retento.assist.schemas import DocsIn, TaskIn, TicketIn
from retento.core import work
from retento.core.clock import Clock
from retento.core.db.transactions import transaction
from retento.core.errors import DomainError
from retento.core.jsonable import jsonable
from retento.sites.models import Site

log = logging.getLogger(__name__)
COUNTS = ("created", "updated", "unchanged")
QUEUE = work.Queue.in_transaction("assist.imports", ImportJob.__table__,
                                  label="assist material imports / импорт материалов для подсказок",
                                  state="state", due="due_at", attempts="attempts", error="last_error", dead="dead",
                                  max_attempts=3, order=("id",))
Importer = Callable[[Session, str, Any, Embedder, datetime], dict[str, int]]
IMPORTERS: dict[str, tuple[Callable[[Any], Any], Importer]] = {
    "tickets": (lambda b: [TicketIn.model_validate(r) for r in b],
                lambda s, site, b, emb, now: service.import_tickets(s, site=site, items=b, embedder=emb, now=now)),
    "docs": (DocsIn.model_validate,
             lambda s, site, b, emb, now: service.import_docs(s, site=site, data=b, embedder=emb, now=now)),
    "tasks": (lambda b: [TaskIn.model_validate(r) for r in b],
              lambda s, site, b, emb, now: service.import_tasks(s, site=site, items=b, embedder=emb, now=now)),
}
KINDS = tuple(IMPORTERS)  # tickets, docs, tasks: the upload form's order


def size(kind: str, batch: Any) -> int:
    """Records in a batch (files for documentation)."""
    return len(batch.files) if kind == "docs" else len(batch)


def submit(session: Session, *, site_id: int, kind: str, batches: Sequence[Any], now: datetime) -> ImportJob:
    """Keep a validated upload (`TicketIn` / `TaskIn` lists, or `DocsIn`s) as a job due now."""
    payload = [b.model_dump(mode="json") if kind == "docs" else [i.model_dump(mode="json") for i in b]
               for b in batches]
    job = ImportJob(site_id=site_id, kind=kind, batches=payload, position=0, total=sum(size(kind, b) for b in batches),
                    done=0, counts=dict.fromkeys(COUNTS, 0), state=QUEUE.ready, due_at=now, attempts=0,
                    created_at=now)
    session.add(job)
    session.flush()
    return job


def _step(session: Session, job_id: int, embedder: Embedder, now: datetime) -> None:
    """Import the job's next batch and record it, in the caller's transaction (the job's row locked). Bad
    material (a `DomainError`) stops the job with its reason; what earlier batches imported stays."""
    job = session.get(ImportJob, job_id)
    assert job is not None
    parse, run = IMPORTERS[job.kind]
    batch = parse(job.batches[job.position])
    code = session.scalar(select(Site.code).where(Site.id == job.site_id))
    try:
        with session.begin_nested():
            got = run(session, code, batch, embedder, now)
    except DomainError as exc:
        job.state, job.finished_at = QUEUE.dead, now
        job.last_error = "; ".join(f"{e.field}: {e.reason}" for e in exc.errors)[:2000]
        return
    job.counts = {k: job.counts.get(k, 0) + got[k] for k in COUNTS}
    job.done += size(job.kind, batch)
    job.position += 1
    if job.position >= len(job.batches):
        job.state, job.finished_at, job.batches = QUEUE.done, now, []  # the material is in the index now


def work_due(sessions: sessionmaker[Session], embedder: Embedder, clock: Clock) -> int:
    """The worker's job: every due batch, one per transaction; returns the batches imported."""

    def handle(session: Session, rows: list[Any]) -> None:
        for (job_id,) in rows:
            _step(session, job_id, embedder, clock.now())

    return work.drain(lambda: work.run_locked(sessions, QUEUE, now=clock.now(), limit=1, handle=handle), batch=1)


def run_now(sessions: sessionmaker[Session], job_id: int, embedder: Embedder, clock: Clock) -> None:
    """The job's next batch at once (the console's one-batch upload, done before it answers). Should it fail
    unexpectedly, the job stays due and the worker takes it up, with its attempts counted there."""
    try:
        with transaction(sessions) as s:
            if work.locked(s, QUEUE, now=clock.now(), limit=1, where=QUEUE.id == job_id):
                _step(s, job_id, embedder, clock.now())
    except Exception:  # noqa: BLE001 - left to the worker, which retries and keeps the error
        log.exception("assist import %s: left to the worker", job_id)


def recent(session: Session, *, site_ids: Sequence[int], limit: int = 20) -> list[ImportJob]:
    return list(session.scalars(select(ImportJob).where(ImportJob.site_id.in_(site_ids))
                                .order_by(ImportJob.id.desc()).limit(limit)))


def keep_evaluation(session: Session, *, site_id: int, file: str, figures: dict[str, Any], now: datetime) -> None:
    session.add(Evaluation(site_id=site_id, file=file[:255], figures=jsonable(figures), created_at=now))
    session.flush()


def last_evaluations(session: Session, *, site_ids: Sequence[int]) -> dict[int, Evaluation]:
    """The latest evaluation of each of these sites."""
    latest = (select(func.max(Evaluation.id)).where(Evaluation.site_id.in_(site_ids))
              .group_by(Evaluation.site_id).scalar_subquery())
    return {e.site_id: e for e in session.scalars(select(Evaluation).where(Evaluation.id.in_(latest)))}
