"""`retento bench console`: how fast each console page's HTML answers, on the demo shop or at full scale.

The pages are read from the application itself: every GET route of every page registered in
`App.parts.console_pages` (pages a later issue registers join without a change here). A route's path and
required query parameters are filled from `samples` by name (`customer_id`, `site`, ...); `QUERIES` adds the
query a fragment needs to do its real work (the rule the live count counts, the condition the editor checks).
A route whose parameter has no sample is reported as not measured, never silently left out.

Data: the demo shop (`retento demo` at the given size) on a fresh database per backend; or, with `--full`, the
generated shop of `retento bench segments` (1,000,000 customers / 10,000,000 orders by default, COPY) on
PostgreSQL, kept with `--keep` and used again with `--reuse` (migrations are applied to it first). Either way
the bench adds through the services what the pages show: a segment, a trigger with a run log, a message
template, a cascade, a campaign, an initiative, an inbox dialog, a console admin and, uploaded through the support
imports page, a few past tickets and the guide the assist answers from (the inbox's live stream,
which stays open, is no page to time).

A signed-in client (Starlette's TestClient: the whole ASGI application in process, without a socket) asks each
page `requests` times after two warm-up requests. The baseline, measured in the same run the same way, is the
sign-in page (a template rendered through the same stack, no database): the ratio says what each page costs
beyond rendering a page at all. Goals (issue 15): every page p95 < 100 ms on the demo shop, < 300 ms at
1,000,000 customers / 10,000,000 orders on PostgreSQL.
"""

from __future__ import annotations

import json
import re
import statistics
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi.testclient import TestClient
from rich.progress import Progress
from sqlalchemy import func, insert, select, text
from starlette.routing import Route

from benchmarks.targets import Target
from retento.api import create_app
from retento.app import App
from retento.assist import imports as import_jobs
from retento.assist.schemas import TaskIn
from retento.bootstrap import bootstrap
from retento.core import work
from retento.core.changes import ActorType, ChangeContext, Source
from retento.core.config import Settings
from retento.core.db.transactions import transaction
from retento.customers.models import Customer
from retento.inbox import ingest as inbox
from retento.inbox.inbound import Batch, Contact, Posted
from retento.journeys import service as journeys
from retento.loyalty import service as loyalty
from retento.loyalty.schemas import JoinIn, ProgramIn
from retento.messaging import service as messaging
from retento.messaging.schemas import CampaignIn, CascadeIn, TemplateIn
from retento.migrate import migrate
from retento.orders.models import Order
from retento.segments import analytics, service as segments
from retento.segments.schemas import InitiativeIn, SegmentCreate
from retento.sites.models import Site
from retento.triggers import service as triggers
from retento.triggers.models import Run
from retento.users import service as users
from retento.webhooks import service as webhooks
from retento.webhooks.schemas import WebhookIn

PASSWORD = "benchmark password"
EMAIL = "bench-console@example.com"
PARAM = re.compile(r"{(\w+)(?::\w+)?}")
# What a fragment needs in its query to do its real work (path template -> query, filled from the samples).
QUERIES: dict[str, list[str]] = {
    "/customers": ["", "q={search}"],
    "/segments/preview": ["site={site}&match=all&kind=orders&key=count&op=gte&value=2"],
    "/segments/builder": ["match=all&kind=orders&key=count&op=gte&value=2&add=true"],
    "/segments/rfm/members": ["site={site}&r=5&f=5"],
    "/triggers/condition": ["condition=order.total > 1000 and customer.email != ''"],
    "/triggers/{trigger_id}/explain": ["order={order_id}&customer="],
    "/cohorts": ["site={site}"],
    "/dashboard/lifecycle": ["site={site}"],
    "/tasks": ["", "view=open", "view=overdue"],
    "/journeys/{journey_id}/edit": ["", "add=send&after=welcome"],
    "/support": ["", "q=order&answered=no"],
    "/support/assist": ["site={site}&ticket={external_id}"],
    "/support/links": ["site={site}&text=How do I return an order?"],
    "/support/report": ["site={site}"],
}
SKIP = {"/signin", "/inbox/stream"}  # the baseline; the inbox's live stream (open until the client leaves)
SLOW_FIRST = 20.0  # seconds


