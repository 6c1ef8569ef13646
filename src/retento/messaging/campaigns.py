"""Starting due campaigns, set-based: a few INSERT … SELECT statements per campaign whatever its size.

Every campaign gets one run per member. For an `ordered` cascade the first step is planned in the same go:
the runs are written already at their first step (or done: customer gone, frequency cap, unreachable), and
their outbox rows with one more statement. The decisions are those of the pure per-run code
(`policies.decide`, `planner.pick`, `cascade.window_end`) written as SQL CASE expressions; whatever depends
only on the site, the cascade or a time zone (prices, template per language, the end of quiet hours per
zone, window ends) is computed in Python with the pure functions and bound as literals. A
`cheapest_read` cascade needs each customer's history: its runs start at no step and the cascade job
plans them. tests/messaging/test_campaign_start.py proves both paths write the same rows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Integer, Select, String, and_, case, cast, distinct, func, literal, null, or_, select
from sqlalchemy.orm import Session

from retento.core import bus, work
from retento.core.changes import ChangeContext
from retento.customers import service as customers
from retento.messaging import cascade as cz, planner, policies, service
from retento.messaging.events import CAMPAIGN_STARTED
from retento.messaging.models import Campaign, Cascade, Device, Message, Run
from retento.sites.models import Site

GONE, CAPPED, UNREACHABLE = -2, -3, -4  # the first step's index, or why there is none
OUTCOMES = {GONE: "customer_gone", CAPPED: "frequency_cap", UNREACHABLE: "unreachable"}
RUN_COLUMNS = ["cascade_id", "campaign_id", "site_id", "customer_id", "message_class", "plan", "pos", "state",
               "due_at", "outcome", "idempotency_key", "created_at", "finished_at"]
MESSAGE_COLUMNS = ["site_id", "customer_id", "channel", "template_id", "run_id", "campaign_id", "cascade_id", "step",
                   "message_class", "idempotency_key", "status", "address", "units", "cost", "currency", "attempts",
                   "not_before", "created_at"]


# Scheduled campaigns as a queue of the durable-work primitive, started inside one transaction (`work.locked`).
QUEUE = work.Queue.in_transaction("campaigns", Campaign.__table__, label="campaigns to start / запуск кампаний",
                                  state="status", due="start_at", ready="scheduled", order=("id",))


def start_due_campaigns(session: Session, *, now: datetime) -> int:
    """Start every due campaign; returns how many runs were created."""
    total = 0
    for (campaign_id,) in work.locked(session, QUEUE, now=now, limit=1000):
        camp = session.get(Campaign, campaign_id)
        audience = service.audience_select(session, camp, now=now)
        cascade = session.get(Cascade, camp.cascade_id)
        camp.members = _start(session, camp, cascade, audience.subquery("audience"), now)
        total += camp.members
        camp.status, camp.started_at = "running", now
        bus.record(session, [bus.event_row(CAMPAIGN_STARTED, ctx=ChangeContext.system(), now=now, site_id=camp.site_id,
                                           payload={"campaign_id": camp.id, "name": camp.name,
                                                    "cascade_id": camp.cascade_id, "members": camp.members},
                                           idempotency_key=f"campaign-started:{camp.id}")])
    return total


def _lit(value: Any, column: Any) -> Any:
    return literal(value, column.type)


def _by(value: Any, mapping: dict[Any, Any], column: Any, default: Any = None) -> Any:
    """CASE value WHEN k THEN v … ELSE default END, the results bound with `column`'s type."""
    else_ = null() if default is None else _lit(default, column)
    if not mapping:
        return else_
    return case({k: _lit(v, column) for k, v in mapping.items()}, value=value, else_=else_)


def _insert(session: Session, table: Any, columns: list[str], rows: Select) -> int:
    result = session.execute(table.insert().from_select(columns, rows), execution_options={"preserve_rowcount": True})
    return result.rowcount


def _start(session: Session, camp: Campaign, cascade: Cascade, audience: Any, now: datetime) -> int:
    site, class_ = literal(camp.site_id), literal(camp.message_class)
    if cascade.mode != "ordered":
        return _insert(session, Run.__table__, RUN_COLUMNS, select(
            literal(camp.cascade_id), literal(camp.id), site, audience.c.customer_id, class_, null(), literal(-1),
            literal("waiting"), _lit(now, Run.due_at), null(), _key(camp, audience), _lit(now, Run.created_at),
            null()))
    plan = _FirstStep(session, camp, cascade, now)
    c = customers.contacts_select(audience, channels=plan.channels).subquery("c")
    plan.load_zones(c)
    first, source = plan.first(c, audience)
    # OFFSET 0 keeps the decision a subquery of its own: computed once per row, not once per use
    p = select(c.c.customer_id, first.label("first"), plan.zone(c).label("zone")).select_from(source).offset(0)
    p = p.subquery("p")
    first = p.c.first
    n = _insert(session, Run.__table__, RUN_COLUMNS, select(
        literal(camp.cascade_id), literal(camp.id), site, p.c.customer_id, class_,
        _lit(list(range(len(plan.steps))), Run.plan), case((first >= 0, first), else_=-1),
        case((first >= 0, "waiting"), else_="done"), plan.due_at(first, p.c.zone),
        _by(first, OUTCOMES, Run.outcome), _key(camp, p), _lit(now, Run.created_at),
        case((first < 0, _lit(now, Run.finished_at)), else_=null())))
    runs = select(Run.id.label("run_id"), Run.customer_id, Run.pos).where(
        Run.campaign_id == camp.id, Run.pos >= 0).subquery("runs")
    m = customers.contacts_select(runs, channels=()).subquery("m")
    step = m.c.pos
    _insert(session, Message.__table__, MESSAGE_COLUMNS, select(
        site, m.c.customer_id, _by(step, plan.channel_of, Message.channel), plan.template(step, m), m.c.run_id,
        literal(camp.id), literal(camp.cascade_id), step, class_,
        literal("run:", String) + cast(m.c.run_id, String) + literal(":", String) + cast(step, String),
        literal("queued"), case(dict(enumerate(plan.addresses(m))), value=step), literal(1),
        _by(step, plan.cost, Message.cost), _by(step, plan.currency, Message.currency), literal(0),
        _by(plan.zone(m), plan.wake, Message.not_before), _lit(now, Message.created_at)))
    return n


