"""Advancing runs: the worker claims due runs (`work.run_locked`: locked until the transaction ends, so a crash
leaves them due for another worker), checks the exit conditions before every step, does each step through its
domain's service and logs it (a unique row per run and step) in the same transaction, and goes on until a step
waits or the run ends."""

from __future__ import annotations

import copy
import logging
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session, sessionmaker

from retento.core import work
from retento.core.clock import Clock
from retento.core.errors import DomainError
from retento.customers import service as customers
from retento.journeys import engine, steps as effects
from retento.journeys.compiled import Compiled, Versions
from retento.journeys.models import JourneyRun, JourneyStep
from retento.journeys.schemas import BranchStep, ExitStep, Split, Wait, WaitEvent
from retento.messaging import service as messaging
from retento.orders import service as orders
from retento.sites.models import Site
from retento.triggers.conditions import Evaluator
from retento.triggers.data import with_group

log = logging.getLogger(__name__)
ACTIVE, FINISHED, EXITED, FAILED = "active", "finished", "exited", "failed"
ENTER, WAIT = "enter", "wait"

QUEUE = work.Queue.in_transaction(
    "journey_runs", JourneyRun.__table__, label="journey runs / участники цепочек", ready=ACTIVE,
    attempts="attempts", error="reason", dead=FAILED, max_attempts=5, backoff=work.Backoff(base=60, cap=3600),
    dead_values=lambda now: {"finished_at": now, "active_customer_id": None},
    retry_values={"finished_at": None, "reason": None, "active_customer_id": JourneyRun.__table__.c.customer_id},
    drop_values=lambda now: {"state": EXITED, "exit_reason": "dropped by an operator", "finished_at": now})


def finish(run: JourneyRun, *, state: str, now: datetime, reason: str | None = None) -> None:
    run.state, run.exit_reason, run.finished_at = state, reason, now
    run.due_at, run.active_customer_id = None, None


