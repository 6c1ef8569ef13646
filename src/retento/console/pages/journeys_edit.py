"""Journeys: a new journey, and a journey edited step by step. Each step is its own form (the fields of its type);
saving one sends the whole definition with that step changed through journeys.service.update_journey, checked
as the API checks it: a changed definition is a new version, and nothing is saved when a part is wrong, the
errors shown at the step (and the field) they name. The journey's entry, exits and re-entry rule are one more
form; steps are added after a step (or at the start) and deleted with their place closed up."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from retento.console import web
from retento.console.i18n import N_
from retento.console.pages.journeys_diagram import EVENTS, TYPES
from retento.console.web import Viewer, app_of, reading, render, signed_in
from retento.core import parsing
from retento.core.db.transactions import transaction
from retento.core.errors import DomainError, NotFound
from retento.journeys import service as journeys
from retento.messaging import service as messaging
from retento.sites import service as sites

router = web.router()
PAGE = web.Page(router)
NOBODY = "none"  # the assignee select's value for a task assigned to nobody (`assignee: null`)
marketing = web.may_change("marketing")
ENTRY_KINDS = {"customer_created": N_("a new customer"), "email_confirmed": N_("a customer confirms the email"),
               "segment_entered": N_("a customer enters a segment"), "event": N_("an event")}
REENTRY = {"never": N_("never"), "after": N_("after some days"), "always": N_("always (one run at a time)")}
EXIT_KINDS = {"ordered": N_("the customer orders"), "unsubscribed": N_("withdraws a consent"),
              "segment_left": N_("leaves the segment"), "email_confirmed": N_("confirms the email"),
              "custom": N_("a custom event named"), "condition": N_("a condition holds")}
BRANCH_KINDS = {"interest": N_("has the interest"), "condition": N_("condition"),
                "engaged": N_("did this with the message of step")}
WAIT_EVENTS = ("opened", "read", "clicked", "ordered", "email_confirmed", "custom")
ENGAGED = ("opened", "read", "clicked", "delivered")
SAVED = {"created": N_("Journey created: add its steps, then switch it on."),
         "new-version": N_("Saved as a new version."), "updated": N_("Saved."),
         "unchanged": N_("Nothing changed.")}
FLOWING = ("send", "wait", "wait_event", "add_tag", "remove_tag", "credit_points", "create_task", "webhook")
EXTRA_ROWS = 2
STEP_FIELD = re.compile(r"^steps\.(\d+)(?:\.(.+))?$")


class Errors:
    """The errors of one part of the page (a step, the settings), taken by the fields that show them; what no
    field took is shown above the part's button (`rest`)."""

    def __init__(self, errors: dict[str, str] | None = None) -> None:
        self._left = dict(errors or {})
        self.any = bool(self._left)

    def field(self, name: str) -> str | None:
        return self._left.pop(name, None)

    def under(self, prefix: str) -> list[tuple[str, str]]:
        keys = sorted(k for k in self._left if k == prefix or k.startswith(prefix + "."))
        return [(k, self._left.pop(k)) for k in keys]

    def rest(self) -> list[tuple[str, str]]:
        out = sorted(self._left.items())
        self._left.clear()
        return out


# --- the forms as definitions --------------------------------------------------------------------------------------


