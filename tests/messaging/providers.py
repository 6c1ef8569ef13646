"""Local servers that implement the providers' public contracts on loopback (tests talk to them over real
sockets): WhatsApp Cloud API, Telegram Bot API, VK API, Twilio Messages, FCM HTTP v1, Instagram messaging, and an SMTP server
(aiosmtpd). Each records what it received; tests read that through `/_fake/...` like any other client."""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import math
import re
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlparse

from aiosmtpd.controller import Controller

WA_TOKEN, TG_TOKEN, VK_TOKEN, FCM_TOKEN = "wa-token", "123456:tg-token", "vk-token", "fcm-access-token"
IG_TOKEN, IG_ID = "ig-token", "17841400000000001"
TWILIO_SID, TWILIO_AUTH = "AC" + "a" * 32, "twilio-auth-token"
PHONE_ID = "1122334455667"
APP_SECRET = "wa-app-secret"


@dataclass
class State:
    sent: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {k: [] for k in
                                                                         ("whatsapp", "telegram", "vk", "sms", "push",
                                                                                    "instagram")})
    vk_seen: dict[tuple[str, str], int] = field(default_factory=dict)
    delay: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    ids: itertools.count = field(default_factory=lambda: itertools.count(1))


GSM = ("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿"
       "abcdefghijklmnopqrstuvwxyzäöñüà")
GSM_EXT = "^{}\\[~]|€\f"


def twilio_segments(body: str) -> int:
    septets = 0
    for ch in body:
        if ch in GSM:
            septets += 1
        elif ch in GSM_EXT:
            septets += 2
        else:
            units = sum(2 if ord(c) > 0xFFFF else 1 for c in body)
            return 1 if units <= 70 else math.ceil(units / 67)
    return 1 if septets <= 160 else math.ceil(septets / 153)


def make_handler(state: State):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # no 40 ms delayed-ACK stalls on keep-alive

        def log_message(self, *args: Any) -> None:
            pass

        def _reply(self, code: int, body: Any, ctype: str = "application/json") -> None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802
            path = urlparse(self.path)
            if path.path.startswith("/_fake/sent/"):
                with state.lock:
                    return self._reply(200, state.sent[path.path.rsplit("/", 1)[1]])
            self._reply(404, {"error": "not found"})

        def do_POST(self) -> None:  # noqa: N802
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            path = urlparse(self.path).path
            if state.delay:
                time.sleep(state.delay)
            if path == "/_fake/delay":
                state.delay = float(json.loads(raw)["seconds"])
                return self._reply(200, {"ok": True})
            if path == "/_fake/reset":
                with state.lock:
                    for v in state.sent.values():
                        v.clear()
                    state.vk_seen.clear()
                return self._reply(200, {"ok": True})
            for pattern, fn in ROUTES:
                m = re.fullmatch(pattern, path)
                if m:
                    code, body = fn(state, self.headers, raw, *m.groups())
                    return self._reply(code, body)
            self._reply(404, {"error": "no such method"})

    return Handler


def whatsapp_send(state: State, headers: Any, raw: bytes, version: str, phone_id: str) -> tuple[int, Any]:
    if headers.get("Authorization") != f"Bearer {WA_TOKEN}":
        return 401, {"error": {"message": "Invalid OAuth access token - Cannot parse access token",
                               "type": "OAuthException", "code": 190, "fbtrace_id": "Fake1"}}
    body = json.loads(raw)
    to = str(body.get("to", ""))
    if body.get("messaging_product") != "whatsapp" or body.get("type") not in ("text", "template") or \
            not to.isdigit() or phone_id != PHONE_ID:
        return 400, {"error": {"message": "(#100) Invalid parameter", "type": "OAuthException", "code": 100,
                               "fbtrace_id": "Fake2"}}
    if to.endswith("000000"):
        return 400, {"error": {"message": "(#131026) Message undeliverable", "type": "OAuthException",
                               "code": 131026, "fbtrace_id": "Fake3"}}
    if to.endswith("429429"):
        return 400, {"error": {"message": "(#130429) Rate limit hit", "type": "OAuthException", "code": 130429,
                               "fbtrace_id": "Fake4"}}
    with state.lock:
        n = next(state.ids)
        wamid = "wamid." + base64.b64encode(f"HBgL{to}{n:012d}".encode()).decode().rstrip("=")
        state.sent["whatsapp"].append({"id": wamid, "to": to, "body": body})
    return 200, {"messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": to}],
                 "messages": [{"id": wamid}]}


