"""The worker: `tick()` drains every job; the fair ticks `run()` makes give each job a bounded turn."""

import threading

from retento.core.worker import Worker


def test_fair_ticks_let_timers_in_between_batches_of_events():
    calls: list[tuple[str, int]] = []
    backlog = {"events": 5}

    def take(n: int) -> int:
        n = min(n, backlog["events"])
        backlog["events"] -= n
        calls.append(("events", n))
        return n

    worker = Worker(threading.Event(), poll_seconds=0.01)
    worker.add_job("events", lambda: take(100), fair=lambda: take(2))
    worker.add_job("timers", lambda: calls.append(("timers", 0)) or 0)
    assert worker.tick(fair=True) == 2
    assert worker.tick(fair=True) == 2
    assert calls == [("events", 2), ("timers", 0), ("events", 2), ("timers", 0)]
    assert worker.tick() == 1  # an explicit tick does all due work
    assert calls[-2:] == [("events", 1), ("timers", 0)]


def test_run_stops_when_told():
    worker = Worker(threading.Event(), poll_seconds=0.01)
    stop = threading.Event()
    worker.add_job("stopper", lambda: stop.set() or 0)
    worker.run(stop)
    assert stop.is_set()