def _text(form: Any, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _put(target: dict[str, Any], key: str, value: Any) -> None:
    if value not in ("", None, [], {}):
        target[key] = value
    else:
        target.pop(key, None)


def _rows(form: Any, group: str, names: tuple[str, ...], filled: tuple[str, ...]) -> list[dict[str, str]]:
    """Repeated rows `group.N.name` in order, without those whose `filled` fields are all empty."""
    rows: dict[int, dict[str, str]] = {}
    for key, value in form.multi_items():
        parts = key.split(".")
        if len(parts) == 3 and parts[0] == group and parts[1].isdigit() and parts[2] in names:
            rows.setdefault(int(parts[1]), {})[parts[2]] = str(value).strip()
    return [r for _, r in sorted(rows.items()) if any(r.get(n) for n in filled)]


def step_of(form: Any, kind: str) -> dict[str, Any]:
    """The step a step form describes (the values as typed: the service's schema converts and checks them)."""
    t = _text
    step: dict[str, Any] = {"id": t(form, "id"), "type": kind}
    names = {"send": ("cascade_id", "message_class"), "wait": ("days", "hours", "minutes", "at"),
             "wait_event": ("event", "name", "of_step", "on_event", "on_timeout"), "branch": ("else",),
             "split": ("holdout",), "add_tag": ("tag",), "remove_tag": ("tag",),
             "credit_points": ("amount", "reason", "expires_in_days"),
             "create_task": ("title", "text", "due_in_minutes", "assignee"), "webhook": ("url", "secret")}
    for key in ("label", "next", *names.get(kind, ())):
        _put(step, key, t(form, key))
    if kind == "create_task" and t(form, "assignee") == NOBODY:
        step["assignee"] = None
    if kind == "wait_event":
        _put(step, "timeout", {k: t(form, f"timeout.{k}") for k in ("days", "hours", "minutes") if t(form, f"timeout.{k}")})
    if kind == "branch":
        branches = []
        for r in _rows(form, "branches", ("kind", "value", "did", "next"), ("value", "next")):
            how = r.get("kind") if r.get("kind") in BRANCH_KINDS else "interest"
            test = {"step": r.get("value", ""), "did": r.get("did") or "opened"} if how == "engaged" else r.get("value", "")
            branches.append({how: test, "next": r.get("next", "")})
        step["branches"] = branches
    if kind == "split":
        step["arms"] = [{"name": r.get("name", ""), "share": r.get("share", ""), "next": r.get("next", "")}
                        for r in _rows(form, "arms", ("name", "share", "next"), ("name", "share", "next"))]
    return step


def settings_of(form: Any, base: dict[str, Any]) -> dict[str, Any]:
    """The definition with the settings form's name, description, entry, re-entry rule, exits and start."""
    t = _text
    raw = dict(base)
    raw["name"] = t(form, "name")
    _put(raw, "description", t(form, "description"))
    entry: dict[str, Any] = {"kind": t(form, "entry.kind"), "condition": t(form, "entry.condition") or "true"}
    _put(entry, "entry_points", [p.strip() for p in t(form, "entry.entry_points").split(",") if p.strip()])
    for key in ("segment", "event", "event_name"):
        _put(entry, key, t(form, f"entry.{key}"))
    raw["entry"] = entry
    reentry: dict[str, Any] = {"policy": t(form, "reentry.policy") or "never"}
    _put(reentry, "days", t(form, "reentry.days"))
    raw["reentry"] = reentry
    exits = []
    for r in _rows(form, "exits", ("kind", "value"), ("kind",)):
        kind, value = r.get("kind", ""), r.get("value", "")
        exits.append({"condition": value} if kind == "condition" else {"event": kind, "segment": value}
                     if kind == "segment_left" else {"event": kind, "name": value} if kind == "custom"
                     else {"event": kind})
    raw["exits"] = exits
    _put(raw, "start", t(form, "start"))
    return raw


def rows_of(step: dict[str, Any]) -> list[dict[str, Any]]:
    """A branch step's branches or a split's arms as the form's rows, with empty rows to add more."""
    if step["type"] == "branch":
        rows = []
        for b in step.get("branches", []):
            how = next((k for k in BRANCH_KINDS if k in b), "interest")
            value = b[how]["step"] if how == "engaged" and isinstance(b[how], dict) else b.get(how, "")
            rows.append({"kind": how, "value": value, "next": b.get("next", ""),
                         "did": b[how].get("did", "opened") if how == "engaged" and isinstance(b[how], dict) else ""})
        return rows + [{"kind": "interest", "value": "", "did": "", "next": ""}] * EXTRA_ROWS
    if step["type"] == "split":
        return list(step.get("arms", [])) + [{"name": "", "share": "", "next": ""}] * EXTRA_ROWS
    return []


def exit_rows(definition: dict[str, Any]) -> list[dict[str, str]]:
    rows = [{"kind": "condition" if x.get("condition") else x.get("event", ""),
             "value": x.get("condition") or x.get("segment") or x.get("name") or ""}
            for x in definition.get("exits", [])]
    return rows + [{"kind": "", "value": ""}] * EXTRA_ROWS


def _split_errors(errors: dict[str, str], *, shift_from: int | None = None) -> tuple[dict[int, dict[str, str]],
                                                                                        dict[str, str]]:
    """Errors by step index (the field after `steps.N.`; "" for the whole step) and the others. `shift_from`: a
    step was deleted at that index, so the definition checked had the later steps one place earlier."""
    per_step: dict[int, dict[str, str]] = {}
    other: dict[str, str] = {}
    for field, reason in errors.items():
        m = STEP_FIELD.match(field)
        if m is None:
            other[field] = reason
            continue
        index = int(m.group(1))
        if shift_from is not None and index >= shift_from:
            index += 1
        per_step.setdefault(index, {})[m.group(2) or ""] = reason
    return per_step, other


def options(viewer: Viewer, *, ids: list[str]) -> dict[str, list[tuple[Any, str, bool]]]:
    """The choices of the forms' selects: (value, text, whether the text is user data)."""
    g = viewer.gettext

    def words(values: dict[str, str]) -> list[tuple[Any, str, bool]]:
        return [(k, g(v), False) for k, v in values.items()]

    return {"entry": words(ENTRY_KINDS), "reentry": words(REENTRY), "exits": words(EXIT_KINDS),
            "branch": words(BRANCH_KINDS), "types": words(TYPES),
            "events": words({k: EVENTS[k] for k in WAIT_EVENTS}), "engaged": words({k: EVENTS[k] for k in ENGAGED}),
            "classes": words({"marketing": N_("marketing"), "transactional": N_("transactional")}),
            "steps": [(i, i, True) for i in ids]}


# --- the page ------------------------------------------------------------------------------------------------------


def _load(s: Any, journey_id: int) -> tuple[Any, dict[str, Any]]:
    journey = journeys.get(s, journey_id)
    return journey, journeys.out(s, journey).model_dump()


def _editor(request: Request, journey_id: int, *, typed: dict[int, dict[str, Any]] | None = None,
            errors: dict[str, str] | None = None, shift_from: int | None = None, add: str | None = None,
            after: str = "", settings: dict[str, Any] | None = None, status: int = 200) -> Response:
    with transaction(reading(request)) as s:
        journey, out = _load(s, journey_id)
        cascades = messaging.list_cascades(s, site_id=journey.site_id, limit=1000)
        managers = sites.list_managers(s)
    definition = out["definition"]
    steps = [dict(x) for x in definition["steps"]]
    per_step, other = _split_errors(errors or {}, shift_from=shift_from)
    for index, step in (typed or {}).items():
        if index < len(steps):
            steps[index] = step
        else:
            add = step["type"]
    if add is not None and add not in TYPES:
        raise DomainError.one("add", "an unknown step type")
    new = (typed or {}).get(len(steps)) or ({"id": "", "type": add} if add else None)
    shown = settings or definition
    opts = options(request.state.viewer, ids=[x["id"] for x in definition["steps"]])
    opts.update(cascades=[(c.id, c.name, True) for c in cascades],
                assignee=[("customer_manager", request.state.viewer.gettext("the customer's manager"), False),
                          (NOBODY, request.state.viewer.gettext("nobody"), False)]
                + [(m.id, m.name, True) for m in managers],
                flowing=[(x["id"], x["id"], True) for x in definition["steps"] if x["type"] in FLOWING])
    return render(request, "journeys/edit.html", status=status, j=out, steps=steps, new=new, after=after,
                  step_errors={i: Errors(e) for i, e in per_step.items()}, other=Errors(other),
                  settings=shown, exits=exit_rows(shown), rows_of=rows_of, Errors=Errors, opts=opts, types=TYPES,
                  saved=SAVED.get(request.query_params.get("saved", "")), problems=len(errors or {}))


@router.get("/journeys/{journey_id:int}/edit")
def journey_edit(request: Request, viewer: Annotated[Viewer, Depends(signed_in)], journey_id: int,
                 add: Annotated[str | None, Query(max_length=32)] = None,
                 after: Annotated[str, Query(max_length=64)] = "") -> Response:
    return _editor(request, journey_id, add=add or None, after=after)


def _store(request: Request, journey_id: int, form: Any, change: Any) -> tuple[str, dict[str, Any]]:
    """Apply `change` to the current definition and save it as the API does; returns (outcome, definition)."""
    app = app_of(request)
    with transaction(app.sessions) as s:
        journey, out = _load(s, journey_id)
        shown = parsing.integer(_text(form, "version"), lo=1, hi=2**31 - 1)
        if shown is not None and shown != journey.version:
            raise DomainError.one("version", "the journey was saved by someone else since this page was shown: "
                                             f"it is at version {journey.version} now; reload the page")
        raw = change(out["definition"])
        _, outcome = journeys.update_journey(s, journey=journey, raw=raw, now=app.clock.now())
    return outcome.replace(" ", "-"), raw


@router.post("/journeys/{journey_id:int}/steps/{index:int}")
async def step_save(request: Request, viewer: Annotated[Viewer, Depends(marketing)], journey_id: int,
                    index: int) -> Response:
    """Save step `index` as the form describes it; `index` one past the last step adds it, after the step named
    in `after` (or at the start when that is empty)."""
    form = await request.form()
    return await run_in_threadpool(_step_save, request, journey_id, index, form)


def _step_save(request: Request, journey_id: int, index: int, form: Any) -> Response:
    kind = _text(form, "type")
    if kind not in TYPES:
        raise DomainError.one("type", "an unknown step type")
    step, after = step_of(form, kind), _text(form, "after")

    def change(definition: dict[str, Any]) -> dict[str, Any]:
        steps = [dict(x) for x in definition["steps"]]
        if index > len(steps):
            raise NotFound("index", f"no step {index}")
        if index < len(steps):
            step["id"] = steps[index]["id"]  # a step keeps its id: other steps name it
            steps[index] = step
            return {**definition, "steps": steps}
        before = next((x for x in steps if x["id"] == after), None) if after else None
        if before is not None:
            step.setdefault("next", before.get("next"))
            before["next"] = step["id"]
        elif not after:
            step.setdefault("next", definition.get("start") or steps[0]["id"])
            definition = {**definition, "start": step["id"]}
        if step.get("next") is None:
            step.pop("next", None)
        return {**definition, "steps": [*steps, step]}

    try:
        outcome, _ = _store(request, journey_id, form, change)
    except DomainError as exc:
        if isinstance(exc, NotFound) and "id" in web.field_errors(exc):
            raise
        return _editor(request, journey_id, typed={index: step}, errors=web.field_errors(exc), after=after,
                       status=exc.status)
    return RedirectResponse(f"/journeys/{journey_id}/edit?saved={outcome}#step-{step['id']}", status_code=303)


@router.post("/journeys/{journey_id:int}/steps/{index:int}/delete")
async def step_delete(request: Request, viewer: Annotated[Viewer, Depends(marketing)], journey_id: int,
                      index: int) -> Response:
    """Delete step `index`; what led to it leads to the step after it instead."""
    form = await request.form()
    return await run_in_threadpool(_step_delete, request, journey_id, index, form)


def relink(step: dict[str, Any], gone: str, instead: str | None) -> dict[str, Any]:
    """A step whose ways to the deleted step `gone` lead to `instead` (the deleted step's next); a plain `next`
    to it is dropped when it had none (the run finishes there). Other references are left for the check."""
    out = dict(step)
    for key in ("next", "on_event", "on_timeout", "else"):
        if out.get(key) == gone:
            if instead:
                out[key] = instead
            elif key == "next":
                del out[key]
    for group in ("branches", "arms"):
        if group in out:
            out[group] = [{**x, "next": instead} if x.get("next") == gone and instead else x for x in out[group]]
    return out


def _step_delete(request: Request, journey_id: int, index: int, form: Any) -> Response:
    def change(definition: dict[str, Any]) -> dict[str, Any]:
        steps = list(definition["steps"])
        if not 0 <= index < len(steps):
            raise NotFound("index", f"no step {index}")
        gone = steps.pop(index)
        instead = gone.get("next")
        out = {**definition, "steps": [relink(x, gone["id"], instead) for x in steps]}
        if definition.get("start") == gone["id"]:
            _put(out, "start", instead)
        return out

    try:
        outcome, _ = _store(request, journey_id, form, change)
    except DomainError as exc:
        if isinstance(exc, NotFound) and "id" in web.field_errors(exc):
            raise
        return _editor(request, journey_id, errors=web.field_errors(exc), shift_from=index, status=exc.status)
    return RedirectResponse(f"/journeys/{journey_id}/edit?saved={outcome}", status_code=303)


@router.post("/journeys/{journey_id:int}/settings")
async def settings_save(request: Request, viewer: Annotated[Viewer, Depends(marketing)], journey_id: int) -> Response:
    form = await request.form()
    return await run_in_threadpool(_settings_save, request, journey_id, form)


def _settings_save(request: Request, journey_id: int, form: Any) -> Response:
    typed: dict[str, Any] = {}

    def change(definition: dict[str, Any]) -> dict[str, Any]:
        typed.update(settings_of(form, definition))
        return typed

    try:
        outcome, _ = _store(request, journey_id, form, change)
    except DomainError as exc:
        if isinstance(exc, NotFound) and "id" in web.field_errors(exc):
            raise
        return _editor(request, journey_id, errors=web.field_errors(exc), settings=typed or None, status=exc.status)
    return RedirectResponse(f"/journeys/{journey_id}/edit?saved={outcome}", status_code=303)


# --- a new journey -------------------------------------------------------------------------------------------------

FIRST_STEP = {"id": "end", "type": "exit"}


def _new_form(request: Request, *, settings: dict[str, Any], errors: dict[str, str] | None = None,
              status: int = 200) -> Response:
    with transaction(reading(request)) as s:
        visible = sites.list_sites(s)
    opts = options(request.state.viewer, ids=[])
    opts["sites"] = [(x.code, x.name, True) for x in visible]
    return render(request, "journeys/new.html", status=status, settings=settings, exits=exit_rows(settings),
                  other=Errors(errors), opts=opts, Errors=Errors)


@router.get("/journeys/new")
def journey_new(request: Request, viewer: Annotated[Viewer, Depends(signed_in)]) -> Response:
    return _new_form(request, settings={"entry": {"kind": "customer_created", "condition": "true"},
                                        "reentry": {"policy": "never"}, "exits": []})


@router.post("/journeys")
async def journey_create(request: Request, viewer: Annotated[Viewer, Depends(marketing)]) -> Response:
    form = await request.form()
    return await run_in_threadpool(_create, request, form)


def _create(request: Request, form: Any) -> Response:
    """A new journey, switched off, whose only step is an exit: the steps are added on its edit page."""
    app = app_of(request)
    raw = settings_of(form, {"site": _text(form, "site"), "active": False, "steps": [FIRST_STEP]})
    try:
        with transaction(app.sessions) as s:
            if _text(form, "name") and any(j.name == raw["name"] for j in journeys.list_journeys(s, site=raw["site"])):
                raise DomainError.one("name", f"a journey named {raw['name']!r} already exists on this site")
            journey, _ = journeys.apply(s, raw=raw, now=app.clock.now())
            journey_id = journey.id
    except DomainError as exc:
        return _new_form(request, settings=raw, errors=web.field_errors(exc), status=exc.status)
    return RedirectResponse(f"/journeys/{journey_id}/edit?saved=created", status_code=303)