def telegram_send(state: State, headers: Any, raw: bytes, token: str) -> tuple[int, Any]:
    if token != TG_TOKEN:
        return 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
    body = json.loads(raw)
    chat = str(body.get("chat_id", ""))
    if not body.get("text"):
        return 400, {"ok": False, "error_code": 400, "description": "Bad Request: message text is empty"}
    if chat == "403":
        return 403, {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}
    if chat == "429":
        return 429, {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 7",
                     "parameters": {"retry_after": 7}}
    with state.lock:
        n = next(state.ids)
        state.sent["telegram"].append({"message_id": n, "chat_id": chat, "body": body})
    return 200, {"ok": True, "result": {"message_id": n, "from": {"id": 123456, "is_bot": True, "first_name": "Shop"},
                                        "chat": {"id": int(chat), "type": "private"}, "date": int(time.time()),
                                        "text": body["text"]}}


def vk_send(state: State, headers: Any, raw: bytes) -> tuple[int, Any]:
    form = dict(parse_qsl(raw.decode()))
    if form.get("access_token") != VK_TOKEN:
        return 200, {"error": {"error_code": 5, "error_msg": "User authorization failed: invalid access_token"}}
    if not form.get("v") or "random_id" not in form:
        return 200, {"error": {"error_code": 100, "error_msg": "One of the parameters specified was missing or "
                                                              "invalid: random_id is a required parameter"}}
    peer = form.get("peer_id", "")
    if peer == "901":
        return 200, {"error": {"error_code": 901, "error_msg": "Can't send messages for users without permission"}}
    with state.lock:
        key = (peer, form["random_id"])
        if key in state.vk_seen:  # the same random_id again: not delivered twice
            return 200, {"response": state.vk_seen[key]}
        n = next(state.ids)
        state.vk_seen[key] = n
        state.sent["vk"].append({"id": n, "peer_id": peer, "form": form})
    return 200, {"response": n}


