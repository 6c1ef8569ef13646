"""The one outgoing HTTP client (httpx) and its SSRF guard, checked when a URL is saved and at every connection.

The policy itself is `retento.core.ssrf` (pure). Here: a `Resolver` (the system's DNS, or a fake in tests), the
`Guard` that resolves a host once and judges every address, and `Client`, whose connections are opened by a
network backend that asks the guard and then connects to the very address it checked. The URL is not rewritten,
so the Host header and TLS (SNI and certificate verification) still use the host name; but nothing resolves the
name a second time, so a DNS answer that changes between the check and the connection (rebinding) cannot lead
to a refused address. Redirects are not followed, and proxies from the environment are not used.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from functools import lru_cache
from ipaddress import ip_address
from typing import Any, Protocol

import httpcore
import httpx
from sqlalchemy.orm import Session

from retento.core import ssrf
from retento.core.errors import DomainError, FieldError

SCHEMES = ("http", "https")
REFUSED = "refused by the outgoing request policy (SSRF)"
SESSION_KEY = "outgoing_guard"  # Session.info key: the application's guard (see `bootstrap`)


class Resolver(Protocol):
    def resolve(self, host: str, port: int) -> list[str]:
        """The addresses `host` resolves to, as text, in the order to try them; OSError if it does not resolve."""
        ...


class SystemResolver:
    """The system's resolver (`getaddrinfo`: /etc/hosts, then DNS)."""

    def resolve(self, host: str, port: int) -> list[str]:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        return list(dict.fromkeys(str(info[4][0]) for info in infos))


class Refused(Exception):
    """The guard refuses a URL; `reason` says why ("127.0.0.1 is a loopback address")."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Guard:
    allow: ssrf.AllowList
    resolver: Resolver

    def addresses(self, host: str, port: int) -> list[ssrf.Address]:
        """The checked addresses to connect to for `host`: Refused if the policy refuses the host or any of its
        addresses; OSError if it does not resolve."""
        reason = ssrf.refusal(host, [], self.allow)  # a name refused whatever it resolves to is not looked up
        if reason is not None:
            raise Refused(reason)
        written = ssrf.literal(host)
        found = [written] if written is not None else [ip_address(a) for a in self.resolver.resolve(host, port)]
        reason = ssrf.refusal(host, found, self.allow)
        if reason is not None:
            raise Refused(reason)
        return found

    def url_refusal(self, url: str) -> str | None:
        """Save time: why `url` may not be called, or None. A host that does not resolve now is accepted: it is
        checked again at every connection."""
        try:
            u = httpx.URL(url)
            host = u.raw_host.decode("ascii")
        except (httpx.InvalidURL, UnicodeError) as exc:
            return f"not a valid URL: {exc}"
        if u.scheme not in SCHEMES:
            return "only http and https URLs can be called"
        if not host:
            return "the URL has no host"
        try:
            self.addresses(host, u.port or (443 if u.scheme == "https" else 80))
        except Refused as exc:
            return exc.reason
        except (OSError, UnicodeError, ValueError):
            return None
        return None


def guard_of(session: Session) -> Guard:
    """The application's guard: `bootstrap` puts it in the `info` of every session of `App.sessions`."""
    guard = session.info.get(SESSION_KEY)
    if guard is None:
        raise RuntimeError("this session does not come from App.sessions: it has no outgoing guard")
    return guard


def check_url(session: Session, url: str, *, field: str = "url") -> None:
    """Save time: a DomainError (422) naming `field` if the guard refuses `url`."""
    reason = guard_of(session).url_refusal(url)
    if reason is not None:
        raise DomainError([FieldError(field, f"{REFUSED}: {reason} (the setting RETENTO_OUTGOING_ALLOW can "
                                             "allow it)")], status=422)


# --- connecting -------------------------------------------------------------------------------------------


class _GuardedBackend(httpcore.NetworkBackend):
    """Opens TCP connections only to addresses the guard has checked, resolving each host exactly once."""

    def __init__(self, guard: Guard) -> None:
        self._guard, self._tcp = guard, httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Any = None) -> httpcore.NetworkStream:
        try:
            addresses = self._guard.addresses(host, port)
        except (OSError, UnicodeError) as exc:
            raise httpcore.ConnectError(f"{host} does not resolve: {exc}") from exc
        error: Exception = httpcore.ConnectError(f"{host} resolves to no address")
        for ip in addresses:
            try:
                return self._tcp.connect_tcp(str(ip), port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        raise error

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Any = None) -> httpcore.NetworkStream:
        raise Refused("unix sockets are not reached")

    def sleep(self, seconds: float) -> None:
        self._tcp.sleep(seconds)


@lru_cache(maxsize=1)
def _tls() -> ssl.SSLContext:
    return httpx.create_ssl_context()


class _GuardedTransport(httpx.HTTPTransport):
    """httpx's own transport (request mapping, errors, streams) over a connection pool of `_GuardedBackend`."""

    def __init__(self, guard: Guard, tls: ssl.SSLContext) -> None:  # not HTTPTransport's: it builds a pool
        # TCP_NODELAY: a request's headers and body leave at once instead of waiting out delayed ACKs.
        self._pool = httpcore.ConnectionPool(ssl_context=tls, max_connections=100, max_keepalive_connections=20,
                                             keepalive_expiry=5.0, network_backend=_GuardedBackend(guard),
                                             socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])


@dataclass(frozen=True)
class Reply:
    status: int | None  # the HTTP status; None when no answer came
    error: str | None  # None for a 2xx answer
    refused: bool = False  # the guard refused the URL: trying again will not help

    @property
    def ok(self) -> bool:
        return self.error is None


class Client:
    """The one outgoing HTTP client: webhook deliveries and trigger webhook calls (`post`, which returns a Reply
    and never raises for network trouble) and the messaging channels' provider APIs (`exchange`, whose answer the
    caller reads). `tls`: the certificates to trust (default: certifi's, or the files SSL_CERT_FILE /
    SSL_CERT_DIR name)."""

    def __init__(self, guard: Guard, *, tls: ssl.SSLContext | None = None) -> None:
        self.guard = guard
        self._http = httpx.Client(transport=_GuardedTransport(guard, tls or _tls()), follow_redirects=False,
                                  trust_env=False)

    def exchange(self, method: str, url: str, *, timeout: float, **request: Any) -> httpx.Response:
        """One request through the guard; `request`: httpx's (json, data, content, headers, auth). Raises Refused
        when the guard refuses the URL and httpx.TransportError for network trouble."""
        if httpx.URL(url).scheme not in SCHEMES:
            raise Refused("only http and https URLs can be called")
        return self._http.request(method, url, timeout=timeout, **request)

    @property
    def is_closed(self) -> bool:
        return self._http.is_closed

    def post(self, url: str, *, content: bytes, headers: dict[str, str], timeout: float) -> Reply:
        try:
            resp = self.exchange("POST", url, content=content, headers=headers, timeout=timeout)
        except Refused as exc:
            return Reply(None, f"{REFUSED}: {exc.reason}", refused=True)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            return Reply(None, f"{type(exc).__name__}: {exc}"[:2000])
        if 200 <= resp.status_code < 300:
            return Reply(resp.status_code, None)
        text = resp.text[:500]
        return Reply(resp.status_code, f"HTTP {resp.status_code}" + (f": {text}" if text else ""))

    def close(self) -> None:
        self._http.close()
