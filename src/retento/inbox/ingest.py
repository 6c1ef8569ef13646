"""Storing what providers' webhooks bring (`inbound.Batch`), once whatever the provider retries: a message by its
dialog and provider id (a retry, or two deliveries of one update racing, store nothing more), an edit or a
deletion on the message it names, business connections by their id.

`ingest_many` stores the batches of concurrent webhooks in one transaction (the group commit's set-based call,
`wiring`): a customer's messages to dialogs that are open (or waiting) with a running response cycle, the
steady state, set-based, one statement each per call for the exclusion list, the dialogs, the messages (`INSERT
... ON CONFLICT DO NOTHING RETURNING`), the dialogs' counters and the events; the rest (a new dialog, a closed
one, the shop's side writing, edits, deletions, connections) one event at a time, in the order they came."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import orjson
from pydantic import ValidationError
from sqlalchemy import bindparam, func, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from retento.app import from_session
from retento.core import bus
from retento.core.changes import ChangeContext
from retento.core.db.bulk import insert_rows, recordset_insert
from retento.customers import service as customers
from retento.customers.schemas import CustomerCreate
from retento.inbox import dialogs, events
from retento.inbox.config import InboxSettings
from retento.inbox.inbound import Batch, Connected, Contact, Deleted, Edited, Posted
from retento.inbox.models import Connection, Cycle, Dialog, Exclusion, Message, Setting
from retento.messaging import statuses
from retento.sites.models import Site

log = logging.getLogger(__name__)
ROBOT = ChangeContext.system()


def settings_of(session: Session) -> InboxSettings:
    return settings_of_app(from_session(session))


def settings_of_app(app: object) -> InboxSettings:
    """The inbox settings of a running app (`wiring.configure`), or those of the environment."""
    cfg = getattr(app, "inbox", None)
    return cfg if isinstance(cfg, InboxSettings) else InboxSettings()


def site_for(session: Session, channel: str, route: str) -> int | None:
    """The site (id) of a provider account: `inbox_accounts`, else `inbox_site`, else the first site. A Core
    query: an ORM one (a Site loaded) cost six times the CPU of the look-up, once per batch of messages."""
    cfg = settings_of(session)
    code = cfg.inbox_accounts.get(f"{channel}:{route}") or cfg.inbox_site
    conn = session.connection()
    return conn.scalar(_SITE_BY_CODE, {"code": code}) if code else conn.scalar(_FIRST_SITE)


_SITES = Site.__table__
_SITE_BY_CODE = select(_SITES.c.id).where(_SITES.c.code == bindparam("code"))
_FIRST_SITE = select(_SITES.c.id).order_by(_SITES.c.id).limit(1)
Where = tuple[int | None, Connection | None]  # the site id and the business connection
Key = tuple[int, str, str, str]  # a dialog's site, channel, account and peer


def ingest(session: Session, batch: Batch, now: datetime) -> dict[str, int]:
    """Store a webhook's events; returns how many of each kind changed something."""
    return ingest_many(session, [(batch, now)])[0]


def ingest_many(session: Session, items: list[tuple[Batch, datetime]]) -> list[dict[str, int]]:
    """Store the events of several webhooks (each with the time it came), in order; the counts of each."""
    out = [{"stored": 0, "edited": 0, "deleted": 0, "connections": 0, "skipped": 0} for _ in items]
    where: dict[Any, Where] = {}  # this call's sites and connections, looked up once each
    run: list[tuple[Posted, datetime, dict[str, int]]] = []
    for (batch, now), counts in zip(items, out, strict=True):
        for e in batch.events:
            if isinstance(e, Posted):
                run.append((e, now, counts))
                continue
            _posted_run(session, run, where)
            run = []
            if isinstance(e, Connected):
                _connection(session, e, now)
                where.clear()
                counts["connections"] += 1
                continue
            site_id, _ = _site_and_connection(session, e, where)
            key = "edited" if isinstance(e, Edited) else "deleted"
            done = site_id is not None and (_edited(session, site_id, e, now) if isinstance(e, Edited)
                                            else _deleted(session, site_id, e, now))
            counts[key if done else "skipped"] += 1
    _posted_run(session, run, where)
    return out


def _site_and_connection(session: Session, e: Posted | Edited | Deleted, where: dict[Any, Where]) -> Where:
    key = e.account or (e.channel, e.route)
    if key not in where:
        where[key] = _where(session, e)
    return where[key]


