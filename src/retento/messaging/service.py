"""Messaging services: prices, policies, templates, cascades, campaigns, and starting a cascade for one customer."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, delete, func, insert, select
from sqlalchemy.orm import Session

from retento.core import scoping
from retento.core.changes import ChangeContext
from retento.core.db.bulk import insert_rows, reserve_ids
from retento.core.errors import Conflict, DomainError, NotFound
from retento.customers import service as customers
from retento.customers.merges import Merge
from retento.customers.schemas import CustomerEdit
from retento.messaging import policies, templates
from retento.messaging.cascade import Step
from retento.messaging.models import (
    Campaign,
    CampaignMember,
    Cascade,
    ChannelPrice,
    Device,
    Message,
    Run,
    SitePolicy,
    Template,
)
from retento.messaging.schemas import CampaignIn, CascadeIn, DeviceIn, PolicyIn, PriceIn, TemplateIn
from retento.segments import service as segments
from retento.sites.models import Site
from retento.sites.service import get_site

# Read rates to expect per channel before a site has history or sets its own (the source's figures for
# email and WhatsApp; the rest are common industry estimates).
DEFAULT_READ_RATE = {"email": 0.2, "whatsapp": 0.9, "sms": 0.9, "telegram": 0.8, "vk": 0.7, "push": 0.1}


# --- prices and policies ------------------------------------------------------------------------------------

def set_price(session: Session, *, site: str, channel: str, data: PriceIn, now: datetime) -> ChannelPrice:
    if channel not in policies.CHANNELS:
        raise DomainError.one("channel", f"unknown channel {channel!r}")
    row = ChannelPrice(site_id=get_site(session, site).id, channel=channel, price=data.price,
                       currency=data.currency, expected_read_rate=data.expected_read_rate, updated_at=now)
    return session.merge(row)


def prices(session: Session, *, site_id: int) -> dict[str, ChannelPrice]:
    return {p.channel: p for p in session.scalars(select(ChannelPrice).where(ChannelPrice.site_id == site_id))}


def set_policy(session: Session, *, site: str, data: PolicyIn, now: datetime) -> SitePolicy:
    row = SitePolicy(site_id=get_site(session, site).id, quiet_start=_minutes(data.quiet_start),
                     quiet_end=_minutes(data.quiet_end), cap_count=data.cap_count,
                     cap_period_seconds=data.cap_period_hours * 3600, default_language=data.default_language,
                     updated_at=now)
    return session.merge(row)


def _minutes(hhmm: str | None) -> int | None:
    return None if hhmm is None else int(hhmm[:2]) * 60 + int(hhmm[3:])


def policy(session: Session, *, site_id: int) -> policies.Policy:
    row = session.get(SitePolicy, site_id)
    if row is None:
        return policies.Policy()
    return policies.Policy(row.quiet_start, row.quiet_end, row.cap_count,
                           timedelta(seconds=row.cap_period_seconds), row.default_language)


def _get(session: Session, model: type, row_id: int, field: str) -> Any:
    row = session.get(model, row_id)
    if row is None:
        raise NotFound(field, f"{model.__name__.lower()} {row_id} not found")
    return row


# --- templates ---------------------------------------------------------------------------------------------

def save_template(session: Session, *, data: TemplateIn, now: datetime) -> Template:
    """Create or replace the template (site, name, channel, language); one that does not render is refused."""
    templates.check(subject=data.subject, body=data.body, html=data.html)
    site_id = get_site(session, data.site).id
    key = {"site_id": site_id, "name": data.name, "channel": data.channel.value, "language": data.language}
    find = select(Template).filter_by(**key).with_for_update().execution_options(populate_existing=True)
    row = session.scalar(find)
    if row is None:  # two first saves at once on PostgreSQL: the second waits for the first's row, then replaces it
        insert_rows(session, Template.__table__, [{**key, "subject": data.subject, "body": data.body, "html": None,
                                                   "provider_template": None, "created_at": now,
                                                   "updated_at": now}], skip_existing=True)
        row = session.scalars(find).one()
    row.subject, row.body, row.html = data.subject, data.body, data.html
    row.provider_template, row.updated_at = data.provider_template, now
    session.flush()
    return row


def get_template(session: Session, template_id: int) -> Template:
    return _get(session, Template, template_id, "id")


def list_templates(session: Session, *, site: str) -> list[Template]:
    site_id = get_site(session, site).id
    return list(session.scalars(select(Template).where(Template.site_id == site_id).order_by(Template.id)))


def preview(session: Session, *, template_id: int, customer_id: int | None = None,
            context: dict[str, Any] | None = None) -> templates.Rendered:
    """The template rendered for a real customer (or the sample customer)."""
    tpl = get_template(session, template_id)
    if customer_id is None:
        ctx = templates.SAMPLE
    else:
        sheet = customers.contact_sheets(session, customer_ids=[customer_id]).get(customer_id)
        if sheet is None or sheet["site_id"] != tpl.site_id:
            raise NotFound("customer_id", f"customer {customer_id} not found on the template's site")
        site = session.get(Site, tpl.site_id)
        ctx = templates.context_for(sheet, {"code": site.code, "name": site.name}, context)
    return templates.Renderer().render(tpl.id, {"subject": tpl.subject, "body": tpl.body, "html": tpl.html}, ctx)


# --- cascades and campaigns --------------------------------------------------------------------------------

def create_cascade(session: Session, *, data: CascadeIn, now: datetime) -> Cascade:
    site_id = get_site(session, data.site).id
    have = set(session.execute(select(Template.name, Template.channel).where(Template.site_id == site_id)))
    for i, step in enumerate(data.steps):
        if (step.template, step.channel.value) not in have:
            raise DomainError.one(f"steps.{i}.template",
                                  f"no {step.channel.value} template named {step.template!r} on this site")
    steps = [{"channel": s.channel.value, "template": s.template, "wait_seconds": int(s.wait_hours * 3600),
              "go_on": s.go_on.value} for s in data.steps]
    row = Cascade(site_id=site_id, name=data.name, mode=data.mode.value, steps=steps, created_at=now)
    session.add(row)
    session.flush()
    return row


def get_cascade(session: Session, cascade_id: int) -> Cascade:
    return _get(session, Cascade, cascade_id, "cascade_id")


def list_cascades(session: Session, *, site_id: int, limit: int = 200) -> list[Cascade]:
    """A site's cascades, newest first."""
    return list(session.scalars(select(Cascade).where(Cascade.site_id == site_id).order_by(Cascade.id.desc())
                                .limit(limit)))