def twilio_send(state: State, headers: Any, raw: bytes, sid: str) -> tuple[int, Any]:
    expected = "Basic " + base64.b64encode(f"{TWILIO_SID}:{TWILIO_AUTH}".encode()).decode()
    if sid != TWILIO_SID or headers.get("Authorization") != expected:
        return 401, {"code": 20003, "message": "Authenticate", "more_info": "https://www.twilio.com/docs/errors/20003",
                     "status": 401}
    form = dict(parse_qsl(raw.decode()))
    to = form.get("To", "")
    if to == "+15005550001" or not re.fullmatch(r"\+\d{8,15}", to):
        return 400, {"code": 21211, "message": f"The 'To' number {to} is not a valid phone number.",
                     "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400}
    with state.lock:
        n = next(state.ids)
        msid = f"SM{n:032x}"
        segs = twilio_segments(form.get("Body", ""))
        state.sent["sms"].append({"sid": msid, "to": to, "form": form, "segments": segs})
    return 201, {"account_sid": sid, "api_version": "2010-04-01", "body": form.get("Body"), "direction": "outbound-api",
                 "error_code": None, "error_message": None, "from": form.get("From"), "num_media": "0",
                 "messaging_service_sid": form.get("MessagingServiceSid"), "num_segments": str(segs), "price": None,
                 "price_unit": "USD", "sid": msid, "status": "queued", "to": to,
                 "uri": f"/2010-04-01/Accounts/{sid}/Messages/{msid}.json"}


def fcm_send(state: State, headers: Any, raw: bytes, project: str) -> tuple[int, Any]:
    if headers.get("Authorization") != f"Bearer {FCM_TOKEN}":
        return 401, {"error": {"code": 401, "message": "Request had invalid authentication credentials.",
                               "status": "UNAUTHENTICATED"}}
    msg = json.loads(raw).get("message") or {}
    if str(msg.get("token", "")).startswith("unregistered"):
        return 404, {"error": {"code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND",
                               "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                                            "errorCode": "UNREGISTERED"}]}}
    with state.lock:
        n = next(state.ids)
        name = f"projects/{project}/messages/0:{1725451046530444 + n}%47bfbbff47bfbbff"
        state.sent["push"].append({"name": name, "message": msg})
    return 200, {"name": name}


def instagram_send(state: State, headers: Any, raw: bytes, version: str, ig_id: str) -> tuple[int, Any]:
    if headers.get("Authorization") != f"Bearer {IG_TOKEN}":
        return 401, {"error": {"message": "Invalid OAuth access token.", "type": "OAuthException", "code": 190}}
    body = json.loads(raw)
    recipient = str((body.get("recipient") or {}).get("id", ""))
    if ig_id != IG_ID or not recipient or not (body.get("message") or {}).get("text"):
        return 400, {"error": {"message": "(#100) Invalid parameter", "type": "OAuthException", "code": 100}}
    with state.lock:
        n = next(state.ids)
        mid = f"aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQxNDAw{n:012d}"
        state.sent["instagram"].append({"message_id": mid, "to": recipient, "body": body})
    return 200, {"recipient_id": recipient, "message_id": mid}


ROUTES = [
    (r"/ig/(v\d+\.\d+)/(\d+)/messages", instagram_send),
    (r"/(v\d+\.\d+)/(\d+)/messages", whatsapp_send),
    (r"/bot([^/]+)/sendMessage", telegram_send),
    (r"/method/messages\.send", vk_send),
    (r"/2010-04-01/Accounts/([^/]+)/Messages\.json", twilio_send),
    (r"/v1/projects/([^/]+)/messages:send", fcm_send),
]


class HttpProviders:
    """All HTTP providers on one loopback port, served from a thread."""

    def __init__(self) -> None:
        self.state = State()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(self.state))
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def sent(self, provider: str) -> list[dict[str, Any]]:
        with self.state.lock:
            return list(self.state.sent[provider])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- provider-side webhook bodies ------------------------------------------------------------------------------

def whatsapp_statuses(items: list[dict[str, Any]]) -> bytes:
    """A Cloud API webhook body carrying several statuses, as Meta batches them."""
    statuses = []
    for it in items:
        st = {"id": it["id"], "status": it["status"], "timestamp": str(it.get("timestamp", int(time.time()))),
              "recipient_id": it["to"]}
        if it.get("callback"):
            st["biz_opaque_callback_data"] = it["callback"]
        if it["status"] == "failed":
            st["errors"] = [{"code": 131026, "title": "Message undeliverable", "message": "Message undeliverable"}]
        elif it["status"] in ("sent", "delivered"):
            st["conversation"] = {"id": "7270432eae37498234f4444b35ffc5", "origin": {"type": "marketing"}}
            st["pricing"] = {"billable": True, "pricing_model": "PMP", "category": "marketing"}
        statuses.append(st)
    return json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "5467539754836534", "changes": [{
        "value": {"messaging_product": "whatsapp",
                  "metadata": {"display_phone_number": "74951234567", "phone_number_id": PHONE_ID},
                  "statuses": statuses}, "field": "messages"}]}]}).encode()


def meta_signature(body: bytes, secret: str = APP_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- SMTP ----------------------------------------------------------------------------------------------------

class SmtpServer:
    """aiosmtpd on loopback. Recipients starting with `bounce` get 550 (unknown user), `later` get 451."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        outer = self

        class Handler:
            async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
                if address.startswith("bounce"):
                    return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address
                if address.startswith("later"):
                    return "451 4.7.1 Greylisted, please try again later"
                envelope.rcpt_tos.append(address)
                return "250 OK"

            async def handle_DATA(self, server, session, envelope):  # noqa: N802
                outer.messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                                       "raw": envelope.content})
                return "250 2.0.0 Ok: queued"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def parsed(self, i: int):
        return message_from_bytes(self.messages[i]["raw"], policy=policy.default)

    def close(self) -> None:
        self.controller.stop()
