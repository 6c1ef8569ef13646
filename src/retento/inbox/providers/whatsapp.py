"""WhatsApp Cloud API webhooks (`object: whatsapp_business_account`): inbound `entry[].changes[].value.messages[]`
with the senders in `contacts[]`; statuses in the same bodies are messaging's (`messaging.channels.whatsapp`).
Signed like every Meta webhook (`X-Hub-Signature-256`); the subscription is verified by a GET `hub.challenge`.
WhatsApp gives media ids (fetched from the Graph API by id), mime type and sha256, not sizes. A customer's edit
(`type: edit`, the new content in `edit.message`) and deletion (`type: revoke`) name the message they change by
`original_message_id` (Meta sends them for numbers also used in the WhatsApp Business app, "Coexistence")."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, model_validator

from retento.inbox.inbound import Batch, Contact, Deleted, Edited, Event, Posted, at, clip
from retento.messaging.channels import MAX_TIMESTAMP, webhook_body

CHANNEL = "whatsapp"


class Profile(BaseModel):
    name: str | None = Field(None, max_length=255)


class WaContact(BaseModel):
    wa_id: str | None = Field(None, max_length=32)
    profile: Profile | None = None


class Media(BaseModel):
    id: str | None = Field(None, max_length=255)
    mime_type: str | None = Field(None, max_length=255)
    sha256: str | None = Field(None, max_length=255)
    caption: str | None = None
    filename: str | None = Field(None, max_length=255)
    voice: bool | None = None
    animated: bool | None = None


class Context(BaseModel):
    id: str | None = Field(None, max_length=255)
    forwarded: bool | None = None


class Button(BaseModel):
    text: str | None = None
    payload: str | None = Field(None, max_length=1024)


class Reply(BaseModel):
    id: str = Field(max_length=1024)
    title: str | None = None
    description: str | None = None


class Interactive(BaseModel):
    type: str = Field(max_length=32)
    button_reply: Reply | None = None
    list_reply: Reply | None = None


class Location(BaseModel):
    latitude: float
    longitude: float
    name: str | None = None
    address: str | None = None


class Reaction(BaseModel):
    message_id: str | None = Field(None, max_length=255)
    emoji: str | None = Field(None, max_length=32)


class Content(BaseModel):
    """What a message says: a new message's, or an edited one's new content (`edit.message`)."""

    type: str = Field(max_length=32)
    text: dict[str, Any] | None = None
    image: Media | None = None
    video: Media | None = None
    audio: Media | None = None
    document: Media | None = None
    sticker: Media | None = None
    location: Location | None = None
    button: Button | None = None
    interactive: Interactive | None = None
    reaction: Reaction | None = None
    context: Context | None = None


class Edit(BaseModel):
    original_message_id: str = Field(min_length=1, max_length=255)
    message: Content


class Revoke(BaseModel):
    original_message_id: str = Field(min_length=1, max_length=255)


class Inbound(Content):
    sender: str = Field(alias="from", min_length=1, max_length=32)
    id: str = Field(min_length=1, max_length=255)
    timestamp: int = Field(ge=0, le=MAX_TIMESTAMP)
    edit: Edit | None = None
    revoke: Revoke | None = None

    @model_validator(mode="after")
    def _names_the_message(self) -> Inbound:
        if self.type in ("edit", "revoke") and getattr(self, self.type) is None:
            raise ValueError(f"a {self.type} message names the message it changes in `{self.type}`")
        return self


class Metadata(BaseModel):
    phone_number_id: str | None = Field(None, max_length=64)
    display_phone_number: str | None = Field(None, max_length=64)


class Value(BaseModel):
    metadata: Metadata | None = None
    contacts: list[WaContact] | None = None
    messages: list[Inbound] | None = None


class Change(BaseModel):
    field: str | None = None
    value: Value | None = None


class Entry(BaseModel):
    id: str | None = None
    changes: list[Change] | None = None


class Webhook(BaseModel):
    object: str | None = None
    entry: list[Entry] | None = None


MEDIA = ("image", "video", "audio", "document", "sticker")


def _content(m: Content) -> tuple[str, str | None, dict[str, Any] | None, str | None, list[Any] | None]:
    """(kind, text, media, payload, buttons) of a message."""
    kind, text, media, payload, buttons = m.type, None, None, None, None
    if m.type == "text" and m.text:
        body = m.text.get("body")
        text = body if isinstance(body, str) else None
    elif m.type in MEDIA and (f := getattr(m, m.type)):
        kind = "voice" if m.type == "audio" and f.voice else m.type
        media = {"type": kind, **f.model_dump(exclude_none=True, exclude={"caption"})}
        text = f.caption
    elif m.type == "location" and m.location:
        media = {"type": "location", **m.location.model_dump(exclude_none=True)}
    elif m.type == "button" and m.button:  # a quick-reply button of a template
        kind, text, payload = "button", m.button.text, m.button.payload
    elif m.type == "interactive" and m.interactive:
        r = m.interactive.button_reply or m.interactive.list_reply
        kind = "button"
        if r:
            text, payload, buttons = r.title, r.id, [{"id": r.id, "title": r.title}]
    elif m.type == "reaction" and m.reaction:
        kind, text = "reaction", m.reaction.emoji
    return kind, clip(text), media, payload, buttons


def _event(m: Inbound, names: dict[str, str | None], route: str) -> Event:
    if m.type == "edit" and m.edit is not None:
        _, text, media, _, _ = _content(m.edit.message)
        return Edited(channel=CHANNEL, account="", peer=m.sender, provider_id=m.edit.original_message_id,
                      at=at(m.timestamp), text=text, media=media, route=route)
    if m.type == "revoke" and m.revoke is not None:
        return Deleted(channel=CHANNEL, account="", peer=m.sender, provider_ids=(m.revoke.original_message_id,),
                       route=route)
    kind, text, media, payload, buttons = _content(m)
    name = names.get(m.sender)
    return Posted(channel=CHANNEL, account="", contact=Contact(peer=m.sender, name=name, phone=m.sender),
                  provider_id=m.id, at=at(m.timestamp), kind=kind, text=text, media=media,
                  reply_to=(m.reaction.message_id if m.type == "reaction" and m.reaction else
                            m.context.id if m.context else None),
                  buttons=buttons, payload=payload, sender=m.sender, route=route)


def parse(payload: Any) -> Batch:
    events: list[Event] = []
    for entry in webhook_body(Webhook, payload, "a WhatsApp Cloud API webhook").entry or []:
        for change in entry.changes or []:
            v = change.value
            if v is None or not v.messages:
                continue
            names = {c.wa_id: (c.profile.name if c.profile else None) for c in v.contacts or [] if c.wa_id}
            route = (v.metadata.phone_number_id if v.metadata else None) or ""
            events.extend(_event(m, names, route) for m in v.messages)
    return Batch(CHANNEL, events)
