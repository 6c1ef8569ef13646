"""The application object: its runtime (settings, clock, database, bus, worker, outgoing HTTP) and the registries
of what it is made of (event types, trigger actions, channel adapters, segment rule types, API routers, CLI
commands, runtime installs, customer-merge handlers, derived data). `retento.bootstrap` builds it and fills the registries in one place; no module registers
anything by being imported, so what is registered never depends on import order. Tests swap parts here
(`app.parts.actions.add(name, spec, replace=True)`, `bootstrap(parts=...)`).

This module imports no domain: every domain may import it (for `App`, `from_session`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from retento.core import http
from retento.core.bus import Bus, EventType
from retento.core.clock import Clock
from retento.core.config import Settings
from retento.core.groupcommit import GroupCommit
from retento.core.registry import Registry
from retento.core.work import Queue
from retento.core.worker import Worker

if TYPE_CHECKING:
    from retento.messaging.channels import ChannelAdapter, InboundReceiver
    from retento.segments.compiler import LeafType
    from retento.triggers.actions import ActionSpec

SESSION_KEY = "app"  # Session.info key: the App whose `sessions` made the session


Install = Callable[["App"], None]  # runtime wiring of a domain: bus subscriptions, worker jobs, close hooks, ...
# a domain's part of merging duplicate customers: (session, customers.merges.Merge) -> what it moved, by name
MergeHandler = Callable[[Session, Any], "dict[str, int] | None"]


@dataclass
class Parts:
    """What the application is made of, without settings or I/O (the CLI builds its command tree from it before
    any database is known). `bootstrap.assemble()` makes and fills one."""

    event_types: Registry[EventType] = field(default_factory=lambda: Registry("event type"))
    actions: Registry[ActionSpec] = field(default_factory=lambda: Registry("trigger action"))
    channel_adapters: Registry[ChannelAdapter] = field(default_factory=lambda: Registry("channel adapter"))
    # what customers send through a provider, by provider (the inbox): its webhook endpoint hands bodies on
    inbound: Registry[InboundReceiver] = field(default_factory=lambda: Registry("inbound receiver"))
    segment_rules: Registry[LeafType] = field(default_factory=lambda: Registry("segment rule type"))
    routers: Registry[Any] = field(default_factory=lambda: Registry("API router"))  # fastapi.APIRouter
    console_pages: Registry[Any] = field(default_factory=lambda: Registry("console page"))  # console.web.Page
    commands: Registry[Any] = field(default_factory=lambda: Registry("CLI command"))  # a typer.Typer or a function
    installs: Registry[Install] = field(default_factory=lambda: Registry("install"))
    # what each domain does with the rows it keeps about duplicate customers being merged into one
    # (`customers.merging.merge` calls them in this order, in its transaction; one may refuse with a DomainError)
    customer_merge: Registry[MergeHandler] = field(default_factory=lambda: Registry("customer merge handler"))


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
    parts: Parts
    # derived data (rollups, segment members, ...) by name: a function that brings it up to date now, for commands
    # that read it where no worker may be running (`retento import`, `retento rfm`); returns the work done
    derived: Registry[Callable[[], int]] = field(default_factory=lambda: Registry("derived data"))
    # every queue of deferred work (retento.core.work) by name, filled by the installs: `retento work` shows them
    work: Registry[Queue] = field(default_factory=lambda: Registry("work queue"))
    closers: list[Callable[[], None]] = field(default_factory=list)

    def on_close(self, fn: Callable[[], None]) -> None:
        """Run `fn` when the app closes (channel clients, pools), last registered first."""
        self.closers.append(fn)

    def close(self) -> None:
        for fn in reversed(self.closers):
            fn()
        self.closers.clear()
        self.engine.dispose()

    def bring_up_to_date(self) -> dict[str, int]:
        """Bring every kind of derived data up to date with the data written so far (what the worker would do
        for it); returns the work done per kind."""
        return {name: fn() for name, fn in self.derived.items()}


def from_session(session: Session) -> App:
    """The App whose `sessions` made this session (services reach the registries through it)."""
    app = session.info.get(SESSION_KEY)
    if app is None:
        raise RuntimeError("this session does not come from App.sessions")
    return app
