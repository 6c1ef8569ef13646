"""Support tickets with the assist beside them (issue 19): the imported tickets, a ticket with its reply box, and
the assist part the ticket page and the inbox's dialog page load after they are shown (htmx: the query's
embedding stays out of the page's own render): similar past tickets with scores and answers, the suggested answer
with its sources and what the grounding guard removed, matched development tasks, and documentation links that
follow what the operator types (each pause in typing). The operator marks a suggestion used, edited (its text goes
into the reply box) or dismissed. Everything goes through assist.service, the same as /api/v1/assist."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, Form, Query, Request
from fastapi.responses import Response
from pydantic import ValidationError

from retento.assist import service as assist
from retento.assist.schemas import MarkIn
from retento.console import web
from retento.console.i18n import N_
from retento.console.web import Viewer, app_of, reading, render, signed_in
from retento.core import parsing
from retento.core.db.transactions import transaction
from retento.core.errors import DomainError
from retento.inbox import queries as inbox_queries, service as inbox
from retento.sites import service as sites

router = web.router()
PAGE = web.Page(router, nav=N_("Support"), path="/support", order=13)
operations = web.may_change("operations")
LIST_SIZE = 100
K = 5  # similar tickets shown
TASKS = 3
LINKS = 5
ASKED = 3  # the customer's newest messages of a dialog that make its question
SHOWN_TEXT = 2_000  # what is searched of a long text (the embedder reads about as much; the API's doc-links limit)
ANSWERED = {"": None, "yes": True, "no": False}


def _site(s: Any, code: str) -> Any:
    visible = sites.list_sites(s)
    chosen = next((x for x in visible if x.code == code), None)
    return visible, chosen


@router.get("/support")
def tickets(request: Request, viewer: Annotated[Viewer, Depends(signed_in)], site: str = "",
            q: Annotated[str, Query(max_length=200)] = "", answered: str = "") -> Response:
    """The imported tickets of the user's sites, newest import first, with a search and an answered filter."""
    answered = answered if answered in ANSWERED else ""
    with transaction(reading(request)) as s:
        visible, chosen = _site(s, site)
        rows = assist.list_tickets(s, site_id=chosen.id if chosen else None, search=q, answered=ANSWERED[answered],
                                   limit=LIST_SIZE + 1)
        counts = assist.counts(s, site_ids=[chosen.id] if chosen else None)
    codes = {x.id: x.code for x in visible}
    return render(request, "support/list.html", sites=visible, site=chosen, q=q, answered=answered,
                  tickets=rows[:LIST_SIZE], more=len(rows) > LIST_SIZE, codes=codes, counts=counts)


@router.get("/support/{site}/tickets/{external_id:path}")
def ticket(request: Request, viewer: Annotated[Viewer, Depends(signed_in)], site: str, external_id: str) -> Response:
    """A ticket: its request and the answer it was given, a reply box, and the assist beside it (loaded after)."""
    with transaction(reading(request)) as s:
        item = assist.get_ticket(s, site=site, external_id=external_id)
        shop = sites.get_site(s, site)
    return render(request, "support/ticket.html", ticket=item, shop=shop,
                  assist_url="/support/assist?" + urlencode({"site": shop.code, "ticket": external_id}))


def _dialog_question(s: Any, dialog_id: int, now: datetime) -> tuple[str, float | None, str]:
    """A dialog's question (its customer's newest messages), the seconds its open cycle has waited for a first
    response, and its site's code."""
    dialog = inbox.get_dialog(s, dialog_id)
    shown, _ = inbox_queries.recent_messages(s, dialog_id=dialog.id, limit=50)
    asked = [m["text"] for m in shown if m["direction"] == "in" and m.get("text")][-ASKED:]
    view = inbox_queries.dialog_view(s, dialog, now)
    cycle = view["cycles"][-1] if view["cycles"] else None
    waited = None
    if cycle is not None:
        waited = cycle["first_response_seconds"] if cycle["first_response_at"] else round(
            (now - cycle["opened_at"]).total_seconds(), 1)
    code = next(x.code for x in sites.list_sites(s) if x.id == dialog.site_id)
    return "\n".join(asked), waited, code