def _where(session: Session, e: Posted | Edited | Deleted) -> Where:
    if not e.account:
        return site_for(session, e.channel, e.route), None
    conn = session.get(Connection, e.account)
    if conn is None or not conn.enabled:  # no (or an ended) connection: nothing of it is recorded
        log.info("telegram business message of unknown or disabled connection %s dropped", e.account)
        return None, None
    return conn.site_id, conn


def _posted_run(session: Session, run: list[tuple[Posted, datetime, dict[str, int]]],
                where: dict[Any, Where]) -> None:
    """New messages: a customer's to a dialog that is open or waiting with a running cycle set-based, the others
    (and every message of a dialog one of them is in) one at a time."""
    if not run:
        return
    placed = []
    for e, now, counts in run:
        site_id, conn = _site_and_connection(session, e, where)
        if site_id is None:
            counts["skipped"] += 1
            continue
        outgoing = e.outgoing or (conn is not None and e.sender == conn.user_id)
        placed.append(((site_id, e.channel, e.account, e.contact.peer), e, now, counts, site_id, conn, outgoing))
    keys = {p[0] for p in placed}
    if session.get_bind().dialect.name == "postgresql":
        banned, found = _pg_lookup(session, keys)
    else:
        banned = _excluded(session, keys)
        found = {(d.site_id, d.channel, d.account, d.peer): d for d in _dialogs(session, keys - banned)}
    slow = {p[0] for p in placed if p[6] or p[0] not in found or found[p[0]].state == "closed"
            or found[p[0]].cycle_id is None}
    fast = []
    for key, e, now, counts, site_id, conn, outgoing in placed:
        if key in banned:
            counts["skipped"] += 1
        elif key in slow:
            counts["stored" if _posted(session, site_id, conn, e, now, outgoing=outgoing) else "skipped"] += 1
        else:
            fast.append((found[key], e, now, counts))
    _inbound(session, fast)


def _excluded(session: Session, keys: Iterable[Key]) -> set[Key]:
    wanted = {(site_id, channel, peer) for site_id, channel, _, peer in keys}
    if not wanted:
        return set()
    hits = set(session.execute(select(Exclusion.site_id, Exclusion.channel, Exclusion.peer).where(
        tuple_(Exclusion.site_id, Exclusion.channel, Exclusion.peer).in_(sorted(wanted)))).tuples())
    return {k for k in keys if (k[0], k[1], k[3]) in hits}


_COLUMNS = (Dialog.id, Dialog.site_id, Dialog.customer_id, Dialog.channel, Dialog.account, Dialog.peer,
            Dialog.state, Dialog.assignee_id, Dialog.unread, Dialog.cycle_id, Dialog.last_message_at,
            Dialog.last_inbound_at)


def _dialogs(session: Session, keys: Iterable[Key]) -> list[Any]:
    wanted = sorted(keys)
    if not wanted:
        return []
    return list(session.execute(select(*_COLUMNS).where(
        tuple_(Dialog.site_id, Dialog.channel, Dialog.account, Dialog.peer).in_(wanted))))


def _pg_lookup(session: Session, keys: set[Key]) -> tuple[set[Key], dict[Key, Any]]:
    """PostgreSQL: the keys on the exclusion list and the dialogs of the others, in one statement whose text is
    the same for any batch (prepared once by the driver, planned once by the server)."""
    if not keys:
        return set(), {}
    data = orjson.dumps([{"s": k[0], "c": k[1], "a": k[2], "p": k[3]} for k in keys]).decode()
    banned, found = set(), {}
    for row in session.connection().exec_driver_sql(_PG_LOOKUP, (data,)):
        key = (row.s, row.c, row.a, row.p)
        if row.banned:
            banned.add(key)
        elif row.id is not None:
            found[key] = row
    return banned, found


# what the fast path reads of a dialog; its counters come back from the UPDATE
_PG_LOOKUP = """
SELECT k.s, k.c, k.a, k.p, d.id, d.site_id, d.customer_id, d.channel, d.state, d.cycle_id,
    EXISTS (SELECT 1 FROM inbox_exclusions e WHERE e.site_id = k.s AND e.channel = k.c AND e.peer = k.p) AS banned
FROM jsonb_to_recordset(CAST(%s AS jsonb)) AS k(s integer, c text, a text, p text)
LEFT JOIN inbox_dialogs d ON d.site_id = k.s AND d.channel = k.c AND d.account = k.a AND d.peer = k.p"""