@dataclass
class Page:
    path: str
    p50: float
    p95: float
    status: int
    first: float = 0.0  # the first (warm-up) request, ms
    n: int = 0  # timed requests


@dataclass
class Result:
    version: str
    customers: int
    orders: int
    pages: list[Page]
    baseline: Page
    not_measured: list[str] = field(default_factory=list)  # routes with a parameter no sample fills
    runs: int = 0  # trigger run-log rows in the last 24 hours


def run(target: Target, *, customers: int, orders: int, requests: int, progress: Progress, full: bool = False,
        reuse: bool = False, runs: int = 0, seed: int = 7, only: str = "", skip: tuple[str, ...] = (),
        rebuild: bool = False) -> Result:
    app = bootstrap(Settings(database_url=target.url))
    try:
        migrate(app)
        now = app.clock.now()
        if full:
            if not reuse:
                _generated(app, customers=customers, orders=orders, seed=seed, progress=progress)
            elif rebuild:
                _rebuild(app, now=now, progress=progress)
        else:
            _demo(app, customers=customers, orders=orders, now=now, progress=progress)
        task = progress.add_task("revenue slots and cohort reports (what the worker keeps)", total=None)
        app.derived["revenue"]()
        app.derived["segments"]()  # rollups current with every event (the cohort reports are per site with buyers)
        with transaction(app.sessions) as s:  # the worker's segments.refresh: each site's stored cohort report
            analytics.refresh_cohorts_due(s, now=now, every=timedelta(minutes=app.settings.cohort_refresh_minutes))
        progress.update(task, total=1, completed=1)
        samples = prepare(app, now=now, runs=runs, progress=progress)
        with transaction(app.sessions) as s:
            customers, orders = s.scalar(select(func.count(Customer.id))), s.scalar(select(func.count(Order.id)))
        with TestClient(create_app(app), follow_redirects=False) as client:
            form = client.get("/signin").text
            token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
            signed = client.post("/signin", data={"email": EMAIL, "password": PASSWORD, "csrf_token": token})
            assert signed.status_code == 303, signed.text
            samples.update(_support(client, samples["site"], progress))
            paths, missing = page_paths(app, samples)
            paths = [p for p in paths if only in p and not any(x and x in p for x in skip)]
            task = progress.add_task(f"{target.backend}: pages", total=(len(paths) + 1) * requests)
            baseline = _measure(client, "/signin", requests, lambda: progress.advance(task))
            pages = []
            for p in paths:
                pages.append(_measure(client, p, requests, lambda: progress.advance(task)))
                progress.console.log(f"{p}: first {pages[-1].first:.1f} ms, p50 {pages[-1].p50:.1f} ms, "
                                     f"p95 {pages[-1].p95:.1f} ms (HTTP {pages[-1].status})")
        return Result(target.version, customers, orders, pages, baseline, missing, samples["runs"])
    finally:
        app.close()


