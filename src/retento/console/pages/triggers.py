"""Triggers: the list (state, pending runs, last 24 h matched / acted / failed from the run log), the editor (the
condition checked as it is typed by the engine's own compiler, pointing at the wrong part; actions, delay, run
limits, sites), dry runs over recent events, a trigger's pending delayed runs (cancel one or all, fire one now),
its run log, "why did / didn't it fire for order N" (explain) and the ready-made templates. Everything goes
through triggers.service, as the API and CLI do."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

import yaml
from fastapi import Depends, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from retento.console import web
from retento.console.i18n import N_
from retento.console.web import Viewer, app_of, reading, render, signed_in
from retento.core import parsing
from retento.core.db.transactions import transaction
from retento.core.errors import DomainError
from retento.sites import service as sites
from retento.triggers import service as triggers, templates
from retento.triggers.compiled import FIELDS
from retento.triggers.conditions import ConditionError, compile_condition
from retento.triggers.schemas import DryRunIn, DryRunOut
from retento.triggers.wiring import engine_of

router = web.router()
PAGE = web.Page(router, nav="Triggers", path="/triggers", order=30)
marketing = web.may_change("marketing")
PAGE_SIZE = 50
LIMIT_ROWS = 3
OUTCOMES = {"acted": N_("acted"), "scheduled": N_("scheduled"), "skipped": N_("skipped"), "failed": N_("failed"),
            "cancelled": N_("cancelled"), "not_matched": N_("not matched"), "not_listening": N_("not listening"),
            "error": N_("error"), "limited": N_("limited"), "matched": N_("matched"), "fired": N_("fired"),
            "pending": N_("pending"), "done": N_("done")}
PERS = {"customer": N_("customer"), "order": N_("order"), "trigger": N_("the whole trigger")}
PHASES = {"event": N_("on the event"), "fire": N_("when due"), "cancel": N_("cancel")}


def _failed(request: Request, status: int) -> int:
    """A fragment that reports bad input: htmx swaps in 2xx answers only, so to htmx it is a 200."""
    return 200 if request.headers.get("HX-Request") else status


# --- the list --------------------------------------------------------------------------------------------------


@router.get("/triggers")
def trigger_list(request: Request, viewer: Annotated[Viewer, Depends(signed_in)]) -> Response:
    now = app_of(request).clock.now()
    with transaction(reading(request)) as s:
        rows = triggers.list_triggers(s)
        counts = triggers.recent_counts(s, since=now - timedelta(hours=24))
    return render(request, "triggers/list.html", triggers=rows, counts=counts, outcomes=OUTCOMES)


# --- the editor ------------------------------------------------------------------------------------------------


def _form_value(form: Any, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def definition_of(form: Any, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """The trigger definition the editor's form describes, over `base` (the saved definition keeps what the form
    does not show, such as `on_change`). Bad YAML in the actions or a non-number is a DomainError naming the field;
    the rest is checked by triggers.service.parse, as for the API."""
    raw = dict(base or {})
    raw.update(name=_form_value(form, "name"), condition=_form_value(form, "condition") or "true",
               events=[e for e in form.getlist("events") if isinstance(e, str)],
               sites=[x for x in form.getlist("sites") if isinstance(x, str)],
               active=form.get("active") == "on")
    raw["description"] = _form_value(form, "description") or None
    raw["event_names"] = [n.strip() for n in _form_value(form, "event_names").split(",") if n.strip()]
    try:
        actions = yaml.safe_load(_form_value(form, "actions") or "[]")
    except yaml.YAMLError as exc:
        raise DomainError.one("actions", f"not YAML: {str(exc).splitlines()[0]}") from None
    if isinstance(actions, dict):
        actions = [actions]
    raw["actions"] = actions
    delay = {k: _number(form, f"delay_{k}", f"delay.{k}") for k in ("days", "hours", "minutes")}
    delay = {k: v for k, v in delay.items() if v}
    if at := _form_value(form, "delay_at"):
        delay["at"] = at
    raw["delay"] = delay or None
    limits = []
    for n, (per, most, period) in enumerate(zip(form.getlist("limit_per"), form.getlist("limit_max"),
                                                form.getlist("limit_period_days"), strict=False)):
        if per:
            limit: dict[str, Any] = {"per": per, "max": _int(most, f"limits.{n}.max") or 1}
            if days := _int(period, f"limits.{n}.period_days"):
                limit["period_days"] = days
            limits.append(limit)
    raw["limits"] = limits
    return {k: v for k, v in raw.items() if v is not None}


def _number(form: Any, name: str, field: str) -> int | None:
    return _int(form.get(name), field)


def _id(value: str, field: str) -> int | None:
    if not value.strip():
        return None
    number = parsing.integer(value.strip(), lo=1, hi=parsing.INT64_MAX)
    if number is None:
        raise DomainError.one(field, "must be a whole number from 1")
    return number


def _int(value: Any, field: str) -> int | None:
    text = value.strip() if isinstance(value, str) else ""
    if not text:
        return None
    number = parsing.integer(text, lo=0, hi=2**31 - 1)
    if number is None:
        raise DomainError.one(field, "must be a whole number")
    return number


def _editor(request: Request, *, trigger: Any = None, definition: dict[str, Any] | None = None, status: int = 200,
            errors: dict[str, str] | None = None) -> Response:
    with transaction(app_of(request).sessions) as s:  # the service reads the app's registries through it
        types = triggers.event_types(s)
        visible = sites.list_sites(s)
    d = definition or {"events": [], "condition": "true", "active": True, "actions": []}
    actions = yaml.safe_dump(d.get("actions") or [], allow_unicode=True, sort_keys=False) if d.get("actions") else ""
    limits = list(d.get("limits") or [])[:LIMIT_ROWS]
    limits += [{}] * (LIMIT_ROWS - len(limits))
    return render(request, "triggers/edit.html", status=status, trigger=trigger, d=d, actions_yaml=actions,
                  limits=limits, pers=PERS, event_types=types, sites=visible,
                  action_specs=list(app_of(request).parts.actions.values()), errors=errors or {})


@router.get("/triggers/new")
def trigger_new(request: Request, viewer: Annotated[Viewer, Depends(signed_in)]) -> Response:
    return _editor(request)


@router.post("/triggers")
async def trigger_create(request: Request, viewer: Annotated[Viewer, Depends(marketing)]) -> Response:
    form = await request.form()
    return await run_in_threadpool(_save, request, form, None)


@router.get("/triggers/condition")
def condition_check(request: Request, viewer: Annotated[Viewer, Depends(signed_in)],
                    condition: Annotated[str, Query(max_length=10000)] = "") -> Response:
    """The condition as typed, compiled by the engine's compiler: fine, or the message and the wrong part marked."""
    source = condition.strip() or "true"
    try:
        compile_condition(source, fields=FIELDS)
    except ConditionError as exc:
        start, end = exc.span if exc.span is not None else (0, len(source))
        return render(request, "triggers/_condition.html", error=str(exc), before=source[:start],
                      wrong=source[start:end], after=source[end:])
    return render(request, "triggers/_condition.html", error=None)


