"""What operators read: the dialog list, a dialog with its customer and orders, its messages with the delivery
status of replies, and response times per dialog and per operator."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from statistics import median
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from retento.core.bus import Event
from retento.core.db import changelog
from retento.customers import service as customers
from retento.inbox import dialogs, events
from retento.inbox.inbound import CHANNELS
from retento.inbox.models import Cycle, Dialog, Message
from retento.inbox.service import order_ids
from retento.messaging import statuses

DIALOG = ("id", "site_id", "customer_id", "channel", "account", "peer", "title", "state", "assignee_id", "tags",
          "unread", "last_message_at", "last_inbound_at", "created_at", "updated_at")
MESSAGE = ("id", "dialog_id", "direction", "operator_id", "provider_id", "kind", "text", "media", "reply_to",
           "buttons", "payload", "sent_at", "created_at", "edited_at", "edits", "deleted_at")


def dialog_row(d: Dialog) -> dict[str, Any]:
    return {f: getattr(d, f) for f in DIALOG}


def list_dialogs(session: Session, *, site_ids: list[int] | None, state: str | None, channel: str | None,
                 assignee_id: int | None, unassigned: bool, customer_id: int | None, after: tuple[datetime, int] | None,
                 limit: int) -> list[Dialog]:
    """Newest activity first; `after`: (last_message_at, id) of the previous page's last dialog."""
    q = select(Dialog)
    if site_ids is not None:
        q = q.where(Dialog.site_id.in_(site_ids))
    if state:
        q = q.where(Dialog.state == state)
    if channel:
        q = q.where(Dialog.channel == channel)
    if assignee_id is not None:
        q = q.where(Dialog.assignee_id == assignee_id)
    if unassigned:
        q = q.where(Dialog.assignee_id.is_(None))
    if customer_id is not None:
        q = q.where(Dialog.customer_id == customer_id)
    if after is not None:
        at, did = after
        q = q.where((Dialog.last_message_at < at) | ((Dialog.last_message_at == at) & (Dialog.id < did)))
    return list(session.scalars(q.order_by(Dialog.last_message_at.desc(), Dialog.id.desc()).limit(limit)))


def counts(session: Session, *, site_ids: list[int] | None, assignee_id: int | None = None,
           unassigned: bool = False) -> dict[tuple[str, str], tuple[int, int]]:
    """Dialogs and their unread messages per (state, channel), for the list's tabs."""
    q = select(Dialog.state, Dialog.channel, func.count(), func.coalesce(func.sum(Dialog.unread), 0))
    if site_ids is not None:
        q = q.where(Dialog.site_id.in_(site_ids))
    if assignee_id is not None:
        q = q.where(Dialog.assignee_id == assignee_id)
    if unassigned:
        q = q.where(Dialog.assignee_id.is_(None))
    return {(state, channel): (int(n), int(unread))
            for state, channel, n, unread in session.execute(q.group_by(Dialog.state, Dialog.channel))}


def dialog_view(session: Session, d: Dialog, now: datetime) -> dict[str, Any]:
    """A dialog with its customer's card, linked orders, whether free text may go out now, and its cycles."""
    snap = customers.snapshots(session, [d.customer_id]).get(d.customer_id) or {}
    card = {k: snap.get(k) for k in ("id", "external_id", "first_name", "last_name", "email", "phone",
                                     "telegram_id", "whatsapp_id", "vk_id", "tags")}
    cycles = session.scalars(select(Cycle).where(Cycle.dialog_id == d.id).order_by(Cycle.id))
    return {**dialog_row(d), "customer": card, "order_ids": order_ids(session, d.id),
            "free_text_allowed": dialogs.window_open(d.channel, d.last_inbound_at, now),
            "cycles": [cycle_row(c) for c in cycles]}


def cycle_row(c: Cycle) -> dict[str, Any]:
    return {"opened_at": c.opened_at, "first_response_at": c.first_response_at, "responder_id": c.responder_id,
            "first_response_seconds": dialogs.seconds(c.opened_at, c.first_response_at),
            "closed_at": c.closed_at, "closed_by": c.closed_by,
            "resolution_seconds": dialogs.seconds(c.opened_at, c.closed_at)}


def messages(session: Session, *, dialog_id: int, after_id: int, limit: int) -> list[dict[str, Any]]:
    """Oldest first from `after_id`; a reply carries its outbox status and timeline (queued, sent, delivered,
    read, failed with the reason)."""
    rows = list(session.scalars(select(Message).where(Message.dialog_id == dialog_id, Message.id > after_id)
                                .order_by(Message.id).limit(limit)))
    outbox = statuses.of_messages(session, [r.outbox_id for r in rows if r.outbox_id is not None])
    out = []
    for r in rows:
        item = {f: getattr(r, f) for f in MESSAGE}
        sent = outbox.get(r.outbox_id) if r.outbox_id is not None else None
        if sent is not None:
            item.update(sent)
        elif r.direction == "out":
            item["status"] = "sent"  # written in the provider's own app: it is there already
        out.append(item)
    return out