def page_paths(app: App, samples: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Every GET route of the registered console pages as a URL to ask (filled from `samples`), and the routes
    that cannot be filled (a parameter without a sample)."""
    paths, missing = [], []
    for page in app.parts.console_pages.values():
        for route in page.router.routes:
            if not isinstance(route, Route) or "GET" not in (route.methods or ()) or route.path in SKIP:
                continue
            template = PARAM.sub(lambda m: "{" + m.group(1) + "}", route.path)
            queries = QUERIES.get(template, [""])
            given = {k for q in queries for k in re.findall(r"(?:^|&)(\w+)=", q)}
            names = set(PARAM.findall(route.path)) | {
                p.alias or p.name for p in route.dependant.query_params if p.field_info.is_required()} - given
            if names - samples.keys():
                missing.append(f"{route.path} (no sample for {', '.join(sorted(names - samples.keys()))})")
                continue
            for query in queries:
                required = {n: samples[n] for n in names if n not in PARAM.findall(route.path)}
                q = "&".join(x for x in (urlencode(required), query.format(**samples)) if x)
                paths.append(template.format(**samples) + (f"?{q}" if q else ""))
    return paths, missing


def _support(client: TestClient, site: str, progress: Progress) -> dict[str, str]:
    """The assist's material uploaded through the support imports page, as an operator adds it (a few labelled
    tickets and the guide; a reused database's re-import changes nothing): the samples of a ticket's page and of
    an import's progress."""
    from retento.assist import synthetic

    task = progress.add_task("support tickets and guide (upload)", total=None)
    material = synthetic.generate(per_topic=2, queries_per_topic=0, duplicates=0, shops_per_industry=0)
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/support/imports").text).group(1)
    uploads = [("tickets", "tickets.json", json.dumps(material.tickets).encode(), {}),
               *(("docs", "guide.md", d["content"].encode(), {"base_url": synthetic.DOCS_URL,
                                                              "folder": d["path"].split("/")[0]})
                 for d in material.docs)]
    job = ""
    for kind, name, body, extra in uploads:
        answer = client.post("/support/imports", data={"csrf_token": token, "site": site, "kind": kind, **extra},
                             files=[("file", (name, body))])
        assert answer.status_code == 303, answer.text
        job = job or answer.headers["location"].split("job=", 1)[1]
    progress.update(task, total=1, completed=1)
    return {"external_id": material.tickets[0]["external_id"], "job_id": job}


def _measure(client: TestClient, path: str, requests: int, tick) -> Page:  # noqa: ANN001
    """Two warm-up requests (the first one's time is kept: a page may compute and store something the first
    time), then `requests` timed ones; a page whose warm-up takes over 2 s is timed 3 times only, one whose first
    request takes `SLOW_FIRST` or more is not asked again."""
    started = time.perf_counter()
    status = client.get(path).status_code
    first = time.perf_counter() - started
    if first >= SLOW_FIRST:  # a page of many seconds: its first request is the figure
        for _ in range(requests):
            tick()
        return Page(path, first * 1000, first * 1000, max(status, 200), first * 1000, 1)
    client.get(path)
    n = requests if first < 2 else min(requests, 3)
    times, status = [], max(status, 200)
    for _ in range(n):
        started = time.perf_counter()
        answer = client.get(path)
        times.append(time.perf_counter() - started)
        status = max(status, answer.status_code)
        tick()
    for _ in range(requests - n):
        tick()
    times.sort()
    return Page(path, statistics.median(times) * 1000, times[max(0, int(len(times) * 0.95) - 1)] * 1000, status,
                first * 1000, n)


# --- data -------------------------------------------------------------------------------------------------


def _demo(app: App, *, customers: int, orders: int, now: datetime, progress: Progress) -> None:
    from retento.demo.generator import generate
    from retento.demo.service import load

    task = progress.add_task("demo shop", total=None)
    shop = generate(seed=1, customers=customers, orders=orders, now=now)
    load(app.sessions, shop=shop, now=now, on_progress=lambda done, total: progress.update(
        task, completed=done, total=total))


def _generated(app: App, *, customers: int, orders: int, seed: int, progress: Progress) -> None:
    """The shop of `retento bench segments` (COPY), its rollups rebuilt, the database analysed."""
    from benchmarks import segments as generated
    from retento.segments import rollups

    generated.load(app, customers=customers, orders=orders, seed=seed, progress=progress)
    task = progress.add_task("rollups from orders", total=None)
    with transaction(app.sessions) as s:
        rollups.refresh(s, site_id=1)
    progress.update(task, total=1, completed=1)
    _analyze(app)


def _rebuild(app: App, *, now: datetime, progress: Progress) -> None:
    """A reused database's customer and category rollups and RFM scores rebuilt from its orders (what
    `_generated` leaves after loading; a database kept by an older version may lack them)."""
    from retento.segments import rollups

    task = progress.add_task("rollups and RFM from orders", total=None)
    with transaction(app.sessions) as s:
        site_id = s.scalar(select(func.min(Site.id)))
        rollups.refresh(s, site_id=site_id)
    with transaction(app.sessions) as s:
        analytics.compute_rfm(s, site_id=site_id, now=now)
    progress.update(task, total=1, completed=1)
    _analyze(app)


def _analyze(app: App) -> None:
    if app.engine.dialect.name == "postgresql":
        with app.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))


