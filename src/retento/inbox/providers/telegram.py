"""Telegram Bot API updates (`setWebhook` with `secret_token`: each update carries the header
`X-Telegram-Bot-Api-Secret-Token`). Read: `message`, `edited_message`, `callback_query` of private chats with the
bot; `business_connection`, `business_message`, `edited_business_message`, `deleted_business_messages` of a
person's business account. `update_id` orders updates; a message is stored once by its chat and message id.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from retento.inbox.inbound import Batch, Connected, Contact, Deleted, Edited, Event, Posted, at, clip
from retento.messaging.channels import MAX_TIMESTAMP, webhook_body

CHANNEL = "telegram"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
Time = Field(ge=0, le=MAX_TIMESTAMP)
Id = Field(ge=-(2**63), le=2**63 - 1)


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True)  # unknown fields of the Bot API are ignored


class User(_Model):
    id: int = Id
    is_bot: bool = False
    first_name: str = Field("", max_length=255)
    last_name: str | None = Field(None, max_length=255)
    username: str | None = Field(None, max_length=255)


class Chat(_Model):
    id: int = Id
    type: str = Field(max_length=32)
    first_name: str | None = Field(None, max_length=255)
    last_name: str | None = Field(None, max_length=255)
    username: str | None = Field(None, max_length=255)


class File(_Model):
    file_id: str = Field(max_length=255)
    file_unique_id: str | None = Field(None, max_length=255)
    file_size: int | None = Field(None, ge=0)
    mime_type: str | None = Field(None, max_length=255)
    file_name: str | None = Field(None, max_length=255)
    width: int | None = None
    height: int | None = None
    duration: int | None = None


class Location(_Model):
    latitude: float
    longitude: float


class SharedContact(_Model):
    phone_number: str = Field(max_length=64)
    first_name: str = Field("", max_length=255)
    user_id: int | None = None


class Quoted(_Model):
    message_id: int = Id


class Message(_Model):
    message_id: int = Id
    sender: User | None = Field(None, alias="from")
    chat: Chat
    date: int = Time
    edit_date: int | None = Field(None, ge=0, le=MAX_TIMESTAMP)
    business_connection_id: str | None = Field(None, max_length=128)
    sender_business_bot: User | None = None
    text: str | None = None
    caption: str | None = None
    photo: list[File] | None = None
    document: File | None = None
    video: File | None = None
    audio: File | None = None
    voice: File | None = None
    video_note: File | None = None
    sticker: File | None = None
    animation: File | None = None
    location: Location | None = None
    contact: SharedContact | None = None
    reply_to_message: Quoted | None = None
    reply_markup: dict[str, Any] | None = None


class CallbackQuery(_Model):
    id: str = Field(max_length=255)
    sender: User = Field(alias="from")
    message: Message | None = None
    data: str | None = Field(None, max_length=1024)


class BusinessConnection(_Model):
    id: str = Field(min_length=1, max_length=128)
    user: User
    user_chat_id: int = Id
    date: int = Time
    can_reply: bool | None = None  # before Bot API 9.0
    rights: dict[str, Any] | None = None  # since 9.0: can_reply among them
    is_enabled: bool


class BusinessMessagesDeleted(_Model):
    business_connection_id: str = Field(min_length=1, max_length=128)
    chat: Chat
    message_ids: list[int] = Field(max_length=10_000)


class Update(_Model):
    update_id: int = Field(ge=0, le=2**63 - 1)
    message: Message | None = None
    edited_message: Message | None = None
    business_message: Message | None = None
    edited_business_message: Message | None = None
    deleted_business_messages: BusinessMessagesDeleted | None = None
    business_connection: BusinessConnection | None = None
    callback_query: CallbackQuery | None = None


MEDIA = ("photo", "document", "video", "audio", "voice", "video_note", "sticker", "animation")


def _content(m: Message) -> tuple[str, str | None, dict[str, Any] | None]:
    """(kind, text, media) of a message."""
    text = m.text if m.text is not None else m.caption
    for kind in MEDIA:
        value = getattr(m, kind)
        if value:
            f = max(value, key=lambda p: (p.width or 0) * (p.height or 0)) if isinstance(value, list) else value
            media = {"type": kind, **f.model_dump(exclude_none=True)}
            return kind, clip(text), media
    if m.location:
        return "location", clip(text), {"type": "location", **m.location.model_dump()}
    if m.contact:
        return "contact", clip(text), {"type": "contact", **m.contact.model_dump(exclude_none=True)}
    return "text", clip(text), None


def _contact(chat: Chat, who: User | None) -> Contact:
    name = " ".join(x for x in (chat.first_name, chat.last_name) if x) or chat.username
    return Contact(peer=str(chat.id), name=name, first_name=chat.first_name, last_name=chat.last_name,
                   telegram_id=str(chat.id))


def _posted(m: Message, account: str) -> Posted:
    kind, text, media = _content(m)
    buttons = (m.reply_markup or {}).get("inline_keyboard")
    return Posted(channel=CHANNEL, account=account, contact=_contact(m.chat, m.sender),
                  provider_id=str(m.message_id), at=at(m.date), kind=kind, text=text, media=media,
                  reply_to=str(m.reply_to_message.message_id) if m.reply_to_message else None,
                  buttons=buttons if isinstance(buttons, list) else None,
                  sender=str(m.sender.id) if m.sender else None)


def _edited(m: Message, account: str) -> Edited:
    _, text, media = _content(m)
    return Edited(channel=CHANNEL, account=account, peer=str(m.chat.id), provider_id=str(m.message_id),
                  at=at(m.edit_date or m.date), text=text, media=media)


def parse(payload: Any) -> Batch:
    u = webhook_body(Update, payload, "a Telegram Bot API update")
    events: list[Event] = []
    if u.message and u.message.chat.type == "private":
        events.append(_posted(u.message, ""))
    if u.edited_message and u.edited_message.chat.type == "private":
        events.append(_edited(u.edited_message, ""))
    m = u.business_message
    if m and m.business_connection_id and m.sender_business_bot is None:  # sent by a bot: Retento's own reply
        events.append(_posted(m, m.business_connection_id))
    m = u.edited_business_message
    if m and m.business_connection_id:
        events.append(_edited(m, m.business_connection_id))
    if d := u.deleted_business_messages:
        events.append(Deleted(channel=CHANNEL, account=d.business_connection_id, peer=str(d.chat.id),
                              provider_ids=tuple(str(i) for i in d.message_ids)))
    if c := u.business_connection:
        can_reply = c.can_reply if c.rights is None else bool(c.rights.get("can_reply"))
        name = " ".join(x for x in (c.user.first_name, c.user.last_name) if x) or c.user.username
        events.append(Connected(id=c.id, user_id=str(c.user.id), user_chat_id=str(c.user_chat_id), user_name=name,
                                can_reply=bool(can_reply), enabled=c.is_enabled, at=at(c.date)))
    q = u.callback_query
    if q and q.message and q.message.chat.type == "private":
        events.append(Posted(channel=CHANNEL, account=q.message.business_connection_id or "",
                             contact=_contact(q.message.chat, q.sender), provider_id=f"callback:{q.id}", at=None, kind="callback", text=None, payload=q.data,
                             reply_to=str(q.message.message_id), sender=str(q.sender.id)))
    return Batch(CHANNEL, events)
