"""Change-log ids a reader can page by (`id > N`) without ever skipping a late commit, with writers in parallel.

The history and event tables take their ids from sequences. On PostgreSQL two transactions can commit out of
id order: one takes id 9, another takes id 10 and commits first. A reader that has seen 10 and pages on with
`id > 10` would never see 9. SQLite has one writer at a time (BEGIN IMMEDIATE), so there ids always become
visible in order and nothing here does anything.

PostgreSQL, without serialising writers:

- A writer, before its transaction takes the first id of a log table, takes a *shared* transaction-level
  advisory lock whose key holds that table's sequence value `L` at that moment (`claim`). Every id the
  transaction takes afterwards is greater than `L`. Shared locks never wait for one another, so writers of all
  sites run side by side; the lock goes with the commit (or the rollback).
- A reader first asks for the settled id of the table (`settled`): the sequence's current value `R` read
  first, then the smallest `L` among the locks held at that moment. Every id up to `min(R, L)` is final: its
  transaction had committed or rolled back (an open one holds a lock with a smaller `L`; one that locks later
  takes ids above `R`). Its query then keeps to `id <= settled`, in a LATER statement (READ COMMITTED: a new
  snapshot, taken after the locks were read; a snapshot taken before could miss a transaction that committed
  in between and released its lock).

So a reader waits for the oldest open writer instead of every writer waiting for every other, and ids keep
their meaning for everyone who compares them ("later event", cursors, `sinceId`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Table, event, text, true
from sqlalchemy.orm import Session

from retento.core.db.locks import ADVISORY_BITS, ADVISORY_LOW, ADVISORY_TAGS

# The key of a claim is `db.advisory_key(table, L)`; past 2^48 (2.8e14 ids) the sequence would keep readers at
# 2^48 - 1, so the value is capped rather than wrapped.
_CLAIMED = "change_log_claimed"  # session.info: the log tables this transaction holds a claim on

_LAST = "COALESCE(pg_sequence_last_value(CAST(pg_get_serial_sequence(:table, 'id') AS regclass)), 0)"
_CLAIM = text(f"SELECT pg_advisory_xact_lock_shared((CAST(:tag AS bigint) << {ADVISORY_BITS}) "
              f"| LEAST({_LAST}, {ADVISORY_LOW}))")
# The sequence is read in the subquery (OFFSET 0 keeps it a separate step) before the locks, which the
# correlated subplan reads only once it has that row.
_SETTLED = text(f"""
SELECT LEAST(s.last, (
    SELECT min(((l.classid::bigint & 65535) << 32) | l.objid::bigint) FROM pg_locks l
    WHERE l.locktype = 'advisory' AND l.objsubid = 1 AND (l.classid::bigint >> 16) = :tag AND s.last IS NOT NULL
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())))
FROM (SELECT {_LAST} AS last OFFSET 0) s""")


def claim(session: Session, table: Table) -> None:
    """Call before the transaction writes the first row of a log table (history, events) on PostgreSQL."""
    claimed = session.info.setdefault(_CLAIMED, set())
    if table.name in claimed:
        return
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_CLAIM, {"tag": ADVISORY_TAGS[table.name], "table": table.name})
    claimed.add(table.name)


def settled(session: Session, table: Table) -> int | None:
    """The largest id of the log table up to which every id is final; None where ids are always (SQLite).

    Use it in a later statement of a READ COMMITTED transaction than this one (see the module's docstring)."""
    if session.get_bind().dialect.name != "postgresql":
        return None
    return session.scalar(_SETTLED, {"tag": ADVISORY_TAGS[table.name], "table": table.name})


def up_to_settled(session: Session, table: Table) -> ColumnElement[bool]:
    """`id <= settled` for a reader's query (true on SQLite)."""
    top = settled(session, table)
    return true() if top is None else table.c.id <= top


@event.listens_for(Session, "after_soft_rollback")
def _forget_on_rollback(session: Session, previous: Any) -> None:
    # A rolled-back savepoint releases the advisory locks taken inside it; taking a claim again is harmless.
    session.info.pop(_CLAIMED, None)


@event.listens_for(Session, "after_transaction_end")
def _forget_at_end(session: Session, transaction: Any) -> None:
    if transaction.parent is None:
        session.info.pop(_CLAIMED, None)
