"""The provider webhooks are `routing.direct` routes, answered before FastAPI's routing and request handling: the
answers are those of the same routes through FastAPI, to the byte, good or bad (signature, body, NUL, size)."""

from __future__ import annotations

import pytest
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.testclient import TestClient

from retento.api import create_app
from retento.core.rest import routing
from retento.core.rest.problems import ProblemRoute, no_route
from tests.inbox import helpers as h, payloads as pl
from tests.inbox.conftest import IG_SECRET, TG_SECRET
from tests.messaging import providers as p

TG = {"X-Telegram-Bot-Api-Secret-Token": TG_SECRET, "Content-Type": "application/json"}


def _through_fastapi(api: FastAPI) -> FastAPI:
    api.user_middleware = [m for m in api.user_middleware if m.cls is not routing.Direct]
    return api


def _cases() -> list[tuple[str, bytes, dict[str, str]]]:
    good = pl.tg_update(1, message=pl.tg_message(10, "Где мой заказ?"))
    wa = pl.wa_inbound([pl.wa_text("wamid.1", "привет")])
    ig = pl.ig_body([pl.ig_message("mid.1", "hi")])
    return [
        ("telegram", good, TG),
        ("telegram", good, TG),  # the retry: stored once, 200 again
        ("telegram", good, {**TG, "X-Telegram-Bot-Api-Secret-Token": "guess"}),
        ("telegram", good, {"Content-Type": "application/json"}),
        ("telegram", b'{"message": {"message_id": 1}}', TG),
        ("telegram", b"not json", TG),
        ("telegram", b'{"update_id": 3, "message": {"text": "\\u0000"}}', TG),
        ("telegram", b'{"update_id": 4, "x": "' + b"a" * 3000 + b'"}', TG),  # past the body limit: 413
        ("whatsapp", wa, pl.meta(wa, p.APP_SECRET)),
        ("whatsapp", wa, pl.meta(wa, "guess")),
        ("vk", pl.vk_new(1, "hi"), {"Content-Type": "application/json"}),
        ("vk", pl.vk_event("message_new", {}, secret="guess"), {"Content-Type": "application/json"}),
        ("vk", b"[]", {"Content-Type": "application/json"}),
        ("instagram", ig, pl.meta(ig, IG_SECRET)),
        ("instagram", ig, pl.meta(ig, "guess")),
        ("twilio", b"MessageSid=SM1&MessageStatus=delivered", {"X-Twilio-Signature": "guess"}),
    ]


def test_direct_webhooks_answer_as_their_fastapi_routes(iapp, api):
    iapp.settings = iapp.settings.model_copy(update={"api_max_body_bytes": 2000})
    with TestClient(create_app(iapp)) as direct, TestClient(_through_fastapi(create_app(iapp))) as routed:
        handlers = routing.direct_handlers(direct.app)
        assert {path.rsplit("/", 1)[1] for _, path in handlers} == {"telegram", "whatsapp", "vk", "instagram",
                                                                    "twilio"}
        assert len(handlers) == 10  # /api/v1/messaging and the old /api/messaging
        for prefix in (h.HOOKS, "/api/messaging/webhooks"):
            codes = []
            for provider, body, headers in _cases():
                a = direct.post(f"{prefix}/{provider}", content=body, headers=headers)
                b = routed.post(f"{prefix}/{provider}", content=body, headers=headers)
                assert (a.status_code, a.headers.get("content-type"), a.content) == (
                    b.status_code, b.headers.get("content-type"), b.content), (provider, body[:60])
                codes.append(a.status_code)
            assert codes == [200, 200, 401, 401, 400, 400, 422, 413, 200, 401, 200, 401, 400, 200, 401, 401]
            for method in ("GET", "PUT"):  # a method the path does not have: the same 405 (GET: Meta's check)
                a, b = direct.request(method, f"{prefix}/telegram"), routed.request(method, f"{prefix}/telegram")
                assert (a.status_code, a.headers.get("allow"), a.content) == (
                    b.status_code, b.headers.get("allow"), b.content)
    assert sorted(d["channel"] for d in h.dialogs(api)) == ["instagram", "telegram", "vk", "whatsapp"]


def _direct_app(*, shadowed: bool) -> FastAPI:
    router = APIRouter(route_class=ProblemRoute)
    if shadowed:
        @router.post("/hooks/{name}")
        async def any_hook(name: str) -> Response:
            return Response(name)

    @router.post("/hooks/x")
    @routing.direct
    async def hook_x(request: Request) -> Response:
        return Response("x")

    api = FastAPI()
    api.include_router(router)
    return api


def test_a_direct_route_that_an_earlier_route_takes_is_refused():
    api = _direct_app(shadowed=False)
    routing.install(api, no_route=no_route)
    assert TestClient(api).post("/hooks/x").text == "x"
    with pytest.raises(TypeError, match="earlier route"):
        routing.install(_direct_app(shadowed=True), no_route=no_route)