@router.post("/triggers/dry-run")
async def dry_run_form(request: Request, viewer: Annotated[Viewer, Depends(marketing)]) -> Response:
    """The editor's definition (saved or not) evaluated over recent events: a count, a sample, why not."""
    form = await request.form()
    return await run_in_threadpool(_dry_run, request, form)


def _dry_run(request: Request, form: Any) -> Response:
    """One step of the dry run (`console_dry_run_step` inputs): the result so far with the progress; while inputs
    remain, the fragment asks for the next step itself, carrying the result so far (`state`) and where to go on
    (`before_id`), so any server process can take it."""
    app = app_of(request)
    base = None
    try:
        with transaction(app.sessions) as s:  # nothing is written; parse reads the app's registries
            if trigger_id := _int(form.get("trigger_id"), "trigger_id"):
                base = triggers.get_trigger(s, trigger_id).definition
            raw = definition_of(form, base) if form.get("name") is not None else base
            options = DryRunIn(over=_form_value(form, "over") or "events",
                               limit=_int(form.get("limit"), "limit") or 1000)
            before = DryRunOut.model_validate_json(form["state"]) if form.get("state") else None
            total = _int(form.get("total"), "total") or triggers.dry_run_total(s, raw=raw, options=options)
            left = options.limit - (before.evaluated if before else 0)
            step, next_id = triggers.dry_run_step(s, raw=raw, options=options, now=app.clock.now(),
                                                  before_id=_int(form.get("before_id"), "before_id"),
                                                  size=max(1, min(app.settings.console_dry_run_step, left)))
    except ValidationError as exc:
        return render(request, "triggers/_dry_run.html", status=_failed(request, 400),
                      errors=web.field_errors(DomainError.from_pydantic(exc)))
    except DomainError as exc:
        return render(request, "triggers/_dry_run.html", status=_failed(request, exc.status),
                      errors=web.field_errors(exc))
    result = triggers.merge_dry_runs(before, step, sample=options.sample) if before else step
    if result.evaluated >= min(options.limit, total):  # counted at the first step; ids descend, so nothing newer joins
        next_id = None
    carry = {"before_id": next_id, "total": max(total, result.evaluated), "state": result.model_dump_json()}
    return render(request, "triggers/_dry_run.html", result=result, next_id=next_id, total=carry["total"],
                  carry=carry)


