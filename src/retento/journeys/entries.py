"""The journeys' bus subscriber: for each event about a customer, in order, the customer's active runs are checked
first (an exit event ends a run; what a waiting step waits for makes the run due now), then the live journeys'
entries (the kind of event, the condition on fresh data, one active run per customer and journey, the re-entry
rule). A new run is due at once: the worker does its first step."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import exists, func, or_, select
from sqlalchemy.orm import Session

from retento.core.bus import Event
from retento.core.clock import Clock
from retento.core.db.bulk import insert_rows
from retento.customers import service as customers
from retento.journeys import engine
from retento.journeys.compiled import Compiled, Versions
from retento.journeys.models import Journey, JourneyRun
from retento.journeys.runner import ACTIVE, ENTER, EXITED, WAIT, finish
from retento.journeys.schemas import WaitEvent
from retento.orders import service as orders
from retento.triggers.conditions import Evaluator
from retento.triggers.data import changes_of, event_view, with_group

NEW_COLUMNS = ("journey_id", "version_id", "site_id", "customer_id", "active_customer_id", "state", "step", "phase",
               "due_at", "context", "entry_event_id", "exit_reason", "finished_at", "attempts", "entered_at")


class Entries:
    def __init__(self, clock: Clock, versions: Versions) -> None:
        self.clock, self.versions = clock, versions
        self.evaluator = Evaluator()

    @staticmethod
    def interest(session: Session) -> frozenset[str] | None:
        """Every type while a journey is on or a run is active (an entry, an exit or a wait may name any event);
        none otherwise, and the bus passes over the events unread."""
        busy = session.scalar(select(or_(exists().where(Journey.active.is_(True)),
                                         exists().where(JourneyRun.active_customer_id.is_not(None)))))
        return None if busy else frozenset()

    def on_batch(self, session: Session, events: list[Event]) -> None:
        events = [e for e in events if e.customer_id is not None]
        if not events:
            return
        now = self.clock.now()
        live = self.versions.live(session)
        customer_ids = {e.customer_id for e in events}
        runs: dict[int, list[JourneyRun]] = defaultdict(list)
        for run in session.scalars(select(JourneyRun).where(JourneyRun.active_customer_id.in_(customer_ids))):
            runs[run.customer_id].append(run)
        compiled = self.versions.get(session, {r.version_id for rs in runs.values() for r in rs})
        history = self._history(session, customer_ids, [j.id for j, _ in live]) if live else {}
        views = [engine.EventView(ev.id, ev.type, ev.name, ev.occurred_at, ev.payload or {}) for ev in events]
        entering = {ev.customer_id for ev, view in zip(events, views, strict=True) if any(
            journey.site_id == ev.site_id and ev.occurred_at >= journey.created_at
            and engine.entry_event(c.spec.entry, view) for journey, c in live)}
        snaps: dict[int, dict[str, Any]] = customers.snapshots(session, entering) if entering else {}
        new: list[JourneyRun] = []
        for ev, view in zip(events, views, strict=True):
            for run in runs[ev.customer_id]:
                if run.state == ACTIVE and (run.entry_event_id or 0) < ev.id:
                    self._follow(run, compiled.get(run.version_id), view, now)
            for journey, c in live:
                if journey.site_id != ev.site_id or ev.occurred_at < journey.created_at or not engine.entry_event(
                        c.spec.entry, view):
                    continue
                key = (journey.id, ev.customer_id)
                active = any(r.state == ACTIVE and r.journey_id == journey.id for r in runs[ev.customer_id])
                if not engine.may_enter(c.spec.reentry, active=active,
                                        last_entered_at=history.get(key), now=now):
                    continue
                snap = snaps.get(ev.customer_id)
                if snap is None or not self._holds(session, c, ev, snap, now):
                    continue
                run = JourneyRun(journey_id=journey.id, version_id=c.version_id, site_id=journey.site_id,
                                 customer_id=ev.customer_id, active_customer_id=ev.customer_id, state=ACTIVE,
                                 step=c.start, phase=ENTER, due_at=now, context={"entry": _entry(ev)},
                                 entry_event_id=ev.id, attempts=0, entered_at=now)
                new.append(run)  # not in the session: inserted with the batch's others at the end
                runs[ev.customer_id].append(run)
                compiled[c.version_id] = c
                history[key] = now
        session.flush()
        insert_rows(session, JourneyRun.__table__, [{k: getattr(r, k) for k in NEW_COLUMNS} for r in new])

    def _history(self, session: Session, customer_ids: set[int], journey_ids: list[int]
                 ) -> dict[tuple[int, int], datetime]:
        """When each customer last entered each live journey."""
        q = (select(JourneyRun.journey_id, JourneyRun.customer_id, func.max(JourneyRun.entered_at))
             .where(JourneyRun.customer_id.in_(customer_ids), JourneyRun.journey_id.in_(journey_ids))
             .group_by(JourneyRun.journey_id, JourneyRun.customer_id))
        return {(j, c): at for j, c, at in session.execute(q)}

    def _holds(self, session: Session, c: Compiled, ev: Event, customer: dict[str, Any], now: datetime) -> bool:
        if c.spec.entry.condition.strip() == "true":
            return True
        order = None
        if ev.order_id is not None and "order" in c.entry.variables:
            order = orders.snapshots(session, [ev.order_id]).get(ev.order_id)
            order = with_group(session, order) if order is not None else None
        self.evaluator.bind(now=now, event=event_view(ev), customer=customer, order=order, changes=changes_of(ev))
        return self.evaluator.check(c.entry).matched

    def _follow(self, run: JourneyRun, c: Compiled | None, ev: engine.EventView, now: datetime) -> None:
        """An exit event ends the run; the event its waiting step waits for makes it due now."""
        if c is None:
            return
        if (reason := engine.exit_event(c.spec.exits, ev)) is not None:
            finish(run, state=EXITED, now=now, reason=reason)
            return
        step = c.steps.get(run.step)
        context = run.context or {}
        waiting = context.get("waiting") or {}
        if run.phase != WAIT or not isinstance(step, WaitEvent) or waiting.get("step") != step.id:
            return
        since = datetime.fromisoformat(waiting["since"])
        if engine.wakes(step, ev, context, since=since) and "woken" not in context:
            run.context = {**context, "woken": {"step": step.id, "event_id": ev.id, "type": ev.type}}
            run.due_at = now


def _entry(ev: Event) -> dict[str, Any]:
    """What a run keeps of its entry event: its order (read fresh at each step) and a custom event's data (the
    templates' `vars.event`, e.g. an abandoned cart's items; not for order events
    or a customer's snapshot)."""
    out: dict[str, Any] = {"type": ev.type, "name": ev.name}
    if ev.order_id is not None:
        out["order_id"] = ev.order_id
    if ev.order_id is None and ev.type not in ("customer_created", "customer_changed"):
        out["data"] = ev.payload or {}
    return out
