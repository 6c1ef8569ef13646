"""Journey services: save a definition (checked as a whole; a changed definition is a new version), read journeys
and their runs, switch them, migrate runs to the current version."""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from retento.core import http, parsing, scoping
from retento.core.errors import Conflict, DomainError, FieldError, NotFound
from retento.customers.merges import Merge
from retento.customers.models import Customer
from retento.journeys import engine, mechanics
from retento.journeys.models import Journey, JourneyRun, JourneyStep, JourneyVersion
from retento.journeys.runner import finish
from retento.journeys.schemas import BranchStep, JourneyIn, JourneyOut, RunOut, Send, Task, Webhook
from retento.messaging import service as messaging
from retento.messaging.schemas import CascadeIn, TemplateIn
from retento.segments import service as segments
from retento.segments.schemas import SegmentCreate
from retento.sites.models import Site
from retento.sites.service import get_site, manager_ids
from retento.triggers.conditions import ConditionError, compile_condition

_TAG = re.compile(r"^(steps\.\d+)\.(send|wait|wait_event|branch|split|add_tag|remove_tag|credit_points|create_task|"
                  r"webhook|exit)(\.|$)")
ACTIVE, FINISHED, EXITED, FAILED = "active", "finished", "exited", "failed"


def parse(session: Session | None, raw: Any) -> JourneyIn:
    """A definition checked completely: its shape, the steps as a graph, every condition, and (with a session) what
    it names in the database (site, cascades, segments, managers, webhook URLs). DomainError names each bad part."""
    if not isinstance(raw, dict):
        raise DomainError.one("body", "a journey definition is an object")
    try:
        spec = JourneyIn.model_validate(raw)
    except ValidationError as exc:
        err = DomainError.from_pydantic(exc)
        for e in err.errors:
            e.field = _TAG.sub(r"\1\3", e.field)  # `steps.2.wait.minutes` -> `steps.2.minutes`
        raise err from None
    engine.check_graph(spec)
    errors: list[FieldError] = []
    for field, source in conditions(spec):
        try:
            compile_condition(source)
        except ConditionError as exc:
            errors.append(FieldError(field, str(exc)))
    if errors:
        raise DomainError(errors)
    if session is not None:
        _check_references(session, spec)
    return spec


def conditions(spec: JourneyIn) -> list[tuple[str, str]]:
    """(field, CEL source) of every condition of a definition."""
    out = [("entry.condition", spec.entry.condition)]
    out += [(f"exits.{i}.condition", r.condition) for i, r in enumerate(spec.exits) if r.condition]
    for i, s in enumerate(spec.steps):
        if isinstance(s, BranchStep):
            out += [(f"steps.{i}.branches.{j}.condition", b.condition) for j, b in enumerate(s.branches) if b.condition]
    return out


def _check_references(session: Session, spec: JourneyIn) -> None:
    site = get_site(session, spec.site)
    managers: set[int] | None = None
    errors: list[FieldError] = []
    segment_refs = [("entry.segment", spec.entry.segment)] + [
        (f"exits.{i}.segment", r.segment) for i, r in enumerate(spec.exits)]
    for field, code in segment_refs:
        if code is not None:
            try:
                segments.find(session, site_id=site.id, ref=code)
            except NotFound:
                errors.append(FieldError(field, f"no segment {code!r} on site {spec.site!r}"))
    for i, s in enumerate(spec.steps):
        if isinstance(s, Send) and not _cascade_on(session, s.cascade_id, site.id):
            errors.append(FieldError(f"steps.{i}.cascade_id", f"no cascade {s.cascade_id} on site {spec.site!r}"))
        if isinstance(s, Task) and isinstance(s.assignee, int):
            managers = manager_ids(session) if managers is None else managers
            if s.assignee not in managers:
                errors.append(FieldError(f"steps.{i}.assignee", f"unknown manager {s.assignee}"))
        if isinstance(s, Webhook):
            try:
                http.check_url(session, s.url, field=f"steps.{i}.url")
            except DomainError as exc:
                errors += exc.errors
    if errors:
        raise DomainError(errors)


def _cascade_on(session: Session, cascade_id: int, site_id: int) -> bool:
    try:
        return messaging.get_cascade(session, cascade_id).site_id == site_id
    except NotFound:
        return False