class Runner:
    def __init__(self, sessions: sessionmaker[Session], clock: Clock, *, batch: int = 500,
                 versions: Versions | None = None) -> None:
        self.sessions, self.clock, self.batch = sessions, clock, batch
        self.versions = versions or Versions()
        self.evaluator = Evaluator()

    def advance_due(self, max_seconds: float | None = None) -> int:
        """Advance every due run (in batches); returns how many were taken."""
        now = self.clock.now()
        return work.drain(lambda: work.run_locked(self.sessions, QUEUE, now=now, limit=self.batch,
                                                  handle=lambda s, rows: self.handle(s, rows, now=now)),
                          batch=self.batch, max_seconds=max_seconds)

    def advance_slice(self) -> int:
        return self.advance_due(max_seconds=0.25)

    def handle(self, session: Session, rows: list[Row], *, now: datetime) -> None:
        runs = list(session.scalars(select(JourneyRun).where(JourneyRun.id.in_([r[0] for r in rows]))
                                    .order_by(JourneyRun.id)))
        versions = self.versions.get(session, {r.version_id for r in runs})
        snaps = customers.snapshots(session, {r.customer_id for r in runs})
        zones = {i: tz for i, tz in session.execute(select(Site.id, Site.timezone).where(
            Site.id.in_({r.site_id for r in runs})))}
        order_ids = {oid for r in runs if (oid := ((r.context or {}).get("entry") or {}).get("order_id"))}
        order_snaps = {i: with_group(session, o) for i, o in orders.snapshots(session, order_ids).items()}
        for run in runs:
            snap = snaps.get(run.customer_id)
            if snap is None:
                finish(run, state=EXITED, now=now, reason="customer_gone")
                continue
            compiled = versions.get(run.version_id)
            if compiled is None:
                finish(run, state=FAILED, now=now, reason="version not found")
                continue
            order_id = ((run.context or {}).get("entry") or {}).get("order_id")
            self.advance(session, run, compiled, snap, order_snaps.get(order_id) if order_id else None,
                         tz=snap.get("timezone") or zones.get(run.site_id), now=now)
        session.flush()

    # --- one run ------------------------------------------------------------------------------------------------

    def advance(self, session: Session, run: JourneyRun, c: Compiled, customer: dict[str, Any],
                order: dict[str, Any] | None, *, tz: str | None, now: datetime) -> None:
        context = copy.deepcopy(run.context or {})
        for _ in range(engine.MAX_STEPS_PER_TURN):
            step = c.steps.get(run.step)
            if step is None:
                finish(run, state=FAILED, now=now, reason=f"step {run.step!r} not in version {c.version}")
                break
            if run.phase == WAIT:
                nxt = self._leave_wait(session, run, step, context, now=now)
            else:
                if (reason := self._exit_reason(c, customer, order, now)) is not None:
                    finish(run, state=EXITED, now=now, reason=reason)
                    break
                nxt = self._enter(session, run, c, step, customer, order, context, tz=tz, now=now)
                if run.state != ACTIVE or run.phase == WAIT:
                    break
            if nxt is None:
                finish(run, state=FINISHED, now=now)
                break
            run.step, run.phase, run.due_at = nxt, ENTER, now
        run.context = context

    def _exit_reason(self, c: Compiled, customer: dict[str, Any], order: dict[str, Any] | None,
                     now: datetime) -> str | None:
        if not c.exits:
            return None
        self.evaluator.bind(now=now, event=None, customer=customer, order=order, changes=[])
        for reason, condition in c.exits:
            if self.evaluator.check(condition).matched:
                return reason
        return None

    def _log(self, session: Session, run: JourneyRun, c: Compiled, step: Any, outcome: str,
             detail: dict[str, Any] | None, now: datetime, *, left: bool = True) -> None:
        session.add(JourneyStep(run_id=run.id, journey_id=run.journey_id, version_id=c.version_id,
                                site_id=run.site_id, customer_id=run.customer_id, step=step.id, kind=step.type,
                                outcome=outcome, detail=detail or None, at=now, left_at=now if left else None))

    def _enter(self, session: Session, run: JourneyRun, c: Compiled, step: Any, customer: dict[str, Any],
               order: dict[str, Any] | None, context: dict[str, Any], *, tz: str | None, now: datetime) -> str | None:
        """Do the step; returns the next step (None: the run ends), or sets the run waiting / finished."""
        kind = step.type
        if kind in effects.EFFECTS:
            sc = effects.StepContext(session, now, c.journey_id, c.name, c.version, run.id, customer,
                                     run.entry_event_id, order, (context.get("entry") or {}).get("data"))
            try:
                with session.begin_nested():
                    outcome, detail = effects.EFFECTS[kind](sc, step)
            except DomainError as exc:  # this step cannot be done for this customer: logged, the run goes on
                self._log(session, run, c, step, "failed", {"error": exc.message}, now)
                return step.next
            if kind == "send":
                context.setdefault("sends", {})[step.id] = detail["cascade_run_id"]
                context["last_send"] = step.id
            self._log(session, run, c, step, outcome, detail, now)
            return step.next
        if isinstance(step, Wait):
            run.phase, run.due_at = WAIT, engine.wait_until(step, now=now, tz=tz)
            self._log(session, run, c, step, "waiting", {"until": run.due_at.isoformat()}, now, left=False)
            return None
        if isinstance(step, WaitEvent):
            if self._already(session, step, context):
                self._log(session, run, c, step, "event", {"already": True}, now)
                return step.on_event or step.next
            run.phase, run.due_at = WAIT, engine.timeout_at(step, now=now)
            context["waiting"] = {"step": step.id, "since": now.isoformat()}
            self._log(session, run, c, step, "waiting", {"until": run.due_at.isoformat()}, now, left=False)
            return None
        if isinstance(step, BranchStep):
            taken = self._branch(session, c, step, customer, order, context, now)
            self._log(session, run, c, step, f"branch:{taken}" if taken is not None else "else", None, now)
            return step.branches[taken].next if taken is not None else step.else_
        if isinstance(step, Split):
            arm = engine.split_arm(step, journey_id=c.journey_id, customer_id=run.customer_id)
            self._log(session, run, c, step, f"arm:{arm}" if arm else "holdout", None, now)
            if arm is None:
                finish(run, state=EXITED, now=now, reason="holdout")
                return None
            context.setdefault("arms", {})[step.id] = arm
            return next(a.next for a in step.arms if a.name == arm)
        if isinstance(step, ExitStep):
            self._log(session, run, c, step, "exit", None, now)
            finish(run, state=EXITED, now=now, reason=f"step:{step.id}")
            return None
        raise ValueError(f"unknown step type {kind!r}")

    def _leave_wait(self, session: Session, run: JourneyRun, step: Any, context: dict[str, Any], *,
                    now: datetime) -> str | None:
        """A waiting step's time came (or its event woke it): record how it ended; returns where to go."""
        if isinstance(step, WaitEvent):
            woken = context.pop("woken", None)
            context.pop("waiting", None)
            happened = woken is not None and woken.get("step") == step.id
            outcome, nxt = ("event", step.on_event or step.next) if happened else ("timeout",
                                                                                  step.on_timeout or step.next)
            detail = {"event_id": woken.get("event_id"), "type": woken.get("type")} if happened else None
        else:
            outcome, nxt, detail = "waited", step.next, None
        values: dict[str, Any] = {"outcome": outcome, "left_at": now}
        if detail:
            values["detail"] = detail
        session.execute(update(JourneyStep).where(JourneyStep.run_id == run.id, JourneyStep.step == step.id)
                        .values(values), execution_options={"synchronize_session": False})
        return nxt

    def _already(self, session: Session, step: WaitEvent, context: dict[str, Any]) -> bool:
        """A wait for an open or a click whose message was opened / clicked before the wait began."""
        if step.event not in ("opened", "read", "clicked"):
            return False
        run_id = engine.send_of(step, context)
        if run_id is None:
            return False
        did = messaging.engagement(session, run_ids=[run_id]).get(run_id, set())
        return ("clicked" if step.event == "clicked" else "read") in did

    def _branch(self, session: Session, c: Compiled, step: BranchStep, customer: dict[str, Any],
                order: dict[str, Any] | None, context: dict[str, Any], now: datetime) -> int | None:
        bound = False
        for j, b in enumerate(step.branches):
            if b.interest is not None:
                if b.interest in (customer.get("interests") or ()):
                    return j
            elif b.engaged is not None:
                run_id = (context.get("sends") or {}).get(b.engaged.step)
                did = messaging.engagement(session, run_ids=[run_id]).get(run_id, set()) if run_id else set()
                if {"opened": "read"}.get(b.engaged.did, b.engaged.did) in did:
                    return j
            else:
                if not bound:
                    self.evaluator.bind(now=now, event=None, customer=customer, order=order, changes=[])
                    bound = True
                if self.evaluator.check(c.branches[(step.id, j)]).matched:
                    return j
        return None
