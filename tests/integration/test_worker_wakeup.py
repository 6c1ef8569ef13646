"""`Worker.run` in a real application: a round that found nothing waits for the poll interval even though its own
jobs committed (an idle worker used to go round without pause: each round's commits woke it again), and a commit
that records an event wakes it at once."""

from __future__ import annotations

import threading
import time

from retento.bootstrap import bootstrap
from retento.core import bus
from retento.core.changes import ChangeContext
from retento.core.clock import FrozenClock
from retento.core.config import Settings
from retento.core.db.transactions import transaction


def _wait_for(predicate, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def test_an_idle_worker_waits_for_the_poll_and_an_event_wakes_it(db_url: str, clock: FrozenClock) -> None:
    app = bootstrap(Settings(database_url=db_url, worker_poll_seconds=60), clock=clock)
    rounds: list[int] = []
    tick = app.worker.tick
    app.worker.tick = lambda **kw: rounds.append(tick(**kw)) or rounds[-1]  # type: ignore[method-assign]
    stop = threading.Event()
    thread = threading.Thread(target=app.worker.run, args=(stop,), daemon=True)
    try:
        thread.start()
        assert _wait_for(lambda: rounds and rounds[-1] == 0, 10)  # a round that found nothing: it waits now
        time.sleep(0.5)
        idle = len(rounds)
        assert rounds[-1] == 0 and idle <= 3  # not hundreds of rounds in half a second
        with transaction(app.sessions) as s:
            bus.record(s, [bus.event_row("custom", ctx=ChangeContext.system(), now=clock.now(), name="poke")])
        assert _wait_for(lambda: len(rounds) > idle, 10)  # woken long before the 60 s poll
    finally:
        stop.set()
        app.bus.wakeup.set()
        thread.join(timeout=30)
        app.close()
