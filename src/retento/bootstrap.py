"""Builds the application in one place: `assemble()` fills the registries of what it is made of (event types,
trigger actions, channel adapters, segment rule types, API routers, CLI commands, runtime installs),
`bootstrap()` makes the runtime (engine, clock, bus, worker, outgoing HTTP) and runs each install. Tests swap
parts here."""

from __future__ import annotations

import gc

from sqlalchemy import Engine

from retento import app as application
from retento.apikeys import cli as apikeys_cli, service as apikeys
from retento.app import App, Parts
from retento.assist import api as assist_api, cli as assist_cli, wiring as assist
from retento.catalog import api as catalog_api
from retento.compat import api as compat_api, loyalty as compat_loyalty, upload as compat_upload
from retento.console.pages import (
    account as console_account,
    admin as console_admin,
    cohorts as console_cohorts,
    customers as console_customers,
    dashboard as console_dashboard,
    inbox as console_inbox,
    journeys as console_journeys,
    journeys_edit as console_journeys_edit,
    journeys_report as console_journeys_report,
    loyalty as console_loyalty,
    loyalty_members as console_loyalty_members,
    messages as console_messages,
    segments as console_segments,
    sites as console_sites,
    support as console_support,
    support_imports as console_support_imports,
    tasks as console_tasks,
    triggers as console_triggers,
    webhooks as console_webhooks,
    work as console_work,
)
from retento.core import http, ssrf
from retento.core.bus import Bus
from retento.core.clock import Clock, FrozenClock, SystemClock
from retento.core.config import Settings, get_settings
from retento.core.db.engine import make_engine, make_session_factory
from retento.core.groupcommit import GroupCommit
from retento.core.worker import Worker
from retento.customers import api as customers_api, cli as customers_cli, events as customer_events
from retento.demo import cli as demo_cli
from retento.history import api as history_api
from retento.imports import cli as imports_cli
from retento.inbox import (
    api as inbox_api,
    cli as inbox_cli,
    events as inbox_events,
    service as inbox_service,
    wiring as inbox,
)
from retento.journeys import (
    api as journeys_api,
    cli as journeys_cli,
    service as journeys_service,
    wiring as journeys,
)
from retento.loyalty import (
    api as loyalty_api,
    cli as loyalty_cli,
    events as loyalty_events,
    merging as loyalty_merging,
    wiring as loyalty,
)
from retento.messaging import (
    api as messaging_api,
    cli as messaging_cli,
    events as messaging_events,
    service as messaging_service,
    wiring as messaging,
)
from retento.orders import (
    api as orders_api,
    events as order_events,
    merging as order_merging,
    wiring as orders,
)
from retento.queues import api as queues_api, cli as queues_cli
from retento.segments import (
    api as segments_api,
    cli as segments_cli,
    compiler as segment_rules,
    events as segment_events,
    service as segments_service,
    wiring as segments,
)
from retento.sites import api as sites_api
from retento.tasks import api as tasks_api, cli as tasks_cli, service as tasks_service
from retento.triggers import (
    actions as trigger_actions,
    api as triggers_api,
    cli as triggers_cli,
    events as trigger_events,
    service as triggers_service,
    wiring as triggers,
)
from retento.users import cli as users_cli, service as users
from retento.webhooks import api as webhooks_api, service as webhooks

__all__ = ["App", "Parts", "assemble", "bootstrap"]


