from alembic import context

from retento.core.db.engine import make_engine
from retento.models import metadata, schema_filter

config = context.config


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        engine = make_engine(config.get_main_option("sqlalchemy.url"))
        with engine.connect() as connection:
            _migrate(connection)
        engine.dispose()
    else:
        _migrate(connection)


def _migrate(connection) -> None:
    # SQLite's batch mode rebuilds a table (copy, drop, rename); with foreign keys on, dropping the old table
    # runs the ON DELETE CASCADE of every table that points at it and empties them. Alembic's advice: foreign
    # keys off while migrating (a PRAGMA that only takes effect outside a transaction), checked after.
    _sqlite_foreign_keys(connection, on=False)
    try:
        _run(connection)
    finally:
        _sqlite_foreign_keys(connection, on=True)


def _sqlite_foreign_keys(connection, *, on: bool) -> None:
    if connection.dialect.name != "sqlite":
        return
    if connection.in_transaction():
        connection.commit()
    raw = connection.connection.driver_connection
    raw.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")
    if on and (broken := raw.execute("PRAGMA foreign_key_check").fetchall()):
        raise RuntimeError(f"migration left rows whose parent is gone (table, rowid, parent, fk): {broken[:5]}")


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True,
                      compare_type=True, user_module_prefix="retento.core.db.types.",
                      include_object=schema_filter(connection.dialect.name))
    with context.begin_transaction():
        context.run_migrations()
    if connection.in_transaction():
        connection.commit()


run()