@router.get("/triggers/{trigger_id:int}/edit")
def trigger_edit(request: Request, viewer: Annotated[Viewer, Depends(signed_in)], trigger_id: int) -> Response:
    with transaction(reading(request)) as s:
        t = triggers.get_trigger(s, trigger_id)
        out = triggers.out(t)
    return _editor(request, trigger=out, definition=out.definition)


@router.post("/triggers/{trigger_id:int}/edit")
async def trigger_update(request: Request, viewer: Annotated[Viewer, Depends(marketing)],
                         trigger_id: int) -> Response:
    form = await request.form()
    return await run_in_threadpool(_save, request, form, trigger_id)


def _save(request: Request, form: Any, trigger_id: int | None) -> Response:
    app, shown, current = app_of(request), None, None
    try:
        with transaction(app.sessions) as s:
            if trigger_id is not None:
                current = triggers.get_trigger(s, trigger_id)
                shown = triggers.out(current)
            raw = definition_of(form, current.definition if current else None)
            if current is None:
                trigger_id = triggers.create_trigger(s, raw=raw, now=app.clock.now()).id
            else:
                triggers.update_trigger(s, trigger=current, raw=raw, now=app.clock.now())
    except DomainError as exc:
        if shown is None and trigger_id is not None:
            raise  # the trigger itself is not there (or not visible)
        try:
            definition = definition_of(form, shown.definition if shown else None)
        except DomainError:
            definition = {**(shown.definition if shown else {}), "name": _form_value(form, "name"),
                          "condition": _form_value(form, "condition"), "actions": []}
        return _editor(request, trigger=shown, definition=definition, status=400, errors=web.field_errors(exc))
    return RedirectResponse(f"/triggers/{trigger_id}?saved=1", status_code=303)


# --- one trigger -----------------------------------------------------------------------------------------------


@router.get("/triggers/{trigger_id:int}")
def trigger_page(request: Request, viewer: Annotated[Viewer, Depends(signed_in)], trigger_id: int,
                 after: Annotated[int, Query(ge=0)] = 0, pending_after: Annotated[int, Query(ge=0)] = 0,
                 saved: bool = False) -> Response:
    now = app_of(request).clock.now()
    with transaction(reading(request)) as s:
        t = triggers.get_trigger(s, trigger_id)
        out = triggers.out(t, triggers.count_pending(s, trigger_id=trigger_id))
        waiting = triggers.pending(s, trigger_id=trigger_id, after_id=pending_after, limit=PAGE_SIZE + 1)
        log = triggers.runs(s, trigger_id=trigger_id, after_id=after, limit=PAGE_SIZE + 1)
        counts = triggers.recent_counts(s, since=now - timedelta(hours=24)).get(trigger_id, {})
    context = {"t": out, "counts": counts, "saved": saved, "outcomes": OUTCOMES, "phases": PHASES,
               "pending": waiting[:PAGE_SIZE], "pending_after": pending_after,
               "next_pending": waiting[PAGE_SIZE - 1].id if len(waiting) > PAGE_SIZE else None,
               "runs": log[:PAGE_SIZE], "after": after,
               "next_after": log[PAGE_SIZE - 1].id if len(log) > PAGE_SIZE else None}
    return render(request, "triggers/show.html", **context)


