"""The worker: one `tick()` does every kind of due work once; `run()` ticks until told to stop.

In `run()` each job that has a `fair` variant does only a bounded turn of its work per round (a few batches,
about a quarter of a second), so a steady stream of events cannot hold due timers back: the jobs take turns.
A round that found nothing waits for the wakeup (a commit in this process that recorded events, or any commit
outside a worker round: `in_round`) or the poll interval; the round's own commits do not wake it.

A job without a fair variant is a periodic one (deliveries, refreshes, purges): in `run()`, once it found nothing
it is asked again after `periodic_seconds` (`RETENTO_WORKER_PERIODIC_SECONDS`), not on every round the streaming jobs (events, due timers, journeys)
keep busy; a wakeup that ends an idle wait asks every job again. Idle checks of a dozen periodic jobs took about
a quarter of a busy worker's rounds (`retento bench triggers`, fire lag).

A job with scheduled work (due trigger runs, journeys' waits) also says when its earliest work falls due (`due_in`):
an idle worker waits until then if that is sooner than the poll interval, so work due while it waits is taken on
time, not up to a poll interval late (journeys' lag p99 was 1.02 s at the default poll of 1 s).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

Job = Callable[[], int]  # does due work, returns how much it did
DueIn = Callable[[], "float | None"]  # seconds until a job's earliest scheduled work falls due (None: none)
MIN_WAIT = 0.02  # seconds; work due now that a round did not get (another worker holds it) is looked for this often
_round = threading.local()


def in_round() -> bool:
    """This thread is inside a round of `Worker.run` (its commits are the worker's own: they wake no one unless
    they recorded events, `bus.Bus`)."""
    return getattr(_round, "on", False)


class Worker:
    def __init__(self, wakeup: threading.Event, poll_seconds: float, *, periodic_seconds: float | None = None) -> None:
        self._jobs: list[tuple[str, Job, Job]] = []
        self._periodic: set[str] = set()
        self._due: list[tuple[str, DueIn]] = []
        self._wakeup = wakeup
        self._poll = poll_seconds
        self._periodic_wait = poll_seconds if periodic_seconds is None else periodic_seconds

    def add_job(self, name: str, job: Job, *, fair: Job | None = None, due_in: DueIn | None = None) -> None:
        """`job` does all due work of its kind; `fair`, if given, a bounded turn of it (used by `run()`); `due_in`,
        if given, when its earliest scheduled work falls due (an idle `run()` waits no longer than that)."""
        self._jobs.append((name, job, fair or job))
        if fair is None:
            self._periodic.add(name)
        if due_in is not None:
            self._due.append((name, due_in))

    def only(self, *names: str) -> Worker:
        """A worker with these jobs alone, as added here (benchmarks measure one kind of work with `run()`)."""
        other = Worker(self._wakeup, self._poll, periodic_seconds=self._periodic_wait)
        other._jobs = [j for j in self._jobs if j[0] in names]
        other._periodic = self._periodic & set(names)
        other._due = [d for d in self._due if d[0] in names]
        return other

    def tick(self, *, fair: bool = False, idle: dict[str, float] | None = None) -> int:
        """Run every job once (all of its due work, or with `fair` one turn); returns the amount of work done.
        `idle` (from `run()`): periodic job name -> monotonic time before which it is not asked again; updated."""
        done, now = 0, time.monotonic()
        for name, job, turn in self._jobs:
            if idle is not None and idle.get(name, 0.0) > now:
                continue
            try:
                did = turn() if fair else job()
            except Exception:  # noqa: BLE001 - one failing job must not stop the worker
                log.exception("worker job %s failed", name)
                continue
            done += did
            if idle is not None and name in self._periodic:
                if did:
                    idle.pop(name, None)
                else:
                    idle[name] = now + self._periodic_wait
        return done

    def run(self, stop: threading.Event) -> None:
        log.info("worker started with jobs: %s", ", ".join(n for n, *_ in self._jobs))
        idle: dict[str, float] = {}
        while not stop.is_set():
            self._wakeup.clear()
            _round.on = True
            try:
                done = self.tick(fair=True, idle=idle)
                wait = 0.0 if done else self.idle_wait()  # in the round: its reads wake no one
            finally:
                _round.on = False
            if wait and not stop.is_set() and self._wakeup.wait(wait):
                idle.clear()  # woken by a commit from outside the rounds: it may have queued any kind of work
        log.info("worker stopped")

    def idle_wait(self) -> float:
        """How long a round that found nothing waits: the poll interval, or less when scheduled work falls due
        sooner (`due_in`)."""
        wait = self._poll
        for name, due_in in self._due:
            try:
                seconds = due_in()
            except Exception:  # noqa: BLE001 - a failing look-up costs only the early wake
                log.exception("worker job %s: next due time failed", name)
                continue
            if seconds is not None:
                wait = min(wait, max(seconds, MIN_WAIT))
        return wait