def steps_of(cascade: Cascade) -> list[Step]:
    return [Step(**s) for s in cascade.steps]


def create_campaign(session: Session, *, data: CampaignIn, now: datetime) -> Campaign:
    """A cascade for a list of customers, a segment, everyone of the site or whoever matches a rule tree, now
    or at `start_at`; runs are created when it starts (for all but a list: for who is in it at that moment)."""
    cascade = get_cascade(session, data.cascade_id)
    wanted = data.customer_ids or []
    segment_id = None
    if data.segment is not None:
        segment_id = segments.find(session, site_id=cascade.site_id, ref=data.segment).id
    if data.rules is not None:  # refused now, naming the bad part, rather than when it starts
        segments.matching_select(session, site_id=cascade.site_id, raw_rules=data.rules, now=now)
    found = customers.site_of(session, customer_ids=wanted)
    if missing := [c for c in wanted if found.get(c) != cascade.site_id]:
        raise NotFound("customer_ids", f"{len(missing)} customers not found on the cascade's site, "
                       f"e.g. {missing[0]}")
    row = Campaign(site_id=cascade.site_id, cascade_id=cascade.id, name=data.name, audience=data.audience,
                   segment_id=segment_id, rules=data.rules, message_class=data.message_class.value,
                   status="scheduled", start_at=data.start_at or now, members=len(wanted), created_at=now)
    session.add(row)
    session.flush()
    for i in range(0, len(wanted), 10000):
        session.execute(insert(CampaignMember), [{"campaign_id": row.id, "customer_id": c}
                                                 for c in wanted[i:i + 10000]])
    return row


def audience_select(session: Session, camp: Campaign, *, now: datetime) -> Select:
    """The campaign's members as `customer_id`, to use inside the statements that start it."""
    if camp.audience == "segment":
        return segments.members_select(camp.segment_id)
    if camp.audience in ("everyone", "rules"):
        q = segments.matching_select(session, site_id=camp.site_id, raw_rules=camp.rules, now=now).subquery()
        return select(q.c.id.label("customer_id"))
    return select(CampaignMember.customer_id).where(CampaignMember.campaign_id == camp.id)