def _inbound(session: Session, fast: list[tuple[Any, Posted, datetime, dict[str, int]]]) -> None:
    """Customers' messages to open or waiting dialogs with a running cycle: one INSERT for the messages (a
    provider id a dialog already has is left out), one UPDATE for the dialogs (on PostgreSQL both in one
    statement), one for the events. On PostgreSQL the UPDATE keeps to dialogs still open or waiting with a cycle
    (another process may have closed one since it was read); those it left out take the one-at-a-time way with
    the dialog locked."""
    seen: set[tuple[int, str]] = set()
    rows, counted = [], []
    for d, e, now, counts in fast:
        if (d.id, e.provider_id) in seen:  # the same message twice in one call: a retry
            counts["skipped"] += 1
            continue
        seen.add((d.id, e.provider_id))
        rows.append(_row(d.site_id, d.id, e, now, "in", None))
        counted.append((d, e, now, counts))
    snapshot = {d.id: d for d, *_ in counted}
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:
        stored, after = _pg_store(session, rows) if rows else ({}, {})
    else:
        stored = {(r.dialog_id, r.provider_id): r.id for r in insert_rows(
            session, Message.__table__, rows, skip_existing=True, returning=("id", "dialog_id", "provider_id"))}
    per_dialog: dict[int, list[tuple[int, Posted, datetime]]] = defaultdict(list)
    for d, e, now, counts in counted:
        msg_id = stored.get((d.id, e.provider_id))
        counts["stored" if msg_id is not None else "skipped"] += 1
        if msg_id is not None:
            per_dialog[d.id].append((msg_id, e, now))
    if not per_dialog:
        return
    if not postgres:
        after = _count_inbound(session, snapshot, per_dialog)
    rows = []
    for dialog_id, msgs in per_dialog.items():
        d = snapshot[dialog_id]
        if dialog_id not in after:  # closed meanwhile (PostgreSQL): a new cycle, as one at a time
            locked = session.get(Dialog, dialog_id, with_for_update=True, populate_existing=True)
            for msg_id, e, now in msgs:
                record_inbound(session, locked, at=e.at or now, now=now)
                rows.append(_event(locked, msg_id, e.kind, now, locked.unread, locked.state, locked.assignee_id))
            continue
        unread, assignee_id = after[dialog_id]
        for i, (msg_id, e, now) in enumerate(msgs):
            rows.append(_event(d, msg_id, e.kind, now, unread - (len(msgs) - 1 - i), "open", assignee_id))
    bus.record(session, rows)


def _row(site_id: int, dialog_id: int, e: Posted, now: datetime, direction: str,
         operator_id: int | None) -> dict[str, Any]:
    return {"site_id": site_id, "dialog_id": dialog_id, "direction": direction, "operator_id": operator_id,
            "provider_id": e.provider_id, "kind": e.kind, "text": e.text, "media": e.media, "reply_to": e.reply_to,
            "buttons": e.buttons, "payload": e.payload, "sent_at": e.at or now, "created_at": now}


def _event(d: Any, message_id: int, kind: str, now: datetime, unread: int, state: str,
           assignee_id: int | None, direction: str = "in", operator_id: int | None = None) -> dict[str, Any]:
    return events.row(events.MESSAGE, d, now, message_id=message_id, direction=direction, kind=kind,
                      operator_id=operator_id, state=state, unread=unread, assignee_id=assignee_id)


def _count_inbound(session: Session, snapshot: dict[int, Any],
                   per_dialog: dict[int, list[tuple[int, Posted, datetime]]]) -> dict[int, tuple[int, int | None]]:
    """SQLite (one writer at a time, BEGIN IMMEDIATE: the dialogs are as read): the dialogs' UPDATE (open, unread
    up, moved up); each dialog's unread count and assignee after it."""
    changes = []
    for dialog_id, msgs in per_dialog.items():
        d, at = snapshot[dialog_id], max(e.at or now for _, e, now in msgs)
        changes.append({"k": dialog_id, "unread": d.unread + len(msgs), "last": max(d.last_message_at, at),
                        "inbound": max(d.last_inbound_at or at, at), "now": max(now for *_, now in msgs)})
    session.flush()  # what the session holds is written before the rows change under it
    session.execute(_SQLITE_UPDATE, changes)
    _expire_dialogs(session, per_dialog)
    return {c["k"]: (c["unread"], snapshot[c["k"]].assignee_id) for c in changes}