def definition_of(spec: JourneyIn) -> dict[str, Any]:
    """What a version stores: the definition without `active` (switching a journey on or off is no new version).
    Unset fields are left out, except a task's `assignee: null` (nobody), which differs from its default."""
    out = spec.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"active"})
    for step, stored in zip(spec.steps, out["steps"], strict=True):
        if isinstance(step, Task) and step.assignee is None:
            stored["assignee"] = None
    return out


def apply(session: Session, *, raw: Any, now: datetime) -> tuple[Journey, str]:
    """Create the journey, or save a new version of the one with the same site and name when its definition
    changed. Returns (journey, "created" | "new version" | "unchanged"). Runs stay on the version they started."""
    spec = parse(session, raw)
    site = get_site(session, spec.site)
    journey = session.scalar(select(Journey).where(Journey.site_id == site.id, Journey.name == spec.name))
    return _save(session, journey, spec, site, now)


def update_journey(session: Session, *, journey: Journey, raw: Any, now: datetime) -> tuple[Journey, str]:
    """Replace the definition of a journey (its site stays; a new name must be free)."""
    spec = parse(session, raw)
    site = session.get(Site, journey.site_id)
    if spec.site != site.code:
        raise DomainError.one("site", "a journey stays on its site; create a new journey for another site")
    if spec.name != journey.name and session.scalar(
            select(Journey.id).where(Journey.site_id == site.id, Journey.name == spec.name)) is not None:
        raise Conflict("name", f"a journey named {spec.name!r} already exists on this site")
    return _save(session, journey, spec, site, now)


def _save(session: Session, journey: Journey | None, spec: JourneyIn, site: Site, now: datetime
          ) -> tuple[Journey, str]:
    definition = definition_of(spec)
    if journey is None:
        journey = Journey(site_id=site.id, name=spec.name, active=spec.active, version=1, created_at=now,
                          updated_at=now)
        session.add(journey)
        session.flush()
        session.add(JourneyVersion(journey_id=journey.id, site_id=site.id, version=1, definition=definition,
                                   created_at=now))
        session.flush()
        return journey, "created"
    current = current_version(session, journey)
    outcome = "unchanged"
    if current.definition != definition:
        journey.version += 1
        session.add(JourneyVersion(journey_id=journey.id, site_id=site.id, version=journey.version,
                                   definition=definition, created_at=now))
        outcome = "new version"
    if (journey.active, journey.name) != (spec.active, spec.name):
        outcome = "updated" if outcome == "unchanged" else outcome
    journey.active, journey.name, journey.updated_at = spec.active, spec.name, now
    session.flush()
    return journey, outcome


def current_version(session: Session, journey: Journey) -> JourneyVersion:
    return session.scalar(select(JourneyVersion).where(JourneyVersion.journey_id == journey.id,
                                                       JourneyVersion.version == journey.version))


def get(session: Session, journey_id: int) -> Journey:
    journey = session.get(Journey, journey_id)
    if journey is None:
        raise NotFound("id", f"journey {journey_id} not found")
    return journey


def find(session: Session, ref: str, *, site: str | None = None) -> Journey:
    """By id or by name (CLI); a name used on several sites needs `site`."""
    number = parsing.integer(ref, hi=2**31 - 1)
    if number is not None and (journey := session.get(Journey, number)) is not None:
        return journey
    q = select(Journey).where(Journey.name == ref)
    if site is not None:
        q = q.where(Journey.site_id == get_site(session, site).id)
    found = list(session.scalars(q))
    if len(found) > 1:
        raise DomainError.one("site", f"journeys named {ref!r} exist on several sites; name the site")
    if not found:
        raise NotFound("journey", f"journey {ref!r} not found")
    return found[0]


def list_journeys(session: Session, *, site: str | None = None) -> list[Journey]:
    q = select(Journey).order_by(Journey.id)
    if site is not None:
        q = q.where(Journey.site_id == get_site(session, site).id)
    return list(session.scalars(q))


def switch(session: Session, *, journey: Journey, active: bool, now: datetime) -> Journey:
    """Off: nobody new enters; customers inside go on to their end (exit them with `migrate`/runs if needed)."""
    journey.active, journey.updated_at = active, now
    session.flush()
    return journey


