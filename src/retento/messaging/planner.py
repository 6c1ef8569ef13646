"""The cascade timer job: due runs are advanced in batches; each batch is a few statements whatever its size.

A run is due at the end of its current step's window (or at once when it starts or its message failed).
The pure decisions (cascade.next_action, policies.decide, cascade.cheapest_plan) run in memory over the
batch; the batch's reads and writes are set-based.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session

from retento.core import work
from retento.core.db.bulk import insert_rows
from retento.customers import service as customers
from retento.messaging import cascade as cz, policies, service
from retento.messaging.models import SENDING, Cascade, Message, Run, Template
from retento.sites.models import Site

# Cascade runs as a queue of the durable-work primitive, advanced inside one transaction (`work.locked`).
QUEUE = work.Queue.in_transaction("cascade_runs", Run.__table__, label="cascade steps due / шаги каскадов",
                                  ready="waiting")
COLUMNS = ("cascade_id", "campaign_id", "site_id", "customer_id", "message_class", "plan", "pos", "context")


def advance_due(session: Session, *, now: datetime, limit: int) -> int:
    """Advance up to `limit` due runs; returns how many were looked at."""
    runs = work.locked(session, QUEUE, now=now, limit=limit, columns=COLUMNS)
    if not runs:
        return 0
    by_site: dict[int, list[Any]] = defaultdict(list)
    for r in runs:
        by_site[r.site_id].append(r)
    for site_id, site_runs in by_site.items():
        _advance_site(session, site_id, site_runs, now)
    return len(runs)


def _advance_site(session: Session, site_id: int, runs: list[Any], now: datetime) -> None:
    site = session.get(Site, site_id)
    pol = service.policy(session, site_id=site_id)
    price_rows = service.prices(session, site_id=site_id)
    cascades = {c.id: c for c in session.scalars(select(Cascade).where(Cascade.id.in_({r.cascade_id for r in runs})))}
    steps = {cid: service.steps_of(c) for cid, c in cascades.items()}
    tpls = templates(session, site_id)
    ids = [r.customer_id for r in runs]
    sheets = customers.contact_sheets(session, customer_ids=ids)
    channels = {s.channel for st in steps.values() for s in st}
    devices = service.devices_of(session, customer_ids=ids) if "push" in channels else {}
    recent = _recent(session, ids, now - pol.cap_period) if pol.cap_count is not None else {}
    last = _last_messages(session, [r.id for r in runs if r.pos >= 0])
    history = _history(session, [r.customer_id for r in runs if r.plan is None
                                 and cascades[r.cascade_id].mode == "cheapest_read"])
    averages = service.read_rates(session, site_id=site_id) if history is not None else {}
    prices = {ch: service.price_of(price_rows, ch, site.currency)[0] for ch in channels}

    messages: list[dict[str, Any]] = []
    changes: list[dict[str, Any]] = []
    for run in runs:
        st = steps[run.cascade_id]
        sheet = sheets.get(run.customer_id)
        plan = run.plan
        if plan is None:
            plan = (cz.cheapest_plan(st, prices, averages, history.get(run.customer_id, {}))
                    if cascades[run.cascade_id].mode == "cheapest_read" else list(range(len(st))))
        change = {"rid": run.id, "plan": plan, "pos": run.pos, "state": "waiting", "due_at": None,
                  "outcome": None, "finished_at": None}
        changes.append(change)
        if sheet is None:
            change.update(state="done", outcome="customer_gone", finished_at=now)
            continue
        current = st[plan[run.pos]] if run.pos >= 0 else None
        nxt = cz.next_action(last.get(run.id), current, now)
        if nxt.kind == "finish":
            change.update(state="done", outcome=nxt.outcome, finished_at=now)
            continue
        if nxt.kind == "wait":
            change["due_at"] = nxt.due_at
            continue
        for pos in range(run.pos + 1, len(plan)):
            step = st[plan[pos]]
            tpl = pick(tpls, step, sheet, pol.default_language)
            to = policies.address(step.channel, sheet, devices)
            decision = policies.decide(now, channel=step.channel, message_class=run.message_class, sheet=sheet,
                                       to=to, policy=pol, recent=recent.get(run.customer_id, 0),
                                       site_timezone=site.timezone)
            if not decision.send and decision.reason == "frequency_cap":
                change.update(state="done", outcome="frequency_cap", finished_at=now)
                break
            if not decision.send or tpl is None:
                continue  # no contact, consent or template for this channel: the next step goes now
            price, currency = service.price_of(price_rows, step.channel, site.currency)
            start = decision.not_before or now
            messages.append({
                "site_id": site_id, "customer_id": run.customer_id, "channel": step.channel,
                "template_id": tpl.id, "run_id": run.id, "campaign_id": run.campaign_id,
                "cascade_id": run.cascade_id, "step": plan[pos], "message_class": run.message_class,
                "idempotency_key": f"run:{run.id}:{plan[pos]}", "status": "queued", "address": to,
                "units": 1, "cost": price, "currency": currency, "context": run.context, "attempts": 0,
                "not_before": decision.not_before, "created_at": now,
            })
            recent[run.customer_id] = recent.get(run.customer_id, 0) + 1
            change.update(pos=pos, due_at=cz.window_end(start, step))
            break
        else:
            change.update(state="done", outcome="exhausted" if run.pos >= 0 else "unreachable", finished_at=now)
    if messages:
        insert_rows(session, Message.__table__, messages)
    t = Run.__table__
    session.execute(t.update().where(t.c.id == bindparam("rid")).values(
        {c: bindparam(f"v_{c}", type_=t.c[c].type) for c in ("plan", "pos", "state", "due_at", "outcome", "finished_at")}),
        [{"rid": ch.pop("rid"), **{f"v_{k}": v for k, v in ch.items()}} for ch in changes])


def templates(session: Session, site_id: int) -> dict[tuple[str, str], dict[str, Template]]:
    out: dict[tuple[str, str], dict[str, Template]] = defaultdict(dict)
    for t in session.scalars(select(Template).where(Template.site_id == site_id).order_by(Template.id)):
        out[(t.name, t.channel)][t.language] = t
    return out


def pick(tpls: dict, step: cz.Step, sheet: dict[str, Any], default: str) -> Template | None:
    langs = tpls.get((step.template, step.channel))
    if not langs:
        return None
    want = (sheet.get("locale") or default)[:2]
    return langs.get(want) or langs.get(default) or next(iter(langs.values()))


def _recent(session: Session, customer_ids: list[int], since: datetime) -> dict[int, int]:
    q = (select(Message.customer_id, func.count())
         .where(Message.customer_id.in_(customer_ids), Message.message_class == policies.MARKETING,
                Message.created_at >= since, Message.failed_at.is_(None))
         .group_by(Message.customer_id))
    return dict(session.execute(q).all())


def _last_messages(session: Session, run_ids: list[int]) -> dict[int, cz.Outcome]:
    if not run_ids:
        return {}
    newest = (select(func.max(Message.id)).where(Message.run_id.in_(run_ids)).group_by(Message.run_id))
    q = select(Message.run_id, Message.status, Message.sent_at, Message.delivered_at, Message.read_at,
               Message.clicked_at, Message.failed_at).where(Message.id.in_(newest))
    return {r.run_id: cz.Outcome(queued=r.status in ("queued", *SENDING),
                                 delivered=r.delivered_at is not None or r.read_at is not None,
                                 read=r.read_at is not None or r.clicked_at is not None,
                                 failed=r.failed_at is not None, sent_at=r.sent_at) for r in session.execute(q)}


def _history(session: Session, customer_ids: list[int]) -> dict[int, dict[str, tuple[int, int]]] | None:
    """Per customer and channel: (reads, sent) of their own past messages; None when nobody needs it."""
    if not customer_ids:
        return None
    out: dict[int, dict[str, tuple[int, int]]] = defaultdict(dict)
    q = (select(Message.customer_id, Message.channel, func.count(Message.read_at), func.count(Message.sent_at))
         .where(Message.customer_id.in_(customer_ids)).group_by(Message.customer_id, Message.channel))
    for cid, channel, reads, sent in session.execute(q):
        out[cid][channel] = (reads, sent)
    return out


def waiting_runs(session: Session, message_ids: list[int]) -> list[int]:
    """The waiting runs these messages belong to, locked. Looked up by primary key only: with a filter on
    `state` too, SQLite picks the state index and scans every waiting run."""
    runs = list(session.scalars(select(Message.run_id).where(Message.id.in_(message_ids),
                                                             Message.run_id.is_not(None)).distinct()))
    if not runs:
        return []
    q = select(Run.id, Run.state).where(Run.id.in_(runs))
    if session.get_bind().dialect.name == "postgresql":
        q = q.with_for_update()
    return [rid for rid, state in session.execute(q) if state == "waiting"]


def wake_runs(session: Session, *, message_ids: list[int], now: datetime) -> None:
    """Runs whose current message just failed go on at once instead of at the end of the window (a late
    failure of an earlier step's message changes nothing)."""
    runs = waiting_runs(session, message_ids) if message_ids else []
    if runs:
        newest = session.execute(select(Message.run_id, func.max(Message.id)).where(Message.run_id.in_(runs))
                                 .group_by(Message.run_id)).all()
        failed = set(message_ids)
        runs = [rid for rid, mid in newest if mid in failed]
    if runs:
        session.execute(update(Run).where(Run.id.in_(runs)).values(due_at=now),
                        execution_options={"synchronize_session": False})
