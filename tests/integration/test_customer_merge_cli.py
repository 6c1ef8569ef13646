"""`retento customers merge --site S KEEP MERGE...` against a real database."""

from __future__ import annotations

from typer.testing import CliRunner

from retento.cli import app as cli
from retento.core.config import get_settings
from retento.core.db.transactions import transaction
from retento.customers import service
from tests import factories as f


def test_merge_from_the_command_line(app, monkeypatch) -> None:  # noqa: ANN001
    f.site(app)
    keep, dup, other = f.customer(app, first_name="Anna"), f.customer(app, email="a@example.com"), f.customer(app)
    f.order(app, customer={"id": dup})
    monkeypatch.setenv("RETENTO_DATABASE_URL", app.settings.database_url)
    get_settings.cache_clear()
    runner = CliRunner(env={"COLUMNS": "200"})
    try:
        r = runner.invoke(cli, ["customers", "merge", "--site", "shop", str(keep), str(dup)])
        assert r.exit_code == 0, r.output
        assert f"merged {dup} into customer {keep}" in r.output and "orders 1" in r.output
        again = runner.invoke(cli, ["customers", "merge", "--site", "shop", str(keep), str(dup)])
        assert again.exit_code == 0 and "nothing changed" in again.output
        for args, message in ((["--site", "shop", str(keep), str(keep)], "merge.0"),
                              (["--site", "shop", str(other), str(dup)], f"merged into customer {keep}"),
                              (["--site", "nope", str(keep), str(other)], "site"),
                              (["--site", "shop", str(keep)], "Missing argument")):
            bad = runner.invoke(cli, ["customers", "merge", *args])
            assert bad.exit_code != 0 and message in bad.output, (args, bad.output)
    finally:
        get_settings.cache_clear()
    with transaction(app.sessions) as s:
        assert service.get(s, keep).email == "a@example.com" and service.get(s, other).id == other
