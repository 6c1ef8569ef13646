"""Set-based writes and reads at the driver: reserved ids, multi-row inserts and updates, key lookups, planner
hints."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache, partial
from itertools import repeat
from operator import is_, itemgetter
from typing import Any

import orjson
from sqlalchemy import JSON, ColumnElement, String, Table, any_, bindparam, func, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import Null

from retento.core.db.types import json_default, json_dumps


def reserve_ids(session: Session, table: Table, count: int) -> list[int]:
    """`count` new primary keys of `table`, ascending, for rows this transaction is about to insert.

    PostgreSQL: taken from the column's sequence in one round trip, so concurrent writers never collide.
    SQLite: the ids the database itself would give (one past the largest); the transaction began with
    BEGIN IMMEDIATE, so no other writer can take them before commit.
    """
    if count <= 0:
        return []
    name = table.name
    if session.get_bind().dialect.name == "postgresql":
        q = text(f"SELECT nextval(pg_get_serial_sequence('{name}', 'id')) FROM generate_series(1, :n)")
        return sorted(session.scalars(q, {"n": count}))
    top = session.scalar(text(f"SELECT COALESCE(MAX(id), 0) FROM {name}"))
    return list(range(top + 1, top + 1 + count))


def one_of(session: Session, column: ColumnElement[Any], values: Iterable[Any]) -> ColumnElement[bool]:
    """`column IN values` for a batch's hundreds of keys, the values bound as one parameter: `= ANY(array)` on
    PostgreSQL, `IN (SELECT value FROM json_each(...))` on SQLite. A plain `in_()` costs SQLAlchemy a coercion
    and a rendered placeholder per value on every execution (about 3 ms for 500 ids), more than the query."""
    wanted = sorted(set(values))
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, wanted, type_=postgresql.ARRAY(column.type)))
    each = func.json_each(bindparam(None, orjson.dumps(wanted, default=json_default).decode(), type_=String))
    return column.in_(select(each.table_valued("value").c.value))


PLACEHOLDERS = {"qmark": "?", "format": "%s", "pyformat": "%s"}  # positional, by the drivers' paramstyle


def rows_with_keys(session: Session, table: Table, columns: Sequence[str], *, site_id: int, key: str,
                   values: Iterable[Any]) -> list[tuple]:
    """`columns` of the rows of `table` on one site whose `key` is one of `values`, as the driver gives them.

    For a batch's hundreds of external ids or numbers: the (site_id, key) index is sought once per value, and
    the values go to the driver as they are, without SQLAlchemy's per-value bookkeeping of an `IN` list.
    Use it for columns whose stored form is the Python value (ids, strings).
    """
    dialect = session.get_bind().dialect
    placeholder = PLACEHOLDERS[dialect.paramstyle]
    quote = dialect.identifier_preparer.quote
    head = (f"SELECT {', '.join(map(quote, columns))} FROM {dialect.identifier_preparer.format_table(table)} "
            f"WHERE site_id = {placeholder} AND {quote(key)} IN ")
    if session.autoflush:  # as a query through the session would, so pending objects are seen
        session.flush()
    wanted, conn, out = sorted(set(values)), session.connection(), []
    for i in range(0, len(wanted), 900):
        chunk = wanted[i : i + 900]
        sql = f"{head}({', '.join([placeholder] * len(chunk))})"
        out += conn.exec_driver_sql(sql, (site_id, *chunk)).all()
    return out


def insert_rows(session: Session, table: Table, rows: Sequence[dict[str, Any]], *,
                skip_existing: bool = False, returning: Sequence[str] = ()) -> list[Any]:
    """INSERT many rows (all with the same keys) in one statement on PostgreSQL, an executemany on SQLite.

    Each value goes through its column type's own bind processing, so the database gets exactly what
    `session.execute(insert(table), rows)` would send, without Core's per-row statement bookkeeping.
    PostgreSQL: the rows travel as one JSON array read back with `jsonb_to_recordset` and the columns' own types
    (`INSERT ... SELECT`, in the rows' order): psycopg's executemany costs a round of the protocol and an executor
    start per row, two to three times the time of the one statement. Values JSON cannot carry (bytes) go
    through the executemany.
    `skip_existing`: a row that would break a unique key is left out (`ON CONFLICT DO NOTHING`).
    `returning`: columns of the rows inserted (not of those left out), in no promised order; on SQLite a Core
    executemany, which SQLAlchemy sends as multi-row INSERTs.
    """
    if not rows:
        return []
    conn = session.connection()
    plan = _insert_plan(conn.dialect, table, tuple(rows[0]))
    postgres = conn.dialect.name == "postgresql"
    suffix = " ON CONFLICT DO NOTHING" if skip_existing else ""
    if returning:
        if postgres and plan is not None:
            quote = conn.dialect.identifier_preparer.quote
            got = _insert_recordset(conn, table, rows, f"{suffix} RETURNING {', '.join(map(quote, returning))}")
            if got is not None:
                return got.all()
    if plan is None or returning:
        stmt = insert(table)
        if skip_existing:
            stmt = (postgresql.insert if postgres else sqlite.insert)(table).on_conflict_do_nothing()
        if returning:
            return conn.execute(stmt.returning(*(table.c[c] for c in returning)), list(rows)).all()
        conn.execute(stmt, list(rows))
        return []
    sql, keys, converters = plan
    if postgres and len(rows) > 1 and _insert_recordset(conn, table, rows, suffix) is not None:
        return []
    columns = [list(map(itemgetter(k), rows)) for k in keys]
    for i, convert in converters:
        columns[i] = convert(columns[i])
    conn.exec_driver_sql(sql + suffix, list(zip(*columns, strict=True)))
    return []


def _insert_recordset(conn: Any, table: Table, rows: Sequence[dict[str, Any]], suffix: str) -> Any:
    """PostgreSQL: the rows in one `INSERT ... SELECT ... FROM jsonb_to_recordset(...)`, its result; None (nothing sent)
    if a value is not JSON-serialisable."""
    made = recordset_insert(conn.dialect, table, rows)
    return None if made is None else conn.exec_driver_sql(made[0] + suffix, (made[1],))


def recordset_insert(dialect: Any, table: Table, rows: Sequence[dict[str, Any]]) -> tuple[str, str] | None:
    """PostgreSQL: `INSERT ... SELECT ... FROM jsonb_to_recordset(CAST(%s AS jsonb))` of the rows (all with the
    same keys; the same SQL for any number of them) and its one parameter, for a caller's own statement around it
    (`ON CONFLICT`, `RETURNING`, a `WITH`); None if a value is not JSON-serialisable. Values are bind-processed
    first (UTC times), JSON columns travel as their JSON text, so None is stored as JSON null as a Core insert
    stores it."""
    sql, processors = _recordset_plan(dialect, table, tuple(rows[0]))
    payload = []
    for r in rows:
        item = {}
        for k, process in processors:
            v = r[k]
            item[k] = v if process is None else process(v)
        payload.append(item)
    try:
        return sql, orjson.dumps(payload, default=json_default).decode()
    except TypeError:
        return None


def _json_text(none_as_null: bool) -> Any:
    def process(value: Any) -> str | None:
        return None if value is None and none_as_null else json_dumps(value)
    return process


@lru_cache(maxsize=256)
def _recordset_plan(dialect: Any, table: Table, keys: tuple[str, ...]) -> tuple[str, list[tuple[str, Any]]]:
    prep = dialect.identifier_preparer
    defs, selects, processors = [], [], []
    for k in keys:
        column, name = table.c[k], prep.quote(k)
        impl = column.type.dialect_impl(dialect)
        if isinstance(impl, JSON):
            defs.append(f"{name} text")
            selects.append(f"CAST(v.{name} AS jsonb)")
            processors.append((k, _json_text(impl.none_as_null)))
        else:
            defs.append(f"{name} {column.type.compile(dialect=dialect)}")
            selects.append(f"v.{name}")
            processors.append((k, column.type._cached_bind_processor(dialect)))
    sql = (f"INSERT INTO {prep.format_table(table)} ({', '.join(prep.format_column(table.c[k]) for k in keys)}) "
           f"SELECT {', '.join(selects)} FROM jsonb_to_recordset(CAST(%s AS jsonb)) AS v({', '.join(defs)})")
    return sql, processors


def _converter(process: Any, type_: Any, dialect: Any) -> Any:
    """A column's values -> process(v) for each: once for a column holding one object throughout (the batch's
    `now`, a flag), in C-level maps where the type offers a bulk form and the values allow it."""
    impl = type_.dialect_impl(dialect)
    bulk = impl.bulk_processor(dialect) if hasattr(impl, "bulk_processor") else _json_bulk(impl, dialect)

    def convert(values: list[Any]) -> list[Any]:
        first = values[0]
        if all(map(is_, values, repeat(first))):
            return [process(first)] * len(values)
        if bulk is not None and (out := bulk(values)) is not None:
            return out
        return list(map(process, values))

    return convert


def _json_bulk(impl: Any, dialect: Any) -> Any:
    """SQLite JSON columns serialised by `json_dumps`: the same text, without a Python call per value."""
    if (not isinstance(impl, JSON) or impl.none_as_null or dialect.name != "sqlite"
            or dialect._json_serializer is not json_dumps
            or impl._str_impl.bind_processor(dialect) is not None):
        return None
    dumps = partial(orjson.dumps, default=json_default)

    def convert(values: list[Any]) -> list[str] | None:
        if JSON.NULL in values or Null in set(map(type, values)):
            return None
        return list(map(bytes.decode, map(dumps, values)))

    return convert


@lru_cache(maxsize=256)
def _insert_plan(dialect: Any, table: Table, keys: tuple[str, ...]) -> tuple[str, tuple[str, ...], list] | None:
    """(SQL, keys, [(position, processor)]); None where Core must do it (defaults to fill, other drivers)."""
    placeholder = PLACEHOLDERS.get(dialect.paramstyle)
    missing = [c for c in table.columns if c.key not in keys and c.default is not None]
    if placeholder is None or missing:
        return None
    columns = [table.c[k] for k in keys]
    processors = [(i, _converter(p, c.type, dialect))
                  for i, c in enumerate(columns) if (p := c.type._cached_bind_processor(dialect))]
    preparer = dialect.identifier_preparer
    sql = (f"INSERT INTO {preparer.format_table(table)} ({', '.join(preparer.format_column(c) for c in columns)}) "
           f"VALUES ({', '.join([placeholder] * len(columns))})")
    return sql, keys, processors


def update_rows(session: Session, table: Table, rows: Sequence[dict[str, Any]], *,
                key: str | tuple[str, ...] = "id") -> None:
    """UPDATE many rows (all with the same keys): each row's other columns where `key` (a column, or a tuple of
    columns: a composite key) equals its `key`.

    PostgreSQL: one statement for all of them, the rows sent as one JSON array read back with
    `jsonb_to_recordset` and the columns' own types (an executemany costs a round of the protocol per row);
    JSON columns travel as their JSON text, so None is stored as JSON null, as an ORM or Core write does.
    SQLite: executemany of `UPDATE ... WHERE key = ?`, which costs little there.
    """
    if not rows:
        return
    keys = (key,) if isinstance(key, str) else tuple(key)
    columns = [k for k in rows[0] if k not in keys]
    conn = session.connection()
    dialect = conn.dialect
    if dialect.name != "postgresql":
        conn.execute(_update_statement(table, keys, tuple(columns)),
                     [{**{f"k_{k}": r[k] for k in keys}, **{f"v_{c}": r[c] for c in columns}} for r in rows])
        return
    sql, is_json = _update_plan(dialect, table, keys, tuple(columns))
    payload = [{c: (json_dumps(r[c]) if is_json[c] else r[c]) for c in (*keys, *columns)} for r in rows]
    conn.exec_driver_sql(sql, (orjson.dumps(payload, default=json_default).decode(),))


@lru_cache(maxsize=256)
def _update_statement(table: Table, keys: tuple[str, ...], columns: tuple[str, ...]) -> Any:
    """SQLite's `UPDATE ... WHERE key = ?`, built once per set of columns."""
    return (update(table).where(*(table.c[k] == bindparam(f"k_{k}") for k in keys))
            .values({c: bindparam(f"v_{c}") for c in columns}))


@lru_cache(maxsize=256)
def _update_plan(dialect: Any, table: Table, keys: tuple[str, ...], columns: tuple[str, ...]
                 ) -> tuple[str, dict[str, bool]]:
    prep = dialect.identifier_preparer
    is_json = {c: isinstance(table.c[c].type.dialect_impl(dialect), JSON) for c in (*keys, *columns)}
    defs = ", ".join(f"{prep.quote(c)} {'text' if is_json[c] else table.c[c].type.compile(dialect=dialect)}"
                     for c in (*keys, *columns))
    sets = ", ".join(f"{prep.quote(c)} = " + (f"CAST(v.{prep.quote(c)} AS jsonb)" if is_json[c] else
                                               f"v.{prep.quote(c)}") for c in columns)
    name = prep.format_table(table)
    where = " AND ".join(f"{name}.{prep.quote(k)} = v.{prep.quote(k)}" for k in keys)
    sql = f"UPDATE {name} SET {sets} FROM jsonb_to_recordset(CAST(%s AS jsonb)) AS v({defs}) WHERE {where}"
    return sql, is_json
