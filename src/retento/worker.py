"""The worker: one `tick()` does every kind of due work once; `run()` ticks until told to stop."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

Job = Callable[[], int]  # does due work, returns how much it did


class Worker:
    def __init__(self, wakeup: threading.Event, poll_seconds: float) -> None:
        self._jobs: list[tuple[str, Job]] = []
        self._wakeup = wakeup
        self._poll = poll_seconds

    def add_job(self, name: str, job: Job) -> None:
        self._jobs.append((name, job))

    def tick(self) -> int:
        """Run every job once; returns the total amount of work done."""
        done = 0
        for name, job in self._jobs:
            try:
                done += job()
            except Exception:  # noqa: BLE001 - one failing job must not stop the worker
                log.exception("worker job %s failed", name)
        return done

    def run(self, stop: threading.Event) -> None:
        log.info("worker started with jobs: %s", ", ".join(n for n, _ in self._jobs))
        while not stop.is_set():
            self._wakeup.clear()
            if self.tick() == 0:
                self._wakeup.wait(self._poll)
        log.info("worker stopped")


def main() -> None:
    """A worker process until SIGTERM / SIGINT (`retento worker`, or `python -m retento.worker`, which starts
    faster because it skips the command line's imports)."""
    import signal

    from retento.bootstrap import bootstrap, configure_process
    from retento.config import get_settings

    configure_process(get_settings())
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = bootstrap()
    stop = threading.Event()

    def _stop(*_: object) -> None:
        stop.set()
        app.bus.wakeup.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    app.worker.run(stop)


if __name__ == "__main__":
    main()