def _expire_dialogs(session: Session, ids: Iterable[int]) -> None:
    for dialog_id in ids:  # a Dialog the session holds is read again when next used
        held = session.identity_map.get(identity_key(Dialog, dialog_id))
        if held is not None:
            session.expire(held)


def _pg_store(session: Session, rows: list[dict[str, Any]]) -> tuple[dict[tuple[int, str], int],
                                                                         dict[int, tuple[int, int | None]]]:
    """PostgreSQL, one statement: the messages (a provider id a dialog already has left out) and the UPDATE of
    their dialogs (open, unread up, moved up), kept to dialogs still open or waiting with a cycle (another
    process may have closed one since it was read). The ids of the stored messages, and each updated dialog's
    unread count and assignee after it."""
    made = recordset_insert(session.get_bind().dialect, Message.__table__, rows)
    if made is None:  # not JSON-serialisable: not from a provider's JSON body
        raise TypeError("an inbound message that JSON cannot carry")
    session.flush()  # what the session holds is written before the rows change under it
    stored, after = {}, {}
    for r in session.connection().exec_driver_sql(_PG_STORE.format(insert=made[0]), (made[1],)):
        stored[(r.dialog_id, r.provider_id)] = r.id
        if r.updated is not None:
            after[r.dialog_id] = (r.unread, r.assignee_id)
    _expire_dialogs(session, after)
    return stored, after


# what `record_inbound` sets for a dialog with a running cycle; one text whatever the batch (prepared once)
_PG_STORE = """
WITH ins AS ({insert} ON CONFLICT DO NOTHING RETURNING id, dialog_id, provider_id, sent_at, created_at),
n AS (SELECT dialog_id, count(*) AS n, max(sent_at) AS at, max(created_at) AS stamp FROM ins GROUP BY dialog_id),
upd AS (
    UPDATE inbox_dialogs AS d SET state = 'open', unread = d.unread + n.n,
        last_message_at = GREATEST(d.last_message_at, n.at),
        last_inbound_at = GREATEST(COALESCE(d.last_inbound_at, n.at), n.at), updated_at = n.stamp
    FROM n WHERE d.id = n.dialog_id AND d.state <> 'closed' AND d.cycle_id IS NOT NULL
    RETURNING d.id, d.unread, d.assignee_id)
SELECT ins.id, ins.dialog_id, ins.provider_id, upd.id AS updated, upd.unread, upd.assignee_id
FROM ins LEFT JOIN upd ON upd.id = ins.dialog_id"""
_SQLITE_UPDATE = update(Dialog.__table__).where(Dialog.__table__.c.id == bindparam("k")).values(
    state="open", unread=bindparam("unread"), last_message_at=bindparam("last"), last_inbound_at=bindparam("inbound"),
    updated_at=bindparam("now"))


def _connection(session: Session, e: Connected, now: datetime) -> None:
    conn = session.get(Connection, e.id)
    if conn is None:
        site_id = site_for(session, "telegram", "")
        if site_id is None:
            return
        conn = Connection(id=e.id, site_id=site_id, created_at=now)
        session.add(conn)
    conn.user_id, conn.user_chat_id, conn.user_name = e.user_id, e.user_chat_id, e.user_name
    conn.can_reply, conn.enabled, conn.updated_at = e.can_reply, e.enabled, now
    session.flush()


def _dialog(session: Session, site_id: int, channel: str, account: str, peer: str) -> Dialog | None:
    return session.scalar(select(Dialog).where(Dialog.site_id == site_id, Dialog.channel == channel,
                                               Dialog.account == account, Dialog.peer == peer))


def find_customer(session: Session, site_id: int, channel: str, c: Contact) -> int | None:
    """An existing customer of the site with the contact's messenger id or phone (Instagram ids are the dialogs'
    own: None)."""
    return customers.find_by_contact(session, site_id=site_id, telegram_id=c.telegram_id, vk_id=c.vk_id,
                                     phone="+" + c.phone.lstrip("+") if c.phone else None)


