"""Webhook bodies as the providers send them (shapes from /work/shared/reference/providers and the providers'
documentation), and their signatures."""

from __future__ import annotations

import json
from typing import Any

from tests.messaging import providers as p

T0 = 1772442000  # 2026-03-02T09:00:00Z, the tests' frozen clock


def tg_user(uid: int = 5551234, first: str = "Mario", last: str = "Bros") -> dict[str, Any]:
    return {"id": uid, "is_bot": False, "first_name": first, "last_name": last, "username": "MarioLovesPeach",
            "language_code": "it"}


def tg_chat(uid: int = 5551234, first: str = "Mario", last: str = "Bros") -> dict[str, Any]:
    return {"id": uid, "first_name": first, "last_name": last, "username": "MarioLovesPeach", "type": "private"}


def tg_message(mid: int, text: str | None = "aaaaaaaaaa", *, uid: int = 5551234, sender: dict | None = None,
               date: int = T0, **extra: Any) -> dict[str, Any]:
    m = {"message_id": mid, "from": sender or tg_user(uid), "chat": tg_chat(uid), "date": date}
    if text is not None:
        m["text"] = text
    m.update(extra)
    return m


def tg_update(update_id: int, **kind: Any) -> bytes:
    return json.dumps({"update_id": update_id, **kind}).encode()


def tg_connection(cid: str = "biz-conn-1", owner: int = 4242, enabled: bool = True) -> dict[str, Any]:
    return {"id": cid, "user": tg_user(owner, "Olga", "Shop"), "user_chat_id": owner, "date": T0,
            "rights": {"can_reply": True, "can_read_messages": True}, "is_enabled": enabled}


def wa_inbound(messages: list[dict[str, Any]], *, wa_id: str = "79161234567", name: str = "Анна") -> bytes:
    return json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "1234567890987654321", "changes": [{
        "value": {"messaging_product": "whatsapp",
                  "metadata": {"display_phone_number": "74951234567", "phone_number_id": p.PHONE_ID},
                  "contacts": [{"profile": {"name": name}, "wa_id": wa_id}],
                  "messages": messages},
        "field": "messages"}]}]}).encode()


def wa_text(wamid: str, body: str, *, sender: str = "79161234567", ts: int = T0, **extra: Any) -> dict[str, Any]:
    return {"from": sender, "id": wamid, "timestamp": str(ts), "text": {"body": body}, "type": "text", **extra}


def vk_event(kind: str, obj: dict[str, Any], secret: str = "vk-secret", event_id: str = "ev1") -> bytes:
    return json.dumps({"type": kind, "object": obj, "group_id": 123456, "event_id": event_id, "v": "5.199",
                       "secret": secret}).encode()


def vk_message(mid: int, text: str, *, peer: int = 7770001, from_id: int | None = None, date: int = T0,
               **extra: Any) -> dict[str, Any]:
    return {"id": mid, "date": date, "peer_id": peer, "from_id": peer if from_id is None else from_id,
            "text": text, "conversation_message_id": mid, "attachments": [], "fwd_messages": [], "important": False,
            "is_hidden": False, "out": 0 if from_id is None else 1, **extra}


def vk_new(mid: int, text: str, **kw: Any) -> bytes:
    return vk_event("message_new", {"message": vk_message(mid, text, **kw), "client_info": {
        "button_actions": ["text", "vkpay", "open_app", "location", "open_link", "callback"], "keyboard": True,
        "inline_keyboard": True, "carousel": True, "lang_id": 0}}, event_id=f"new{mid}")


def ig_body(items: list[dict[str, Any]], ig_id: str = p.IG_ID) -> bytes:
    return json.dumps({"object": "instagram", "entry": [{"id": ig_id, "time": T0 * 1000,
                                                         "messaging": items}]}).encode()


def ig_message(mid: str, text: str | None, *, igsid: str = "9000111222", echo: bool = False,
               ts: int = T0 * 1000, **extra: Any) -> dict[str, Any]:
    msg = {"mid": mid, **({"text": text} if text is not None else {}), **extra}
    if echo:
        msg["is_echo"] = True
    sender, recipient = (p.IG_ID, igsid) if echo else (igsid, p.IG_ID)
    return {"sender": {"id": sender}, "recipient": {"id": recipient}, "timestamp": ts, "message": msg}


def meta(body: bytes, secret: str) -> dict[str, str]:
    return {"X-Hub-Signature-256": p.meta_signature(body, secret), "Content-Type": "application/json"}
