"""The send job: claim queued messages (`retento.core.work`), render them, send them one at a time, record each
outcome. The guarantees (docs/messaging.md, "Delivery guarantees"):

- A worker claims only messages of the channels it has settings for; the rest stay due for a worker that has
  them (`retento work` and the log say which channels wait for one).
- A claim is a lease of `send_lease_seconds` with a fencing token. The worker renews it while the batch goes on
  (each time a third of it has passed, by the injected clock), and every change it makes checks the token: a
  worker whose lease ran out and was taken over changes nothing and sends none of the messages it lost.
- Messages are marked `sending` (committed, fenced) right before their sends, `send_in_flight` at a time (one
  transaction per group, not per message); their outcomes are committed with the next group's mark. A worker
  killed at any moment leaves at most the group it had open with an unknown outcome; everything before it is
  recorded, everything after it is still claimable.
- When the lease of such a message runs out it becomes `uncertain`, or is queued again where the provider drops
  a repeat of the same message (`Channel.idempotent`: VK's `random_id`). An uncertain message is not resent by
  itself: the worker that sent it may still record its result, WhatsApp's status webhook echoes our key and
  settles it, and an operator can resend it (`retento work retry messages ID`).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session, sessionmaker

from retento.core import work
from retento.core.clock import Clock
from retento.core.db.transactions import transaction
from retento.customers import service as customers
from retento.messaging import planner, service, templates
from retento.messaging.channels import Outgoing, Result
from retento.messaging.config import MessagingSettings
from retento.messaging.models import Message, Template
from retento.sites.models import Site

if TYPE_CHECKING:
    from retento.messaging.runtime import Messaging

log = logging.getLogger(__name__)
OUTCOMES = ("sent", "failed", "to retry", "uncertain", "taken over")  # of a batch's messages, in its summary
UNCERTAIN = ("uncertain: the worker sending it stopped before recording the provider's answer, so it may or may "
             "not have arrived; it is not resent by itself (retento work retry messages ID resends it)")


def queue(cfg: MessagingSettings, configured: Sequence[str] = ()) -> work.Queue:
    """The outbox as a work queue; `failed` is its dead state and `uncertain` the other one operators act on.
    `configured`: the channels this process has settings for (its notes name due messages of the others)."""
    m = Message.__table__

    def notes(session: Session, now: Any) -> list[str]:
        waiting = waiting_without_worker(session, configured=configured, now=now)
        return [f"{n:,} due {ch} messages wait for a worker with {ch} settings (this process has none)"
                for ch, n in sorted(waiting.items())]

    return work.Queue(
        name="messages", table=m, label="outgoing messages / исходящие сообщения", state="status",
        due="not_before", due_null=True, error="reason", ready="queued", held="claimed", in_flight=("sending",), done="sent",
        dead="failed", also_dead=("uncertain",), order=("id",), max_attempts=cfg.send_max_attempts,
        backoff=work.Backoff(base=cfg.send_backoff_seconds, cap=cfg.send_backoff_max_seconds),
        lease=timedelta(seconds=cfg.send_lease_seconds),
        dead_values=lambda now: {"failed_at": now},
        retry_values={"failed_at": None, "reason": None},
        drop_values=lambda now: {"status": "failed", "failed_at": func.coalesce(m.c.failed_at, now),
                                 "reason": func.coalesce(m.c.reason, "dropped by an operator")},
        notes=notes)


def recover(session: Session, q: work.Queue, *, now: Any, idempotent: Sequence[str]) -> tuple[int, Counter[str]]:
    """Messages left `sending` under a lease that ran out: queued again where the provider drops repeats,
    otherwise uncertain (the token stays, so the worker that sent it can still record its answer).
    Returns how many were recovered, and the uncertain ones per channel."""
    requeued = work.reap(session, q, now=now, state="sending", to="queued", release=True,
                         where=Message.channel.in_(list(idempotent)))
    unsure = work.reap(session, q, now=now, state="sending", to="uncertain", release=False,
                       values={"reason": UNCERTAIN})
    by_channel: Counter[str] = Counter()
    if unsure:
        log.warning("%s messages are uncertain: their worker stopped while sending them (ids %s)", len(unsure),
                    unsure[:20])
        by_channel.update(dict(session.execute(select(Message.channel, func.count()).where(
            Message.id.in_(unsure)).group_by(Message.channel)).all()))
    return len(requeued) + len(unsure), by_channel


def send_due(factory: sessionmaker[Session], messaging: Messaging, clock: Clock) -> int:
    """One batch: recover dead sends, claim, send one by one, record. Returns how many messages were handled."""
    q, now = messaging.queue, clock.now()
    with transaction(factory) as s:
        recovered, unsure = recover(s, q, now=now, idempotent=messaging.idempotent)
    if messaging.unserved_check_due(now):
        with transaction(factory) as s:
            waiting = waiting_without_worker(s, configured=sorted(messaging.channels), now=now)
        if waiting:
            log.warning("messages are due on channels this worker has no settings for; they stay queued for a "
                        "worker that has them: %s", ", ".join(f"{ch}: {n}" for ch, n in sorted(waiting.items())))
    if not messaging.channels:
        return recovered
    with transaction(factory) as s:
        lease = work.claim(s, q, now=now, limit=messaging.settings.send_batch, owner=messaging.owner,
                           columns=("channel",), where=Message.channel.in_(sorted(messaging.channels)))
    if not lease.rows:
        return recovered
    batch = _Batch(factory, messaging, lease, clock, began=now)
    batch.counts.update({(ch, "uncertain"): n for ch, n in unsure.items()})
    with transaction(factory) as s:
        ready, refused = _prepare(s, messaging, lease.ids)
        settle(s, lease, refused, {}, clock.now())
    batch.count(refused)
    step = messaging.settings.send_in_flight
    for i in range(0, len(ready), step):
        batch.send(ready[i:i + step])
    batch.finish()
    return len(lease.rows) + recovered


@dataclass
class _Batch:
    """Sends a claimed batch in groups of `send_in_flight` messages; each group's transaction records the
    previous group's outcomes, renews the lease when due and marks the group's messages `sending`."""

    factory: sessionmaker[Session]
    messaging: Messaging
    lease: work.Lease
    clock: Clock
    began: datetime
    open: list[tuple[Result, dict[str, Any], Outgoing]] = field(default_factory=list)
    # (channel, outcome) -> messages; "uncertain": left by a stopped worker, found as this batch began
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    started: set[int] = field(default_factory=set)
    lost: set[int] = field(default_factory=set)  # taken over by another worker: not ours to send
    unsent: list[int] = field(default_factory=list)  # marked `sending`, not sent: the lease ran out first
    channels: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.channels = {r.id: r.channel for r in self.lease.rows}

    def send(self, group: Sequence[tuple[Outgoing, dict[str, Any]]]) -> None:
        now = self.clock.now()
        ids = [out.id for out, _ in group]
        with transaction(self.factory) as s:
            self._settle_open(s, now)
            if self.lease.due_for_renewal(now):
                rest = [i for i in self.lease.ids if i not in self.started and i not in self.lost]
                self.lost |= set(rest) - work.renew(s, self.lease, now=now, ids=rest)
            self.started.update(ids)
            mine = work.move(s, self.lease, [i for i in ids if i not in self.lost], state="sending",
                             values={"claimed_at": now})
        for out, meta in group:
            if out.id not in mine:
                self.lost.add(out.id)
                self.counts[meta["channel"], "taken over"] += 1
                continue
            if self.clock.now() >= self.lease.until:  # stalled past the lease: another worker may own the rest
                self.unsent.append(out.id)
                self.counts[meta["channel"], "to retry"] += 1
                continue
            (result,) = self.messaging.channels[meta["channel"]].send([out])
            self.count([result])
            self.open.append((result, {**meta, "answered_at": self.clock.now()}, out))

    def count(self, results: Sequence[Result]) -> None:
        """Tally outcomes for the batch summary; each message's own line is at DEBUG."""
        for r in results:
            ch = self.channels[r.id]
            self.counts[ch, "sent" if r.ok else "to retry" if r.temporary else "failed"] += 1
            log.debug("%s message %s: %s", ch, r.id, f"sent ({r.provider_id})" if r.ok else
                      f"{'to retry' if r.temporary else 'failed'}: {r.error}")

    def finish(self) -> None:
        if self.open or self.unsent:
            with transaction(self.factory) as s:
                self._settle_open(s, self.clock.now())
        if self.lost:
            log.warning("lease of %s messages was taken over by another worker; not sent by this one", len(self.lost))
        seconds = (self.clock.now() - self.began).total_seconds()
        for ch in sorted({ch for ch, _ in self.counts}):
            n = {outcome: self.counts[ch, outcome] for outcome in OUTCOMES}
            log.info("%s batch: %s messages in %.1f s: %s", ch, sum(n.values()), seconds,
                     ", ".join(f"{v} {k}" for k, v in n.items()))

    def _settle_open(self, session: Session, now: Any) -> None:
        if self.unsent:  # never sent, whoever holds them now: claimable again (also if made uncertain meanwhile)
            work.complete(session, self.lease, self.unsent, state=self.lease.queue.ready, also_from=("uncertain",),
                          values={"reason": None})
            self.unsent = []
        if self.open:
            settle(session, self.lease, [r for r, _, _ in self.open], {out.id: meta for _, meta, out in self.open},
                   now)
            service.drop_devices(session, tokens=[out.to for r, _, out in self.open
                                                  if (r.extra or {}).get("unregistered")])
            self.open = []


