"""The root command's tables (`retento site list`, `retento history`) through the one report renderer: a narrow
terminal, piped output, CSV and JSON with raw values."""

from __future__ import annotations

import csv
import io
import json

import pytest
from typer.testing import CliRunner

from retento.apikeys import service as apikeys_service
from retento.cli import app as cli
from retento.core.config import get_settings
from retento.core.db.transactions import transaction
from retento.tasks import service as tasks_service
from retento.tasks.schemas import TaskCreate
from tests import factories as f


@pytest.fixture
def runner(app, monkeypatch):
    monkeypatch.setenv("RETENTO_DATABASE_URL", app.settings.database_url)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def run(runner: CliRunner, *args: str, columns: str = "") -> str:
    out = runner.invoke(cli, list(args), env={"COLUMNS": columns})
    assert out.exit_code == 0, out.output
    return out.stdout


def test_site_list_in_every_format(app, runner):
    f.site(app, name="Магазин одежды и обуви для всей семьи")
    piped = run(runner, "site", "list")
    assert "Магазин одежды и обуви для всей семьи" in piped and "Europe/Moscow" in piped
    narrow = run(runner, "site", "list", columns="40")
    assert max(map(len, narrow.splitlines())) <= 40 and "…" not in narrow
    assert [dict(r) for r in csv.DictReader(io.StringIO(run(runner, "site", "list", "--format", "csv")))] == [
        {"id": "1", "code": "shop", "name": "Магазин одежды и обуви для всей семьи", "currency": "RUB",
         "timezone": "Europe/Moscow"}]
    assert json.loads(run(runner, "site", "list", "--format", "json"))[0]["code"] == "shop"


def test_history_as_json_and_csv(app, runner):
    f.site(app)
    cid = f.customer(app, external_id="c1", first_name="Анна", email="anna@example.com")
    f.edit_customer(app, cid, first_name="Анна-Мария")
    rows = json.loads(run(runner, "history", "--entity", "customer", "--format", "json"))
    assert rows[0]["entity"] == "customer" and rows[0]["entity_id"] == cid and rows[0]["field"] is None
    assert rows[0]["created_at"].endswith("+00:00")
    edit = next(r for r in rows if r["field"] == "first_name")
    assert (edit["old_value"], edit["new_value"]) == ("Анна", "Анна-Мария")
    table = list(csv.DictReader(io.StringIO(run(runner, "history", "--format", "csv"))))
    assert [r["id"] for r in table] == [str(r["id"]) for r in rows]
    text = run(runner, "history", columns="60")
    assert "(created)" in text and "Анна-Мария" in text


def test_tasks_and_api_keys_lists(app, runner):
    f.site(app)
    cid = f.customer(app, external_id="c1")
    with transaction(app.sessions) as s:
        tasks_service.create_task(s, data=TaskCreate(title="Позвонить клиенту о заказе, который ждёт оплаты",
                                                     due_at="2026-03-03T12:30:00+03:00", customer_id=cid),
                                  ctx=f.API, now=app.clock.now())
        apikeys_service.create(s, name="sync", scopes="customers:read", sites=["shop"], now=app.clock.now())
    (task,) = json.loads(run(runner, "tasks", "list", "--format", "json"))
    assert task["due_at"] == "2026-03-03T09:30:00+00:00" and task["customer_id"] == cid and task["done"] is False
    text = run(runner, "tasks", "list", columns="50")
    assert max(map(len, text.splitlines())) <= 50 and "2026-03-03 09:30" in text
    (key,) = csv.DictReader(io.StringIO(run(runner, "apikey", "list", "--format", "csv")))
    assert (key["name"], key["scopes"], key["sites"], key["revoked_at"]) == ("sync", "customers:read", "shop", "")
    assert key["created_at"] == "2026-03-02T09:00:00+00:00"
