"""The worker: one `tick()` does every kind of due work once; `run()` ticks until told to stop.

In `run()` each job that has a `fair` variant does only a bounded turn of its work per round (a few batches,
about a quarter of a second), so a steady stream of events cannot hold due timers back: the jobs take turns.
A round that found nothing waits for the wakeup (a commit in this process that recorded events, or any commit
outside a worker round: `in_round`) or the poll interval; the round's own commits do not wake it.

A job without a fair variant is a periodic one (deliveries, refreshes, purges): in `run()`, once it found nothing
it is asked again after `periodic_seconds` (`RETENTO_WORKER_PERIODIC_SECONDS`), not on every round the streaming jobs (events, due timers, journeys)
keep busy; a wakeup that ends an idle wait asks every job again. Idle checks of a dozen periodic jobs took about
a quarter of a busy worker's rounds (`retento bench triggers`, fire lag).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

Job = Callable[[], int]  # does due work, returns how much it did
_round = threading.local()


def in_round() -> bool:
    """This thread is inside a round of `Worker.run` (its commits are the worker's own: they wake no one unless
    they recorded events, `bus.Bus`)."""
    return getattr(_round, "on", False)


class Worker:
    def __init__(self, wakeup: threading.Event, poll_seconds: float, *, periodic_seconds: float | None = None) -> None:
        self._jobs: list[tuple[str, Job, Job]] = []
        self._periodic: set[str] = set()
        self._wakeup = wakeup
        self._poll = poll_seconds
        self._periodic_wait = poll_seconds if periodic_seconds is None else periodic_seconds

    def add_job(self, name: str, job: Job, *, fair: Job | None = None) -> None:
        """`job` does all due work of its kind; `fair`, if given, a bounded turn of it (used by `run()`)."""
        self._jobs.append((name, job, fair or job))
        if fair is None:
            self._periodic.add(name)

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
            finally:
                _round.on = False
            if done == 0 and not stop.is_set() and self._wakeup.wait(self._poll):
                idle.clear()  # woken by a commit from outside the rounds: it may have queued any kind of work
        log.info("worker stopped")
