"""The worker: one `tick()` does every kind of due work once; `run()` ticks until told to stop.

In `run()` each job that has a `fair` variant does only a bounded turn of its work per round (a few batches,
about a quarter of a second), so a steady stream of events cannot hold due timers back: the jobs take turns.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

Job = Callable[[], int]  # does due work, returns how much it did


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
            if self.tick(fair=True) == 0:
                self._wakeup.wait(self._poll)
        log.info("worker stopped")
