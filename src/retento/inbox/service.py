"""Inbox operations (keyword-only, take a session; the caller owns the transaction): replies through the
channels, notes, state, assignment, tags, linked orders and customers, a site's assignment settings, business
connections and the exclusion list."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from retento.core import bus, scoping
from retento.core.db.bulk import insert_rows
from retento.core.errors import Conflict, DomainError, NotFound
from retento.customers import service as customers
from retento.customers.merges import Merge
from retento.inbox import dialogs, events, ingest
from retento.inbox.models import Connection, Cycle, Dialog, DialogOrder, Exclusion, Message, Setting
from retento.inbox.schemas import DialogEdit, ExclusionIn, NoteIn, ReplyIn, SettingsIn
from retento.messaging import service as messaging
from retento.orders import service as orders
from retento.sites.service import get_site
from retento.users import service as users
from retento.users.models import User

OPERATOR_ROLES = ("admin", "operator")


def get_dialog(session: Session, dialog_id: int) -> Dialog:
    d = session.get(Dialog, dialog_id)
    if d is None:
        raise NotFound("dialog_id", f"dialog {dialog_id} not found")
    return d


def operator(session: Session, user_id: int, site_id: int, *, field: str = "operator_id") -> User:
    """A console user who may work in this site's inbox: an admin or operator, not disabled, with the site."""
    try:
        user = users.get(session, user_id)
    except NotFound:
        raise NotFound(field, f"user {user_id} not found") from None
    if user.disabled or user.role not in OPERATOR_ROLES:
        raise DomainError.one(field, f"user {user_id} is not an active operator (role admin or operator)")
    if user.site_ids is not None and site_id not in user.site_ids:
        raise DomainError.one(field, f"user {user_id} does not work for this dialog's site")
    return user


def _keyed(session: Session, key: str, dialog_id: int) -> Message | None:
    found = session.scalar(select(Message).where(Message.idempotency_key == key))
    if found is None and scoping.of(session) is not None and session.scalar(
            scoping.unscoped(select(Message.id).where(Message.idempotency_key == key))):
        raise Conflict("idempotency_key", "already used for another dialog")
    if found is not None and found.dialog_id != dialog_id:
        raise Conflict("idempotency_key", "already used for another dialog")
    return found


def reply(session: Session, *, dialog: Dialog, data: ReplyIn, now: datetime) -> Message:
    """An operator's answer, queued in messaging's outbox (sent by the worker, with the provider's statuses).
    WhatsApp: free text only within 24 hours of the customer's last message, else an approved template.
    Telegram business dialogs go out through the business connection (which must be enabled and may reply)."""
    if (found := _keyed(session, data.idempotency_key, dialog.id)) is not None:
        return found
    operator(session, data.operator_id, dialog.site_id)
    if data.text is not None and not dialogs.window_open(dialog.channel, dialog.last_inbound_at, now):
        raise DomainError.one("template_id", "the customer's last WhatsApp message is more than 24 hours old: "
                                             "answer with an approved template (template_id)")
    if data.template_id is not None:
        tpl = messaging.get_template(session, data.template_id)
        if tpl.channel != dialog.channel or tpl.site_id != dialog.site_id:
            raise DomainError.one("template_id", f"template {tpl.id} is not a {dialog.channel} template of this site")
    options: dict[str, str] = {}
    if dialog.account:
        conn = session.get(Connection, dialog.account)
        if conn is None or not conn.enabled or not conn.can_reply:
            raise Conflict("dialog_id", "the Telegram business connection of this dialog is off or may not reply")
        options["business_connection_id"] = dialog.account
    quoted = None
    if data.reply_to_message_id is not None:
        quoted = session.get(Message, data.reply_to_message_id)
        if quoted is None or quoted.dialog_id != dialog.id:
            raise NotFound("reply_to_message_id", f"message {data.reply_to_message_id} is not in this dialog")
        if quoted.provider_id:
            options["reply_to"] = quoted.provider_id
    out = messaging.queue_reply(session, site_id=dialog.site_id, customer_id=dialog.customer_id,
                                channel=dialog.channel, address=dialog.peer, text=data.text,
                                template_id=data.template_id, options=options,
                                idempotency_key=f"inbox:{data.idempotency_key}", now=now)
    msg = Message(site_id=dialog.site_id, dialog_id=dialog.id, direction="out", operator_id=data.operator_id,
                  kind="template" if data.template_id else "text", text=data.text,
                  reply_to=quoted.provider_id if quoted else None, outbox_id=out.id,
                  idempotency_key=data.idempotency_key, sent_at=now, created_at=now)
    session.add(msg)
    session.flush()
    ingest.record_answer(session, dialog, operator_id=data.operator_id, at=now, now=now)
    ingest.announce(session, msg, dialog, now)
    return msg


