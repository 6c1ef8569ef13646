"""Delayed runs: the worker claims due timers a batch per transaction, re-checks each on fresh data (cancelled
by a later change? condition still true?), acts and marks them done in the same transaction."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from retento.bus import SLICE_SECONDS, Event
from retento.customers import service as customers
from retento.db import insert_rows, transaction
from retento.orders import service as orders
from retento.triggers import timers
from retento.triggers.acting import Act
from retento.triggers.data import Preloaded, load_variables, run_row, with_group
from retento.triggers.models import Run, Timer
from retento.triggers.schemas import OnChange


class DelayedRuns:
    """Mixed into the Engine."""

    def fire_due(self, *, max_seconds: float | None = None) -> int:
        """Worker job: fire due timers, a batch per transaction (act + mark done commit together); all that are
        due, or batches for about `max_seconds`."""
        total, started = 0, time.perf_counter()
        while True:
            now = self._clock.now()
            with transaction(self._sessions) as s:
                due = timers.claim_due(s, now=now, limit=self._batch)
                if due:
                    insert_rows(s, Run.__table__, self._fire_batch(s, due, now, self._preload_timers(s, due)))
            total += len(due)
            if len(due) < self._batch or (max_seconds is not None and time.perf_counter() - started >= max_seconds):
                return total

    def fire_slice(self) -> int:
        """The worker's fair share of due timers (see `Bus.dispatch_slice`)."""
        return self.fire_due(max_seconds=SLICE_SECONDS)

    def _fire_batch(self, session: Session, due: list[Timer], now: datetime,
                    preloaded: Preloaded) -> list[dict[str, Any]]:
        runs: list[dict[str, Any]] = []
        acting: list[Act] = []
        for timer in due:
            checked = self._recheck(session, timer, now, preloaded)
            if isinstance(checked, dict):
                runs.append(checked)
            else:
                t, ev, variables = checked
                acting.append(Act(t, ev, timer.entity, timer.entity_id, "fire", timer, variables))
        if not acting:
            return runs
        done = self.act_many(session, acting, now=now)
        for a, run in zip(acting, done, strict=True):
            state = {"acted": "done", "failed": "failed"}.get(run["outcome"], "skipped")
            timers.finish(a.timer, state=state, reason=run["reason"], now=now)  # type: ignore[arg-type]
        return runs + done

    def _preload_timers(self, session: Session, due: list[Timer]) -> Preloaded:
        """Events, order and customer snapshots, and later changes of a batch of due timers in a few queries."""
        compiled = self.triggers(session)
        out = Preloaded()
        out.events = {e.id: e for e in session.scalars(select(Event).where(Event.id.in_({t.event_id for t in due})))}
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

    def _recheck(self, session: Session, timer: Timer, now: datetime, preloaded: Preloaded) -> dict[str, Any] | tuple:
        """A run-log row if the timer ends here (cancelled, condition false), else (trigger, event, variables)."""
        ev = preloaded.events.get(timer.event_id)
        t = self.triggers(session).get(timer.trigger_id)
        if t is None or not t.active or ev is None:
            reason = "trigger is switched off" if t is not None else "trigger no longer exists"
            timers.finish(timer, state="cancelled", reason=reason, now=now)
            return run_row(timer.trigger_id, now, "fire", ev, timer.id, "cancelled", reason, customer_id=timer.customer_id,
                        order_id=timer.order_id)
        if t.spec.on_change.policy == OnChange.CANCEL:
            changed = timers.first_change(preloaded.changes.get(timer.entity, {}).get(timer.entity_id, ()),
                                          after_event_id=timer.event_id, fields=t.spec.on_change.fields)
            if changed is not None:
                reason = f"{timer.entity} changed in event {changed} before the run was due"
                timers.finish(timer, state="cancelled", reason=reason, now=now)
                return run_row(t.id, now, "fire", ev, timer.id, "cancelled", reason)
        variables = load_variables(session, ev, t.needs_fire, order_id=timer.order_id, customer_id=timer.customer_id,
                                   preloaded=preloaded)
        self.evaluator.bind(now=now, **variables)
        verdict = self.evaluator.check(t.condition)
        if not verdict.matched:
            reason = f"re-check at fire time: {verdict.reason}"
            timers.finish(timer, state="skipped", reason=reason, now=now)
            return run_row(t.id, now, "fire", ev, timer.id, "not_matched", reason)
        return t, ev, variables