def get_campaign(session: Session, campaign_id: int) -> Campaign:
    return _get(session, Campaign, campaign_id, "campaign_id")


def list_campaigns(session: Session, *, site_ids: list[int] | None, after_id: int = 0, limit: int = 50
                   ) -> list[Campaign]:
    """Oldest first, of `site_ids` if given (else of every site the session may see)."""
    q = select(Campaign).where(Campaign.id > after_id).order_by(Campaign.id).limit(limit)
    return list(session.scalars(q.where(Campaign.site_id.in_(site_ids)) if site_ids is not None else q))


def start_cascade(
    session: Session,
    *,
    cascade_id: int,
    customer_id: int,
    now: datetime,
    message_class: str = "marketing",
    context: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
) -> Run:
    """Start a cascade for one customer (what a trigger action calls). The first step goes out on the next
    worker tick. With the same idempotency key, the run that exists is returned and nothing new starts."""
    cascade = get_cascade(session, cascade_id)
    if message_class not in (policies.MARKETING, policies.TRANSACTIONAL):
        raise DomainError.one("message_class", "must be marketing or transactional")
    if customers.site_of(session, customer_ids=[customer_id]).get(customer_id) != cascade.site_id:
        raise NotFound("customer_id", f"customer {customer_id} not found on the cascade's site")
    key = idempotency_key or f"start:{cascade_id}:{customer_id}:{now.isoformat()}"
    existing = session.scalar(select(Run).where(Run.idempotency_key == key))
    if existing is None and scoping.of(session) is not None and session.scalar(  # taken on another site
            scoping.unscoped(select(Run.id).where(Run.idempotency_key == key))):
        raise Conflict("idempotency_key", "already used for another cascade or customer")
    if existing is not None:
        if (existing.cascade_id, existing.customer_id) != (cascade_id, customer_id):
            raise Conflict("idempotency_key", "already used for another cascade or customer")
        return existing
    run = Run(cascade_id=cascade_id, campaign_id=None, site_id=cascade.site_id, customer_id=customer_id,
              message_class=message_class, pos=-1, state="waiting", due_at=now, context=context,
              idempotency_key=key, created_at=now)
    session.add(run)
    session.flush()
    return run


def start_cascades(session: Session, *, items: Sequence[dict[str, Any]], now: datetime) -> list[int]:
    """`start_cascade` for many: each item has `cascade_id`, `customer_id`, `message_class`, `context` and
    `idempotency_key`. The same runs as starting them one by one in list order (a key already stored, or earlier in
    the list, gives that run), in a few statements. Returns the run ids in order. Raises the DomainError of the
    first item that cannot start (unknown cascade, a customer of another site, a key used for another cascade or
    customer) before writing anything. A site-limited session starts them one by one."""
    if not items:
        return []
    if scoping.of(session) is not None:
        return [start_cascade(session, cascade_id=i["cascade_id"], customer_id=i["customer_id"], now=now,
                              message_class=i["message_class"], context=i["context"],
                              idempotency_key=i["idempotency_key"]).id for i in items]
    session.flush()
    cascades = dict(session.execute(select(Cascade.id, Cascade.site_id).where(
        Cascade.id.in_({i["cascade_id"] for i in items}))).all())
    sites = customers.site_of(session, customer_ids=sorted({i["customer_id"] for i in items}))
    t = Run.__table__
    keys = sorted({i["idempotency_key"] for i in items})
    known = {k: (rid, cid, cust) for n in range(0, len(keys), 900) for k, rid, cid, cust in session.execute(
        select(t.c.idempotency_key, t.c.id, t.c.cascade_id, t.c.customer_id)
        .where(t.c.idempotency_key.in_(keys[n:n + 900])))}
    new: list[dict[str, Any]] = []
    for i in items:
        if i["cascade_id"] not in cascades:
            raise NotFound("cascade_id", f"cascade {i['cascade_id']} not found")
        if i["message_class"] not in (policies.MARKETING, policies.TRANSACTIONAL):
            raise DomainError.one("message_class", "must be marketing or transactional")
        if sites.get(i["customer_id"]) != cascades[i["cascade_id"]]:
            raise NotFound("customer_id", f"customer {i['customer_id']} not found on the cascade's site")
        if (got := known.get(i["idempotency_key"])) is not None:
            if got[1:] != (i["cascade_id"], i["customer_id"]):
                raise Conflict("idempotency_key", "already used for another cascade or customer")
            continue
        known[i["idempotency_key"]] = (0, i["cascade_id"], i["customer_id"])
        new.append(i)
    rows = []
    for rid, i in zip(reserve_ids(session, t, len(new)), new, strict=True):
        known[i["idempotency_key"]] = (rid, i["cascade_id"], i["customer_id"])
        rows.append({"id": rid, "cascade_id": i["cascade_id"], "campaign_id": None,
                     "site_id": cascades[i["cascade_id"]], "customer_id": i["customer_id"],
                     "message_class": i["message_class"], "plan": None, "pos": -1, "state": "waiting",
                     "due_at": now, "outcome": None, "context": i["context"],
                     "idempotency_key": i["idempotency_key"], "created_at": now, "finished_at": None})
    insert_rows(session, t, rows)
    return [known[i["idempotency_key"]][0] for i in items]


