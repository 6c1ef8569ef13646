"""Advancing runs, a batch at a time: the worker claims due runs (`work.run_locked`: locked until the transaction
ends, so a crash leaves them due for another worker) and moves them all together, step by step in rounds: in each
round every run checks its exit conditions and takes its next step in pure code (`engine`), the action steps of
the round are done per kind through the domains' set-based forms (`steps.MANY`), and at the end the step log rows
(a unique row per run and step) are inserted and the runs updated with one statement each, all in the claim's
transaction. A run goes on until a step waits or the run ends."""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from operator import itemgetter
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session, sessionmaker

from retento.core import work
from retento.core.clock import Clock
from retento.core.db.bulk import insert_rows, update_rows
from retento.core.errors import DomainError
from retento.customers import service as customers
from retento.journeys import engine, steps as effects
from retento.journeys.compiled import Compiled, Versions
from retento.journeys.models import JourneyRun, JourneyStep
from retento.journeys.schemas import MESSAGE_KINDS, BranchStep, ExitStep, Split, Wait, WaitEvent
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
    # claimed in due order alone, as the (state, due_at) index reads them: ordered by (due_at, id) a claim sorted
    # every run due at the same instant (a million entered at once, or their waits' ends) for each batch of 500
    order=("due_at",),
    dead_values=lambda now: {"finished_at": now, "active_customer_id": None},
    retry_values={"finished_at": None, "reason": None, "active_customer_id": JourneyRun.__table__.c.customer_id},
    drop_values=lambda now: {"state": EXITED, "exit_reason": "dropped by an operator", "finished_at": now})


def finish(run: JourneyRun, *, state: str, now: datetime, reason: str | None = None) -> None:
    run.state, run.exit_reason, run.finished_at = state, reason, now
    run.due_at, run.active_customer_id = None, None


COLUMNS = ("journey_id", "version_id", "site_id", "customer_id", "step", "phase", "due_at", "context",
           "entry_event_id")
CLAIMED = "journeys.claimed"  # session.info: (run id, due_at) of the runs a transaction advanced (for benchmarks)
LOGGED = "journeys.logged"  # session.info: the step log rows (transitions) a transaction wrote


@dataclass(eq=False)
class Turn:
    """A claimed run as its batch moves it; written back at the end of the batch."""

    id: int
    journey_id: int
    version_id: int
    site_id: int
    customer_id: int
    entry_event_id: int | None
    step: str
    phase: str
    due_at: datetime | None
    context: dict[str, Any]
    c: Compiled | None = None
    customer: dict[str, Any] | None = None
    order: dict[str, Any] | None = None
    tz: str | None = None
    state: str = ACTIVE
    exit_reason: str | None = None
    finished_at: datetime | None = None

    def end(self, state: str, now: datetime, reason: str | None = None) -> None:
        self.state, self.exit_reason, self.finished_at, self.due_at = state, reason, now, None

    def go(self, nxt: str | None, now: datetime) -> None:
        """On to `nxt` at once; None: the run went to the end."""
        if nxt is None:
            self.end(FINISHED, now)
        else:
            self.step, self.phase, self.due_at = nxt, ENTER, now

    def row(self) -> dict[str, Any]:
        return {"id": self.id, "state": self.state, "step": self.step, "phase": self.phase, "due_at": self.due_at,
                "context": self.context, "exit_reason": self.exit_reason, "finished_at": self.finished_at,
                "active_customer_id": self.customer_id if self.state == ACTIVE else None}


@dataclass
class _Writes:
    """What a batch writes at its end: new step log rows, and the waits its runs left."""

    logs: list[dict[str, Any]] = field(default_factory=list)
    leaves: list[dict[str, Any]] = field(default_factory=list)

    def log(self, t: Turn, step: Any, outcome: str, detail: dict[str, Any] | None, now: datetime, *,
            left: bool = True) -> None:
        self.logs.append({"run_id": t.id, "journey_id": t.journey_id, "version_id": t.version_id,
                          "site_id": t.site_id, "customer_id": t.customer_id, "step": step.id, "kind": step.type,
                          "outcome": outcome, "detail": detail or None, "at": now, "left_at": now if left else None})


