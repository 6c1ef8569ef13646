"""The one-call bind processors of the shared column types give what SQLAlchemy's composition gives."""

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.types import TypeDecorator

from retento.core.db.types import Amount, UTCDateTime

DIALECTS = [SQLiteDialect_pysqlite(), PGDialect_psycopg()]
MSK = timezone(timedelta(hours=3))


def processors(type_, dialect):
    impl = type_.dialect_impl(dialect)
    return impl.bind_processor(dialect), TypeDecorator.bind_processor(impl, dialect)


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)
@pytest.mark.parametrize("scale", [2, 3])
def test_amount(dialect, scale):
    fast, composed = processors(Amount(scale), dialect)
    for value in (
        None,
        Decimal("0"),
        Decimal("-0"),
        Decimal("12.3"),
        Decimal("12.345"),
        Decimal("12.3455"),
        Decimal("99999999999.999"),
        7,
        "1.005",
        0.1,
    ):
        got, want = fast(value), composed(value)
        assert (got, type(got), str(got)) == (want, type(want), str(want))


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)
def test_utc_datetime(dialect):
    fast, composed = processors(UTCDateTime(), dialect)
    for value in (
        None,
        datetime(2026, 3, 2, 9, tzinfo=timezone.utc),
        datetime(2026, 3, 2, 0, 30, 0, 5, tzinfo=MSK),
        datetime(999, 1, 1, 23, 59, 59, 999999, tzinfo=timezone.utc),
    ):
        assert fast(value) == composed(value)
    with pytest.raises(ValueError, match="naive"):
        fast(datetime(2026, 3, 2))


def test_wal_checkpoints_run_off_the_commit_path(tmp_path):
    """Commits leave the WAL to the background checkpointer; one checkpoint copies all of it; dispose stops it."""
    from retento.core.db.engine import CHECKPOINTERS, checkpoint, make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x TEXT)")
    for _ in range(30):  # well past SQLite's default automatic checkpoint of 1,000 pages
        with engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO t SELECT hex(randomblob(2000)) FROM (SELECT 1 UNION ALL SELECT 2)"
                                 " JOIN (SELECT 1 UNION ALL SELECT 2) JOIN (SELECT 1 UNION ALL SELECT 2)"
                                 " JOIN (SELECT 1 UNION ALL SELECT 2) JOIN (SELECT 1 UNION ALL SELECT 2)")
    busy, frames, done = checkpoint(engine)
    assert busy == 0 and frames > 1000 and done == frames  # the commits did not checkpoint
    thread = CHECKPOINTERS[engine.pool]
    assert thread.is_alive()
    engine.dispose()
    thread.join(5)
    assert not thread.is_alive()
