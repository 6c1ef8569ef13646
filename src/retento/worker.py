"""The worker process: `retento worker`, or `python -m retento.worker` (which skips the command line's imports).
The `Worker` itself (jobs, `tick`, `run`) is `retento.core.worker`."""

from __future__ import annotations

import signal
import threading

from retento.bootstrap import bootstrap, configure_process, settle_process
from retento.core import logs
from retento.core.config import get_settings


def main() -> None:
    """A worker process until SIGTERM / SIGINT (`retento worker`, or `python -m retento.worker`, which starts
    faster because it skips the command line's imports)."""
    settings = get_settings()
    configure_process(settings)
    logs.configure(settings.log_level)
    app = bootstrap()
    settle_process()  # what the app built stays out of the GC's full collections
    stop = threading.Event()

    def _stop(*_: object) -> None:
        stop.set()
        app.bus.wakeup.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    app.worker.run(stop)


if __name__ == "__main__":
    main()
