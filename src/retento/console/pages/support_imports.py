"""The assist's material and figures (issue 19): uploading tickets, tasks (JSON array or JSON Lines, as `retento
assist import` and the API take them) and documentation (Markdown or HTML files), re-imports updating in place;
an import of more than one batch runs in the background and its progress is shown (htmx polls it); the evaluation
on a labelled set (`retento assist eval`: recall@5, MRR, answer-match share, invented items) and the usage report
(usage share; first-response time with and without suggestions) with its chart. Through assist.service only."""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from retento.assist import service as assist
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
KINDS = ("tickets", "docs", "tasks")
KEPT = 20  # imports whose progress the page still shows (this process's)


@dataclass
class Job:
    """An import in progress (or done) in this process: what it has done so far, shown by the imports page."""

    id: str
    kind: str
    site: str
    total: int
    started_at: datetime
    done: int = 0
    counts: dict[str, int] = field(default_factory=lambda: {"created": 0, "updated": 0, "unchanged": 0})
    error: str | None = None
    finished: bool = False


JOBS: OrderedDict[str, Job] = OrderedDict()
EVALS: dict[str, dict[str, Any]] = {}  # the last evaluation of each site in this process
_lock = threading.Lock()


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


def _run(app: Any, job: Job, kind: str, batches: list[Any]) -> None:
    """Import batch by batch (each its own transaction: what is done stays done; a re-import updates in place)."""
    emb = app.assist.embedder
    calls: dict[str, Callable[..., dict[str, int]]] = {
        "tickets": lambda s, b, now: assist.import_tickets(s, site=job.site, items=b, embedder=emb, now=now),
        "tasks": lambda s, b, now: assist.import_tasks(s, site=job.site, items=b, embedder=emb, now=now),
        "docs": lambda s, b, now: assist.import_docs(s, site=job.site, data=b, embedder=emb, now=now)}
    try:
        for batch in batches:
            with transaction(app.sessions) as s:
                got = calls[kind](s, batch, app.clock.now())
            for k in job.counts:
                job.counts[k] += got[k]
            job.done += len(batch.files) if kind == "docs" else len(batch)
    except DomainError as exc:
        job.error = "; ".join(f"{e.field}: {e.reason}" for e in exc.errors)
    except Exception as exc:  # noqa: BLE001 - shown on the page; the batches done so far stay
        job.error = str(exc) or type(exc).__name__
    finally:
        job.finished = True


def _keep(job: Job) -> None:
    with _lock:
        JOBS[job.id] = job
        while len(JOBS) > KEPT:
            JOBS.popitem(last=False)


def _visible_jobs(viewer: Viewer, codes: set[str]) -> list[Job]:
    with _lock:
        return [j for j in reversed(JOBS.values()) if j.site in codes]


def _imports_page(request: Request, viewer: Viewer, *, status: int = 200, errors: dict[str, str] | None = None,
                  form: dict[str, str] | None = None) -> Response:
    with transaction(reading(request)) as s:
        visible = sites.list_sites(s)
        by_site = {x.code: assist.counts(s, site_ids=[x.id]) for x in visible}
    shown = request.query_params.get("job")
    return render(request, "support/imports.html", status=status, sites=visible, by_site=by_site,
                  jobs=_visible_jobs(viewer, set(by_site)), shown=shown, errors=errors or {}, form=form or {},
                  kinds=KINDS)


@router.get("/support/imports")
def imports(request: Request, viewer: Annotated[Viewer, Depends(signed_in)]) -> Response:
    return _imports_page(request, viewer)


@router.get("/support/imports/jobs/{job_id}")
def job_part(request: Request, viewer: Annotated[Viewer, Depends(signed_in)], job_id: str) -> Response:
    """One import's progress (htmx polls it until it is finished)."""
    with transaction(reading(request)) as s:
        codes = {x.code for x in sites.list_sites(s)}
    job = JOBS.get(job_id)
    if job is None or job.site not in codes:
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
            sites.get_site(s, site)
        batches = _batches(kind, _texts(file or []), base_url.strip(), folder)
    except DomainError as exc:
        return _imports_page(request, viewer, status=exc.status, errors=web.field_errors(exc), form=form)
    total = sum(len(b.files) if kind == "docs" else len(b) for b in batches)
    job = Job(secrets.token_urlsafe(8), kind, site, total, app.clock.now())
    _keep(job)
    if len(batches) == 1:
        _run(app, job, kind, batches)  # one transaction: done before the answer
    else:
        threading.Thread(target=_run, args=(app, job, kind, batches), name=f"assist-import-{job.id}",
                         daemon=True).start()
    return RedirectResponse(f"/support/imports?job={job.id}", status_code=303)


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
    codes = [chosen.code] if chosen else [x.code for x in visible]
    evals = {c: EVALS[c] for c in codes if c in EVALS}
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
        with transaction(reading(request)) as s:
            data = assist.evaluate(s, app.assist, site=site, queries=rows)  # type: ignore[attr-defined]
    except DomainError as exc:
        return _report_page(request, viewer, site, status=exc.status, errors=web.field_errors(exc))
    EVALS[site] = {**data, "at": app.clock.now(), "file": name}
    return RedirectResponse(f"/support/report?site={site}", status_code=303)
