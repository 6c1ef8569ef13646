"""Input of the inbox API and CLI (all validation of a single request)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from retento.inbox.inbound import CHANNELS

Key = Field(min_length=1, max_length=128, description="Idempotency key: a repeat returns the first result")


class State(StrEnum):
    OPEN = "open"
    WAITING = "waiting"
    CLOSED = "closed"


class Assignment(StrEnum):
    MANUAL = "manual"
    ROUND_ROBIN = "round_robin"
    BY_LOAD = "by_load"


class Channel(StrEnum):
    TELEGRAM = "telegram"
    WHATSAPP = "whatsapp"
    VK = "vk"
    INSTAGRAM = "instagram"


assert tuple(c.value for c in Channel) == CHANNELS


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ReplyIn(_In):
    """An operator's answer: free text, or an approved template (WhatsApp outside the 24-hour window)."""

    operator_id: int = Field(gt=0, le=2**31 - 1, description="The console user who answers")
    text: str | None = Field(None, min_length=1, max_length=4096)
    template_id: int | None = Field(None, gt=0, le=2**31 - 1, description="A messaging template of the channel")
    reply_to_message_id: int | None = Field(None, gt=0, description="The inbox message this one quotes")
    idempotency_key: str = Key

    @model_validator(mode="after")
    def _one(self) -> ReplyIn:
        if (self.text is None) == (self.template_id is None):
            raise ValueError("give text or template_id (one of them)")
        return self


class NoteIn(_In):
    operator_id: int = Field(gt=0, le=2**31 - 1)
    text: str = Field(min_length=1, max_length=4096)
    idempotency_key: str = Key


class DialogEdit(_In):
    """Only the fields present change. `assignee_id: null` unassigns; `operator_id`: who makes the change."""

    state: State | None = None
    assignee_id: int | None = Field(None, gt=0, le=2**31 - 1)
    tags: list[str] | None = Field(None, max_length=50)
    operator_id: int | None = Field(None, gt=0, le=2**31 - 1)

    @model_validator(mode="after")
    def _tags(self) -> DialogEdit:
        if self.tags is not None:
            clean = [t.strip() for t in self.tags]
            if any(not t or len(t) > 64 for t in clean):
                raise ValueError("tags: each 1 to 64 characters")
            self.tags = list(dict.fromkeys(clean))
        return self


class OrderLink(_In):
    order_id: int = Field(gt=0)


class CustomerLink(_In):
    customer_id: int = Field(gt=0)


class SettingsIn(_In):
    assignment: Assignment
    operators: list[int] = Field(default_factory=list, max_length=1000,
                                 description="Console users (ids) who take new dialogs")


class ExclusionIn(_In):
    channel: Channel = Channel.TELEGRAM
    peer: str = Field(min_length=1, max_length=128, pattern=r"^-?[0-9A-Za-z_.]+$",
                      description="The contact's id on the channel (Telegram user id)")
    note: str | None = Field(None, max_length=255)
    purge: bool = Field(False, description="Also delete the dialogs and messages already stored for the contact")


class ConnectionEdit(_In):
    operator_id: int | None = Field(None, gt=0, le=2**31 - 1,
                                    description="The console user whose business account it is")