class Runner:
    def __init__(self, sessions: sessionmaker[Session], clock: Clock, *, batch: int = 500,
                 versions: Versions | None = None) -> None:
        self.sessions, self.clock, self.batch = sessions, clock, batch
        self.versions = versions or Versions()
        self.evaluator = Evaluator()

    def advance_due(self, max_seconds: float | None = None) -> int:
        """Advance every due run (in batches); returns how many were taken."""
        now = self.clock.now()
        return work.drain(lambda: work.run_locked(self.sessions, QUEUE, now=now, limit=self.batch, columns=COLUMNS,
                                                  handle=lambda s, rows: self.handle(s, rows, now=now)),
                          batch=self.batch, max_seconds=max_seconds)

    def advance_slice(self) -> int:
        return self.advance_due(max_seconds=0.25)

    def handle(self, session: Session, rows: list[Row], *, now: datetime) -> None:
        turns = self._load(session, rows, now)
        writes = _Writes()
        live = [t for t in turns if t.state == ACTIVE]
        for _ in range(engine.MAX_STEPS_PER_TURN):
            if not live:
                break
            live = self._round(session, live, writes, now)
        insert_rows(session, JourneyStep.__table__, writes.logs)
        self._leave(session, writes.leaves)
        update_rows(session, JourneyRun.__table__, [t.row() for t in turns])
        session.info.setdefault(CLAIMED, []).extend((r.id, r.due_at) for r in rows)
        session.info[LOGGED] = session.info.get(LOGGED, 0) + len(writes.logs)

    def _load(self, session: Session, rows: list[Row], now: datetime) -> list[Turn]:
        # a row's context is its own (the driver parses each row's JSON anew) and the rows are not read again (a
        # failed batch locks its runs anew), so the turns change it in place without a copy
        turns = [Turn(r.id, r.journey_id, r.version_id, r.site_id, r.customer_id, r.entry_event_id, r.step, r.phase,
                      r.due_at, r.context or {}) for r in sorted(rows, key=lambda r: r.id)]
        versions = self.versions.get(session, {t.version_id for t in turns})
        snaps = customers.snapshots(session, {t.customer_id for t in turns})
        zones = dict(session.execute(select(Site.id, Site.timezone).where(
            Site.id.in_({t.site_id for t in turns}))).all())
        order_ids = {oid for t in turns if (oid := (t.context.get("entry") or {}).get("order_id"))}
        order_snaps = {i: with_group(session, o) for i, o in orders.snapshots(session, order_ids).items()}
        for t in turns:
            t.customer, t.c = snaps.get(t.customer_id), versions.get(t.version_id)
            if t.customer is None:
                t.end(EXITED, now, "customer_gone")
            elif t.c is None:
                t.end(FAILED, now, "version not found")
            else:
                order_id = (t.context.get("entry") or {}).get("order_id")
                t.order = order_snaps.get(order_id) if order_id else None
                t.tz = t.customer.get("timezone") or zones.get(t.site_id)
        return turns

    # --- one round: every live run takes its next step ------------------------------------------------------

    def _round(self, session: Session, live: list[Turn], writes: _Writes, now: datetime) -> list[Turn]:
        engaged = self._engagement(session, live)
        acts: dict[str, list[tuple[Turn, Any]]] = defaultdict(list)
        going: list[Turn] = []
        for t in live:
            assert t.c is not None
            step = t.c.steps.get(t.step)
            if step is None:
                t.end(FAILED, now, f"step {t.step!r} not in version {t.c.version}")
                continue
            if t.phase == WAIT:
                t.go(self._leave_wait(t, step, writes, now), now)
            else:
                if (reason := self._exit_reason(t, now)) is not None:
                    t.end(EXITED, now, reason)
                    continue
                if step.type in effects.MANY:
                    acts[step.type].append((t, step))
                    continue
                nxt = self._decide(t, step, engaged, writes, now)
                if t.state != ACTIVE or t.phase == WAIT:
                    continue
                t.go(nxt, now)
            if t.state == ACTIVE:
                going.append(t)
        for kind, items in acts.items():
            for (t, step), (outcome, detail) in zip(items, self._act(session, kind, items, now), strict=True):
                if kind == "send" and outcome == "started":
                    t.context.setdefault("sends", {})[step.id] = detail["cascade_run_id"]
                    t.context["last_send"] = step.id
                writes.log(t, step, outcome, detail, now)
                t.go(step.next, now)
                if t.state == ACTIVE:
                    going.append(t)
        return sorted(going, key=lambda t: t.id)

    def _act(self, session: Session, kind: str, items: list[tuple[Turn, Any]],
             now: datetime) -> list[effects.Result]:
        """One kind of action step for many runs, set-based; when the domain refuses one, one run at a time, so
        only the refused steps are logged failed (and their runs go on)."""
        cs = [effects.StepContext(session, now, t.journey_id, t.c.name if t.c else "", t.c.version if t.c else 0,
                                  t.id, t.customer or {}, t.entry_event_id, t.order,
                                  (t.context.get("entry") or {}).get("data")) for t, _ in items]
        steps = [s for _, s in items]
        do = effects.MANY[kind]
        try:
            with session.begin_nested():
                return do(cs, steps)
        except DomainError:
            pass
        out: list[effects.Result] = []
        for c, step in zip(cs, steps, strict=True):
            try:
                with session.begin_nested():
                    out.append(do([c], [step])[0])
            except DomainError as exc:
                out.append(("failed", {"error": exc.message}))
        return out

    def _exit_reason(self, t: Turn, now: datetime) -> str | None:
        assert t.c is not None
        if not t.c.exits:
            return None
        self.evaluator.bind(now=now, event=None, customer=t.customer, order=t.order, changes=[])
        for reason, condition in t.c.exits:
            if self.evaluator.check(condition).matched:
                return reason
        return None

    def _engagement(self, session: Session, live: list[Turn]) -> dict[int, set[str]]:
        """What the customers did with the messages this round's waits and branches look at (one query)."""
        wanted: set[int] = set()
        for t in live:
            step = t.c.steps.get(t.step) if t.c is not None and t.phase == ENTER else None
            if isinstance(step, WaitEvent) and step.event in MESSAGE_KINDS:
                wanted.add(engine.send_of(step, t.context) or 0)
            elif isinstance(step, BranchStep):
                sends = t.context.get("sends") or {}
                wanted.update(sends.get(b.engaged.step) or 0 for b in step.branches if b.engaged is not None)
        wanted.discard(0)
        return messaging.engagement(session, run_ids=sorted(wanted)) if wanted else {}

    def _decide(self, t: Turn, step: Any, engaged: dict[int, set[str]], writes: _Writes,
                now: datetime) -> str | None:
        """A step that decides without acting: returns the next step (None: the run ends), or sets the run waiting
        or ended."""
        if isinstance(step, Wait):
            t.phase, t.due_at = WAIT, engine.wait_until(step, now=now, tz=t.tz)
            writes.log(t, step, "waiting", {"until": t.due_at.isoformat()}, now, left=False)
            return None
        if isinstance(step, WaitEvent):
            send = engine.send_of(step, t.context) if step.event in MESSAGE_KINDS else None
            if send is not None and ("clicked" if step.event == "clicked" else "read") in engaged.get(send, ()):
                writes.log(t, step, "event", {"already": True}, now)
                return step.on_event or step.next
            t.phase, t.due_at = WAIT, engine.timeout_at(step, now=now)
            t.context["waiting"] = {"step": step.id, "since": now.isoformat()}
            writes.log(t, step, "waiting", {"until": t.due_at.isoformat()}, now, left=False)
            return None
        if isinstance(step, BranchStep):
            taken = self._branch(t, step, engaged, now)
            writes.log(t, step, f"branch:{taken}" if taken is not None else "else", None, now)
            return step.branches[taken].next if taken is not None else step.else_
        if isinstance(step, Split):
            arm = engine.split_arm(step, journey_id=t.journey_id, customer_id=t.customer_id)
            writes.log(t, step, f"arm:{arm}" if arm else "holdout", None, now)
            if arm is None:
                t.end(EXITED, now, "holdout")
                return None
            t.context.setdefault("arms", {})[step.id] = arm
            return next(a.next for a in step.arms if a.name == arm)
        if isinstance(step, ExitStep):
            writes.log(t, step, "exit", None, now)
            t.end(EXITED, now, f"step:{step.id}")
            return None
        raise ValueError(f"unknown step type {step.type!r}")

    def _leave_wait(self, t: Turn, step: Any, writes: _Writes, now: datetime) -> str | None:
        """A waiting step's time came (or its event woke it): record how it ended; returns where to go."""
        if isinstance(step, WaitEvent):
            woken = t.context.pop("woken", None)
            t.context.pop("waiting", None)
            happened = woken is not None and woken.get("step") == step.id
            outcome, nxt = ("event", step.on_event or step.next) if happened else ("timeout",
                                                                                  step.on_timeout or step.next)
            detail = {"event_id": woken.get("event_id"), "type": woken.get("type")} if happened else None
        else:
            outcome, nxt, detail = "waited", step.next, None
        writes.leaves.append({"r": t.id, "s": step.id, "o": outcome, "t": now, "d": detail})
        return nxt

    @staticmethod
    def _leave(session: Session, leaves: list[dict[str, Any]]) -> None:
        """The step log rows of the waits the batch's runs left: how and when (one UPDATE per shape, keyed by run
        and step)."""
        plain = [{"run_id": x["r"], "step": x["s"], "outcome": x["o"], "left_at": x["t"]}
                 for x in leaves if x["d"] is None]
        detailed = [{"run_id": x["r"], "step": x["s"], "outcome": x["o"], "left_at": x["t"], "detail": x["d"]}
                    for x in leaves if x["d"] is not None]
        for rows in (plain, detailed):
            update_rows(session, JourneyStep.__table__, sorted(rows, key=itemgetter("run_id", "step")),
                        key=("run_id", "step"))

    def _branch(self, t: Turn, step: BranchStep, engaged: dict[int, set[str]], now: datetime) -> int | None:
        bound = False
        assert t.c is not None
        for j, b in enumerate(step.branches):
            if b.interest is not None:
                if b.interest in ((t.customer or {}).get("interests") or ()):
                    return j
            elif b.engaged is not None:
                run_id = (t.context.get("sends") or {}).get(b.engaged.step)
                if {"opened": "read"}.get(b.engaged.did, b.engaged.did) in engaged.get(run_id or 0, ()):
                    return j
            else:
                if not bound:
                    self.evaluator.bind(now=now, event=None, customer=t.customer, order=t.order, changes=[])
                    bound = True
                if self.evaluator.check(t.c.branches[(step.id, j)]).matched:
                    return j
        return None
