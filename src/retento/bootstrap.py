"""Builds the application: engine, clock, event bus and worker. Tests swap parts here."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from retento.bus import Bus
from retento.clock import Clock, FrozenClock, SystemClock
from retento.config import Settings, get_settings
from retento.db import make_engine, make_session_factory
from retento.worker import Worker


@dataclass
class App:
    settings: Settings
    clock: Clock
    engine: Engine
    sessions: sessionmaker[Session]
    bus: Bus
    worker: Worker

    def close(self) -> None:
        self.engine.dispose()


def bootstrap(settings: Settings | None = None, *, clock: Clock | None = None, engine: Engine | None = None) -> App:
    settings = settings or get_settings()
    clock = clock or (FrozenClock(settings.frozen_now) if settings.frozen_now else SystemClock())
    engine = engine or make_engine(settings.database_url, echo=settings.sql_echo)
    sessions = make_session_factory(engine)
    bus = Bus(sessions, clock, batch=settings.event_batch_size, max_attempts=settings.event_max_attempts)
    worker = Worker(bus.wakeup, settings.worker_poll_seconds)
    worker.add_job("events", bus.dispatch, fair=bus.dispatch_slice)
    app = App(settings=settings, clock=clock, engine=engine, sessions=sessions, bus=bus, worker=worker)
    for name in INSTALLS:
        importlib.import_module(name).install(app)
    return app


def configure_process(settings: Settings) -> None:
    """Process-wide runtime settings for Retento's own processes (CLI, API, workers); not applied to
    programs that merely import retento as a library."""
    import gc

    if settings.gc_threshold:
        gc.set_threshold(settings.gc_threshold, 20, 20)


# Domains that react to events or have due work: each module has `install(app: App) -> None`, which
# subscribes to the bus (`app.bus.subscribe`) and adds worker jobs (`app.worker.add_job`). Add yours here.
INSTALLS: list[str] = [
    "retento.apikeys.service",
    "retento.webhooks.service",
    "retento.triggers",
    "retento.segments.events",
    "retento.messaging.wiring",
]