def engagement(session: Session, *, run_ids: list[int]) -> dict[int, set[str]]:
    """What each cascade run's customer did with its messages: a set of `delivered`, `read` (for email: opened),
    `clicked` per run id (runs with no message yet are left out)."""
    out: dict[int, set[str]] = {}
    ids = sorted(set(run_ids))
    m = Message
    for i in range(0, len(ids), 900):
        q = select(m.run_id, m.delivered_at, m.read_at, m.clicked_at).where(m.run_id.in_(ids[i:i + 900]))
        for run_id, delivered, read, clicked in session.execute(q):
            did = out.setdefault(run_id, set())
            did.update(name for name, at in (("delivered", delivered or read), ("read", read), ("clicked", clicked))
                       if at is not None)
    return out


def messages_of_runs(session: Session, *, run_ids: list[int]) -> list[dict[str, Any]]:
    """The messages of cascade runs with their timeline and cost (journey reports): run_id, channel, sent_at,
    delivered_at, read_at, clicked_at, failed_at, cost, currency; cost counts only messages the provider accepted."""
    out: list[dict[str, Any]] = []
    ids = sorted(set(run_ids))
    m = Message
    for i in range(0, len(ids), 900):
        q = select(m.run_id, m.channel, m.sent_at, m.delivered_at, m.read_at, m.clicked_at, m.failed_at, m.cost,
                   m.currency).where(m.run_id.in_(ids[i:i + 900])).order_by(m.id)
        out += [{"run_id": r[0], "channel": r[1], "sent_at": r[2], "delivered_at": r[3], "read_at": r[4],
                 "clicked_at": r[5], "failed_at": r[6], "cost": r[7] if r[2] is not None else Decimal(0),
                 "currency": r[8]} for r in session.execute(q)]
    return out


def messages_of(session: Session, *, customer_id: int, before_id: int | None = None,
                limit: int = 50) -> list[tuple[Message, Template | None]]:
    """A customer's messages, newest first, each with its template (None: sent without one, or deleted); page on
    with `before_id`, the last id you got."""
    q = select(Message).where(Message.customer_id == customer_id)
    if before_id is not None:
        q = q.where(Message.id < before_id)
    rows = list(session.scalars(q.order_by(Message.id.desc()).limit(limit)))
    ids = {m.template_id for m in rows if m.template_id is not None}
    templates = {t.id: t for t in session.scalars(select(Template).where(Template.id.in_(ids)))} if ids else {}
    return [(m, templates.get(m.template_id) if m.template_id is not None else None) for m in rows]


def register_device(session: Session, *, data: DeviceIn, now: datetime) -> Device:
    customers.get(session, data.customer_id)
    if scoping.of(session) is not None and session.get(Device, data.token) is None and session.scalar(
            scoping.unscoped(select(Device.customer_id).where(Device.token == data.token))) is not None:
        raise Conflict("token", "this device is registered to a customer of a site this API key may not use")
    return session.merge(Device(token=data.token, customer_id=data.customer_id, platform=data.platform,
                                created_at=now))


