"""`retento apikey create / list / revoke` against a real database; the key works once and only its hash is kept."""

from __future__ import annotations

from sqlalchemy import select
from typer.testing import CliRunner

from retento.apikeys import service
from retento.apikeys.models import ApiKey
from retento.cli import app as cli
from retento.core.db.transactions import transaction
from tests import factories as f


def test_create_list_revoke(app, monkeypatch):
    f.site(app)
    monkeypatch.setenv("RETENTO_DATABASE_URL", app.settings.database_url)
    from retento.core.config import get_settings
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        r = runner.invoke(cli, ["apikey", "create", "--name", "sync", "--scopes", "customers:read,orders:write",
                                "--site", "shop"])
        assert r.exit_code == 0, r.output
        raw = next(w for w in r.output.split() if w.startswith("rtk_"))
        with transaction(app.sessions) as s:
            row = s.scalar(select(ApiKey))
            assert row.key_hash == service.hash_key(raw) and raw not in (row.prefix, row.key_hash)
            principal = service.authenticate(s, raw)
            assert principal.scopes == {"customers:read", "orders:write"} and principal.site_ids == {1}
        listed = runner.invoke(cli, ["apikey", "list"])
        assert listed.exit_code == 0 and "sync" in listed.output and raw not in listed.output
        bad = runner.invoke(cli, ["apikey", "create", "--name", "x", "--scopes", "customers:delete"])
        assert bad.exit_code != 0 and "scopes" in bad.output and "customers:delete" in bad.output
        bad = runner.invoke(cli, ["apikey", "create", "--name", "x", "--scopes", "all", "--site", "nope"])
        assert bad.exit_code != 0 and "site" in bad.output
        assert runner.invoke(cli, ["apikey", "revoke", str(row.id)]).exit_code == 0
        with transaction(app.sessions) as s:
            assert service.authenticate(s, raw) is None
        assert runner.invoke(cli, ["apikey", "revoke", "999"]).exit_code != 0
    finally:
        get_settings.cache_clear()
