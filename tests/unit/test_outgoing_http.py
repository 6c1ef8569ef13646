"""The one outgoing HTTP client: it connects only to the address its guard checked, resolving a name once."""

from __future__ import annotations

import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from retento.core.http import Client, Guard, Refused
from retento.core.ssrf import AllowList
from tests.fakes import FakeResolver


class Local:
    """A loopback HTTP(S) server that records the Host header (and the TLS server name) of each request."""

    def __init__(self, tls: ssl.SSLContext | None = None, status: int = 200, location: str | None = None) -> None:
        self.seen: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers["Content-Length"]))
                outer.seen.append({"host": self.headers["Host"], "path": self.path})
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def local() -> Iterator[Local]:
    server = Local()
    yield server
    server.close()


def client(hosts: dict[str, list[str]], allow: str = "") -> tuple[Client, FakeResolver]:
    resolver = FakeResolver(hosts)
    return Client(Guard(AllowList.parse(allow), resolver)), resolver


def post(c: Client, url: str):
    return c.post(url, content=b"{}", headers={"Content-Type": "application/json"}, timeout=5)


def test_the_connection_goes_to_the_checked_address_with_the_host_name_kept(local):
    c, resolver = client({"hooks.test": ["127.0.0.1"]}, allow="127.0.0.1")
    reply = post(c, f"http://hooks.test:{local.port}/in")
    assert (reply.status, reply.error, reply.refused) == (200, None, False)
    # the system resolver does not know hooks.test: only the checked address can have been connected to
    assert local.seen == [{"host": f"hooks.test:{local.port}", "path": "/in"}]
    assert resolver.lookups == ["hooks.test"]  # resolved once, for the check and the connection
    c.close()


def test_a_private_answer_at_connect_time_is_refused_without_connecting(local):
    c, resolver = client({"hooks.test": ["93.184.216.34"]})
    assert c.guard.url_refusal(f"http://hooks.test:{local.port}/in") is None  # at save time: public
    resolver.hosts["hooks.test"] = ["127.0.0.1"]  # then the DNS answer changes (rebinding)
    reply = post(c, f"http://hooks.test:{local.port}/in")
    assert reply.refused and reply.status is None
    assert reply.error == ("refused by the outgoing request policy (SSRF): "
                           "hooks.test resolves to 127.0.0.1, a loopback address")
    assert local.seen == []
    resolver.hosts["hooks.test"] = ["93.184.216.34", "10.0.0.3"]  # one bad address among good ones
    assert "10.0.0.3, a private address" in post(c, "http://hooks.test/in").error
    c.close()


@pytest.mark.parametrize("url", ["http://127.0.0.1:{port}/", "http://[::1]:{port}/", "http://169.254.169.254/",
                                 "http://10.0.0.1:{port}/", "http://[::ffff:127.0.0.1]:{port}/",
                                 "http://localhost:{port}/", "http://metadata.google.internal/"])
def test_addresses_and_names_refused_at_connect_time(local, url):
    c, _ = client({"localhost": ["127.0.0.1"]})
    reply = post(c, url.format(port=local.port))
    assert reply.refused and reply.error.startswith("refused by the outgoing request policy (SSRF): ")
    assert local.seen == []
    c.close()


def test_schemes_other_than_http_and_a_dns_failure(local):
    c, _ = client({})
    assert post(c, "file:///etc/passwd").refused
    assert post(c, "gopher://x.test/").refused
    failed = post(c, "http://nowhere.test/")
    assert not failed.refused and failed.status is None and "nowhere.test does not resolve" in failed.error
    assert c.guard.url_refusal("ftp://x.test/") == "only http and https URLs can be called"
    assert c.guard.url_refusal("http://nowhere.test/") is None  # unknown now: checked again at each connection
    c.close()


def test_redirects_are_not_followed():
    target = Local()
    redirecting = Local(status=302, location=f"http://127.0.0.1:{target.port}/inside")
    try:
        c, _ = client({}, allow="127.0.0.1")
        reply = post(c, f"http://127.0.0.1:{redirecting.port}/out")
        assert (reply.status, reply.error) == (302, "HTTP 302")
        assert target.seen == [] and len(redirecting.seen) == 1
        c.close()
    finally:
        target.close()
        redirecting.close()


def test_tls_verifies_the_certificate_of_the_host_name_not_the_address(tmp_path: Path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=secure.test",
                    "-addext", "subjectAltName=DNS:secure.test"], check=True, capture_output=True)
    names: list[str | None] = []
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    server_tls.sni_callback = lambda sock, name, ctx: names.append(name)
    server = Local(tls=server_tls)
    trusting = ssl.create_default_context(cafile=str(cert))
    try:
        resolver = FakeResolver({"secure.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
        c = Client(Guard(AllowList.parse("127.0.0.1"), resolver), tls=trusting)
        reply = post(c, f"https://secure.test:{server.port}/tls")
        assert (reply.status, reply.error) == (200, None)
        assert server.seen == [{"host": f"secure.test:{server.port}", "path": "/tls"}] and names == ["secure.test"]
        wrong = post(c, f"https://other.test:{server.port}/tls")  # same address, a name the certificate lacks
        assert wrong.status is None and "certificate" in wrong.error.lower() and not wrong.refused
        c.close()
    finally:
        server.close()


def test_refused_is_raised_by_the_guard_itself():
    guard = Guard(AllowList(), FakeResolver({"a.test": ["192.168.0.2"]}))
    with pytest.raises(Refused, match="a.test resolves to 192.168.0.2, a private address"):
        guard.addresses("a.test", 443)
    assert guard.url_refusal("http://[fe80::1]/") == "fe80::1 is a link-local address"
    assert guard.url_refusal("https://a.test/x") == "a.test resolves to 192.168.0.2, a private address"
