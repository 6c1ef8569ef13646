"""Signed links in messages: open pixel, click redirect, unsubscribe. A token names a message and carries an
HMAC of it, so nobody can record opens or unsubscribe others by guessing ids."""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import quote

from retento.core import parsing
from retento.messaging import API_PATH

GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")  # 1x1 transparent


def _sig(secret: str, data: str, size: int = 16) -> str:
    digest = hmac.digest(secret.encode(), data.encode("utf-8", "surrogatepass"), hashlib.sha256)
    return base64.urlsafe_b64encode(digest)[:size].decode()


def token(secret: str, message_id: int) -> str:
    return f"{message_id}.{_sig(secret, f'm{message_id}')}"


def message_id(secret: str, value: str) -> int | None:
    """The message id in a token (`<id>.<signature>`), or None if the token is not ours: any other text,
    whatever its characters, is simply not a token."""
    mid, _, sig = value.partition(".")
    number = parsing.integer(mid, lo=1)
    if number is None or not parsing.secret_equal(_sig(secret, f"m{mid}"), sig):
        return None
    return number


def link_sig(secret: str, tok: str, url: str) -> str:
    return _sig(secret, f"{tok}|{url}", 22)


def link_ok(secret: str, tok: str, url: str, sig: str) -> bool:
    """Whether a click link's `s` parameter signs this token and target URL."""
    return parsing.secret_equal(link_sig(secret, tok, url), sig)


class Links:
    def __init__(self, base_url: str, secret: str) -> None:
        self.base, self.secret = base_url.rstrip("/") + API_PATH, secret

    def pixel(self, mid: int) -> str:
        return f"{self.base}/o/{token(self.secret, mid)}.gif"

    def click(self, mid: int, url: str) -> str:
        tok = token(self.secret, mid)
        return f"{self.base}/c/{tok}?url={quote(url, safe='')}&s={link_sig(self.secret, tok, url)}"

    def unsubscribe(self, mid: int) -> str:
        return f"{self.base}/u/{token(self.secret, mid)}"
