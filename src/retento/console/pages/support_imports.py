"""The assist's material and figures (issue 19): uploading tickets, tasks (JSON array or JSON Lines, as `retento
assist import` and the API take them) and documentation (Markdown or HTML files), re-imports updating in place;
an import of more than one batch is the worker's (`assist.imports`, batch by batch) and its progress, kept in the
database, is shown (htmx polls it); the evaluation
on a labelled set (`retento assist eval`: recall@5, MRR, answer-match share, invented items) and the usage report
(usage share; first-response time with and without suggestions) with its chart. Through assist.service only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from retento.assist import imports as import_jobs, service as assist
from retento.assist.models import ImportJob
from retento.assist.schemas import DocFileIn, DocsIn, TaskIn, TicketIn, records
from retento.console import web
from retento.console.web import Viewer, app_of, reading, render, signed_in
from retento.core.db.transactions import transaction
from retento.core.errors import DomainError, FieldError
from retento.sites import service as sites

router = web.router()
PAGE = web.Page(router)  # reached from the support pages' own navigation
marketing = web.may_change("marketing")
BATCH = 500  # records a transaction; more than one batch: the import runs in the background
DOC_BATCH = 20  # documentation files a transaction
MAX_FILE = 50 * 1024 * 1024
KINDS = import_jobs.KINDS
KEPT = 20  # the latest imports the page shows


@dataclass
class Job:
    """An import as the page shows it (`assist_imports` row with its site's code)."""

    id: int
    kind: str
    site: str
    total: int
    started_at: datetime
    done: int
    counts: dict[str, int]
    error: str | None
    finished: bool


def _job(row: ImportJob, code: str) -> Job:
    dead = row.state == import_jobs.QUEUE.dead
    return Job(row.id, row.kind, code, row.total, row.created_at, row.done, row.counts,
               row.last_error if dead else None, row.state != import_jobs.QUEUE.ready)


def _bad(field_name: str, reason: str) -> DomainError:
    return DomainError([FieldError(field_name, reason)])


def _validated(model: Any, rows: list[dict[str, Any]]) -> list[Any]:
    out = []
    for n, r in enumerate(rows, 1):
        try:
            out.append(model.model_validate(r))
        except ValidationError as exc:
            first = DomainError.from_pydantic(exc).errors[0]
            raise _bad("file", f"record {n}: {first.field}: {first.reason}") from None
    return out


def _texts(files: list[UploadFile]) -> list[tuple[str, str]]:
    out = []
    for f in files:
        raw = f.file.read(MAX_FILE + 1)
        if len(raw) > MAX_FILE:
            raise _bad("file", f"{f.filename}: larger than 50 MB")
        try:
            out.append((f.filename or "upload", raw.decode("utf-8-sig")))
        except UnicodeDecodeError:
            raise _bad("file", f"{f.filename}: not UTF-8 text") from None
    if not out or not any(text.strip() for _, text in out):
        raise _bad("file", "choose a file")
    return out


def _batches(kind: str, texts: list[tuple[str, str]], base_url: str, folder: str) -> list[Any]:
    """The whole upload validated before anything is written, in the batches each transaction imports. A
    documentation file's path (its sections' key and URL after `base_url`) is `folder`/its name."""
    if kind == "docs":
        names = [name for name, _ in texts]
        if len(set(names)) != len(names):
            raise _bad("file", "two files of the same name: upload each folder on its own, naming it")
        prefix = folder.strip().strip("/")
        try:
            files = [DocFileIn(path=f"{prefix}/{name}" if prefix else name, content=text) for name, text in texts]
            DocsIn(base_url=base_url, files=files[:1])
        except ValidationError as exc:
            first = DomainError.from_pydantic(exc).errors[0]
            raise _bad("base_url" if "base_url" in first.field else "file", first.reason) from None
        return [DocsIn(base_url=base_url, files=files[i:i + DOC_BATCH]) for i in range(0, len(files), DOC_BATCH)]
    rows: list[dict[str, Any]] = []
    for name, text in texts:
        try:
            rows.extend(records(text))
        except ValueError as exc:
            raise _bad("file", f"{name}: {exc}") from None
    if not rows:
        raise _bad("file", "no records")
    items = _validated(TicketIn if kind == "tickets" else TaskIn, rows)
    keys = [i.external_id for i in items]
    if len(set(keys)) != len(keys):
        raise _bad("file", "an external_id is given twice")
    return [items[i:i + BATCH] for i in range(0, len(items), BATCH)]


def _imports_page(request: Request, viewer: Viewer, *, status: int = 200, errors: dict[str, str] | None = None,
                  form: dict[str, str] | None = None) -> Response:
    with transaction(reading(request)) as s:
        visible = sites.list_sites(s)
        by_site = {x.code: assist.counts(s, site_ids=[x.id]) for x in visible}
        codes = {x.id: x.code for x in visible}
        jobs = [_job(j, codes[j.site_id]) for j in import_jobs.recent(s, site_ids=list(codes), limit=KEPT)]
    shown = request.query_params.get("job")
    return render(request, "support/imports.html", status=status, sites=visible, by_site=by_site, jobs=jobs,
                  shown=int(shown) if shown and shown.isdigit() else None, errors=errors or {}, form=form or {},
                  kinds=KINDS)


@router.get("/support/imports")
def imports(request: Request, viewer: Annotated[Viewer, Depends(signed_in)]) -> Response:
    return _imports_page(request, viewer)


@router.get("/support/imports/jobs/{job_id}")
def job_part(request: Request, viewer: Annotated[Viewer, Depends(signed_in)], job_id: str) -> Response:
    """One import's progress (htmx polls it until it is finished)."""
    with transaction(reading(request)) as s:
        codes = {x.id: x.code for x in sites.list_sites(s)}
        row = s.get(ImportJob, int(job_id)) if job_id.isdigit() else None
        job = _job(row, codes[row.site_id]) if row is not None and row.site_id in codes else None
    if job is None:
        return render(request, "error.html", status=404, message=web.N_("Not found."))
    return render(request, "support/_job.html", job=job)


@router.post("/support/imports")
def upload(request: Request, viewer: Annotated[Viewer, Depends(marketing)],
           site: Annotated[str, Form()] = "", kind: Annotated[str, Form()] = "",
           base_url: Annotated[str, Form()] = "", folder: Annotated[str, Form(max_length=200)] = "",
           file: Annotated[list[UploadFile] | None, File()] = None) -> Response:
    """Import an uploaded file (docs: one or more files); validated whole before anything is written."""
    form = {"site": site, "kind": kind, "base_url": base_url, "folder": folder}
    app = app_of(request)
    try:
        if kind not in KINDS:
            raise _bad("kind", "choose tickets, docs or tasks")
        with transaction(reading(request)) as s:
            site_id = sites.get_site(s, site).id
        batches = _batches(kind, _texts(file or []), base_url.strip(), folder)
    except DomainError as exc:
        return _imports_page(request, viewer, status=exc.status, errors=web.field_errors(exc), form=form)
    with transaction(app.sessions) as s:
        job_id = import_jobs.submit(s, site_id=site_id, kind=kind, batches=batches, now=app.clock.now()).id
    if len(batches) == 1:  # one transaction: done before the answer; more: the worker's, batch by batch
        import_jobs.run_now(app.sessions, job_id, app.assist.embedder, app.clock)  # type: ignore[attr-defined]
    return RedirectResponse(f"/support/imports?job={job_id}", status_code=303)


# --- quality and usage ---------------------------------------------------------------------------------------


def usage_chart(viewer: Viewer, data: dict[str, Any]) -> dict[str, Any]:
    """Bars: the first-response time (median and mean, minutes) of tickets answered with a suggestion and of
    those answered without one."""
    groups = (data["first_response_with"], data["first_response_without"])
    labels = [viewer.gettext("With a suggestion"), viewer.gettext("Without")]

    def minutes(value: float | None) -> float | None:
        return round(value / 60, 1) if value is not None else None

    return {"tooltip": {"trigger": "axis"}, "legend": {"top": 0}, "grid": {"left": 60, "right": 30, "top": 50},
            "xAxis": {"type": "category", "data": labels},
            "yAxis": {"type": "value", "name": viewer.gettext("minutes"), "min": 0},
            "series": [{"name": viewer.gettext("Median"), "type": "bar", "itemStyle": {"color": "#1f77b4"},
                        "data": [minutes(g["median_seconds"]) for g in groups]},
                       {"name": viewer.gettext("Mean"), "type": "bar", "itemStyle": {"color": "#9fbfee"},
                        "data": [minutes(g["mean_seconds"]) for g in groups]}],
            "aria": {"enabled": False}}  # the table below gives the same figures


def _report_page(request: Request, viewer: Viewer, site: str, *, status: int = 200,
                 errors: dict[str, str] | None = None) -> Response:
    with transaction(reading(request)) as s:
        visible = sites.list_sites(s)
        chosen = next((x for x in visible if x.code == site), None)
        data = assist.usage(s, site_ids=[chosen.id] if chosen else None)
        shown = [chosen] if chosen else visible
        found = import_jobs.last_evaluations(s, site_ids=[x.id for x in shown])
        evals = {x.code: {**found[x.id].figures, "at": found[x.id].created_at, "file": found[x.id].file}
                 for x in shown if x.id in found}
    return render(request, "support/report.html", status=status, sites=visible, site=chosen, usage=data,
                  chart=usage_chart(viewer, data) if data["marks"] else None, evals=evals, errors=errors or {})


@router.get("/support/report")
def report(request: Request, viewer: Annotated[Viewer, Depends(signed_in)],
           site: Annotated[str, Query(max_length=64)] = "") -> Response:
    return _report_page(request, viewer, site)


@router.post("/support/report/eval")
def run_eval(request: Request, viewer: Annotated[Viewer, Depends(marketing)],
                   site: Annotated[str, Form()] = "", file: Annotated[UploadFile | None, File()] = None) -> Response:
    """`retento assist eval` over an uploaded labelled set (JSON Lines: text, relevant_tickets, relevant_docs,
    relevant_task, reference_answer) against the site's imported material."""
    app = app_of(request)
    try:
        (name, text), = _texts([file] if file else [])
        try:
            rows = records(text)
        except ValueError as exc:
            raise _bad("file", f"{name}: {exc}") from None
        for n, q in enumerate(rows, 1):
            if not isinstance(q.get("text"), str) or not q["text"].strip():
                raise _bad("file", f"record {n}: text: required")
        with transaction(app.sessions) as s:
            data = assist.evaluate(s, app.assist, site=site, queries=rows)  # type: ignore[attr-defined]
            import_jobs.keep_evaluation(s, site_id=sites.get_site(s, site).id, file=name, figures=data,
                                    now=app.clock.now())
    except DomainError as exc:
        return _report_page(request, viewer, site, status=exc.status, errors=web.field_errors(exc))
    return RedirectResponse(f"/support/report?site={site}", status_code=303)
