"""`retento user create / list / disable / set-password` against a real database."""

from __future__ import annotations

from typer.testing import CliRunner

from retento.cli import app as cli
from retento.core.config import get_settings
from retento.core.db.transactions import transaction
from retento.users import service
from tests import factories as f


def test_create_list_disable_set_password(app, monkeypatch) -> None:  # noqa: ANN001
    f.site(app)
    monkeypatch.setenv("RETENTO_DATABASE_URL", app.settings.database_url)
    get_settings.cache_clear()
    runner = CliRunner(env={"COLUMNS": "200"})
    try:
        r = runner.invoke(cli, ["user", "create", "Ops@Example.com", "--role", "operator", "--site", "shop",
                                "--locale", "ru"], input="long enough pw\nlong enough pw\n")
        assert r.exit_code == 0, r.output
        listed = runner.invoke(cli, ["user", "list"])
        assert listed.exit_code == 0 and "ops@example.com" in listed.output and "operator" in listed.output
        bad = runner.invoke(cli, ["user", "create", "x@example.com", "--role", "boss", "--password", "long enough pw"])
        assert bad.exit_code != 0 and "role" in bad.output
        short = runner.invoke(cli, ["user", "create", "y@example.com", "--role", "viewer", "--password", "short"])
        assert short.exit_code != 0 and "password" in short.output
        assert runner.invoke(cli, ["user", "set-password", "ops@example.com", "--password", "another long one"]
                             ).exit_code == 0
        with transaction(app.sessions) as s:
            user = service.by_email(s, "ops@example.com")
            assert user.site_ids == [1] and user.locale == "ru"
            assert service.sign_in(s, email="ops@example.com", password="another long one", address="a",
                                   now=app.clock.now()).user is not None
        assert runner.invoke(cli, ["user", "disable", "ops@example.com"]).exit_code == 0
        with transaction(app.sessions) as s:
            assert service.sign_in(s, email="ops@example.com", password="another long one", address="a",
                                   now=app.clock.now()).user is None
        assert runner.invoke(cli, ["user", "disable", "nobody@example.com"]).exit_code != 0
    finally:
        get_settings.cache_clear()


def test_demo_prints_the_console_admin_once(app, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("RETENTO_DATABASE_URL", app.settings.database_url)
    get_settings.cache_clear()
    runner = CliRunner(env={"COLUMNS": "200"})
    try:
        first = runner.invoke(cli, ["demo", "--customers", "5", "--orders", "5"])
        assert first.exit_code == 0, first.output
        password = first.output.split("password ", 1)[1].split()[0]
        with transaction(app.sessions) as s:
            assert service.sign_in(s, email="admin@example.com", password=password, address="a",
                                   now=app.clock.now()).user.role == "admin"
        again = runner.invoke(cli, ["demo", "--if-empty"])
        assert again.exit_code == 0 and "password" not in again.output
    finally:
        get_settings.cache_clear()
