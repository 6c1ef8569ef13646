"""Recording what providers and tracking links report, idempotently: each timestamp is set once, a replayed
webhook changes nothing, and a read or click ends the customer's cascade at once."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, case, func, select, update
from sqlalchemy.orm import Session

from retento.core import bus, parsing
from retento.core.changes import ChangeContext
from retento.messaging import events, planner
from retento.messaging.models import SENDING, Message, Run

RANK = {"queued": 0, "claimed": 0, "sending": 0, "sent": 1, "delivered": 2, "read": 3, "clicked": 4}
COLUMN = {"sent": "sent_at", "delivered": "delivered_at", "read": "read_at", "clicked": "clicked_at",
          "failed": "failed_at"}
# What a later status implies happened before it.
IMPLIES = {"clicked": ("read", "delivered", "sent"), "read": ("delivered", "sent"), "delivered": ("sent",),
           "sent": (), "failed": ()}


@dataclass(frozen=True)
class Update:
    message_id: int
    status: str  # sent | delivered | read | clicked | failed
    at: datetime
    error: str | None = None


def by_provider_ids(session: Session, *, channel: str, provider_ids: Iterable[str]) -> dict[str, int]:
    ids = list(set(provider_ids))
    out: dict[str, int] = {}
    for i in range(0, len(ids), 1000):
        q = select(Message.provider_id, Message.id).where(Message.channel == channel,
                                                          Message.provider_id.in_(ids[i:i + 1000]),
                                                          Message.provider_id.is_not(None))  # the partial index
        out.update(session.execute(q).all())
    return out


def record(session: Session, *, updates: list[Update], now: datetime) -> int:
    """Apply status updates; returns how many messages changed."""
    if not updates:
        return 0
    t = Message.__table__
    by_status: dict[str, dict[int, Update]] = defaultdict(dict)
    for u in updates:
        by_status[u.status].setdefault(u.message_id, u)
    engaged = _first_engagements(session, updates)
    for status, items in by_status.items():
        cols = [COLUMN[x] for x in (status, *IMPLIES[status])]  # each set once: a replay changes nothing
        values = {c: func.coalesce(t.c[c], bindparam("at", type_=t.c[c].type)) for c in cols}
        if status == "failed":
            values["reason"] = func.coalesce(t.c.reason, bindparam("err"))
        rows = [{"mid": mid, "at": u.at} for mid, u in items.items()]
        if status == "failed":
            rows = [{**r, "err": (items[r["mid"]].error or "failed")[:1000]} for r in rows]
        session.execute(t.update().where(t.c.id == bindparam("mid")).values(values), rows)
    changed = {u.message_id for u in updates}
    ids = sorted(changed)
    for i in range(0, len(ids), 1000):
        _restatus(session, ids[i:i + 1000])
    read_ids = [u.message_id for u in updates if u.status in ("read", "clicked")]
    for i in range(0, len(read_ids), 1000):
        _finish_runs(session, read_ids[i:i + 1000], now)
    failed = [u.message_id for u in updates if u.status == "failed"]
    for i in range(0, len(failed), 1000):
        planner.wake_runs(session, message_ids=failed[i:i + 1000], now=now)
    bus.record(session, engaged)
    return len(changed)


def _first_engagements(session: Session, updates: list[Update]) -> list[dict[str, object]]:
    """`message_read` / `message_clicked` events for the messages these updates read or click for the first time
    (read before the timestamps are set; a replay finds them set and records nothing)."""
    wanted: dict[int, Update] = {}
    for u in updates:
        if u.status in ("read", "clicked") and (u.message_id not in wanted or u.status == "clicked"):
            wanted[u.message_id] = u
    out: list[dict[str, object]] = []
    ids = sorted(wanted)
    m = Message
    for i in range(0, len(ids), 1000):
        rows = session.execute(select(m.id, m.site_id, m.customer_id, m.channel, m.run_id, m.cascade_id,
                                      m.campaign_id, m.step, m.read_at, m.clicked_at)
                               .where(m.id.in_(ids[i:i + 1000]), m.clicked_at.is_(None)))
        for r in rows:
            u = wanted[r.id]
            payload = {"message_id": r.id, "channel": r.channel, "run_id": r.run_id, "cascade_id": r.cascade_id,
                       "campaign_id": r.campaign_id, "step": r.step}
            kinds = ([events.MESSAGE_READ] if r.read_at is None else []) + (
                [events.MESSAGE_CLICKED] if u.status == "clicked" else [])
            out += [bus.event_row(kind, ctx=ChangeContext.system(), now=u.at, payload=payload, site_id=r.site_id,
                                  customer_id=r.customer_id) for kind in kinds]
    return out


def _restatus(session: Session, ids: list[int]) -> None:
    """The status column is the furthest point of the timeline (failed unless something later shows it
    arrived). In-flight statuses are left to the sender."""
    m = Message
    status = case(
        (m.clicked_at.is_not(None), "clicked"), (m.read_at.is_not(None), "read"),
        (m.failed_at.is_not(None), "failed"), (m.delivered_at.is_not(None), "delivered"),
        (m.sent_at.is_not(None), "sent"), else_=m.status)
    session.execute(update(m).where(m.id.in_(ids), m.status.not_in(SENDING)).values(status=status),
                    execution_options={"synchronize_session": False})


def _finish_runs(session: Session, message_ids: list[int], now: datetime) -> None:
    runs = planner.waiting_runs(session, message_ids)
    if runs:
        session.execute(update(Run).where(Run.id.in_(runs))
                        .values(state="done", outcome="read", finished_at=now, due_at=None),
                        execution_options={"synchronize_session": False})


def timeline(message: Message) -> list[dict[str, object]]:
    """queued, sent, delivered, read, clicked, failed: each with its time, in order."""
    points = [("queued", message.created_at)] + [
        (s, getattr(message, c)) for s, c in COLUMN.items() if getattr(message, c) is not None]
    out = [{"status": s, "at": at} for s, at in sorted(points, key=lambda p: (p[1], RANK.get(p[0], 9)))]
    for point in out:
        if point["status"] == "failed":
            point["reason"] = message.reason
    return out




def adopt(session: Session, *, channel: str, pairs: dict[str, str]) -> dict[str, int]:
    """Give provider ids to our messages named by idempotency key that have none yet (a send whose result
    was lost when a worker died); an `uncertain` one is thereby known to be sent (at the time its send began).
    Returns provider id -> message id for those found."""
    found = dict(session.execute(select(Message.idempotency_key, Message.id).where(
        Message.channel == channel, Message.idempotency_key.in_(list(pairs)))).all())
    out = {}
    for key, mid in found.items():
        session.execute(update(Message).where(Message.id == mid, Message.provider_id.is_(None))
                        .values(provider_id=pairs[key]), execution_options={"synchronize_session": False})
        session.execute(update(Message).where(Message.id == mid, Message.status == "uncertain")
                        .values(reason=None, status="sent", sent_at=Message.claimed_at, lease_token=None,
                                lease_owner=None, lease_until=None),
                        execution_options={"synchronize_session": False})
        out[pairs[key]] = mid
    return out


def vk_read_up_to(session: Session, *, peer: str, read_id: int) -> list[int]:
    """VK reports reads as "everything up to message id N in this conversation"."""
    rows = session.execute(select(Message.id, Message.provider_id).where(
        Message.channel == "vk", Message.address == peer, Message.read_at.is_(None),
        Message.provider_id.is_not(None)))
    return [mid for mid, pid in rows if (n := parsing.integer(pid)) is not None and n <= read_id]


def of_messages(session: Session, ids: Iterable[int]) -> dict[int, dict[str, object]]:
    """Each message's status, provider id, failure reason and timeline, by id (what other domains show of the
    messages they queued, e.g. the inbox's replies)."""
    wanted = list(set(ids))
    if not wanted:
        return {}
    return {m.id: {"status": m.status, "provider_id": m.provider_id, "reason": m.reason, "timeline": timeline(m)}
            for m in session.scalars(select(Message).where(Message.id.in_(wanted)))}