def note(session: Session, *, dialog: Dialog, data: NoteIn, now: datetime) -> Message:
    """An internal note: seen by operators, never sent."""
    if (found := _keyed(session, data.idempotency_key, dialog.id)) is not None:
        return found
    operator(session, data.operator_id, dialog.site_id)
    msg = Message(site_id=dialog.site_id, dialog_id=dialog.id, direction="note", operator_id=data.operator_id,
                  kind="text", text=data.text, idempotency_key=data.idempotency_key, sent_at=now, created_at=now)
    session.add(msg)
    session.flush()
    ingest.announce(session, msg, dialog, now)
    return msg


def edit(session: Session, *, dialog: Dialog, data: DialogEdit, now: datetime) -> Dialog:
    """State, assignee and tags. Closing ends the running response cycle (its resolution time); reopening by
    hand starts a new one."""
    fields = data.model_fields_set
    before = (dialog.state, dialog.assignee_id, list(dialog.tags or []))
    if "assignee_id" in fields and data.assignee_id is not None:
        operator(session, data.assignee_id, dialog.site_id, field="assignee_id")
    if data.operator_id is not None:
        operator(session, data.operator_id, dialog.site_id)
    if "assignee_id" in fields:
        dialog.assignee_id = data.assignee_id
    if data.tags is not None:
        dialog.tags = data.tags
    if data.state is not None and data.state.value != dialog.state:
        if data.state.value == "closed":
            if dialog.cycle_id is not None:
                session.execute(update(Cycle).where(Cycle.id == dialog.cycle_id, Cycle.closed_at.is_(None))
                                .values(closed_at=now, closed_by=data.operator_id),
                                execution_options={"synchronize_session": False})
            dialog.unread = 0
        elif dialog.state == "closed":
            cycle = Cycle(site_id=dialog.site_id, dialog_id=dialog.id, opened_at=now)
            session.add(cycle)
            session.flush()
            dialog.cycle_id = cycle.id
        dialog.state = data.state.value
    dialog.updated_at = now
    changes = [c for c, old, new in (("state", before[0], dialog.state), ("assignee", before[1], dialog.assignee_id),
                                     ("tags", before[2], list(dialog.tags or []))) if old != new]
    if changes:
        bus.record(session, [events.dialog_changed(dialog, now, ",".join(changes))])
    session.flush()
    return dialog


def mark_read(session: Session, *, dialog: Dialog, now: datetime) -> Dialog:
    if dialog.unread:
        dialog.unread = 0
        dialog.updated_at = now
        bus.record(session, [events.dialog_changed(dialog, now, "read")])
    return dialog


def link_order(session: Session, *, dialog: Dialog, order_id: int, now: datetime) -> DialogOrder:
    try:
        order = orders.get(session, order_id)
    except NotFound:
        raise NotFound("order_id", f"order {order_id} not found") from None
    if order.site_id != dialog.site_id:
        raise NotFound("order_id", f"order {order_id} not found on the dialog's site")
    link = session.get(DialogOrder, (dialog.id, order_id))
    if link is None:
        link = DialogOrder(dialog_id=dialog.id, order_id=order_id, linked_at=now)
        session.add(link)
        session.flush()
    return link


def unlink_order(session: Session, *, dialog: Dialog, order_id: int) -> None:
    session.execute(delete(DialogOrder).where(DialogOrder.dialog_id == dialog.id, DialogOrder.order_id == order_id))


def order_ids(session: Session, dialog_id: int) -> list[int]:
    return list(session.scalars(select(DialogOrder.order_id).where(DialogOrder.dialog_id == dialog_id)
                                .order_by(DialogOrder.linked_at, DialogOrder.order_id)))


def relink_customer(session: Session, *, dialog: Dialog, customer_id: int, now: datetime) -> Dialog:
    """The dialog belongs to another customer of its site (the one found was a duplicate)."""
    site = customers.site_of(session, customer_ids=[customer_id]).get(customer_id)
    if site != dialog.site_id:
        raise NotFound("customer_id", f"customer {customer_id} not found on the dialog's site")
    if dialog.customer_id != customer_id:
        dialog.customer_id, dialog.updated_at = customer_id, now
        bus.record(session, [events.dialog_changed(dialog, now, "customer")])
    return dialog