def assemble() -> Parts:
    """A fresh set of the application's parts. A domain adds its event types, actions, channels, router, commands
    and `install(app)` here; nothing is registered by importing a module."""
    parts = Parts()
    for types in (customer_events.TYPES, order_events.TYPES, segment_events.TYPES, messaging_events.TYPES,
                  trigger_events.TYPES, loyalty_events.TYPES, inbox_events.TYPES):
        parts.event_types.extend(types)
    parts.actions.extend(trigger_actions.BUILT_IN)
    parts.actions.add(messaging.START_CASCADE.name, messaging.START_CASCADE)
    parts.actions.add(loyalty.LOYALTY_POINTS.name, loyalty.LOYALTY_POINTS)
    parts.channel_adapters.extend(messaging.ADAPTERS)
    for receiver in inbox.RECEIVERS:  # what customers send, from the messaging webhooks
        parts.inbound.add(receiver.provider, receiver)
    parts.segment_rules.extend(segment_rules.BUILT_IN)
    for name, module in (("customers", customers_api), ("orders", orders_api), ("sites", sites_api),
                         ("catalog", catalog_api), ("history", history_api),
                         ("compat.upload", compat_upload),  # before compat: its catch-all answers any other /api/v5 path
                         ("compat.loyalty", compat_loyalty),
                         ("compat", compat_api),
                         ("webhooks", webhooks_api), ("triggers", triggers_api), ("tasks", tasks_api),
                         ("segments", segments_api), ("work", queues_api), ("loyalty", loyalty_api),
                         ("journeys", journeys_api), ("inbox", inbox_api), ("assist", assist_api)):
        parts.routers.add(name, module.router)
    parts.routers.add("messaging", messaging_api.mounted())  # at /api/v1/messaging and its old /api/messaging
    for name, command in (("customers", customers_cli.app),
                          ("import", imports_cli.import_app), ("demo", demo_cli.demo), ("triggers", triggers_cli.app),
                          ("tasks", tasks_cli.app), ("segments", segments_cli.segments_app), ("rfm", segments_cli.rfm),
                          ("cohorts", segments_cli.cohorts), ("report", messaging_cli.app),
                          ("campaign", messaging_cli.campaign_app),
                          ("bounces", messaging_cli.bounces), ("apikey", apikeys_cli.app),
                          ("work", queues_cli.app), ("loyalty", loyalty_cli.app), ("user", users_cli.app),
                         ("journeys", journeys_cli.app), ("inbox", inbox_cli.app),
                         ("assist", assist_cli.app)):
        parts.commands.add(name, command)
    # The web console's pages (console.web.Page: routes and a navigation entry); docs/console.md: adding a page
    for name, module in (("account", console_account), ("dashboard", console_dashboard),
                         ("customers", console_customers), ("admin", console_admin),
                         ("messages", console_messages), ("segments", console_segments),
                         ("cohorts", console_cohorts), ("triggers", console_triggers),
                         ("tasks", console_tasks), ("webhooks", console_webhooks), ("loyalty", console_loyalty),
                         ("loyalty_members", console_loyalty_members), ("sites", console_sites),
                         ("work", console_work), ("journeys", console_journeys),
                         ("journeys_edit", console_journeys_edit), ("journeys_report", console_journeys_report),
                         ("inbox", console_inbox), ("support", console_support),
                         ("support_imports", console_support_imports)):
        parts.console_pages.add(name, module.PAGE)
    # Merging duplicate customers (customers.merging): each domain moves what it keeps about them, in this order:
    # loyalty first (it may refuse before anything moved), segments after the orders (it rebuilds their rollups)
    for name, handler in (("loyalty", loyalty_merging.merge_customers), ("orders", order_merging.merge_customers),
                          ("inbox", inbox_service.merge_customers), ("messaging", messaging_service.merge_customers),
                          ("journeys", journeys_service.merge_customers),
                          ("triggers", triggers_service.merge_customers), ("tasks", tasks_service.merge_customers),
                          ("segments", segments_service.merge_customers)):
        parts.customer_merge.add(name, handler)
    # Runtime wiring (`install(app)`: bus subscriptions, worker jobs, derived data, what `App.close` releases)
    for name, install in (("apikeys", apikeys.install), ("orders", orders.install), ("webhooks", webhooks.install),
                          ("triggers", triggers.install), ("segments", segments.install), ("messaging", messaging.install),
                          ("loyalty", loyalty.install), ("users", users.install),
                          ("journeys", journeys.install), ("inbox", inbox.install),
                          ("assist", assist.install)):
        parts.installs.add(name, install)
    return parts


def bootstrap(settings: Settings | None = None, *, clock: Clock | None = None, engine: Engine | None = None,
              resolver: http.Resolver | None = None, parts: Parts | None = None) -> App:
    """`resolver`: how outgoing requests resolve host names (the system's DNS by default); `parts`: what the
    application is made of (`assemble()` by default)."""
    settings = settings or get_settings()
    clock = clock or (FrozenClock(settings.frozen_now) if settings.frozen_now else SystemClock())
    engine = engine or make_engine(settings.database_url, echo=settings.sql_echo)
    guard = http.Guard(ssrf.AllowList.parse(settings.outgoing_allow), resolver or http.SystemResolver())
    sessions = make_session_factory(engine)
    bus = Bus(sessions, clock, batch=settings.event_batch_size, max_attempts=settings.event_max_attempts)
    worker = Worker(bus.wakeup, settings.worker_poll_seconds, periodic_seconds=settings.worker_periodic_seconds)
    worker.add_job("events", bus.dispatch, fair=bus.dispatch_slice)
    app = App(settings=settings, clock=clock, engine=engine, sessions=sessions, bus=bus, worker=worker,
              http=http.Client(guard), group_commit=GroupCommit(sessions), parts=parts or assemble())
    # services find the outgoing guard (save-time URL checks) and the app's registries on their session
    sessions.configure(info={http.SESSION_KEY: guard, application.SESSION_KEY: app})
    app.on_close(app.http.close)
    app.on_close(app.group_commit.close)
    for install in app.parts.installs.values():
        install(app)
    return app


def configure_process(settings: Settings) -> None:
    """Process-wide runtime settings for Retento's own processes (CLI, API, workers); not applied to
    programs that merely import retento as a library."""
    if settings.gc_threshold:
        gc.set_threshold(settings.gc_threshold, 20, 20)


def settle_process() -> None:
    """Call once a long-running process has built its app: collect, then freeze what is left (routes, models,
    table metadata: ~190,000 objects for the API) into the permanent generation, so a full collection walks only
    what requests leave behind. Unfrozen, one full collection of the API process took ~130 ms, which a request
    that happens to trigger it waits out."""
    gc.collect()
    gc.freeze()
