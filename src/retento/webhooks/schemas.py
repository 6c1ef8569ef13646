from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, field_validator

from retento.core.parsing import Flag
from retento.customers import events as customer_events
from retento.orders import events as order_events

EVENT_TYPES = ("*", *customer_events.ALL, *order_events.ALL)


def _types(v: list[str] | None) -> list[str] | None:
    if v is None:
        return None
    unknown = sorted(set(v) - set(EVENT_TYPES))
    if unknown:
        raise ValueError(f"unknown event type {unknown[0]!r} (known: {', '.join(EVENT_TYPES)})")
    return sorted(set(v), key=EVENT_TYPES.index)


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "url": "https://shop.example/hooks/retento", "event_types": ["order_created", "order_status_changed"],
        "description": "order sync"}]})

    url: AnyHttpUrl = Field(description="http(s) URL the events are POSTed to")
    event_types: list[str] = Field(min_length=1, max_length=50, description=f"Any of {', '.join(EVENT_TYPES)}")
    description: str | None = Field(None, max_length=255)

    _check = field_validator("event_types")(classmethod(lambda cls, v: _types(v)))

    @field_validator("url")
    @classmethod
    def _length(cls, v: AnyHttpUrl) -> AnyHttpUrl:
        if len(str(v)) > 2000:
            raise ValueError("URL longer than 2000 characters")
        return v


class WebhookPatch(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"active": True}]})

    url: AnyHttpUrl | None = None
    event_types: list[str] | None = Field(None, min_length=1, max_length=50)
    description: str | None = Field(None, max_length=255)
    active: Flag | None = Field(None, description="true re-enables a disabled subscription")

    _check = field_validator("event_types")(classmethod(lambda cls, v: _types(v)))


class WebhookOut(BaseModel):
    id: int
    url: str
    event_types: list[str]
    description: str | None
    active: bool
    consecutive_failures: int
    disabled_at: dt.datetime | None
    disabled_reason: str | None
    created_at: dt.datetime
    secret: str | None = Field(None, description="Signing secret; returned only when the subscription is created")

    model_config = ConfigDict(from_attributes=True, json_schema_extra={"examples": [{
        "id": 1, "url": "https://shop.example/hooks/retento", "event_types": ["order_created"],
        "description": None, "active": True, "consecutive_failures": 0, "disabled_at": None,
        "disabled_reason": None, "created_at": "2026-03-02T09:00:00Z", "secret": "whsec_..."}]})


class AttemptOut(BaseModel):
    at: dt.datetime
    status_code: int | None
    error: str | None
    duration_ms: int

    model_config = ConfigDict(from_attributes=True)


class DeliveryOut(BaseModel):
    id: int
    subscription_id: int | None = Field(description="The subscription of an event's delivery (else null)")
    trigger_id: int | None = Field(None, description="The trigger of a `webhook` action's call (else null)")
    url: str | None = Field(None, description="A trigger call's URL (a subscription's is on the subscription)")
    event_id: int | None = Field(description="The event delivered, or that made the trigger act")
    event_type: str = Field(description="The event type; `trigger` for a trigger's call")
    status: str = Field(description="pending, sending (a worker is posting it), delivered or failed")
    attempts: int
    next_attempt_at: dt.datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: dt.datetime
    delivered_at: dt.datetime | None
    payload: dict[str, Any]
    log: list[AttemptOut] = []

    model_config = ConfigDict(from_attributes=True, json_schema_extra={"examples": [{
        "id": 7, "subscription_id": 1, "trigger_id": None, "url": None, "event_id": 812, "event_type": "order_created", "status": "delivered",
        "attempts": 2, "next_attempt_at": None, "last_status_code": 200, "last_error": None,
        "created_at": "2026-03-02T09:00:00Z", "delivered_at": "2026-03-02T09:00:30Z",
        "payload": {"id": "evt_812", "type": "order_created", "data": {}},
        "log": [{"at": "2026-03-02T09:00:00Z", "status_code": 503, "error": "unavailable", "duration_ms": 41},
                {"at": "2026-03-02T09:00:30Z", "status_code": 200, "error": None, "duration_ms": 38}]}]})


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    next_cursor: str | None

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "items": DeliveryOut.model_config["json_schema_extra"]["examples"], "next_cursor": "aWQ6NDI"}]})
