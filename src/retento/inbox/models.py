"""Inbox tables: dialogs (one per customer per channel and account), their messages and notes, response cycles,
linked orders, Telegram business connections, the exclusion list and each site's assignment settings."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from retento.core.db.types import Base, JSONType, UTCDateTime
from retento.core.scoping import BySite, Through

BigId = BigInteger().with_variant(Integer, "sqlite")


class Dialog(Base):
    """A conversation with one customer on one channel through one account (`account`: '' for the shop's own
    bot / number / community / page, a Telegram business connection id for a person's business account)."""

    __tablename__ = "inbox_dialogs"
    __site_scope__ = BySite()

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    customer_id: Mapped[int] = mapped_column(BigInteger, index=True)
    channel: Mapped[str] = mapped_column(String(16))  # telegram whatsapp vk instagram
    account: Mapped[str] = mapped_column(String(128), default="")
    peer: Mapped[str] = mapped_column(String(128))  # the provider's chat / user id: where replies go
    title: Mapped[str | None] = mapped_column(String(255))  # the customer's name as the provider shows it
    state: Mapped[str] = mapped_column(String(8))  # open waiting closed
    assignee_id: Mapped[int | None] = mapped_column(Integer)  # a console user (operator)
    tags: Mapped[list[str]] = mapped_column(JSONType, default=list)
    unread: Mapped[int] = mapped_column(Integer, default=0)
    cycle_id: Mapped[int | None] = mapped_column(BigInteger)  # the current response cycle
    last_message_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_inbound_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # WhatsApp: the 24-hour window
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("site_id", "channel", "account", "peer", name="uq_inbox_dialogs_peer"),
        Index("ix_inbox_dialogs_list", "site_id", "state", "last_message_at"),
        Index("ix_inbox_dialogs_assignee", "assignee_id", "state"),
    )


class Message(Base):
    """A message of a dialog: `direction` in (the customer's), out (an operator's, through Retento or from a
    business account's app) or note (internal, never sent). Stored once per provider id; edits keep the earlier
    texts in `edits`, a deletion sets `deleted_at` and clears the content."""

    __tablename__ = "inbox_messages"
    __site_scope__ = BySite()

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    site_id: Mapped[int] = mapped_column(Integer)
    dialog_id: Mapped[int] = mapped_column(ForeignKey("inbox_dialogs.id", ondelete="CASCADE"))
    direction: Mapped[str] = mapped_column(String(8))  # in out note
    operator_id: Mapped[int | None] = mapped_column(Integer)  # out / note: the console user
    provider_id: Mapped[str | None] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16))  # text image video audio voice document sticker location ...
    text: Mapped[str | None] = mapped_column(Text)
    media: Mapped[dict[str, Any] | None] = mapped_column(JSONType)  # type, file_id, size, mime, name, ...
    reply_to: Mapped[str | None] = mapped_column(String(255))  # the provider id of the quoted message
    buttons: Mapped[list[Any] | None] = mapped_column(JSONType)  # keyboard sent, or the button pressed
    payload: Mapped[str | None] = mapped_column(String(1024))  # a button's / callback's data
    outbox_id: Mapped[int | None] = mapped_column(BigInteger)  # messaging's outbox row of a reply: its status
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime())  # the provider's time (ours for replies)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    edited_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    edits: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType)  # earlier texts: [{text, at}]
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("dialog_id", "provider_id", name="uq_inbox_messages_provider"),
        Index("ix_inbox_messages_dialog", "dialog_id", "id"),
    )


class Cycle(Base):
    """From a customer's message in a dialog that was not open to its close: first response and resolution."""

    __tablename__ = "inbox_cycles"
    __site_scope__ = BySite()

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    site_id: Mapped[int] = mapped_column(Integer)
    dialog_id: Mapped[int] = mapped_column(ForeignKey("inbox_dialogs.id", ondelete="CASCADE"), index=True)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime())
    first_response_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    responder_id: Mapped[int | None] = mapped_column(Integer)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_by: Mapped[int | None] = mapped_column(Integer)


class DialogOrder(Base):
    __tablename__ = "inbox_dialog_orders"
    __site_scope__ = Through((("dialog_id", "inbox_dialogs"),))

    dialog_id: Mapped[int] = mapped_column(ForeignKey("inbox_dialogs.id", ondelete="CASCADE"), primary_key=True)
    order_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    linked_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Connection(Base):
    """A Telegram business connection: a person's business account that lets the shop's bot read and answer its
    private chats. `operator_id`: the console user whose account it is (their messages from the app are theirs)."""

    __tablename__ = "inbox_connections"
    __site_scope__ = BySite()

    id: Mapped[str] = mapped_column(String(128), primary_key=True)  # business_connection_id
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    user_id: Mapped[str] = mapped_column(String(64))  # the business account's Telegram user id
    user_chat_id: Mapped[str] = mapped_column(String(64))
    user_name: Mapped[str | None] = mapped_column(String(255))
    operator_id: Mapped[int | None] = mapped_column(Integer)
    can_reply: Mapped[bool] = mapped_column(Boolean)
    enabled: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Exclusion(Base):
    """A contact never imported into the inbox (a person's private chats on a business account)."""

    __tablename__ = "inbox_exclusions"
    __site_scope__ = BySite()

    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    peer: Mapped[str] = mapped_column(String(128), primary_key=True)
    note: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Setting(Base):
    """How a site's new dialogs are assigned, and the round robin's place."""

    __tablename__ = "inbox_settings"
    __site_scope__ = BySite()

    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), primary_key=True)
    assignment: Mapped[str] = mapped_column(String(16))  # manual round_robin by_load
    operators: Mapped[list[int]] = mapped_column(JSONType, default=list)  # who takes dialogs (user ids)
    last_assigned_id: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
