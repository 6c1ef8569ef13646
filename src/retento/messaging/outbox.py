"""The send job: claim queued messages, render, hand them to their channel, record the outcome.

Delivery guarantee, honestly stated:
- A claimed batch is committed as `claimed` before anything is sent. Then, chunk by chunk (`send_chunk`),
  the chunk is committed as `sending`, sent, and its results committed. So a killed worker leaves at most
  one chunk `sending`; everything else is either recorded or was never attempted.
- After `send_lease_seconds`, any worker recovers a dead worker's claim: `claimed` rows go back to the queue
  (never attempted: resending is exactly once). `sending` rows may or may not have reached the provider:
  for providers that drop a repeated message (VK `random_id`) they are resent, which is still exactly once;
  for the others they are failed with reason `interrupted` and not resent (at most once), because a resend
  could deliver twice. WhatsApp echoes our idempotency key (`biz_opaque_callback_data`) in its status
  webhooks, so such a message that did arrive gets its provider id and statuses back from the webhook.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session, sessionmaker

from retento.customers import service as customers
from retento.db import transaction
from retento.messaging import planner, service, templates
from retento.messaging.channels import Outgoing, Result
from retento.messaging.models import Message, Template
from retento.sites.models import Site

if TYPE_CHECKING:
    from retento.messaging.runtime import Messaging

IN_FLIGHT = ("claimed", "sending")


def recover(session: Session, *, now: datetime, lease: timedelta, idempotent: set[str]) -> int:
    stale = now - lease
    m = Message
    n = session.execute(update(m).where(m.status == "claimed", m.claimed_at < stale)
                        .values(status="queued", claimed_at=None), execution_options={"synchronize_session": False}
                        ).rowcount or 0
    n += session.execute(update(m).where(m.status == "sending", m.claimed_at < stale, m.channel.in_(idempotent))
                         .values(status="queued", claimed_at=None),
                         execution_options={"synchronize_session": False}).rowcount or 0
    lost = list(session.scalars(select(m.id).where(m.status == "sending", m.claimed_at < stale)))
    if lost:
        session.execute(update(m).where(m.id.in_(lost)).values(
            status="failed", failed_at=now, reason="interrupted: the worker died while sending; the outcome is "
            "unknown and the message is not resent (at most once)"), execution_options={"synchronize_session": False})
        planner.wake_runs(session, message_ids=lost, now=now)
    return n + len(lost)


def claim(session: Session, *, now: datetime, limit: int) -> list[int]:
    m = Message
    q = (select(m.id).where(m.status == "queued", (m.not_before.is_(None)) | (m.not_before <= now))
         .order_by(m.id).limit(limit))
    if session.get_bind().dialect.name == "postgresql":
        q = q.with_for_update(skip_locked=True)
    ids = list(session.scalars(q))
    if ids:
        session.execute(update(m).where(m.id.in_(ids)).values(status="claimed", claimed_at=now,
                                                                attempts=m.attempts + 1),
                        execution_options={"synchronize_session": False})
    return ids


def send_due(factory: sessionmaker[Session], messaging: Messaging, now: datetime) -> int:
    """One batch: recover dead claims, claim, send, record. Returns how many messages were handled."""
    cfg = messaging.settings
    idempotent = {name for name, ch in messaging.channels.items() if ch.idempotent}
    with transaction(factory) as s:
        recovered = recover(s, now=now, lease=timedelta(seconds=cfg.send_lease_seconds), idempotent=idempotent)
    with transaction(factory) as s:
        ids = claim(s, now=now, limit=cfg.send_batch)
    if not ids:
        return recovered
    with transaction(factory) as s:
        ready, refused = _prepare(s, messaging, ids)
    if refused:
        with transaction(factory) as s:
            _store(s, refused, {}, now, cfg.send_max_attempts)
    by_channel: dict[str, list[tuple[Outgoing, dict[str, Any]]]] = defaultdict(list)
    for out, meta in ready:
        by_channel[meta["channel"]].append((out, meta))
    for channel_name, items in by_channel.items():
        channel = messaging.channels[channel_name]
        for i in range(0, len(items), cfg.send_chunk):
            chunk = items[i:i + cfg.send_chunk]
            chunk_ids = [o.id for o, _ in chunk]
            with transaction(factory) as s:
                s.execute(update(Message).where(Message.id.in_(chunk_ids)).values(status="sending"),
                          execution_options={"synchronize_session": False})
            results = channel.send([o for o, _ in chunk])
            with transaction(factory) as s:
                _store(s, results, {o.id: meta for o, meta in chunk}, now, cfg.send_max_attempts)
                _forget_devices(s, results, {o.id: o for o, _ in chunk})
    return len(ids) + recovered


def _prepare(session: Session, messaging: Messaging, ids: list[int]) -> tuple[list, list[Result]]:
    """Render each claimed message; messages that may no longer go out fail here with their reason."""
    rows = list(session.execute(select(
        Message.id, Message.idempotency_key, Message.customer_id, Message.site_id, Message.channel,
        Message.template_id, Message.address, Message.cost, Message.context).where(Message.id.in_(ids))))
    sheets = customers.contact_sheets(session, customer_ids=list({r.customer_id for r in rows}))
    tpls = {t.id: t for t in session.scalars(select(Template).where(Template.id.in_({r.template_id for r in rows})))}
    sites = {s.id: {"code": s.code, "name": s.name} for s in session.scalars(select(Site))}
    ready, refused = [], []
    for r in rows:
        sheet = sheets.get(r.customer_id)
        if sheet is None or sheet["consents"].get(r.channel) is not True:
            refused.append(Result(r.id, False, error="no_consent: withdrawn before sending"))
            continue
        if r.channel not in messaging.channels:
            refused.append(Result(r.id, False, error=f"channel {r.channel} is not configured"))
            continue
        tpl = tpls[r.template_id]
        try:
            out = messaging.renderer.render(tpl.id, {"subject": tpl.subject, "body": tpl.body, "html": tpl.html},
                                            templates.context_for(sheet, sites[r.site_id], r.context))
        except Exception as exc:  # noqa: BLE001 - a customer's data broke the template: this message fails
            refused.append(Result(r.id, False, error=f"render: {type(exc).__name__}: {exc}"[:500]))
            continue
        html, unsubscribe = out.html, None
        if r.channel == "email":
            links = messaging.links
            unsubscribe = links.unsubscribe(r.id)
            if html:
                html = templates.track_html(html, pixel_url=links.pixel(r.id),
                                            click_url=lambda url, mid=r.id, links=links: links.click(mid, url))
        ready.append((Outgoing(id=r.id, idempotency_key=r.idempotency_key, to=r.address, text=out.text,
                               subject=out.subject, html=html, language=tpl.language,
                               provider_template=tpl.provider_template, unsubscribe_url=unsubscribe,
                               bounce_address=messaging.bounce_address(r.id)),
                      {"channel": r.channel, "unit_price": r.cost}))
    return ready, refused


def _store(session: Session, results: list[Result], meta: dict[int, dict[str, Any]], now: datetime,
           max_attempts: int) -> None:
    t = Message.__table__
    attempts = dict(session.execute(select(Message.id, Message.attempts)
                                    .where(Message.id.in_([r.id for r in results]))).all())
    sent, retry, failed = [], [], []
    for r in results:
        if r.ok:
            unit = meta[r.id]["unit_price"]
            sent.append({"mid": r.id, "pid": r.provider_id, "units": r.units, "cost": unit * r.units})
        elif r.temporary and attempts.get(r.id, 0) < max_attempts:
            delay = int((r.extra or {}).get("retry_after") or 60 * 2 ** attempts.get(r.id, 0))
            retry.append({"mid": r.id, "nb": now + timedelta(seconds=delay), "err": r.error})
        else:
            failed.append({"mid": r.id, "err": r.error})
    if sent:
        session.execute(t.update().where(t.c.id == bindparam("mid")).values(
            status="sent", sent_at=now, provider_id=bindparam("pid"), units=bindparam("units"),
            cost=bindparam("cost", type_=t.c.cost.type), reason=None), sent)
    if retry:
        session.execute(t.update().where(t.c.id == bindparam("mid")).values(
            status="queued", claimed_at=None, not_before=bindparam("nb", type_=t.c.not_before.type),
            reason=bindparam("err")), retry)
    if failed:
        session.execute(t.update().where(t.c.id == bindparam("mid")).values(
            status="failed", failed_at=now, reason=bindparam("err")), failed)
        planner.wake_runs(session, message_ids=[f["mid"] for f in failed], now=now)


def _forget_devices(session: Session, results: list[Result], outgoing: dict[int, Outgoing]) -> None:
    gone = [outgoing[r.id].to for r in results if (r.extra or {}).get("unregistered")]
    service.drop_devices(session, tokens=gone)


