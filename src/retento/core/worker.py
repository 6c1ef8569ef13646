"""The worker: one `tick()` does every kind of due work once; `run()` ticks until told to stop.

In `run()` each job that has a `fair` variant does only a bounded turn of its work per round (a few batches,
about a quarter of a second), so a steady stream of events cannot hold due timers back: the jobs take turns.
A round that found nothing waits for the wakeup (a commit in this process that recorded events, or any commit
outside a worker round: `in_round`) or the poll interval; the round's own commits do not wake it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

Job = Callable[[], int]  # does due work, returns how much it did
_round = threading.local()


def in_round() -> bool:
    """This thread is inside a round of `Worker.run` (its commits are the worker's own: they wake no one unless
    they recorded events, `bus.Bus`)."""
    return getattr(_round, "on", False)


class Worker:
    def __init__(self, wakeup: threading.Event, poll_seconds: float) -> None:
        self._jobs: list[tuple[str, Job, Job]] = []
        self._wakeup = wakeup
        self._poll = poll_seconds

    def add_job(self, name: str, job: Job, *, fair: Job | None = None) -> None:
        """`job` does all due work of its kind; `fair`, if given, a bounded turn of it (used by `run()`)."""
        self._jobs.append((name, job, fair or job))

    def tick(self, *, fair: bool = False) -> int:
        """Run every job once (all of its due work, or with `fair` one turn); returns the amount of work done."""
        done = 0
        for name, job, turn in self._jobs:
            try:
                done += turn() if fair else job()
            except Exception:  # noqa: BLE001 - one failing job must not stop the worker
                log.exception("worker job %s failed", name)
        return done

    def run(self, stop: threading.Event) -> None:
        log.info("worker started with jobs: %s", ", ".join(n for n, *_ in self._jobs))
        while not stop.is_set():
            self._wakeup.clear()
            _round.on = True
            try:
                done = self.tick(fair=True)
            finally:
                _round.on = False
            if done == 0:
                self._wakeup.wait(self._poll)
        log.info("worker stopped")