def _new_customer(session: Session, site: Site, channel: str, c: Contact, now: datetime) -> int:
    first = c.first_name or (c.name.split(" ", 1)[0] if c.name else None)
    last = c.last_name or (c.name.split(" ", 1)[1] if c.name and " " in c.name else None)
    values = {"site": site.code, "first_name": first and first[:255], "last_name": last and last[:255],
              "telegram_id": c.telegram_id, "vk_id": c.vk_id}
    if c.phone:
        values.update(phone="+" + c.phone.lstrip("+"), whatsapp_id="+" + c.phone.lstrip("+"))
    try:
        data = CustomerCreate.model_validate({k: v for k, v in values.items() if v},
                                             context={"region": site.default_region})
    except ValidationError:  # a number phonenumbers refuses: the customer without it
        values.pop("phone", None)
        values.pop("whatsapp_id", None)
        data = CustomerCreate.model_validate({k: v for k, v in values.items() if v})
    return customers.create(session, data=data, ctx=ROBOT, now=now).id


def dialog_for(session: Session, site_id: int, channel: str, account: str, c: Contact, now: datetime) -> Dialog:
    """The dialog with this contact, or a new one with the customer found by their id or phone (or a new
    customer). Two deliveries racing to create it: the loser's savepoint rolls back and it takes the winner's."""
    found = _dialog(session, site_id, channel, account, c.peer)
    if found is not None:
        return found
    try:
        with session.begin_nested():
            cid = find_customer(session, site_id, channel, c) or _new_customer(
                session, session.get_one(Site, site_id), channel, c, now)
            d = Dialog(site_id=site_id, customer_id=cid, channel=channel, account=account, peer=c.peer,
                       title=(c.name or None) and c.name[:255], state="open", tags=[], unread=0,
                       last_message_at=now, created_at=now, updated_at=now)
            session.add(d)
            session.flush()
            return d
    except IntegrityError:
        found = _dialog(session, site_id, channel, account, c.peer)
        if found is None:
            raise
        return found


def _ours(session: Session, channel: str, provider_id: str) -> bool:
    """A message the shop's side sent that is one of Retento's replies (VK `message_reply`, Instagram echoes)."""
    return bool(statuses.by_provider_ids(session, channel=channel, provider_ids=[provider_id]))


def _posted(session: Session, site_id: int, conn: Connection | None, e: Posted, now: datetime, *,
            outgoing: bool) -> bool:
    """One message, its dialog found or created (not on the exclusion list: the caller looked)."""
    if outgoing and _ours(session, e.channel, e.provider_id):
        return False
    d = _dialog(session, site_id, e.channel, e.account, e.contact.peer) or dialog_for(
        session, site_id, e.channel, e.account, e.contact, now)
    at = e.at or now
    values = _row(site_id, d.id, e, now, "out" if outgoing else "in",
                  conn.operator_id if outgoing and conn is not None else None)
    msg_id = _insert_once(session, values)
    if msg_id is None:  # a retry, or the same message stored meanwhile by a concurrent delivery
        return False
    msg = Message(id=msg_id, **values)  # what the event tells (the row is stored)
    if outgoing:
        record_answer(session, d, operator_id=msg.operator_id, at=at, now=now)
    else:
        record_inbound(session, d, at=at, now=now)
    announce(session, msg, d, now)
    return True


def _insert_once(session: Session, values: dict[str, Any]) -> int | None:
    """INSERT a message unless its dialog already has one with its provider id: the new id, or None. One statement
    (`ON CONFLICT DO NOTHING RETURNING`, which SQLite and PostgreSQL both run), where a look-up first and the insert
    in a savepoint took four round trips."""
    return session.execute(_INSERT_ONCE[session.get_bind().dialect.name], values).scalar()


# built once: a statement made per call is compiled per call (its ON CONFLICT clause is not in the compiled cache)
_INSERT_ONCE = {name: dialect.insert(Message).on_conflict_do_nothing().returning(Message.id)
                for name, dialect in (("sqlite", sqlite), ("postgresql", postgresql))}


def announce(session: Session, msg: Message, d: Dialog, now: datetime) -> None:
    """The `inbox_message` event of a stored message, with what a dialog list shows of its dialog."""
    bus.record(session, [events.row(events.MESSAGE, d, now, message_id=msg.id, direction=msg.direction,
                                    kind=msg.kind, operator_id=msg.operator_id, state=d.state, unread=d.unread,
                                    assignee_id=d.assignee_id)])