def devices_of(session: Session, *, customer_ids: list[int]) -> dict[int, str]:
    """The newest push token of each customer."""
    rows = session.execute(select(Device.customer_id, Device.token).where(Device.customer_id.in_(customer_ids))
                           .order_by(Device.created_at))
    return {cid: token for cid, token in rows}


def drop_devices(session: Session, *, tokens: list[str]) -> None:
    if tokens:
        session.execute(Device.__table__.delete().where(Device.token.in_(tokens)))


def read_rates(session: Session, *, site_id: int) -> dict[str, float]:
    """Each channel's average read rate: the site's own history where the channel reports reads, else the
    configured expectation, else the default."""
    configured = {c: float(p.expected_read_rate) for c, p in prices(session, site_id=site_id).items()
                  if p.expected_read_rate is not None}
    rates = {**DEFAULT_READ_RATE, **configured}
    q = (select(Message.channel, func.count(Message.sent_at), func.count(Message.read_at))
         .where(Message.site_id == site_id).group_by(Message.channel))
    for channel, sent, read in session.execute(q):
        if sent >= 100 and read > 0:
            rates[channel] = read / sent
    return rates


def price_of(rows: dict[str, ChannelPrice], channel: str, default_currency: str) -> tuple[Decimal, str]:
    p = rows.get(channel)
    return (p.price, p.currency) if p else (Decimal(0), default_currency)


def unsubscribe(session: Session, *, message_id: int, now: datetime, source: str) -> bool:
    """Withdraw the consent for the channel a message came through. False if it was already withdrawn."""
    msg = session.get(Message, message_id)
    if msg is None:
        raise NotFound("message", "unknown message")
    customer = customers.get(session, msg.customer_id)
    edit = CustomerEdit.model_validate({"consents": {msg.channel: {"granted": False, "source": source}}})
    return bool(customers.edit(session, customer=customer, data=edit, now=now,
                               ctx=ChangeContext.system()))


REPLY = "reply"  # message class of an operator's answer in a conversation the customer began (the inbox)


def queue_reply(session: Session, *, site_id: int, customer_id: int, channel: str, address: str, text: str | None,
                template_id: int | None, options: dict[str, str], idempotency_key: str, now: datetime) -> Message:
    """An operator's reply, sent by the send job like every message (lease, retries, provider statuses). It is no
    campaign's: the customer wrote first, so no marketing consent is asked; free text (`text`) or an approved
    template (`template_id`: WhatsApp outside its 24-hour window), priced as the channel's template message.
    A second call with the same key returns the first message."""
    existing = session.scalar(select(Message).where(Message.idempotency_key == idempotency_key))
    if existing is not None:
        return existing
    site = session.get(Site, site_id)
    price, currency = price_of(prices(session, site_id=site_id), channel, site.currency)
    msg = Message(site_id=site_id, customer_id=customer_id, channel=channel, template_id=template_id,
                  message_class=REPLY, idempotency_key=idempotency_key, status="queued", address=address, units=1,
                  cost=price if template_id is not None else Decimal(0), currency=currency,
                  context={"reply": {"text": text, "options": options}}, attempts=0, created_at=now)
    session.add(msg)
    session.flush()
    return msg


def merge_customers(session: Session, merge: Merge) -> dict[str, int]:
    """The `customer_merge` handler (customers.merging): the merged customers' outbox (sent and queued messages),
    cascade runs and devices become the kept customer's, and their campaign audiences too (once per campaign).
    Consents are the customer's own: the merge keeps the latest decision per channel."""
    out = {"messages": merge.move(session, Message.__table__), "cascade_runs": merge.move(session, Run.__table__),
           "devices": merge.move(session, Device.__table__)}
    cm = CampaignMember.__table__
    campaigns = set(session.scalars(select(cm.c.campaign_id).where(cm.c.customer_id.in_(merge.merged_ids))))
    if campaigns:
        have = set(session.scalars(select(cm.c.campaign_id).where(cm.c.customer_id == merge.keep_id,
                                                                  cm.c.campaign_id.in_(campaigns))))
        session.execute(delete(cm).where(cm.c.customer_id.in_(merge.merged_ids)))
        if campaigns - have:
            session.execute(insert(cm), [{"campaign_id": c, "customer_id": merge.keep_id}
                                         for c in sorted(campaigns - have)])
    return out
