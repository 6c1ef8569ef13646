"""Delayed runs: the worker claims due timers a batch per transaction (plain rows, locked with `FOR UPDATE SKIP
LOCKED` on PostgreSQL), re-checks each on fresh data (cancelled by a later change? condition still true?), acts,
and marks the batch finished in one statement, all in the same transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session

from retento.core import work
from retento.core.bus import SLICE_SECONDS, Event
from retento.core.db.bulk import insert_rows
from retento.core.db.transactions import transaction
from retento.customers import service as customers
from retento.orders import service as orders
from retento.triggers import timers
from retento.triggers.acting import Act
from retento.triggers.data import Preloaded, as_event_rows, load_variables, run_row, with_group
from retento.triggers.models import Run
from retento.triggers.schemas import OnChange

OUTCOME_STATE = {"acted": "done", "failed": "failed"}  # run outcome -> timer state (anything else: skipped)


class DelayedRuns:
    """Mixed into the Engine."""

    def fire_due(self, *, max_seconds: float | None = None) -> int:
        """Worker job: fire due timers, a batch per transaction (act + mark done commit together); all that are
        due, or batches for about `max_seconds`."""
        return work.drain(self.fire_batch, batch=self._batch, max_seconds=max_seconds)

    def fire_batch(self) -> int:
        """One batch of due timers (`work.run_locked`: a batch that breaks goes again timer by timer)."""
        now = self._clock.now()
        return work.run_locked(self._sessions, timers.QUEUE, now=now, limit=self._batch, columns=timers.CLAIMED,
                               handle=lambda s, due: self.fire(s, due, now))

    def fire_now(self, timer_id: int) -> bool:
        """Fire one pending run now, whatever its due time, through the worker's own path (`fire`: the condition
        re-checked on fresh data, run limits, a run-log entry), in a transaction of its own. False when the run was
        no longer pending."""
        now = self._clock.now()
        with transaction(self._sessions) as s:
            due = timers.make_due(s, timer_id=timer_id, now=now)
            if due:
                self.fire(s, due, now)
        return bool(due)

    def fire_slice(self) -> int:
        """The worker's fair share of due timers (see `Bus.dispatch_slice`)."""
        return self.fire_due(max_seconds=SLICE_SECONDS)

    def fire(self, session: Session, due: list[Row], now: datetime) -> None:
        """Re-check, act, log and finish a claimed batch (`fire_batch`, `timers.make_due`): the run-log rows
        in one insert, the timers' outcomes in one UPDATE (`timers.finish_many`)."""
        finished: list[tuple[int, str, str | None]] = []
        runs = self._fire_batch(session, due, now, self._preload_timers(session, due), finished)
        insert_rows(session, Run.__table__, runs)
        timers.finish_many(session, due, finished, now=self._clock.now())  # when they were in fact finished

    def _fire_batch(self, session: Session, due: list[Row], now: datetime, preloaded: Preloaded,
                    finished: list[tuple[int, str, str | None]]) -> list[dict[str, Any]]:
        """The run-log rows of a batch; (timer id, state, reason) of each timer go to `finished`."""
        runs: list[dict[str, Any]] = []
        acting: list[Act] = []
        compiled = self.triggers(session)
        for timer in due:
            checked = self._recheck(session, timer, now, preloaded, compiled)
            if len(checked) == 3:
                t, ev, variables = checked
                acting.append(Act(t, ev, timer.entity, timer.entity_id, "fire", timer,  # type: ignore[arg-type]
                                  variables))
            else:
                run, state = checked
                runs.append(run)
                finished.append((timer.id, state, run["reason"]))
        if not acting:
            return runs
        done = self.act_many(session, acting, now=now)
        for a, run in zip(acting, done, strict=True):
            state = OUTCOME_STATE.get(run["outcome"], "skipped")
            finished.append((a.timer_id, state, run["reason"]))  # type: ignore[arg-type]
        return runs + done

    def _preload_timers(self, session: Session, due: list[Row]) -> Preloaded:
        """Events, order and customer snapshots, and later changes of a batch of due timers in a few queries."""
        compiled = self.triggers(session)
        out = Preloaded()
        e = Event.__table__  # plain tuples with the Event's attribute names (as the engine copies the bus's rows)
        out.events = {r.id: r for r in as_event_rows(
            session.execute(select(e).where(e.c.id.in_({t.event_id for t in due}))).all())}
        needs: dict[str, set[int]] = {"order": set(), "customer": set()}
        changed: dict[str, set[int]] = {"order": set(), "customer": set()}
        for timer in due:
            t = compiled.get(timer.trigger_id)
            if t is None:
                continue
            for kind, entity_id in (("order", timer.order_id), ("customer", timer.customer_id)):
                if kind in t.needs_fire and entity_id is not None:
                    needs[kind].add(entity_id)
            if t.spec.on_change.policy == OnChange.CANCEL:
                changed[timer.entity].add(timer.entity_id)
        out.orders = {k: with_group(session, v) for k, v in orders.snapshots(session, needs["order"]).items()}
        out.customers = customers.snapshots(session, needs["customer"])
        after = min(t.event_id for t in due)
        out.changes = {kind: timers.change_events(session, entity=kind, entity_ids=ids, after_event_id=after)
                       for kind, ids in changed.items() if ids}
        return out

    def _recheck(self, session: Session, timer: Row, now: datetime, preloaded: Preloaded,
                 compiled: dict[int, Any]) -> tuple[dict[str, Any], str] | tuple[Any, Any, dict[str, Any]]:
        """(run-log row, timer state) if the timer ends here (cancelled, condition false), else (trigger, event,
        variables)."""
        ev = preloaded.events.get(timer.event_id)
        t = compiled.get(timer.trigger_id)
        if t is None or not t.active or ev is None:
            reason = "trigger is switched off" if t is not None else "trigger no longer exists"
            return run_row(timer.trigger_id, now, "fire", ev, timer.id, "cancelled", reason,
                           customer_id=timer.customer_id, order_id=timer.order_id), "cancelled"
        if t.spec.on_change.policy == OnChange.CANCEL:
            changed = timers.first_change(preloaded.changes.get(timer.entity, {}).get(timer.entity_id, ()),
                                          after_event_id=timer.event_id, fields=t.spec.on_change.fields)
            if changed is not None:
                reason = f"{timer.entity} changed in event {changed} before the run was due"
                return run_row(t.id, now, "fire", ev, timer.id, "cancelled", reason), "cancelled"
        variables = load_variables(session, ev, t.needs_fire, order_id=timer.order_id,  # type: ignore[arg-type]
                                   customer_id=timer.customer_id, preloaded=preloaded)
        self.evaluator.bind(now=now, **variables, fields=t.binds)  # only what this condition reads
        verdict = self.evaluator.check(t.condition)
        if not verdict.matched:
            return run_row(t.id, now, "fire", ev, timer.id, "not_matched",  # type: ignore[arg-type]
                           f"re-check at fire time: {verdict.reason}"), "skipped"
        return t, ev, variables