def _changed(session: Session, m: Message, change: str, now: datetime) -> None:
    d = session.get(Dialog, m.dialog_id)
    bus.record(session, [events.row(events.MESSAGE_CHANGED, d, now, message_id=m.id, change=change)])


def record_inbound(session: Session, d: Dialog, *, at: datetime, now: datetime) -> None:
    """A customer's message: the dialog opens (a new response cycle if none runs), counts as unread, moves up,
    and a dialog without an operator is assigned by the site's setting."""
    if dialogs.opens_cycle(d.state, d.cycle_id is not None, inbound=True):
        cycle = Cycle(site_id=d.site_id, dialog_id=d.id, opened_at=at)
        session.add(cycle)
        session.flush()
        d.cycle_id = cycle.id
        if d.assignee_id is None:
            d.assignee_id = auto_assignee(session, d.site_id)
    d.state = dialogs.state_after(d.state, inbound=True)
    d.unread += 1
    d.last_message_at = max(d.last_message_at, at)
    d.last_inbound_at = max(d.last_inbound_at or at, at)
    d.updated_at = now


def record_answer(session: Session, d: Dialog, *, operator_id: int | None, at: datetime, now: datetime) -> None:
    """The shop's side wrote: the first answer of the running cycle is its first response; the dialog waits for
    the customer and has nothing unread."""
    if d.cycle_id is not None:
        session.execute(update(Cycle).where(Cycle.id == d.cycle_id, Cycle.first_response_at.is_(None))
                        .values(first_response_at=at, responder_id=operator_id),
                        execution_options={"synchronize_session": False})
    d.state = dialogs.state_after(d.state, inbound=False)
    d.unread = 0
    d.last_message_at = max(d.last_message_at, at)
    d.updated_at = now


def auto_assignee(session: Session, site_id: int) -> int | None:
    setting = session.get(Setting, site_id)
    if setting is None or setting.assignment == "manual" or not setting.operators:
        return None
    loads = load_of(session, site_id, setting.operators) if setting.assignment == "by_load" else {}
    pick = dialogs.pick_operator(setting.assignment, setting.operators, last=setting.last_assigned_id, loads=loads)
    setting.last_assigned_id = pick.cursor
    return pick.operator_id


def load_of(session: Session, site_id: int, operators: list[int]) -> dict[int, int]:
    """Open and waiting dialogs per operator."""
    rows = session.execute(select(Dialog.assignee_id, func.count()).where(
        Dialog.site_id == site_id, Dialog.assignee_id.in_(operators), Dialog.state != "closed")
        .group_by(Dialog.assignee_id))
    return {op: n for op, n in rows}


def _message(session: Session, site_id: int, e: Edited | Deleted, provider_ids: list[str]) -> list[Message]:
    d = _dialog(session, site_id, e.channel, e.account, e.peer)
    if d is None:
        return []
    return list(session.scalars(select(Message).where(Message.dialog_id == d.id,
                                                      Message.provider_id.in_(provider_ids))))


def _edited(session: Session, site_id: int, e: Edited, now: datetime) -> bool:
    changed = False
    for m in _message(session, site_id, e, [e.provider_id]):
        at = e.at or now
        if m.deleted_at is not None or (m.edited_at is not None and m.edited_at >= at) or (
                m.text == e.text and (e.media is None or m.media == e.media)):
            continue  # a repeat of an edit already applied, or an older one arriving late
        m.edits = [*(m.edits or []), {"text": m.text, "until": at.isoformat()}]
        m.text, m.edited_at = e.text, at
        if e.media is not None:
            m.media = e.media
        _changed(session, m, "edited", now)
        changed = True
    return changed


def _deleted(session: Session, site_id: int, e: Deleted, now: datetime) -> bool:
    """The provider says the message is gone: its content goes too, the row stays as "deleted"."""
    changed = False
    for m in _message(session, site_id, e, list(e.provider_ids)):
        if m.deleted_at is None:
            m.deleted_at, m.text, m.media, m.edits, m.buttons = now, None, None, None, None
            _changed(session, m, "deleted", now)
            changed = True
    return changed
