"""Builds the application: engine, clock, event bus and worker. Tests swap parts here."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from retento.bus import Bus
from retento.clock import Clock, FrozenClock, SystemClock
from retento.config import Settings, get_settings
from retento.core import http, ssrf
from retento.db import make_engine, make_session_factory
from retento.groupcommit import GroupCommit
from retento.worker import Worker


@dataclass
class App:
    settings: Settings
    clock: Clock
    engine: Engine
    sessions: sessionmaker[Session]
    bus: Bus
    worker: Worker
    http: http.Client  # the one outgoing HTTP client, with the SSRF guard (`http.guard`)
    group_commit: GroupCommit  # single-event writes of the API (see groupcommit.py)
    closers: list[Callable[[], None]] = field(default_factory=list)

    def on_close(self, fn: Callable[[], None]) -> None:
        """Run `fn` when the app closes (channel clients, pools), last registered first."""
        self.closers.append(fn)

    def close(self) -> None:
        for fn in reversed(self.closers):
            fn()
        self.closers.clear()
        self.engine.dispose()


def bootstrap(settings: Settings | None = None, *, clock: Clock | None = None, engine: Engine | None = None,
              resolver: http.Resolver | None = None) -> App:
    """`resolver`: how outgoing requests resolve host names (the system's DNS by default)."""
    settings = settings or get_settings()
    clock = clock or (FrozenClock(settings.frozen_now) if settings.frozen_now else SystemClock())
    engine = engine or make_engine(settings.database_url, echo=settings.sql_echo)
    guard = http.Guard(ssrf.AllowList.parse(settings.outgoing_allow), resolver or http.SystemResolver())
    sessions = make_session_factory(engine)
    sessions.configure(info={http.SESSION_KEY: guard})  # save-time URL checks find it on the session
    bus = Bus(sessions, clock, batch=settings.event_batch_size, max_attempts=settings.event_max_attempts)
    worker = Worker(bus.wakeup, settings.worker_poll_seconds)
    worker.add_job("events", bus.dispatch, fair=bus.dispatch_slice)
    app = App(settings=settings, clock=clock, engine=engine, sessions=sessions, bus=bus, worker=worker,
              http=http.Client(guard), group_commit=GroupCommit(sessions))
    app.on_close(app.http.close)
    app.on_close(app.group_commit.close)
    for name in INSTALLS:
        importlib.import_module(name).install(app)
    return app


def configure_process(settings: Settings) -> None:
    """Process-wide runtime settings for Retento's own processes (CLI, API, workers); not applied to
    programs that merely import retento as a library."""
    import gc

    if settings.gc_threshold:
        gc.set_threshold(settings.gc_threshold, 20, 20)


def settle_process() -> None:
    """Call once a long-running process has built its app: collect, then freeze what is left (routes, models,
    table metadata: ~190,000 objects for the API) into the permanent generation, so a full collection walks only
    what requests leave behind. Unfrozen, one full collection of the API process took ~130 ms, which a request
    that happens to trigger it waits out."""
    import gc

    gc.collect()
    gc.freeze()


# Domains that react to events or have due work: each module has `install(app: App) -> None`, which
# subscribes to the bus (`app.bus.subscribe`), adds worker jobs (`app.worker.add_job`) and registers what
# `App.close` must release (`app.on_close`). Add yours here.
INSTALLS: list[str] = [
    "retento.apikeys.service",
    "retento.webhooks.service",
    "retento.triggers",
    "retento.segments.events",
    "retento.messaging.wiring",
]
