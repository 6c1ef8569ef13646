"""PostgreSQL advisory locks: keys by kind of thing locked, exclusive locks taken in key order."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import text
from sqlalchemy.orm import Session

# Advisory-lock keys on PostgreSQL are (tag << 48) | a 48-bit value: a tag per kind of thing locked, so kinds never
# collide. The change-log claims (`changelog`) are shared locks; the others exclusive (`lock_keys`).
ADVISORY_TAGS = {"history": 0x7201, "events": 0x7202, "trigger": 0x7211, "assist": 0x7221}


ADVISORY_BITS = 48


ADVISORY_LOW = (1 << ADVISORY_BITS) - 1


_LOCK_KEYS = text("SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS bigint[])) AS k")  # in array order


def advisory_key(tag: str, value: int) -> int:
    """The advisory-lock key of `value` (an id; larger values wrap, costing at most a needless wait)."""
    return (ADVISORY_TAGS[tag] << ADVISORY_BITS) | (value & ADVISORY_LOW)


def lock_keys(session: Session, keys: Iterable[int]) -> None:
    """Exclusive advisory locks held until the transaction ends, on PostgreSQL; nothing on SQLite (one writer).

    Taken in ascending order in one statement, so two transactions locking overlapping sets of keys this way
    never deadlock on them."""
    wanted = sorted(set(keys))
    if wanted and session.get_bind().dialect.name == "postgresql":
        session.execute(_LOCK_KEYS, {"keys": wanted})
