"""Admin → Work queues: every durable-work queue (`app.work`, retento.core.work) with its counts by state and
notes, a queue's dead letters with their last error (paged by key), retry one, and drop one after a confirmation
page, all through the queues service as `retento work` and /api/v1/work."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from retento.console import web
from retento.console.web import Viewer, app_of, reading, render
from retento.core import parsing
from retento.core.db.transactions import transaction
from retento.queues import service as queues

router = web.router()
PAGE = web.Page(router, nav=None, path="/admin/work")
admin = web.may_change("admin")
admin_reader = web.reader("admin")
PAGE_SIZE = 50
QueueName = Annotated[str, Path(max_length=64)]
RowId = Annotated[int, Path(ge=1, le=parsing.INT64_MAX)]


@router.get("/admin/work")
def queue_list(request: Request, viewer: Annotated[Viewer, Depends(admin_reader)]) -> Response:
    app = app_of(request)
    with transaction(reading(request)) as s:
        rows = queues.overview(s, app.work, now=app.clock.now())
    for r in rows:  # the service answers JSON-ready ISO times
        r["oldest_due"] = datetime.fromisoformat(r["oldest_due"]) if r["oldest_due"] else None
    return render(request, "admin/work.html", queues=rows)


@router.get("/admin/work/{queue}")
def dead_letters(request: Request, viewer: Annotated[Viewer, Depends(admin_reader)], queue: QueueName,
                 after: Annotated[int, Query(ge=0, le=parsing.INT64_MAX)] = 0) -> Response:
    app = app_of(request)
    with transaction(reading(request)) as s:
        q = queues.queue(app.work, queue)
        rows = queues.dead(s, app.work, name=queue, after_id=after, limit=PAGE_SIZE + 1)
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    return render(request, "admin/work_dead.html", queue=q, rows=rows, after=after,
                  next_after=rows[-1]["id"] if more else None)


@router.post("/admin/work/{queue}/{row_id}/retry")
def retry(request: Request, viewer: Annotated[Viewer, Depends(admin)], queue: QueueName, row_id: RowId) -> Response:
    """Dead work due again now with fresh attempts; work that is no longer dead is left alone (a second send of
    the form changes nothing)."""
    app = app_of(request)
    with transaction(app.sessions) as s:
        done = queues.retry(s, app.work, name=queue, ids=[row_id], now=app.clock.now())
    return RedirectResponse(f"/admin/work/{queue}?retried={row_id if done else 0}", status_code=303)


@router.get("/admin/work/{queue}/{row_id}/drop")
def drop_confirm(request: Request, viewer: Annotated[Viewer, Depends(admin_reader)], queue: QueueName,
                 row_id: RowId) -> Response:
    """Asks before giving dead work up for good."""
    app = app_of(request)
    with transaction(reading(request)) as s:
        q = queues.queue(app.work, queue)
        row = next(iter(queues.dead(s, app.work, name=queue, after_id=row_id - 1, limit=1)), None)
    if row is None or row["id"] != row_id:
        return RedirectResponse(f"/admin/work/{queue}?dropped=0", status_code=303)
    return render(request, "admin/work_drop.html", queue=q, row=row)


@router.post("/admin/work/{queue}/{row_id}/drop")
def drop(request: Request, viewer: Annotated[Viewer, Depends(admin)], queue: QueueName, row_id: RowId) -> Response:
    app = app_of(request)
    with transaction(app.sessions) as s:
        done = queues.drop(s, app.work, name=queue, ids=[row_id], now=app.clock.now())
    return RedirectResponse(f"/admin/work/{queue}?dropped={row_id if done else 0}", status_code=303)
