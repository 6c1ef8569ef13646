"""The one-call bind processors of the shared column types give what SQLAlchemy's composition gives."""

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.types import TypeDecorator

from retento.db import Amount, UTCDateTime

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