def prepare(app: App, *, now: datetime, runs: int, progress: Progress) -> dict[str, Any]:
    """What the pages show, added through the services (once: a reused database keeps them), and the samples
    the page paths are filled from."""
    task = progress.add_task("segment, trigger, messages, initiative", total=None)
    with transaction(app.sessions) as s:
        site = s.scalar(select(Site).order_by(Site.id))
        if _scalar(s, f"SELECT id FROM users WHERE email = '{EMAIL}'") is None:
            users.create(s, data=users.parse_create(email=EMAIL, role="admin", password=PASSWORD), now=now)
    with transaction(app.sessions) as s:
        seg_id = _scalar(s, "SELECT id FROM segments WHERE code = 'bench-repeat'")
        if seg_id is None:
            seg_id = segments.create(s, data=SegmentCreate(site=site.code, code="bench-repeat", name="Repeat buyers",
                                                           rules={"orders": {"metric": "count", "op": "gte",
                                                                             "value": 2}}), now=now).id
    with transaction(app.sessions) as s:
        trigger_id = _scalar(s, "SELECT id FROM triggers WHERE name = 'bench: big orders'")
        if trigger_id is None:
            trigger_id = triggers.create_trigger(s, raw={
                "name": "bench: big orders", "events": ["order_created"], "condition": "order.total > 10000.0",
                "actions": [{"type": "add_tag", "target": "order", "tag": "big"}]}, now=now).id
        template_id = _scalar(s, "SELECT id FROM msg_templates WHERE name = 'bench'")
        if template_id is None:
            template_id = messaging.save_template(s, data=TemplateIn(
                site=site.code, name="bench", channel="email", language="ru", subject="Бонусы, {{ customer.first_name }}",
                body="Здравствуйте, {{ customer.first_name }}!",
                html="<html><body><p>Здравствуйте, {{ customer.first_name }}!</p></body></html>"), now=now).id
        campaign_id = _scalar(s, "SELECT id FROM msg_campaigns WHERE name = 'bench'")
        if campaign_id is None:
            cascade = messaging.create_cascade(s, data=CascadeIn(site=site.code, name="bench", mode="ordered", steps=[
                {"channel": "email", "template": "bench", "wait_hours": 24, "go_on": "not_read"}]), now=now)
            ids = list(s.scalars(select(Customer.id).where(Customer.site_id == site.id).order_by(Customer.id)
                                 .limit(500)))
            campaign_id = messaging.create_campaign(s, data=CampaignIn(cascade_id=cascade.id, name="bench",
                                                                       customer_ids=ids), now=now).id
        initiative_id = _scalar(s, "SELECT id FROM marketing_initiatives WHERE name = 'bench'")
        if initiative_id is None:
            initiative_id = analytics.record_initiative(s, source="user", now=now, data=InitiativeIn(
                site=site.code, kind="campaign", name="bench", started_at=now - timedelta(days=40))).id
    with transaction(app.sessions) as s:
        sub_id = _scalar(s, "SELECT id FROM webhook_subscriptions WHERE description = 'bench'")
        if sub_id is None:
            sub_id = webhooks.create(s, data=WebhookIn(url="https://shop.example/hooks/retento",
                                                       event_types=["order_created"], description="bench"),
                                     site_ids=None, now=now).id
        if _scalar(s, f"SELECT 1 FROM loyalty_programs WHERE site_id = {int(site.id)}") is None:
            loyalty.set_program(s, site=site.code, data=ProgramIn(name="Club", currency=site.currency), now=now)
    with transaction(app.sessions) as s:
        member = s.scalar(select(Customer.id).where(Customer.site_id == site.id).order_by(Customer.id.desc())
                          .limit(1))
        account_id = loyalty.join(s, data=JoinIn(site=site.code, customer_id=member), now=now,
                                  ctx=ChangeContext(Source.API, ActorType.API_KEY, "bench"))[0].id
    with transaction(app.sessions) as s:  # installing again changes nothing
        journey_id = journeys.install_mechanic(s, name="welcome", site=site.code, now=now)[0].id
    with transaction(app.sessions) as s:
        customer = s.scalar(select(Customer).where(Customer.last_name.is_not(None)).order_by(Customer.id.desc())
                            .limit(1)) or s.scalar(select(Customer).order_by(Customer.id.desc()).limit(1))
        order_id = s.scalar(select(Order.id).where(Order.customer_id == customer.id).limit(1)) or s.scalar(
            select(func.min(Order.id)))
        search = (customer.last_name or customer.email or "c1")[:3]
    with transaction(app.sessions) as s:  # a customer's Telegram message: an inbox dialog
        dialog_id = _scalar(s, "SELECT id FROM inbox_dialogs WHERE peer = 'bench-console'")
        if dialog_id is None:
            inbox.ingest(s, Batch("telegram", [Posted(channel="telegram", account="", provider_id="1", at=now,
                                                      text="Where is my order?", contact=Contact(
                                                          peer="bench-console", name="Bench Customer",
                                                          telegram_id="bench-console"))]), now)
            dialog_id = _scalar(s, "SELECT id FROM inbox_dialogs WHERE peer = 'bench-console'")
    queue = import_jobs.QUEUE  # a dead letter for the drop page: an import whose batch failed every attempt
    with transaction(app.sessions) as s:
        dead = work.dead_letters(s, queue, limit=1)
        if not dead:
            job = import_jobs.submit(s, site_id=site.id, kind="tasks", now=now, batches=[[TaskIn(
                external_id="bench-dead", title="A task", description="Never imported")]])
            for n in range(queue.max_attempts):  # each attempt once the last one's backoff is over
                work.fail_locked(s, queue, {job.id: "bench: the worker failed on this batch"},
                                 now=now + timedelta(days=n))
            dead = work.dead_letters(s, queue, limit=1)
    extra = {"queue": queue.name, "row_id": dead[0]["id"]}
    have = _run_log(app, trigger_id=trigger_id, order_id=order_id, customer_id=customer.id, runs=runs, now=now)
    progress.update(task, total=1, completed=1)
    return {"site": site.code, "customer_id": customer.id, "order_id": order_id, "search": search,
            "segment_id": seg_id, "trigger_id": trigger_id, "template_id": template_id, "campaign_id": campaign_id,
            "initiative_id": initiative_id, "sub_id": sub_id, "account_id": account_id, "code": site.code,
            "journey_id": journey_id,
            "dialog_id": dialog_id,
            "runs": have, **extra}