def run_counts(session: Session, journey_ids: list[int]) -> dict[int, dict[str, int]]:
    out: dict[int, dict[str, int]] = {j: {} for j in journey_ids}
    if journey_ids:
        q = (select(JourneyRun.journey_id, JourneyRun.state, func.count()).where(
            JourneyRun.journey_id.in_(journey_ids)).group_by(JourneyRun.journey_id, JourneyRun.state))
        for jid, state, n in session.execute(q):
            out[jid][state] = n
    return out


def out(session: Session, journey: Journey, counts: dict[str, int] | None = None) -> JourneyOut:
    site = session.get(Site, journey.site_id)
    versions = session.scalar(select(func.count()).where(JourneyVersion.journey_id == journey.id)) or 0
    definition = {**current_version(session, journey).definition, "active": journey.active}
    return JourneyOut(id=journey.id, name=journey.name, site=site.code, active=journey.active,
                      version=journey.version, versions=versions, definition=definition,
                      created_at=journey.created_at, updated_at=journey.updated_at,
                      runs=counts if counts is not None else run_counts(session, [journey.id])[journey.id])


def migrate(session: Session, *, journey: Journey, from_version: int | None = None) -> dict[str, int]:
    """Move active runs of older versions (or of `from_version`) onto the current version: a run stays at the step
    of the same id, and its waits keep their due times. Runs at a step the current version lacks stay where they
    are. Returns {"moved": n, "left": m}."""
    current = current_version(session, journey)
    ids = {s["id"] for s in current.definition["steps"]}
    older = select(JourneyVersion.id).where(JourneyVersion.journey_id == journey.id,
                                            JourneyVersion.id != current.id)
    if from_version is not None:
        older = older.where(JourneyVersion.version == from_version)
    base = [JourneyRun.journey_id == journey.id, JourneyRun.state == ACTIVE, JourneyRun.version_id.in_(older)]
    moved = session.execute(update(JourneyRun).where(*base, JourneyRun.step.in_(sorted(ids)))
                            .values(version_id=current.id), execution_options={"synchronize_session": False}).rowcount
    left = session.scalar(select(func.count()).where(*base)) or 0
    return {"moved": moved, "left": left}


def list_runs(session: Session, *, journey_id: int | None = None, customer_id: int | None = None,
              state: str | None = None, after_id: int = 0, limit: int = 100) -> list[RunOut]:
    q = select(JourneyRun).where(JourneyRun.id > after_id).order_by(JourneyRun.id).limit(limit)
    if journey_id is not None:
        q = q.where(JourneyRun.journey_id == journey_id)
    if customer_id is not None:
        scoping.require(session, Customer, customer_id, "customer_id")  # another site's customer: 404
        q = q.where(JourneyRun.customer_id == customer_id)
    if state is not None:
        q = q.where(JourneyRun.state == state)
    runs = list(session.scalars(q))
    versions = dict(session.execute(select(JourneyVersion.id, JourneyVersion.version).where(
        JourneyVersion.id.in_({r.version_id for r in runs}))).all()) if runs else {}
    steps: dict[int, list[dict[str, Any]]] = {r.id: [] for r in runs}
    if runs:
        for st in session.scalars(select(JourneyStep).where(JourneyStep.run_id.in_(list(steps)))
                                  .order_by(JourneyStep.id)):
            steps[st.run_id].append({"step": st.step, "kind": st.kind, "outcome": st.outcome, "detail": st.detail,
                                     "at": st.at, "left_at": st.left_at})
    return [RunOut(id=r.id, journey_id=r.journey_id, version=versions.get(r.version_id, 0), customer_id=r.customer_id,
                   state=r.state, step=r.step, phase=r.phase, due_at=r.due_at, entered_at=r.entered_at,
                   finished_at=r.finished_at, exit_reason=r.exit_reason, reason=r.reason, steps=steps[r.id])
            for r in runs]


def outcomes(session: Session, *, journey_id: int) -> Counter[str]:
    """How runs ended or stand: state, and exits by reason."""
    c: Counter[str] = Counter()
    for state, reason, n in session.execute(select(JourneyRun.state, JourneyRun.exit_reason, func.count()).where(
            JourneyRun.journey_id == journey_id).group_by(JourneyRun.state, JourneyRun.exit_reason)):
        c[f"{state}:{reason}" if reason else state] += n
    return c


# --- ready-made mechanics -----------------------------------------------------------------------------------------