def settle(session: Session, lease: work.Lease, results: Sequence[Result], meta: dict[int, dict[str, Any]],
           now: Any) -> None:
    """Record outcomes, fenced by the lease (`uncertain` ones too: their answer has come after all): the sent
    ones in one statement, whatever their number. `sent_at` is when each answer came (`answered_at` in its
    meta), else `now`."""
    settled = ("uncertain",)
    sent = [r for r in results if r.ok]
    if len(sent) == 1:
        (r,) = sent
        work.complete(session, lease, [r.id], also_from=settled, values={
            "sent_at": meta[r.id].get("answered_at", now), "provider_id": r.provider_id, "units": r.units,
            "cost": meta[r.id]["unit_price"] * r.units, "reason": None})
    elif sent:
        m = Message.__table__.c
        work.complete(session, lease, [r.id for r in sent], also_from=settled, values={
            "reason": None, "sent_at": case({r.id: meta[r.id].get("answered_at", now) for r in sent}, value=m.id),
            "provider_id": case({r.id: r.provider_id for r in sent}, value=m.id),
            "units": case({r.id: r.units for r in sent}, value=m.id),
            "cost": case({r.id: meta[r.id]["unit_price"] * r.units for r in sent}, value=m.id)})
    failures = {r.id: work.Failure(r.error or "failed", permanent=not r.temporary,
                                   retry_after=(r.extra or {}).get("retry_after")) for r in results if not r.ok}
    failed = work.fail(session, lease, failures, now=now, also_from=settled)
    if failed.dead:
        planner.wake_runs(session, message_ids=sorted(failed.dead), now=now)


