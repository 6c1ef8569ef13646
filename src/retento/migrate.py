"""Schema migrations (Alembic, batch mode so SQLite works too) and built-in reference data."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

from retento.core.db.transactions import transaction
from retento.orders.statuses import ensure_default_statuses

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def migrate(app) -> None:  # noqa: ANN001 - retento.bootstrap.App
    """Bring the schema to the newest revision and add missing built-in statuses."""
    upgrade(app.engine)
    with transaction(app.sessions) as s:
        ensure_default_statuses(s)
