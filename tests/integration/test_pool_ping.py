"""PostgreSQL pooled connections are pinged only after sitting idle (`PING_IDLE_SECONDS`), not on every
checkout; a connection the server closed while it sat idle is replaced before anyone uses it."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import text

from retento.core.db import engine as engines

pytestmark = pytest.mark.postgres


def _pids(pg_url: str, monkeypatch: pytest.MonkeyPatch, idle: float) -> tuple[int, int]:
    monkeypatch.setattr(engines, "PING_IDLE_SECONDS", idle)
    eng = engines.make_engine(pg_url)
    try:
        with eng.connect() as c:
            first = c.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with psycopg.connect(pg_url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [first])
        with eng.connect() as c:
            return first, c.execute(text("SELECT pg_backend_pid()")).scalar_one()
    finally:
        eng.dispose()


def test_a_connection_closed_while_idle_is_replaced_on_checkout(pg_url, monkeypatch):
    first, second = _pids(pg_url, monkeypatch, idle=0.0)
    assert second != first


def test_a_connection_back_from_a_moment_ago_is_used_without_a_ping(pg_url, monkeypatch):
    with pytest.raises(Exception) as err:  # not pinged: the statement meets the closed connection
        _pids(pg_url, monkeypatch, idle=3600.0)
    assert "terminat" in str(err.value).lower() or "closed" in str(err.value).lower()
