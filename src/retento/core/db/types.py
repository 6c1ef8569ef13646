"""Column types and JSON serialisation shared by every table (one schema for both databases)."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from operator import methodcaller
from typing import Any

import orjson
from sqlalchemy import JSON, MetaData, Numeric, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import DateTime, TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC in, timezone-aware UTC out, on both databases."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def bind_processor(self, dialect: Any) -> Any:
        """process_bind_param and then the driver-level conversion, in one call (bulk inserts run it per value)."""
        inner = self.impl_instance.bind_processor(dialect)
        utc = timezone.utc
        if dialect.name != "sqlite" or inner is None:
            return super().bind_processor(dialect)
        sample = datetime(987, 6, 5, 4, 3, 2, 1)
        if inner(sample) != sample.isoformat(" ", "microseconds"):  # not SQLAlchemy's default storage format
            return super().bind_processor(dialect)

        def process(value: datetime | None) -> str | None:
            if value is None:
                return None
            if value.tzinfo is None:
                raise ValueError("naive datetime given to a UTC column")
            return value.astimezone(utc).isoformat(" ", "microseconds")[:-6]  # without its "+00:00"

        return process

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)

    def result_processor(self, dialect: Any, coltype: Any) -> Any:
        """SQLite: the stored text (naive UTC) parsed with its "+00:00" in one `fromisoformat`, ~10x cheaper than
        the driver-level parse and then `replace(tzinfo=...)` (~0.6 µs a value; a batch of events reads hundreds);
        any other text as `process_result_value` after the parse."""
        chain = super().result_processor(dialect, coltype)
        if dialect.name != "sqlite" or chain is None:
            return chain
        parse = datetime.fromisoformat

        def process(value: Any) -> datetime | None:
            if type(value) is str:
                try:  # valid only if the text has no offset of its own: naive, so UTC
                    out = parse(value + "+00:00")
                except ValueError:
                    pass
                else:
                    if out.tzinfo is not None:  # (a date alone drops the offset)
                        return out
            return chain(value)

        return process


class Amount(TypeDecorator):
    """Exact decimal: NUMERIC on PostgreSQL; on SQLite a REAL read back and quantized to the scale."""

    impl = Numeric(18, 2)
    cache_ok = True

    def __init__(self, scale: int = 2, precision: int = 18) -> None:
        super().__init__()
        self.scale, self.precision = scale, precision
        self._quantum = Decimal(1).scaleb(-scale)
        self.impl = Numeric(precision, scale)

    def load_dialect_impl(self, dialect: Any) -> Any:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(Numeric(self.precision, self.scale, asdecimal=False))
        return dialect.type_descriptor(Numeric(self.precision, self.scale))

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        value = Decimal(value).quantize(self._quantum)
        return float(value) if dialect.name == "sqlite" else value

    def bind_processor(self, dialect: Any) -> Any:
        """process_bind_param and then the driver-level conversion, in one call (bulk inserts run it per value)."""
        quantum, inner, as_float = self._quantum, self.impl_instance.bind_processor(dialect), dialect.name == "sqlite"

        def process(value: Any) -> Any:
            if value is None:
                return None
            value = (value if type(value) is Decimal else Decimal(value)).quantize(quantum)
            if as_float:
                value = float(value)
            return inner(value) if inner else value

        return process

    def bulk_processor(self, dialect: Any) -> Any:
        """values -> what `bind_processor` gives each, in C-level maps; None unless all are Decimals."""
        steps: list[Any] = [methodcaller("quantize", self._quantum)]
        if dialect.name == "sqlite":
            steps.append(float)
        if inner := self.impl_instance.bind_processor(dialect):
            steps.append(inner)

        def convert(values: list[Any]) -> list[Any] | None:
            if set(map(type, values)) != {Decimal}:
                return None
            out: Any = values
            for step in steps:
                out = map(step, out)
            return list(out)

        return convert

    def process_result_value(self, value: Any, dialect: Any) -> Decimal | None:
        if value is None:
            return None
        return Decimal(repr(value) if isinstance(value, float) else value).quantize(self._quantum)


JSONType = JSON().with_variant(JSONB(), "postgresql")


class Leased:
    """The lease columns of a table of deferred work that `retento.core.work.claim` leases (mixed into its model)."""

    lease_token: Mapped[str | None] = mapped_column(String(32))  # the claim that holds the row: the fence
    lease_owner: Mapped[str | None] = mapped_column(String(64))  # which worker (host:pid), for operators
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())


def Currency() -> String:  # noqa: N802 - a column type factory
    return String(3)


def json_loads(value: Any) -> Any:
    """orjson's loads; a JSON number SQLite hands back as a number stays one (as SQLAlchemy's SQLite JSON type
    expects from the deserializer: a TypeError it catches, which orjson does not raise)."""
    if isinstance(value, int | float):
        return value
    return orjson.loads(value)


def json_dumps(value: Any) -> str:
    return orjson.dumps(value, default=json_default).decode()


def json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