def _key(camp: Campaign, source: Any) -> Any:
    return literal(f"campaign:{camp.id}:", String) + cast(source.c.customer_id, String)


class _FirstStep:
    """What the first step of an ordered cascade depends on, loaded once, and its SQL expressions."""

    def __init__(self, session: Session, camp: Campaign, cascade: Cascade, now: datetime) -> None:
        site = session.get(Site, camp.site_id)
        self.session, self.site, self.now = session, site, now
        self.policy = service.policy(session, site_id=site.id)
        self.marketing = camp.message_class == policies.MARKETING
        self.steps = service.steps_of(cascade)
        self.channels = [s.channel for s in self.steps]
        self.channel_of = dict(enumerate(self.channels))
        prices = service.prices(session, site_id=site.id)
        costs = [service.price_of(prices, ch, site.currency) for ch in self.channels]
        self.cost = {i: p for i, (p, _) in enumerate(costs)}
        self.currency = {i: cur for i, (_, cur) in enumerate(costs)}
        tpls = planner.templates(session, site.id)
        self.langs = [tpls.get((s.template, s.channel)) or {} for s in self.steps]
        self.wake: dict[str, datetime] = {}

    def zone(self, c: Any) -> Any:
        return func.coalesce(func.nullif(c.c.timezone, ""), self.site.timezone)

    def addresses(self, c: Any) -> list[Any]:
        """policies.address for each step's channel."""
        def one(ch: str) -> Any:
            if ch == "email":
                return func.nullif(c.c.email, "")
            if ch == "sms":
                return func.nullif(c.c.phone, "")
            if ch == "whatsapp":
                return func.nullif(func.ltrim(func.coalesce(func.nullif(c.c.whatsapp_id, ""),
                                                            func.nullif(c.c.phone, "")), "+"), "")
            if ch in ("telegram", "vk"):
                return func.nullif(c.c[f"{ch}_id"], "")
            # push: the newest device token
            return (select(Device.token).where(Device.customer_id == c.c.customer_id)
                    .order_by(Device.created_at.desc()).limit(1).scalar_subquery())
        return [one(ch) for ch in self.channels]

    def load_zones(self, c: Any) -> None:
        """The end of quiet hours (policies.quiet_until) for each time zone among the members."""
        if self.marketing:
            pol = self.policy
            zones = self.session.scalars(select(distinct(self.zone(c))))
            self.wake = {z: w for z in zones if (w := policies.quiet_until(self.now, z, pol.quiet_start,
                                                                            pol.quiet_end))}

    def first(self, c: Any, audience: Any) -> tuple[Any, Any]:
        """The index of the first step that goes out (policies.decide, and a template for it), else GONE /
        CAPPED / UNREACHABLE; and the FROM clause it needs."""
        pol = self.policy
        ok = [and_(a.is_not(None), c.c[f"consent_{ch}"].is_(True))
              for a, ch in zip(self.addresses(c), self.channels, strict=True)]
        whens: list[Any] = [(c.c.found.is_(None), GONE)]
        source = c
        if self.marketing and pol.cap_count is not None:
            recent = (select(Message.customer_id, func.count().label("n"))
                      .where(Message.customer_id.in_(select(audience.c.customer_id)),
                             Message.message_class == policies.MARKETING,
                             Message.created_at >= self.now - pol.cap_period, Message.failed_at.is_(None))
                      .group_by(Message.customer_id).subquery("recent"))
            source = c.outerjoin(recent, recent.c.customer_id == c.c.customer_id)
            whens.append((and_(func.coalesce(recent.c.n, 0) >= pol.cap_count, or_(*ok)), CAPPED))
        whens += [(ok[i], i) for i in range(len(self.steps)) if self.langs[i]]
        return case(*whens, else_=literal(UNREACHABLE, Integer)), source

    def due_at(self, first: Any, zone: Any) -> Any:
        """The end of the first step's window: cascade.window_end from the end of quiet hours or now."""
        return case({i: _by(zone, {z: cz.window_end(w, s) for z, w in self.wake.items()}, Run.due_at,
                            cz.window_end(self.now, s)) for i, s in enumerate(self.steps)}, value=first, else_=null())

    def template(self, step: Any, c: Any) -> Any:
        """planner.pick: the customer's language, else the site's default, else any."""
        want = func.substr(func.coalesce(func.nullif(c.c.locale, ""), self.policy.default_language), 1, 2)
        out = {}
        for i, langs in enumerate(self.langs):
            if langs:
                fallback = langs.get(self.policy.default_language) or next(iter(langs.values()))
                out[i] = _by(want, {lang: t.id for lang, t in langs.items()}, Message.template_id, fallback.id)
        return case(out, value=step, else_=null())
