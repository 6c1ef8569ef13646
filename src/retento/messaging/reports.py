"""Per campaign, cascade, step and channel: sent, delivered, read, clicked, failed, uncertain, cost, cost per
read, and the saving against sending every member through the cascade's most expensive channel."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session

from retento.app import from_session
from retento.messaging import service
from retento.messaging.channels import capabilities
from retento.messaging.models import SENDING, Campaign, Message, Run
from retento.sites.models import Site

CENT = Decimal("0.01")


def _money(value: object) -> Decimal:
    return Decimal(str(value or 0)).quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass
class Line:
    step: int | None
    channel: str
    messages: int
    planned: int  # written, not yet handed to the provider (queued, or a worker is on it)
    sent: int
    delivered: int | None  # None: the channel does not report it ("not reported")
    read: int | None
    clicked: int
    failed: int
    uncertain: int  # a worker stopped while sending them: they may or may not have arrived
    cost: Decimal
    read_rate: float | None
    cost_per_read: Decimal | None


def _line(step: int | None, channel: str, row: dict, caps: dict[str, tuple[bool, bool]]) -> Line:
    reports_delivered, reports_read = caps.get(channel, (True, True))
    read = row["read"] if reports_read else None
    cost = _money(row["cost"])
    return Line(step=step, channel=channel, messages=row["messages"], planned=row["planned"], sent=row["sent"],
                delivered=row["delivered"] if reports_delivered else None, read=read, clicked=row["clicked"],
                failed=row["failed"], uncertain=row["uncertain"], cost=cost,
                read_rate=round(read / row["sent"], 4) if read is not None and row["sent"] else None,
                cost_per_read=_money(cost / read) if read else None)


def report(session: Session, *, cascade_id: int, campaign_id: int | None = None) -> dict:
    cascade = service.get_cascade(session, cascade_id)
    site = session.get(Site, cascade.site_id)
    m = Message
    cols = (func.count().label("messages"),
            func.count(case((m.status.in_(("queued", *SENDING)), 1))).label("planned"),
            func.count(m.sent_at).label("sent"),
            func.count(m.delivered_at).label("delivered"), func.count(m.read_at).label("read"),
            func.count(m.clicked_at).label("clicked"), func.count(m.failed_at).label("failed"),
            func.count(case((m.status == "uncertain", 1))).label("uncertain"),
            func.sum(case((m.sent_at.is_not(None), m.cost), else_=0)).label("cost"))
    where = [m.cascade_id == cascade_id] + ([m.campaign_id == campaign_id] if campaign_id else [])
    caps = capabilities(from_session(session).parts.channel_adapters.values())
    steps = [_line(r.step, r.channel, r._asdict(), caps) for r in session.execute(
        select(m.step, m.channel, *cols).where(*where).group_by(m.step, m.channel).order_by(m.step, m.channel))]
    channels = [_line(None, r.channel, r._asdict(), caps) for r in session.execute(
        select(m.channel, *cols).where(*where).group_by(m.channel).order_by(m.channel))]
    run_where = [Run.cascade_id == cascade_id] + ([Run.campaign_id == campaign_id] if campaign_id else [])
    members = session.scalar(select(func.count()).select_from(Run).where(*run_where)) or 0
    outcomes = dict(session.execute(select(Run.outcome, func.count()).where(*run_where).group_by(Run.outcome)).all())
    prices = service.prices(session, site_id=site.id)
    cascade_channels = list(dict.fromkeys(s["channel"] for s in cascade.steps))
    priced = {ch: service.price_of(prices, ch, site.currency) for ch in cascade_channels}
    top = max(cascade_channels, key=lambda ch: priced[ch][0])
    top_price, currency = priced[top]
    baseline = _money(top_price * members)
    total = sum((c.cost for c in channels), Decimal(0))
    top_cost = sum((c.cost for c in channels if c.channel == top), Decimal(0))
    reads = sum(c.read or 0 for c in channels)
    return {
        "cascade_id": cascade_id, "campaign_id": campaign_id, "name": cascade.name, "mode": cascade.mode,
        "currency": currency, "members": members, "outcomes": {k or "in_progress": v for k, v in outcomes.items()},
        "steps": [asdict(s) for s in steps], "channels": [asdict(c) for c in channels],
        "total_cost": total, "reads": reads, "cost_per_read": _money(total / reads) if reads else None,
        "most_expensive_channel": top, "baseline_cost": baseline,
        "gross_saving": baseline - top_cost, "net_saving": baseline - total,
    }


CAMPAIGN_FIELDS = ("id", "name", "cascade_id", "message_class", "audience", "segment_id", "rules", "start_at",
                   "started_at", "created_at")


def status(camp: Campaign, in_progress: int) -> str:
    """scheduled (not started), running (some member is still in the cascade) or finished."""
    return "scheduled" if camp.status == "scheduled" else "running" if in_progress else "finished"


def campaign(session: Session, *, campaign_id: int) -> dict:
    """A campaign with its status and progress: members, how many are still in the cascade, the outcomes, and
    per step and channel what was planned, sent, delivered, read, failed or is uncertain, with the cost."""
    camp = service.get_campaign(session, campaign_id)
    rep = report(session, cascade_id=camp.cascade_id, campaign_id=camp.id)
    in_progress = rep["outcomes"].get("in_progress", 0)
    return {**{f: getattr(camp, f) for f in CAMPAIGN_FIELDS}, "site": session.get(Site, camp.site_id).code,
            "status": status(camp, in_progress), "members": camp.members,
            "in_progress": in_progress, "outcomes": rep["outcomes"], "progress": rep["steps"],
            "total_cost": rep["total_cost"], "currency": rep["currency"]}


def summaries(session: Session, rows: list[Campaign]) -> list[dict]:
    """Campaigns each with its status, members, how many are still in the cascade and what was spent so far."""
    ids = [c.id for c in rows]
    if not ids:
        return []
    waiting = dict(session.execute(select(Run.campaign_id, func.count()).where(
        Run.campaign_id.in_(ids), Run.state == "waiting").group_by(Run.campaign_id)).all())
    spent = session.execute(
        select(Message.campaign_id, Message.currency, func.sum(Message.cost)).where(  # by the reports' index
            or_(*(and_(Message.cascade_id == c.cascade_id, Message.campaign_id == c.id) for c in rows)),
            Message.sent_at.is_not(None)).group_by(Message.campaign_id, Message.currency)).all()
    codes = dict(session.execute(select(Site.id, Site.code).where(Site.id.in_({c.site_id for c in rows}))).all())
    return [{**{f: getattr(c, f) for f in CAMPAIGN_FIELDS}, "site": codes[c.site_id],
             "status": status(c, waiting.get(c.id, 0)), "members": c.members, "in_progress": waiting.get(c.id, 0),
             "cost": {cur: _money(v) for cid, cur, v in spent if cid == c.id}} for c in rows]


def savings(session: Session, *, start: datetime, end: datetime) -> list[dict]:
    """The cascades whose first run began in [start, end) with their reports (`report`), for the saving of a
    period: each report covers the cascade's runs so far."""
    first = func.min(Run.created_at)
    ids = session.scalars(select(Run.cascade_id).group_by(Run.cascade_id)
                          .having(and_(first >= start, first < end)).order_by(Run.cascade_id))
    return [report(session, cascade_id=cascade_id) for cascade_id in ids]