def _prepare(session: Session, messaging: Messaging, ids: list[int]) -> tuple[list, list[Result]]:
    """Render each claimed message; messages that may no longer go out fail here with their reason."""
    rows = list(session.execute(select(
        Message.id, Message.idempotency_key, Message.customer_id, Message.site_id, Message.channel,
        Message.template_id, Message.address, Message.cost, Message.context).where(Message.id.in_(ids))))
    rows.sort(key=lambda r: r.id)
    sheets = customers.contact_sheets(session, customer_ids=list({r.customer_id for r in rows}))
    tpls = {t.id: t for t in session.scalars(select(Template).where(Template.id.in_({r.template_id for r in rows})))}
    sites = {s.id: {"code": s.code, "name": s.name} for s in session.scalars(select(Site))}
    ready, refused = [], []
    for r in rows:
        sheet = sheets.get(r.customer_id)
        reply = (r.context or {}).get("reply")  # an operator's answer (service.queue_reply): the customer wrote first
        if sheet is None or (reply is None and sheet["consents"].get(r.channel) is not True):
            refused.append(Result(r.id, False, error="no_consent: withdrawn before sending"))
            continue
        if reply is not None and r.template_id is None:
            ready.append((Outgoing(id=r.id, idempotency_key=r.idempotency_key, to=r.address, text=reply["text"],
                                   options=reply.get("options") or {}),
                          {"channel": r.channel, "unit_price": r.cost}))
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
                               bounce_address=messaging.bounce_address(r.id),
                               options=(reply or {}).get("options") or {}),
                      {"channel": r.channel, "unit_price": r.cost}))
    return ready, refused


def waiting_without_worker(session: Session, *, configured: Sequence[str], now: Any) -> dict[str, int]:
    """Due messages per channel this process has no settings for (a worker here leaves them alone)."""
    m = Message
    q = (select(m.channel, func.count()).where(m.status == "queued", (m.not_before.is_(None)) | (m.not_before <= now),
                                               m.channel.not_in(list(configured)))
         .group_by(m.channel))
    return {ch: n for ch, n in session.execute(q) if n}

