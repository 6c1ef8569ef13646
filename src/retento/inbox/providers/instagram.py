"""Instagram messaging webhooks (Meta, `object: instagram`): `entry[].messaging[]` with `sender`, `recipient`,
`timestamp` (milliseconds) and `message` (`mid`, `text`, `attachments[]`, `reply_to`, `quick_reply`,
`is_echo` for the business's own messages, `is_deleted` when the customer unsent it), `message_edit`, or
`postback` (an icebreaker or button). Signed with `X-Hub-Signature-256`, verified by a GET `hub.challenge`, like
WhatsApp's."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from retento.inbox.inbound import Batch, Contact, Deleted, Edited, Event, Posted, at, clip
from retento.messaging.channels import MAX_TIMESTAMP, webhook_body

CHANNEL = "instagram"


class Party(BaseModel):
    id: str = Field(min_length=1, max_length=128)


class Attachment(BaseModel):
    type: str = Field(max_length=32)
    payload: dict[str, Any] | None = None


class ReplyTo(BaseModel):
    mid: str | None = Field(None, max_length=255)
    story: dict[str, Any] | None = None


class QuickReply(BaseModel):
    payload: str | None = Field(None, max_length=1024)


class IgMessage(BaseModel):
    mid: str = Field(min_length=1, max_length=255)
    text: str | None = None
    attachments: list[Attachment] | None = Field(None, max_length=100)
    reply_to: ReplyTo | None = None
    quick_reply: QuickReply | None = None
    is_echo: bool = False
    is_deleted: bool = False
    is_unsupported: bool = False


class Postback(BaseModel):
    mid: str | None = Field(None, max_length=255)
    title: str | None = None
    payload: str | None = Field(None, max_length=1024)


class MessageEdit(BaseModel):
    mid: str = Field(min_length=1, max_length=255)
    text: str | None = None
    num_edit: int | None = None


class Messaging(BaseModel):
    sender: Party
    recipient: Party
    timestamp: int = Field(0, ge=0, le=MAX_TIMESTAMP * 1000)
    message: IgMessage | None = None
    postback: Postback | None = None
    message_edit: MessageEdit | None = None


class Entry(BaseModel):
    id: str | None = Field(None, max_length=128)
    time: int | None = None
    messaging: list[Messaging] | None = None


class Webhook(BaseModel):
    object: str | None = None
    entry: list[Entry] | None = None


def _content(m: IgMessage) -> tuple[str, dict[str, Any] | None]:
    if m.attachments:
        a = m.attachments[0]
        kind = {"image": "image", "video": "video", "audio": "audio", "file": "document"}.get(a.type, a.type)
        media = {"type": kind}
        url = (a.payload or {}).get("url")
        if isinstance(url, str):
            media["url"] = url[:2048]
        return kind, media
    return "text", None


def parse(payload: Any) -> Batch:
    events: list[Event] = []
    for entry in webhook_body(Webhook, payload, "an Instagram messaging webhook").entry or []:
        route = entry.id or ""
        for e in entry.messaging or []:
            echo = bool(e.message and e.message.is_echo)
            customer = e.recipient.id if echo else e.sender.id  # an echo is the business's own message
            when = at(e.timestamp / 1000) if e.timestamp else None
            if e.message and e.message.is_deleted:
                events.append(Deleted(channel=CHANNEL, account="", peer=customer, provider_ids=(e.message.mid,),
                                      route=route))
            elif e.message:
                m = e.message
                kind, media = _content(m)
                events.append(Posted(
                    channel=CHANNEL, account="", contact=Contact(peer=customer), provider_id=m.mid, at=when,
                    kind=kind if not m.quick_reply else "button", text=clip(m.text), media=media,
                    reply_to=m.reply_to.mid if m.reply_to else None,
                    payload=m.quick_reply.payload if m.quick_reply else None, outgoing=echo,
                    sender=e.sender.id, route=route))
            elif e.message_edit:
                events.append(Edited(channel=CHANNEL, account="", peer=customer, provider_id=e.message_edit.mid,
                                     at=when, text=clip(e.message_edit.text), route=route))
            elif e.postback:
                p = e.postback
                events.append(Posted(channel=CHANNEL, account="", contact=Contact(peer=customer),
                                     provider_id=p.mid or f"postback:{e.sender.id}:{e.timestamp}", at=when,
                                     kind="callback", text=clip(p.title), payload=p.payload, sender=e.sender.id,
                                     route=route))
    return Batch(CHANNEL, events)