@router.get("/support/assist")
def assist_part(request: Request, viewer: Annotated[Viewer, Depends(signed_in)], site: str = "",
                ticket: Annotated[str, Query(max_length=255)] = "",
                dialog: Annotated[int | None, Query(ge=1, le=parsing.INT64_MAX)] = None) -> Response:
    """The assist beside a ticket (`site` and `ticket`) or an inbox dialog (`dialog`): similar tickets, the
    suggestion with its sources, matched tasks (htmx loads it once the page is shown)."""
    app = app_of(request)
    with transaction(reading(request)) as s:
        waited = None
        if dialog is not None:
            text, waited, site = _dialog_question(s, dialog, app.clock.now())
            ref, exclude = f"dialog:{dialog}", None
        else:
            item = assist.get_ticket(s, site=site, external_id=ticket)
            text, ref, exclude = f"{item.title}\n{item.body}".strip(), f"ticket:{ticket}", ticket
        text = text[:SHOWN_TEXT]
        have = assist.imported(s, site_id=sites.get_site(s, site).id)
        found, tasks = None, []
        if text and have & {"ticket", "doc"}:  # nothing imported: no query to embed
            found = assist.suggest(s, app.assist, site=site, text=text, k=K, exclude=exclude)  # type: ignore[attr-defined]
        if text and "task" in have:
            tasks = assist.match_tasks(s, app.assist, site=site, text=text, k=TASKS)  # type: ignore[attr-defined]
    return render(request, "support/_assist.html", found=found, tasks=tasks, site=site, ref=ref, waited=waited,
                  key=secrets.token_urlsafe(16), asked=bool(text), imported=bool(have))


@router.get("/support/links")
def links(request: Request, viewer: Annotated[Viewer, Depends(signed_in)], site: str = "",
          text: Annotated[str, Query(max_length=20_000)] = "") -> Response:
    """Documentation sections for what the operator has typed so far (htmx: on each pause in typing)."""
    typed = text.strip()[:SHOWN_TEXT]
    with transaction(reading(request)) as s:
        docs = "doc" in assist.imported(s, site_id=sites.get_site(s, site).id)
        found = assist.doc_links(s, app_of(request).assist, site=site, text=typed, k=LINKS) if typed and docs else []  # type: ignore[attr-defined]
    return render(request, "support/_links.html", links=found, typed=bool(typed))


ACTIONS = {"used": N_("Marked used."), "edited": N_("Put into the reply box to edit."),
           "dismissed": N_("Dismissed.")}


@router.post("/support/marks")
def mark(request: Request, viewer: Annotated[Viewer, Depends(operations)], site: Annotated[str, Form()] = "",
         ref: Annotated[str, Form()] = "", action: Annotated[str, Form()] = "",
         sources: Annotated[str, Form()] = "", waited: Annotated[str, Form()] = "",
         key: Annotated[str, Form()] = "") -> Response:
    """The operator's mark of a suggestion (used, edited or dismissed; a repeated key keeps the first mark)."""
    app = app_of(request)
    try:
        data = MarkIn.model_validate({
            "ticket": ref, "action": action, "sources": [x.strip() for x in sources.splitlines() if x.strip()],
            "first_response_seconds": waited or None,
            "operator_id": viewer.user_id, "idempotency_key": f"{key}-{action}" if key else ""})
    except ValidationError as exc:
        raise DomainError.from_pydantic(exc) from None
    with transaction(app.sessions) as s:
        assist.mark(s, site=site, data=data, now=app.clock.now())
    return render(request, "support/_marked.html", message=ACTIONS.get(data.action.value, ""))