def install_mechanic(session: Session, *, name: str, site: str, journey_name: str | None = None, now: datetime
                     ) -> tuple[Journey, str]:
    """Install a ready-made journey on a site in one go: its message templates in Russian and English (replacing
    the site's templates of the same names), its cascades (reused when the site has one of the same name and
    steps), the segment it enters from (created if missing), and the journey (a new version if it exists and
    changed). Returns (journey, outcome)."""
    m = mechanics.load(name)
    site_row = get_site(session, site)
    if seg := m.get("segment"):
        try:
            segments.find(session, site_id=site_row.id, ref=seg["code"])
        except NotFound:
            segments.create(session, data=SegmentCreate(site=site, **seg), now=now)
    for t in m.get("templates", ()):
        for language in ("en", "ru"):
            messaging.save_template(session, data=TemplateIn(site=site, name=t["name"], channel=t["channel"],
                                                             language=language, **t[language]), now=now)
    existing = messaging.list_cascades(session, site_id=site_row.id, limit=10000)
    cascade_ids: dict[str, int] = {}
    for cname, steps in m.get("cascades", {}).items():
        data = CascadeIn(site=site, name=cname, mode="ordered", steps=steps)
        stored = [{"channel": s.channel.value, "template": s.template, "wait_seconds": int(s.wait_hours * 3600),
                   "go_on": s.go_on.value} for s in data.steps]
        same = next((c for c in existing if c.name == cname and c.mode == "ordered" and c.steps == stored), None)
        cascade_ids[cname] = same.id if same else messaging.create_cascade(session, data=data, now=now).id
    definition = {**m["journey"], "name": journey_name or name, "site": site}
    definition["steps"] = [{**{k: v for k, v in s.items() if k != "cascade"},
                            **({"cascade_id": cascade_ids[s["cascade"]]} if "cascade" in s else {})}
                           for s in m["journey"]["steps"]]
    return apply(session, raw=definition, now=now)


def mechanic_list() -> list[dict[str, Any]]:
    return [{"name": n, **{k: m.get(k) for k in ("title", "title_ru", "description", "description_ru")}}
            for n, m in ((n, mechanics.load(n)) for n in mechanics.names())]


# --- what the console shows beside a journey ----------------------------------------------------------------------

def versions(session: Session, *, journey: Journey) -> list[dict[str, Any]]:
    """Every version of a journey, newest first: number, when saved, its definition and its active runs."""
    active = dict(session.execute(select(JourneyRun.version_id, func.count()).where(
        JourneyRun.journey_id == journey.id, JourneyRun.state == ACTIVE).group_by(JourneyRun.version_id)).all())
    rows = session.scalars(select(JourneyVersion).where(JourneyVersion.journey_id == journey.id)
                           .order_by(JourneyVersion.version.desc()))
    return [{"version": v.version, "created_at": v.created_at, "definition": v.definition,
             "active_runs": active.get(v.id, 0)} for v in rows]


def active_by_step(session: Session, *, journey_id: int, version: int | None = None) -> dict[str, int]:
    """Active runs per step id (of one version, or of all versions)."""
    q = select(JourneyRun.step, func.count()).where(JourneyRun.journey_id == journey_id, JourneyRun.state == ACTIVE)
    if version is not None:
        q = q.join(JourneyVersion, JourneyVersion.id == JourneyRun.version_id).where(JourneyVersion.version == version)
    return dict(session.execute(q.group_by(JourneyRun.step)).all())


def merge_customers(session: Session, merge: Merge) -> dict[str, int]:
    """The `customer_merge` handler (customers.merging): a merged customer's active run goes on as the kept
    customer's, unless the kept customer is in that journey already (one active run per customer and journey):
    then it exits (`customer_merged`). Finished runs and their steps move too, as the kept customer's past."""
    active = set(session.scalars(select(JourneyRun.journey_id).where(JourneyRun.active_customer_id == merge.keep_id)))
    ended = 0
    for run in session.scalars(select(JourneyRun).where(JourneyRun.active_customer_id.in_(merge.merged_ids))
                               .order_by(JourneyRun.id).with_for_update()):
        if run.journey_id in active:
            finish(run, state=EXITED, now=merge.now, reason="customer_merged")
            ended += 1
        else:
            run.active_customer_id = merge.keep_id
            active.add(run.journey_id)
    session.flush()
    moved = merge.move(session, JourneyRun.__table__)
    merge.move(session, JourneyStep.__table__)
    return {"journey_runs": moved, "journey_runs_ended": ended}
