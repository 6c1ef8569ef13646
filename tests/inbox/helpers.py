"""Posting provider webhooks and reading the inbox through the API."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.inbox import payloads as pl
from tests.inbox.conftest import IG_SECRET, TG_SECRET
from tests.messaging import providers as p

HOOKS = "/api/v1/messaging/webhooks"


def telegram(web: TestClient, body: bytes, secret: str = TG_SECRET):
    return web.post(f"{HOOKS}/telegram", content=body, headers={"X-Telegram-Bot-Api-Secret-Token": secret,
                                                                "Content-Type": "application/json"})


def whatsapp(web: TestClient, body: bytes, secret: str = p.APP_SECRET):
    return web.post(f"{HOOKS}/whatsapp", content=body, headers=pl.meta(body, secret))


def vk(web: TestClient, body: bytes):
    return web.post(f"{HOOKS}/vk", content=body, headers={"Content-Type": "application/json"})


def instagram(web: TestClient, body: bytes, secret: str = IG_SECRET):
    return web.post(f"{HOOKS}/instagram", content=body, headers=pl.meta(body, secret))


def dialogs(api: TestClient, **params: Any) -> list[dict[str, Any]]:
    r = api.get("/api/v1/inbox/dialogs", params=params)
    assert r.status_code == 200, r.text
    return r.json()["items"]


def only_dialog(api: TestClient, **params: Any) -> dict[str, Any]:
    (d,) = dialogs(api, **params)
    return d


def messages(api: TestClient, dialog_id: int) -> list[dict[str, Any]]:
    r = api.get(f"/api/v1/inbox/dialogs/{dialog_id}/messages")
    assert r.status_code == 200, r.text
    return r.json()["items"]


def operator(app, email: str, role: str = "operator", site_ids: list[int] | None = None) -> int:
    from retento.core.db.transactions import transaction
    from retento.users import service as users

    with transaction(app.sessions) as s:
        return users.create(s, data=users.parse_create(email=email, name=email.split("@")[0], role=role,
                                                       password="correct horse battery", site_ids=site_ids),
                            now=app.clock.now()).id


def drain(app, limit: int = 50) -> int:
    total = 0
    for _ in range(limit):
        n = app.worker.tick()
        total += n
        if n == 0:
            return total
    raise AssertionError("worker did not settle")


def reply(api: TestClient, dialog_id: int, operator_id: int, text: str | None = None, key: str = "r1", **kw: Any):
    body = {"operator_id": operator_id, "idempotency_key": key, **({"text": text} if text is not None else {}), **kw}
    return api.post(f"/api/v1/inbox/dialogs/{dialog_id}/replies", json=body)
