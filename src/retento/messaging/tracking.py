"""Signed links in messages: open pixel, click redirect, unsubscribe. A token names a message and carries an
HMAC of it, so nobody can record opens or unsubscribe others by guessing ids."""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import quote

GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")  # 1x1 transparent


def _sig(secret: str, data: str, size: int = 16) -> str:
    return base64.urlsafe_b64encode(hmac.digest(secret.encode(), data.encode(), hashlib.sha256))[:size].decode()


def token(secret: str, message_id: int) -> str:
    return f"{message_id}.{_sig(secret, f'm{message_id}')}"


def message_id(secret: str, value: str) -> int | None:
    """The message id in a token, or None if the token is not ours."""
    mid, _, sig = value.partition(".")
    if not mid.isdigit() or not hmac.compare_digest(_sig(secret, f"m{mid}"), sig):
        return None
    return int(mid)


def link_sig(secret: str, tok: str, url: str) -> str:
    return _sig(secret, f"{tok}|{url}", 22)


class Links:
    def __init__(self, base_url: str, secret: str) -> None:
        self.base, self.secret = base_url.rstrip("/") + "/api/messaging", secret

    def pixel(self, mid: int) -> str:
        return f"{self.base}/o/{token(self.secret, mid)}.gif"

    def click(self, mid: int, url: str) -> str:
        tok = token(self.secret, mid)
        return f"{self.base}/c/{tok}?url={quote(url, safe='')}&s={link_sig(self.secret, tok, url)}"

    def unsubscribe(self, mid: int) -> str:
        return f"{self.base}/u/{token(self.secret, mid)}"
