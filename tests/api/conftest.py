"""API tests: a real uvicorn server on a free loopback port, in a thread, against the `app` fixture's database."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from retento.api import create_app
from retento.apikeys import service as apikeys
from retento.bootstrap import App
from retento.core.db.transactions import transaction


class Server:
    def __init__(self, app: App) -> None:
        self.app = app
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(create_app(app), host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> Server:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the API server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=20)


@pytest.fixture
def server(app: App) -> Iterator[Server]:
    with Server(app) as s:
        yield s


def make_key(app: App, scopes: str = "all", sites: list[str] | None = None, name: str = "test") -> tuple[int, str]:
    with transaction(app.sessions) as s:
        key, raw = apikeys.create(s, name=name, scopes=scopes, sites=sites, now=app.clock.now())
        return key.id, raw


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    _, raw = make_key(server.app)
    with httpx.Client(base_url=server.url, headers={"X-API-Key": raw}, timeout=30) as c:
        yield c