def move_dialogs(session: Session, *, from_customer_id: int, to_customer_id: int, now: datetime) -> int:
    """Merging a duplicate customer: its dialogs become the kept customer's (inbox_dialog_changed, change
    customer, for each, so operators' open lists follow). Returns how many moved."""
    moved = list(session.scalars(select(Dialog).where(Dialog.customer_id == from_customer_id).order_by(Dialog.id)))
    for dialog in moved:
        dialog.customer_id, dialog.updated_at = to_customer_id, now
    bus.record(session, [events.dialog_changed(d, now, "customer") for d in moved])
    return len(moved)


def merge_customers(session: Session, merge: Merge) -> dict[str, int]:
    """The `customer_merge` handler (customers.merging): the merged customers' dialogs move to the kept one."""
    return {"inbox_dialogs": sum(move_dialogs(session, from_customer_id=c, to_customer_id=merge.keep_id, now=merge.now)
                                 for c in merge.merged_ids)}


def set_settings(session: Session, *, site: str, data: SettingsIn, now: datetime) -> Setting:
    s = get_site(session, site)
    for i, op in enumerate(data.operators):
        operator(session, op, s.id, field=f"operators.{i}")
    row = session.get(Setting, s.id, with_for_update=True)
    if row is None:  # two first saves at once on PostgreSQL: the second waits for the first's row, then edits it
        insert_rows(session, Setting.__table__, [{"site_id": s.id, "assignment": data.assignment.value,
                                                  "operators": [], "last_assigned_id": None, "updated_at": now}],
                    skip_existing=True)
        row = session.get_one(Setting, s.id, with_for_update=True, populate_existing=True)
    row.assignment, row.operators, row.updated_at = data.assignment.value, sorted(set(data.operators)), now
    session.flush()
    return row


def get_settings(session: Session, *, site: str) -> Setting:
    s = get_site(session, site)
    return session.get(Setting, s.id) or Setting(site_id=s.id, assignment="manual", operators=[],
                                                last_assigned_id=None)


def list_connections(session: Session) -> list[Connection]:
    return list(session.scalars(select(Connection).order_by(Connection.created_at, Connection.id)))


def set_connection_operator(session: Session, *, connection_id: str, operator_id: int | None,
                            now: datetime) -> Connection:
    conn = session.get(Connection, connection_id)
    if conn is None:
        raise NotFound("connection_id", f"business connection {connection_id!r} not found")
    if operator_id is not None:
        operator(session, operator_id, conn.site_id)
    conn.operator_id, conn.updated_at = operator_id, now
    return conn


def add_exclusion(session: Session, *, site: str, data: ExclusionIn, now: datetime) -> tuple[Exclusion, int]:
    """Never import the contact again; with `purge`, delete what is stored of them on the channel (their
    dialogs, with messages, notes and cycles). Returns the exclusion and how many dialogs were purged."""
    s = get_site(session, site)
    row = session.get(Exclusion, (s.id, data.channel.value, data.peer))
    if row is None:
        row = Exclusion(site_id=s.id, channel=data.channel.value, peer=data.peer, note=data.note, created_at=now)
        session.add(row)
    elif data.note is not None:
        row.note = data.note
    purged = 0
    if data.purge:
        gone = list(session.scalars(select(Dialog).where(Dialog.site_id == s.id, Dialog.channel == data.channel,
                                                         Dialog.peer == data.peer)))
        ids = [d.id for d in gone]
        if ids:  # operators' screens showing them hear it (and read the list again)
            bus.record(session, [events.dialog_changed(d, now, "purged") for d in gone])
            for model in (Message, Cycle, DialogOrder):
                session.execute(delete(model).where(model.dialog_id.in_(ids)))
            session.execute(delete(Dialog).where(Dialog.id.in_(ids)))
            purged = len(ids)
    session.flush()
    return row, purged


def list_exclusions(session: Session, *, site: str) -> list[Exclusion]:
    s = get_site(session, site)
    return list(session.scalars(select(Exclusion).where(Exclusion.site_id == s.id)
                                .order_by(Exclusion.channel, Exclusion.peer)))


def remove_exclusion(session: Session, *, site: str, channel: str, peer: str) -> None:
    s = get_site(session, site)
    row = session.get(Exclusion, (s.id, channel, peer))
    if row is None:
        raise NotFound("peer", f"{channel} contact {peer!r} is not excluded")
    session.delete(row)
