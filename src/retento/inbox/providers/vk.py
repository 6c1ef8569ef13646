"""VK Callback API events of a community (`{type, object, group_id, event_id, secret}`): `message_new` (the
customer's message: `object.message`), `message_reply` (a message the community sent: an admin in VK, or one of
Retento's replies, recognised by its id), `message_edit`, and `message_event` (a callback button pressed).
Reads and refusals (`message_read`, `message_deny`) are messaging's. VK keeps repeating an event until it is
answered `ok`; a message is stored once by its id."""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, Field

from retento.inbox.inbound import Batch, Contact, Edited, Event, Posted, at, clip
from retento.messaging.channels import MAX_TIMESTAMP, webhook_body
from retento.messaging.channels.vk import Callback

CHANNEL = "vk"
Id = Field(ge=-(2**63), le=2**63 - 1)


class Attachment(BaseModel):
    type: str = Field(max_length=32)

    model_config = {"extra": "allow"}


class Quoted(BaseModel):
    id: int | None = None
    conversation_message_id: int | None = None


class VkMessage(BaseModel):
    id: int = Id
    date: int = Field(ge=0, le=MAX_TIMESTAMP)
    peer_id: int = Id
    from_id: int = Id
    text: str = ""
    out: int | None = None
    conversation_message_id: int | None = None
    update_time: int | None = Field(None, ge=0, le=MAX_TIMESTAMP)
    attachments: list[Attachment] = Field(default_factory=list, max_length=100)
    reply_message: Quoted | None = None
    payload: str | None = Field(None, max_length=1024)
    geo: dict[str, Any] | None = None


class MessageNew(BaseModel):
    message: VkMessage
    client_info: dict[str, Any] | None = None


def _as_json(value: Any) -> Any:
    """A callback button's payload: VK sends the object the button was given; kept as its JSON text."""
    return value if value is None or isinstance(value, str) else json.dumps(value, ensure_ascii=False,
                                                                             separators=(",", ":"))


class MessageEvent(BaseModel):
    user_id: int = Id
    peer_id: int = Id
    event_id: str = Field(max_length=255)
    payload: Annotated[str | None, BeforeValidator(_as_json), Field(max_length=1024)] = None
    conversation_message_id: int | None = None


def _media(m: VkMessage) -> tuple[str, dict[str, Any] | None]:
    if m.attachments:
        a = m.attachments[0]
        body = (a.model_extra or {}).get(a.type)
        body = body if isinstance(body, dict) else {}
        kind = {"photo": "image", "doc": "document", "audio_message": "voice", "sticker": "sticker",
                "video": "video", "audio": "audio"}.get(a.type, a.type)
        media: dict[str, Any] = {"type": kind}
        if "owner_id" in body and "id" in body:
            media["file_id"] = f"{a.type}{body['owner_id']}_{body['id']}"  # VK's attachment string
        elif "sticker_id" in body:
            media["file_id"] = str(body["sticker_id"])
        for key, name in (("size", "file_size"), ("title", "file_name"), ("ext", "ext"), ("duration", "duration")):
            if isinstance(body.get(key), (int, str)):
                media[name] = body[key]
        return kind, media
    if m.geo:
        return "location", {"type": "location", **{k: v for k, v in m.geo.items() if k == "coordinates"}}
    return "text", None


def _posted(m: VkMessage, outgoing: bool, route: str) -> Posted:
    kind, media = _media(m)
    peer = str(m.peer_id)
    return Posted(channel=CHANNEL, account="", contact=Contact(peer=peer, vk_id=peer if m.peer_id > 0 else None),
                  provider_id=str(m.id), at=at(m.date), kind=kind, text=clip(m.text or None), media=media,
                  reply_to=str(m.reply_message.id) if m.reply_message and m.reply_message.id else None,
                  payload=m.payload, outgoing=outgoing, sender=str(m.from_id), route=route)


def parse(payload: Any) -> Batch:
    """The inbox's part of a Callback API event (anything but the message events: no inbox events)."""
    call = webhook_body(Callback, payload, "a VK Callback API event")
    return parse_call(call)


def parse_call(call: Callback) -> Batch:
    route = str(call.group_id or "")
    events: list[Event] = []
    if call.type == "message_new":
        m = webhook_body(MessageNew, call.object, "the object of a message_new event", field="object").message
        if m.peer_id < 2_000_000_000:  # a person, not a group chat
            events.append(_posted(m, False, route))
    elif call.type == "message_reply":
        m = webhook_body(VkMessage, call.object, "the object of a message_reply event", field="object")
        events.append(_posted(m, True, route))
    elif call.type == "message_edit":
        m = webhook_body(VkMessage, call.object, "the object of a message_edit event", field="object")
        kind, media = _media(m)
        events.append(Edited(channel=CHANNEL, account="", peer=str(m.peer_id), provider_id=str(m.id),
                             at=at(m.update_time or m.date), text=clip(m.text), media=media, route=route))
    elif call.type == "message_event":
        e = webhook_body(MessageEvent, call.object, "the object of a message_event event", field="object")
        peer = str(e.peer_id)
        events.append(Posted(channel=CHANNEL, account="", contact=Contact(peer=peer, vk_id=peer),
                             provider_id=f"event:{e.event_id}", at=None, kind="callback", payload=e.payload,
                             reply_to=None, sender=str(e.user_id), route=route))
    return Batch(CHANNEL, events)
