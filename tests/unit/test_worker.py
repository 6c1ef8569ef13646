"""The worker: `tick()` drains every job; the fair ticks `run()` makes give each job a bounded turn."""

import threading
import time

from retento.core.worker import MIN_WAIT, Worker


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


def test_a_periodic_job_that_found_nothing_waits_out_the_poll_while_streaming_jobs_stay_busy():
    calls: list[str] = []
    work = {"events": 3, "deliveries": 0}

    def events() -> int:
        calls.append("events")
        if work["events"]:
            work["events"] -= 1
            return 1
        return 0

    def deliveries() -> int:
        calls.append("deliveries")
        n, work["deliveries"] = work["deliveries"], 0
        return n

    worker = Worker(threading.Event(), poll_seconds=60)
    worker.add_job("events", events, fair=events)
    worker.add_job("deliveries", deliveries)
    idle: dict[str, float] = {}
    worker.tick(fair=True, idle=idle)  # deliveries found nothing: not asked again within the poll interval
    work["deliveries"] = 2
    worker.tick(fair=True, idle=idle)
    assert calls == ["events", "deliveries", "events"]
    idle.clear()  # what `run()` does when a commit from outside wakes an idle wait
    assert worker.tick(fair=True, idle=idle) == 3
    assert worker.tick(fair=True, idle=idle) == 0  # delivered: asked again on the next round, which finds nothing
    assert calls[-4:] == ["events", "deliveries", "events", "deliveries"]
    assert worker.tick() == 0 and calls[-2:] == ["events", "deliveries"]  # an explicit tick asks every job


def test_run_asks_every_job_again_when_woken_from_an_idle_wait():
    wakeup, stop = threading.Event(), threading.Event()
    asked: list[int] = []
    worker = Worker(wakeup, poll_seconds=60)

    def periodic() -> int:
        asked.append(1)
        if len(asked) == 1:
            wakeup.set()  # a commit from outside the rounds (an API request in the same process)
        else:
            stop.set()
        return 0

    worker.add_job("periodic", periodic)
    worker.run(stop)  # with a 60 s poll this returns at once only if the wakeup asked the idle job again
    assert len(asked) == 2


def test_an_idle_run_waits_only_until_the_earliest_scheduled_work_falls_due():
    stop = threading.Event()
    rounds: list[float] = []
    worker = Worker(threading.Event(), poll_seconds=60)

    def timers() -> int:
        rounds.append(time.monotonic())
        if len(rounds) == 2:
            stop.set()
        return 0  # nothing due yet: the first round finds nothing

    worker.add_job("timers", timers, fair=timers, due_in=lambda: 0.05)
    worker.add_job("other", lambda: 0, due_in=lambda: None)  # nothing scheduled: the poll is its bound
    worker.run(stop)  # with a 60 s poll this returns at once only if the wait ended when the timer fell due
    assert len(rounds) == 2 and rounds[1] - rounds[0] < 30
    assert worker.idle_wait() == 0.05


def test_an_idle_wait_is_the_poll_when_nothing_is_scheduled_and_never_a_busy_loop():
    worker = Worker(threading.Event(), poll_seconds=2)
    assert worker.idle_wait() == 2
    worker.add_job("late", lambda: 0, due_in=lambda: -3.0)  # due, but held by another worker
    worker.add_job("broken", lambda: 0, due_in=lambda: 1 / 0)  # a failing look-up costs only the early wake
    assert worker.idle_wait() == MIN_WAIT