@router.post("/triggers/{trigger_id:int}/active")
async def trigger_switch(request: Request, viewer: Annotated[Viewer, Depends(marketing)], trigger_id: int) -> Response:
    active = (await request.form()).get("active") == "on"
    app = app_of(request)
    with transaction(app.sessions) as s:
        triggers.set_active(s, trigger=triggers.get_trigger(s, trigger_id), active=active, now=app.clock.now())
    return RedirectResponse(f"/triggers/{trigger_id}?saved=1", status_code=303)


@router.post("/triggers/{trigger_id:int}/pending/cancel")
def pending_cancel_all(request: Request, viewer: Annotated[Viewer, Depends(marketing)], trigger_id: int) -> Response:
    app = app_of(request)
    with transaction(app.sessions) as s:
        triggers.cancel_pending(s, trigger=triggers.get_trigger(s, trigger_id), now=app.clock.now())
    return RedirectResponse(f"/triggers/{trigger_id}?saved=1#pending", status_code=303)


@router.post("/triggers/{trigger_id:int}/pending/{timer_id:int}/cancel")
def pending_cancel(request: Request, viewer: Annotated[Viewer, Depends(marketing)], trigger_id: int,
                   timer_id: int) -> Response:
    app = app_of(request)
    with transaction(app.sessions) as s:
        triggers.cancel_timer(s, timer_id=timer_id, now=app.clock.now())
    return RedirectResponse(f"/triggers/{trigger_id}?saved=1#pending", status_code=303)


@router.post("/triggers/{trigger_id:int}/pending/{timer_id:int}/fire")
def pending_fire(request: Request, viewer: Annotated[Viewer, Depends(marketing)], trigger_id: int,
                 timer_id: int) -> Response:
    app = app_of(request)
    triggers.fire_timer(app.sessions, engine=engine_of(app), timer_id=timer_id)
    return RedirectResponse(f"/triggers/{trigger_id}?saved=1#runs", status_code=303)


@router.get("/triggers/{trigger_id:int}/explain")
def explain(request: Request, viewer: Annotated[Viewer, Depends(signed_in)], trigger_id: int,
            order: Annotated[str, Query(max_length=32)] = "",
            customer: Annotated[str, Query(max_length=32)] = "") -> Response:
    """Why the trigger did or didn't fire for an order or a customer (a fragment for the trigger's page; the form
    sends both fields, one of them empty)."""
    app = app_of(request)
    try:
        order_id, customer_id = _id(order, "order"), _id(customer, "customer")
        with transaction(app.sessions) as s:  # nothing is written; explain reads the app's registries
            out = triggers.explain(s, trigger=triggers.get_trigger(s, trigger_id), order_id=order_id,
                                   customer_id=customer_id, limit=100, max_depth=app.settings.trigger_max_depth)
    except DomainError as exc:
        if "id" in web.field_errors(exc):
            raise
        return render(request, "triggers/_explain.html", status=_failed(request, exc.status),
                      errors=web.field_errors(exc))
    return render(request, "triggers/_explain.html", out=out, outcomes=OUTCOMES)


# --- ready-made triggers ---------------------------------------------------------------------------------------


@router.get("/triggers/templates")
def template_list(request: Request, viewer: Annotated[Viewer, Depends(signed_in)]) -> Response:
    return render(request, "triggers/templates.html", templates=[(n, templates.load(n)) for n in templates.names()])


@router.post("/triggers/templates/{name}")
async def template_install(request: Request, viewer: Annotated[Viewer, Depends(marketing)], name: str) -> Response:
    form = await request.form()
    params = {}
    for key in templates.load(name).get("params", {}):
        value = form.get(f"param_{key}")
        if isinstance(value, str) and value.strip():
            try:
                params[key] = yaml.safe_load(value)
            except yaml.YAMLError:
                params[key] = value
    return await run_in_threadpool(_install, request, name, params)


def _install(request: Request, name: str, params: dict[str, Any]) -> Response:
    app = app_of(request)
    with transaction(app.sessions) as s:
        trigger, _ = triggers.install_template(s, name=name, params=params, now=app.clock.now())
        trigger_id = trigger.id
    return RedirectResponse(f"/triggers/{trigger_id}?saved=1", status_code=303)