def recent_messages(session: Session, *, dialog_id: int, limit: int) -> tuple[list[dict[str, Any]], bool]:
    """The newest `limit` messages of a dialog, oldest first (as `messages`), and whether older ones exist."""
    start = session.scalar(select(Message.id).where(Message.dialog_id == dialog_id)
                           .order_by(Message.id.desc()).offset(limit).limit(1))
    return messages(session, dialog_id=dialog_id, after_id=start or 0, limit=limit), start is not None


def response_times(session: Session, *, site_ids: list[int] | None, since: datetime | None,
                   until: datetime | None) -> dict[str, Any]:
    """First-response and resolution times (seconds; median and mean) over the cycles opened in the period,
    overall and per operator (the first responder; resolution by who closed it)."""
    q = select(Cycle)
    if site_ids is not None:
        q = q.where(Cycle.site_id.in_(site_ids))
    if since is not None:
        q = q.where(Cycle.opened_at >= since)
    if until is not None:
        q = q.where(Cycle.opened_at < until)
    first: dict[int | None, list[float]] = defaultdict(list)
    resolved: dict[int | None, list[float]] = defaultdict(list)
    cycles = 0
    for c in session.scalars(q):
        cycles += 1
        if (s := dialogs.seconds(c.opened_at, c.first_response_at)) is not None:
            first[c.responder_id].append(s)
        if (s := dialogs.seconds(c.opened_at, c.closed_at)) is not None:
            resolved[c.closed_by].append(s)

    def figures(values: list[float]) -> dict[str, Any]:
        return {"count": len(values), "median_seconds": median(values) if values else None,
                "mean_seconds": sum(values) / len(values) if values else None}

    ops = sorted({k for k in (*first, *resolved) if k is not None})
    return {"cycles": cycles,
            "first_response": figures([v for vs in first.values() for v in vs]),
            "resolution": figures([v for vs in resolved.values() for v in vs]),
            "operators": [{"operator_id": op, "first_response": figures(first.get(op, [])),
                           "resolution": figures(resolved.get(op, []))} for op in ops]}


def events_after(session: Session, *, after_id: int, site_ids: list[int] | frozenset[int] | None,
                 limit: int = 500) -> list[dict[str, Any]]:
    """Inbox events after `after_id`, oldest first, up to the id every writer has settled (PostgreSQL commits
    ids out of order: a reader never skips one that commits late)."""
    t = Event.__table__
    q = select(t.c.id, t.c.type, t.c.occurred_at, t.c.site_id, t.c.customer_id, t.c.payload).where(
        t.c.type.in_(events.ALL), t.c.id > after_id, changelog.up_to_settled(session, t))
    if site_ids is not None:
        q = q.where(t.c.site_id.in_(list(site_ids)))
    return [dict(r._mapping) for r in session.execute(q.order_by(t.c.id).limit(limit))]


def last_event_id(session: Session) -> int:
    """Where a stream that wants only what happens from now on starts."""
    return session.scalar(select(func.max(Event.id))) or 0


def channel_report(session: Session, *, site_ids: list[int] | None, since: datetime | None,
                   until: datetime | None) -> dict[str, Any]:
    """Customers' messages and new dialogs per channel per month (UTC), each channel's share of the month's
    messages, and the growth of the monthly total from the first month to the last."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    dialogs_new: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    q = (select(Dialog.channel, Message.sent_at).join(Dialog, Dialog.id == Message.dialog_id)
         .where(Message.direction == "in"))
    d = select(Dialog.channel, Dialog.created_at)
    if site_ids is not None:
        q, d = q.where(Message.site_id.in_(site_ids)), d.where(Dialog.site_id.in_(site_ids))
    if since is not None:
        q, d = q.where(Message.sent_at >= since), d.where(Dialog.created_at >= since)
    if until is not None:
        q, d = q.where(Message.sent_at < until), d.where(Dialog.created_at < until)
    for channel, at in session.execute(q.execution_options(yield_per=5000)):
        counts[f"{at:%Y-%m}"][channel] += 1
    for channel, at in session.execute(d):
        dialogs_new[f"{at:%Y-%m}"][channel] += 1
    months = []
    for month in sorted(set(counts) | set(dialogs_new)):
        total = sum(counts[month].values())
        months.append({"month": month, "messages": total, "dialogs": sum(dialogs_new[month].values()),
                       "channels": {ch: {"messages": counts[month].get(ch, 0),
                                         "dialogs": dialogs_new[month].get(ch, 0),
                                         "share": counts[month].get(ch, 0) / total if total else 0.0}
                                    for ch in CHANNELS}})
    first = months[0]["messages"] if months else 0
    return {"months": months, "growth": months[-1]["messages"] / first if first else None}