def _scalar(s: Any, sql: str) -> Any:
    return s.execute(text(sql)).scalar()


def _run_log(app: App, *, trigger_id: int, order_id: int, customer_id: int, runs: int, now: datetime) -> int:
    """At least `runs` rows of the trigger's run log spread over the last 30 days (a thirtieth of them in the last
    24 hours): what the Triggers list counts. Set-based; returns the rows of the last 24 hours."""
    since = now - timedelta(hours=24)
    with transaction(app.sessions) as s:
        have = _scalar(s, f"SELECT count(*) FROM trigger_runs WHERE trigger_id = {int(trigger_id)}")
        missing = runs - have
        if missing > 0 and app.engine.dialect.name == "postgresql":
            s.execute(text(
                "INSERT INTO trigger_runs (trigger_id, at, phase, customer_id, order_id, outcome, actions) "
                "SELECT :t, CAST(:now AS timestamptz) - (n % 2592000) * interval '1 second', 'event', :c, :o, "
                "CASE n % 10 WHEN 0 THEN 'acted' WHEN 1 THEN 'failed' ELSE 'not_matched' END, '[]' "
                "FROM generate_series(1, :n) AS g(n)"), {"t": trigger_id, "c": customer_id, "o": order_id,
                                                          "n": missing, "now": now})
        elif missing > 0:
            outcomes = ("acted", "failed", *["not_matched"] * 8)
            s.execute(insert(Run), [{"trigger_id": trigger_id, "at": now - timedelta(seconds=n % 2592000),
                                     "phase": "event", "customer_id": customer_id, "order_id": order_id,
                                     "outcome": outcomes[n % 10], "actions": []} for n in range(1, missing + 1)])
    if runs > 0 and app.engine.dialect.name == "postgresql":
        with app.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE trigger_runs"))
    with transaction(app.sessions) as s:
        return s.scalar(text("SELECT count(*) FROM trigger_runs WHERE at >= :since"), {"since": since})
