"""Migrating an empty database gives exactly the models' schema, on both databases."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from retento.models import metadata, schema_filter


def test_migrations_match_models(app):
    with app.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "render_as_batch": True,
                                                          "include_object": schema_filter(conn.dialect.name)})
        diff = compare_metadata(ctx, metadata)
    assert diff == []
    tables = set(inspect(app.engine).get_table_names())
    assert {t.name for t in metadata.sorted_tables} <= tables
    assert "alembic_version" in tables


def test_migrate_is_idempotent(app):
    from retento.migrate import migrate

    migrate(app)
    migrate(app)
    with app.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"include_object": schema_filter(conn.dialect.name)})
        assert compare_metadata(ctx, metadata) == []
