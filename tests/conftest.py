"""Test fixtures: every integration test runs on SQLite and on PostgreSQL.

PostgreSQL: one fresh database per test run (named after the run, dropped at the end), so runs never
see each other's data; tables are truncated between tests. SQLite: a migrated template file copied per test.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import make_url, text

from retento.bootstrap import App, bootstrap
from retento.core.clock import FrozenClock
from retento.core.config import Settings
from retento.core.db.transactions import transaction
from retento.migrate import migrate
from retento.models import metadata
from retento.orders.statuses import ensure_default_statuses

PG_DSN = os.environ.get("RETENTO_TEST_PG_DSN", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


# Markers whose tests run only when the marker expression names them: `make test-slow` (pytest -m slow, which
# .ci/run runs after `make test`), `pytest -m fuzz`, `make screenshots` (see the markers in pyproject.toml)
ON_REQUEST = ("slow", "fuzz", "screenshots")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave out the tests of each ON_REQUEST marker that the marker expression does not name."""
    asked = config.option.markexpr or ""
    held = [i for i in items if any(m in i.keywords and m not in asked for m in ON_REQUEST)]
    if held:
        config.hook.pytest_deselected(items=held)
        left_out = set(map(id, held))
        items[:] = [i for i in items if id(i) not in left_out]


def _admin_conninfo(url: str) -> str:
    u = make_url(url)
    return f"host={u.host or '127.0.0.1'} port={u.port or 5432} user={u.username or 'postgres'} dbname={u.database}" + (
        f" password={u.password}" if u.password else "")


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this run, migrated once."""
    name = f"retento_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(_admin_conninfo(PG_DSN), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(PG_DSN).set(database=name).render_as_string(hide_password=False)
    app = bootstrap(Settings(database_url=url))
    migrate(app)
    app.close()
    yield url
    with psycopg.connect(_admin_conninfo(PG_DSN), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    app = bootstrap(Settings(database_url=f"sqlite:///{path}"))
    migrate(app)
    app.close()  # closing the last connection checkpoints the WAL into the file
    return path


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock("2026-03-02T09:00:00+00:00")


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "retento.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("pg_url")
    _truncate_pg(url)
    return url


def _truncate_pg(url: str) -> None:
    app = bootstrap(Settings(database_url=url))
    tables = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
    with app.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    with transaction(app.sessions) as s:
        ensure_default_statuses(s)
    app.close()


@pytest.fixture
def app(db_url: str, clock: FrozenClock) -> Iterator[App]:
    a = bootstrap(Settings(database_url=db_url), clock=clock)
    yield a
    a.close()
